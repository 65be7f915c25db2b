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
    /// Run the benchmarks beside their baselines and print the table (needs PostgreSQL and
    /// RabbitMQ as the tests do).
    Bench(BenchArgs),
    /// The fault-injection harness: the services as processes on PostgreSQL and RabbitMQ with
    /// two scoring replicas, concurrent writers and seeded faults; checks every cell of every
    /// replica against a from-scratch recompute and every fact counted once. Exits 1 when it
    /// finds anything wrong.
    Chaos(ChaosArgs),
    /// Export self-evaluation reports from a running scoring service (services.scoring_url).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check running services over gRPC health checking; exits 0 when all are serving.
    Health(HealthArgs),
    /// The recompute-and-freeze runs before each checkpoint (asks the scheduler).
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Frozen snapshots of the scores.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Bearer tokens for people and systems calling the services.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The registry's token signing keys (auth.signing_keys_file): list, rotate, export the
    /// public keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The services' hash-chained audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// People's accounts in the registry: add, list, disable, reset a password (the
    /// evaluation office and district IT).
    #[command(subcommand)]
    User(UserCommand),
    /// Sign in with a login and password and print the access token (for CEZONE_TOKEN).
    Login(LoginArgs),
    /// The district's org list (towns, communities, populations) from and to a spreadsheet.
    #[command(subcommand, name = "org-units")]
    OrgUnits(OrgUnitsCommand),
    /// Statistical returns: the template a unit fills in, and the filled-in file imported.
    #[command(subcommand)]
    Statistics(StatisticsCommand),
    /// Resident surveys: a survey platform's export loaded.
    #[command(subcommand)]
    Surveys(SurveysCommand),
    /// Evidence documents: upload, list, download and review.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// What a unit owes and by when: the materials (evidence) and the statistical return,
    /// each missing, returned, pending or accepted, late ones marked.
    Obligations(ObligationsArgs),
    /// Locked periods: lock a year's statistics, survey batches and evidence when the materials
    /// are handed in, unlock one org unit for a correction, show a lock (evaluation office).
    #[command(subcommand)]
    Period(PeriodCommand),
    /// Scores for another system.
    #[command(subcommand)]
    Scores(ScoresCommand),
}

#[derive(Debug, clap::Args)]
pub struct ObligationsArgs {
    /// The responsible unit (default: the token's own).
    #[arg(long)]
    pub unit: Option<String>,
    /// Only under this org unit (default: the token's own town, else the district).
    #[arg(long)]
    pub org_unit: Option<String>,
    /// The year of the return.
    #[arg(long)]
    pub period: i32,
    /// Today, for lateness (YYYY-MM-DD; default: today).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Every item, the accepted ones too.
    #[arg(long)]
    pub all: bool,
    #[arg(long, env = "CEZONE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PeriodCommand {
    /// Lock a period (again: every unlock of it ends).
    Lock {
        #[arg(long)]
        period: i32,
        /// Why (e.g. "材料已报送").
        #[arg(long)]
        reason: String,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Let one org unit file again in a locked period, for a correction.
    Unlock {
        #[arg(long)]
        period: i32,
        #[arg(long)]
        org_unit: String,
        /// What is to be corrected.
        #[arg(long)]
        reason: String,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// A period's lock and the org units unlocked in it.
    Show {
        #[arg(long)]
        period: i32,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgUnitsCommand {
    /// Load an org list (.csv or .xlsx: code, name, parent, level, community type, region,
    /// population by year) all or nothing: new units are created, known ones updated and moved.
    Import {
        file: PathBuf,
        /// Check the file and show the changes; store nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Write the org list (parents first) as CSV, as `import` reads it.
    Export {
        /// Only this org unit's subtree.
        #[arg(long)]
        root: Option<String>,
        /// Where to write; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StatisticsCommand {
    /// Write the XLSX return a unit fills in: the metrics its criteria read, one row per org
    /// unit in scope, current values filled in, units of measure in the headers, checked cells.
    Template {
        /// The responsible unit (e.g. finance, towns).
        #[arg(long)]
        unit: String,
        /// The year the return is for.
        #[arg(long)]
        period: i32,
        /// Only this org unit's subtree (a town's return).
        #[arg(long)]
        org_unit: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Import a filled-in return (.xlsx or .csv): every cell is checked first, the changes
    /// against the current values are shown, and all are stored or none.
    Import {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The latest filings and where each stands (pending review by default): what a reviewer
    /// has to decide, or what came back returned.
    List {
        #[arg(long)]
        org_unit: Option<String>,
        #[arg(long)]
        metric: Option<String>,
        #[arg(long)]
        period: Option<i32>,
        /// pending, accepted, returned, superseded (earlier filings a correction replaced) or
        /// any.
        #[arg(long, default_value = "pending")]
        state: String,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Accept or return pending statistics: a whole return (every pending figure under an org
    /// unit in a year that you may review) or one statistic (--org-unit with --metric).
    Review {
        /// A whole return: the org unit whose subtree's pending figures are decided.
        #[arg(long, conflicts_with_all = ["org_unit", "metric"], required_unless_present = "org_unit")]
        return_of: Option<String>,
        /// One statistic's org unit (with --metric).
        #[arg(long, requires = "metric")]
        org_unit: Option<String>,
        #[arg(long)]
        metric: Option<String>,
        /// The year.
        #[arg(long)]
        period: i32,
        /// Accept them.
        #[arg(
            long,
            conflicts_with = "return_with",
            required_unless_present = "return_with"
        )]
        accept: bool,
        /// Return them, saying what is wrong and what to file instead.
        #[arg(long = "return", value_name = "COMMENT")]
        return_with: Option<String>,
        /// Show what would be decided; record nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SurveysCommand {
    /// Define a resident survey asking every question of the published framework's catalog.
    Define {
        /// The survey's id, e.g. resident-2014.
        #[arg(long)]
        id: String,
        /// The year the survey is for (default: scoring.period).
        #[arg(long)]
        period: Option<i32>,
        /// Title (default: "{period}年社区教育居民调查").
        #[arg(long)]
        title: Option<String>,
        /// Check the definition as the service would and that the id is free; define nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Load a survey platform's export (.csv or .xlsx, one row per respondent), all or nothing.
    Import {
        file: PathBuf,
        /// The survey the responses answer (e.g. resident-2013).
        #[arg(long)]
        survey: String,
        /// Which column answers which question and how labels map to answer codes (TOML).
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The survey batches filed, newest first: who filed each, how many responses, and where
    /// its review stands (a town's batch is pending until reviewed).
    Batches {
        /// Only this survey's.
        #[arg(long)]
        survey: Option<String>,
        #[arg(long, value_enum)]
        state: Option<BatchStateArg>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Accept a pending survey batch, or return it with what to correct (the department
    /// responsible for the criteria the survey feeds, or the evaluation office).
    Review {
        batch: String,
        #[arg(long, conflicts_with = "return_with")]
        accept: bool,
        /// Return the batch with this comment: it leaves the tallies, and its respondents may
        /// be filed again.
        #[arg(long = "return", value_name = "COMMENT")]
        return_with: Option<String>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BatchStateArg {
    Pending,
    Accepted,
    Returned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewStateArg {
    Submitted,
    Accepted,
    Returned,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Upload one or more files to a criterion, each as its own evidence record.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Criterion code, e.g. 2.3.1.
        #[arg(long)]
        criterion: String,
        /// The responsible unit filing it (e.g. finance, towns).
        #[arg(long)]
        unit: String,
        #[arg(long)]
        org_unit: String,
        /// The evaluation year (default: services' evaluation period).
        #[arg(long)]
        period: Option<i32>,
        /// Title (default: the file name).
        #[arg(long)]
        title: Option<String>,
        /// A returned record this file revises (one file only).
        #[arg(long)]
        replaces: Option<String>,
        /// Check the files locally (size, type) and upload nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List evidence records with their current state.
    List {
        #[arg(long)]
        criterion: Option<String>,
        #[arg(long)]
        org_unit: Option<String>,
        #[arg(long)]
        unit: Option<String>,
        #[arg(long, value_enum)]
        state: Option<ReviewStateArg>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Download a record's file (checked against its SHA-256).
    Download {
        id: String,
        /// A version of the record (default: the current one).
        #[arg(long)]
        version: Option<u32>,
        /// Where to write (default: the file's own name in the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Accept a record with a grade, or return it with a comment.
    Review {
        id: String,
        /// Accept with this grade (0–100).
        #[arg(
            long,
            conflicts_with = "return_with",
            required_unless_present = "return_with"
        )]
        accept: Option<u32>,
        /// Return it, saying what is wrong.
        #[arg(long = "return", value_name = "COMMENT")]
        return_with: Option<String>,
        /// Check the decision and that the record exists and awaits review; record nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScoresFormat {
    Csv,
    Json,
    Xlsx,
}

#[derive(Debug, Subcommand)]
pub enum ScoresCommand {
    /// An org unit's scores (current or of a frozen snapshot), one row per item.
    Export {
        /// Default: the district.
        #[arg(long)]
        org_unit: Option<String>,
        /// A frozen snapshot's id (default: the current scores).
        #[arg(long)]
        snapshot: Option<String>,
        #[arg(long, value_enum)]
        format: ScoresFormat,
        /// Where to write; standard output when omitted (not for xlsx).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a token with the registry's key (auth.signing_keys_file, on the registry's
    /// machine) and print it.
    Issue {
        /// Who the token is for; recorded in the audit log with every change made with it.
        #[arg(long)]
        subject: String,
        /// district_admin, evaluation_office, responsible_unit, town, inspector or service.
        #[arg(long)]
        role: String,
        /// The responsible unit a department or town acts as (e.g. finance, towns).
        #[arg(long)]
        unit: Option<String>,
        /// The org unit a town acts for (its subtree).
        #[arg(long)]
        org_unit: Option<String>,
        /// Lifetime in minutes (default: auth.token_minutes).
        #[arg(long)]
        minutes: Option<u64>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Each key: its id, when it signs from, and whether it signs now, is next, or only still
    /// verifies tokens it signed (until when).
    List {
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Add the next signing key. It signs from a few minutes on (by default twice
    /// auth.keys_refresh_seconds and the leeway), so every service has fetched its public key
    /// before its first token arrives; the key it replaces verifies until its tokens have
    /// expired, and keys past that are dropped. The registry re-reads the file: no restart.
    /// Run on the registry's machine (the file is created if missing).
    Rotate {
        /// Minutes until the new key signs (0: at once; services that have not fetched it
        /// yet refuse its tokens until they do).
        #[arg(long)]
        activate_in: Option<u64>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the public keys as a JSON Web Key Set: for auth.public_keys_file, or another
    /// system verifying cezone tokens.
    Public {
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is asked twice on the terminal, or read from standard
    /// input with --password-stdin.
    Add {
        /// The login name (1 to 64 characters).
        #[arg(long)]
        login: String,
        /// The name people see (姓名 or the office's name).
        #[arg(long)]
        name: String,
        /// district_admin, evaluation_office, responsible_unit, town or inspector.
        #[arg(long)]
        role: String,
        /// The responsible unit a department or town acts as (e.g. finance, towns).
        #[arg(long)]
        unit: Option<String>,
        /// The org unit (a town) a town acts for.
        #[arg(long)]
        org_unit: Option<String>,
        /// Where the unit's reminders reach this person (optional).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Change an account's name or reminder e-mail address (--email "" removes it).
    Update {
        login: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Every account: role, scope, whether active or locked, the last sign-in.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Disable an account: it can no longer sign in, and its refresh tokens stop working.
    Disable {
        login: String,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Enable a disabled account again: it signs in with its password as it was.
    Enable {
        login: String,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Set a new password (asked twice, or --password-stdin); unlocks the account and ends its
    /// refresh tokens.
    ResetPassword {
        login: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    pub login: String,
    /// Read the password from the first line of standard input instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, env = "CEZONE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Who changed what and when, newest first, from the services' logs (over their APIs; for
    /// the evaluation office, inspectors and district IT). Times in the district's zone.
    List {
        /// Services whose logs to read (default: registry, evidence, surveys, scoring and
        /// scheduler).
        #[arg(long, value_delimiter = ',', value_parser = service_name())]
        services: Vec<ServiceName>,
        /// Entries whose actor contains this (a name, a role, a unit).
        #[arg(long)]
        actor: Option<String>,
        /// An action (statistic.recorded), or every action it starts when it ends with a dot
        /// (evidence.).
        #[arg(long)]
        action: Option<String>,
        /// Entries whose target contains this (an org unit, an evidence id …).
        #[arg(long)]
        target: Option<String>,
        /// From this time on (RFC 3339, e.g. 2026-12-01T09:00:00+08:00).
        #[arg(long)]
        since: Option<String>,
        /// Before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many entries in all (the newest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check every entry's hash and link; names the first broken entry and exits 1 if any.
    Verify {
        /// Services whose logs to check (default: all with a database).
        #[arg(long, value_delimiter = ',', value_parser = service_name())]
        services: Vec<ServiceName>,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Services to check (default: all), at their configured ports on this host.
    #[arg(long, value_delimiter = ',', env = "CEZONE_SERVICES", value_parser = service_name())]
    pub services: Vec<ServiceName>,
    #[arg(long, env = "CEZONE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// The runs planned from the calendar and how each stands (pending ones unless --all).
    List {
        /// Every run, also those done and missed.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Recompute from every service's data and freeze a snapshot for a checkpoint now.
    Freeze {
        /// A checkpoint id of the calendar, e.g. materials-submitted.
        #[arg(long)]
        checkpoint: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run every service (the default when --services is not given).
    #[arg(long, conflicts_with = "services")]
    pub all: bool,
    /// Comma-separated subset: registry, evidence, surveys, scoring, scheduler, web.
    #[arg(long, value_delimiter = ',', env = "CEZONE_SERVICES", value_parser = service_name())]
    pub services: Vec<ServiceName>,
    /// On an empty system, load the demo district through the services' APIs, recompute and
    /// print the district scoreboard.
    #[arg(long)]
    pub demo: bool,
    /// With --demo: the framework package (framework.toml) to publish and load the demo for,
    /// instead of the embedded Guangdong one.
    #[arg(long, requires = "demo")]
    pub package: Option<PathBuf>,
    /// Configuration file (TOML), layered over the embedded defaults and under CEZONE__… .
    #[arg(long, env = "CEZONE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The parts of a deployment, by the names `--services` takes.
pub use cezone_stack::Part as ServiceName;

/// Parses a `--services` name into a part of the deployment.
fn service_name() -> impl clap::builder::TypedValueParser<Value = ServiceName> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ServiceName::ALL.map(ServiceName::name))
        .map(|s| ServiceName::parse(&s).expect("one of the names listed"))
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
        /// Framework file (table, package manifest or framework document); without it the
        /// package given with --package, else the embedded Guangdong framework.
        #[arg(long)]
        file: Option<PathBuf>,
        /// A package manifest: shown itself, or giving units, rules and calendar to a --file table.
        #[arg(long)]
        package: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
        /// List the choices the source document leaves open (口径) instead of the tree: what the
        /// document says, the office's reading, and the setting that changes it.
        #[arg(long)]
        interpretations: bool,
    },
    /// Import an indicator table (.csv or .xlsx) and write the framework as JSON.
    Import {
        file: PathBuf,
        /// Units, rules and calendar for a bare table (default: the embedded Guangdong package).
        #[arg(long)]
        package: Option<PathBuf>,
        /// Where to write the framework document; standard output when omitted.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write even when validation found errors.
        #[arg(long)]
        force: bool,
    },
    /// Validate, import and publish a framework into the registry (services.registry_url);
    /// refused, with the findings, when validation finds errors.
    Publish {
        /// An indicator table (.csv, .xlsx), a package manifest (.toml) or a framework (.json).
        file: PathBuf,
        #[arg(long)]
        package: Option<PathBuf>,
        /// Validate (locally and by the registry) and store nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CEZONE_CONFIG")]
        config: Option<PathBuf>,
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
    /// Framework package (framework.toml) to score instead of the embedded Guangdong one; the
    /// demo files facts for whatever its rules read.
    #[arg(long)]
    pub package: Option<PathBuf>,
    /// An indicator table (.csv, .xlsx), package manifest or framework document to score; a
    /// table takes its units, rules and calendar from --package (default: Guangdong's).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The quick run (about a minute on 2 cores) instead of the full one.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON ("cezone.bench.v1").
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run only these workloads (repeatable), e.g. to profile one of them.
    #[arg(long, value_enum)]
    pub only: Vec<Workload>,
    /// Run the whole table this many times and report each row's medians (with the ratios'
    /// range over the runs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Rounds of writes and faults.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// The seed of the fault schedule and the writers (the same seed, the same schedule).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the results as JSON ("cezone.chaos.v1").
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// classic or quorum queues.
    #[arg(long, default_value = "classic")]
    pub queue_type: String,
    /// PostgreSQL to create the run's database in.
    #[arg(
        long,
        env = "CEZONE_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres: String,
    /// RabbitMQ.
    #[arg(
        long,
        env = "CEZONE_TEST_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,
    /// Communities of the demo district.
    #[arg(long, default_value_t = 24)]
    pub communities: usize,
    /// Seconds the writers write each round.
    #[arg(long, default_value_t = 4)]
    pub burst_seconds: u64,
}

/// The workloads of `cezone bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Pipeline,
    EndToEnd,
    Ingest,
    StatisticsImport,
    Upload,
    Recompute,
    Queries,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The self-score explanation (评估指标体系自评分说明): every criterion with its points,
    /// confirmed and projected score, rule, facts, evidence and points lost.
    SelfScore(ReportArgs),
    /// Per department and per town, the materials still missing or late, with deadlines.
    Checklist(ChecklistArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFileFormat {
    Xlsx,
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The org unit reported on (default: the district).
    #[arg(long, default_value = "")]
    pub org_unit: String,
    /// A frozen snapshot's id (default: the current scores).
    #[arg(long, default_value = "")]
    pub snapshot: String,
    /// File format; taken from the --out extension when omitted.
    #[arg(long, value_enum)]
    pub format: Option<ReportFileFormat>,
    /// Where to write the file.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, env = "CEZONE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChecklistArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    /// The checkpoint whose date is the deadline (default: materials-submitted).
    #[arg(long, default_value = "")]
    pub checkpoint: String,
    /// Today, for lateness, YYYY-MM-DD (default: the server's date).
    #[arg(long, default_value = "")]
    pub as_of: String,
}
