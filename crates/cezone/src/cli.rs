//! Command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cezone",
    version,
    about = "Community education experimental zone evaluation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, show, import and export indicator frameworks.
    #[command(subcommand)]
    Framework(FrameworkCommand),
    /// Generate the demo district, score it in-process and print the district scoreboard.
    Demo(DemoArgs),
    /// Run services: all of them in one process (the embedded default) or any subset.
    Serve(ServeArgs),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run all four services (the default when --services is not given).
    #[arg(long, conflicts_with = "services")]
    pub all: bool,
    /// Comma-separated subset: registry, evidence, surveys, scoring.
    #[arg(long, value_delimiter = ',')]
    pub services: Vec<ServiceName>,
    /// On an empty system, load the demo district through the services' APIs, recompute and
    /// print the district scoreboard.
    #[arg(long)]
    pub demo: bool,
    /// Configuration file (TOML), layered over the embedded defaults and under CEZONE__… .
    #[arg(long, env = "CEZONE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    Registry,
    Evidence,
    Surveys,
    Scoring,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults, file, environment) with secrets masked.
    Show {
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FrameworkCommand {
    /// Check a framework file and list every finding; exits 1 when any is an error.
    Validate {
        /// An indicator table (.csv, .xlsx), a package manifest (.toml) or a framework (.json).
        file: PathBuf,
        /// Units, rules and calendar for a bare table (default: the embedded Guangdong package).
        #[arg(long)]
        package: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = FindingsFormat::Text)]
        format: FindingsFormat,
    },
    /// Print a framework as a tree (table), as the JSON document or as a seed-shaped CSV.
    Show {
        /// Framework file; the embedded Guangdong framework when omitted.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        package: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
    /// Import an indicator table (.csv or .xlsx) and write the framework as JSON.
    Import {
        file: PathBuf,
        #[arg(long)]
        package: Option<PathBuf>,
        /// Where to write the framework document; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write even when validation found errors.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingsFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 2013)]
    pub seed: u64,
    #[arg(long, default_value_t = 7)]
    pub towns: usize,
    #[arg(long, default_value_t = 290)]
    pub communities: usize,
    #[arg(long, default_value_t = 60)]
    pub responses_per_community: u32,
    /// How many weak links to list.
    #[arg(long, default_value_t = 8)]
    pub weak_links: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}
