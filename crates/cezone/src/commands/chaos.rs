//! `cezone chaos`: the fault-injection harness (see `cezone_chaos`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::ChaosArgs;

pub async fn run(args: ChaosArgs) -> Result<ExitCode> {
    let queue_type = args
        .queue_type
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--queue-type: {e}"))?;
    let opts = cezone_chaos::Options {
        rounds: args.rounds,
        seed: args.seed,
        queue_type,
        postgres_url: args.postgres,
        amqp_url: args.amqp,
        binary: std::env::current_exe().context("finding the cezone binary")?,
        communities: args.communities,
        burst: Duration::from_secs(args.burst_seconds),
        converge_limit: Duration::from_secs(120),
    };
    let report = cezone_chaos::run(&opts, &|line| eprintln!("chaos: {line}")).await?;
    print!("{}", report.table());
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
