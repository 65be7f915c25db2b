//! `cezone`: one binary for operators and integrators.

mod cli;
mod commands;
mod render;

use std::process::ExitCode;

use clap::Parser;

// Many small, short-lived allocations per request (protobuf strings, HTTP/2 frames, spans) on
// several threads: mimalloc's per-thread heaps serve them at a fraction of glibc malloc's cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
