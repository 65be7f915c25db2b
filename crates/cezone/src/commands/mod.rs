//! What each command does.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::export;
use cezone_domain::findings::Findings;
use cezone_domain::framework::{Framework, FrameworkDocument};
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;
use cezone_domain::package::{PackageParts, read_parts, read_table};

use crate::cli::{
    Cli, Command, ConfigCommand, DemoArgs, FindingsFormat, FrameworkCommand, OutputFormat,
    ShowFormat,
};
use crate::render;

mod access;
mod audit_list;
mod bench;
mod chaos;
mod connect;
mod evidence;
mod ops;
mod org_units;
mod period;
mod publish;
mod report;
mod scores;
mod serve;
mod statistics;
mod surveys;
mod users;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Framework(cmd) => framework(cmd),
        Command::Demo(args) => demo(args),
        Command::Serve(args) => {
            async_command(async { serve::run(args).await.map(|()| ExitCode::SUCCESS) })
        }
        Command::Bench(args) => {
            async_command(async { bench::run(args).await.map(|()| ExitCode::SUCCESS) })
        }
        Command::Chaos(args) => async_command(chaos::run(args)),
        Command::Health(args) => async_command(ops::health(args)),
        Command::Schedule(cmd) => async_command(ops::schedule(cmd)),
        Command::Snapshot(cmd) => async_command(ops::snapshot(cmd)),
        Command::Token(cmd) => access::token(cmd),
        Command::Keys(cmd) => access::keys(cmd),
        Command::Audit(cmd) => async_command(access::audit(cmd)),
        Command::User(cmd) => async_command(users::run(cmd)),
        Command::Login(args) => async_command(users::login(args)),
        Command::OrgUnits(cmd) => async_command(org_units::run(cmd)),
        Command::Statistics(cmd) => async_command(statistics::run(cmd)),
        Command::Surveys(cmd) => async_command(surveys::run(cmd)),
        Command::Evidence(cmd) => async_command(evidence::run(cmd)),
        Command::Period(cmd) => async_command(period::run(cmd)),
        Command::Obligations(args) => async_command(period::obligations(args)),
        Command::Scores(cmd) => async_command(scores::run(cmd)),

        Command::Report(cmd) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(report::run(cmd))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Show { config }) => {
            let settings = cezone_platform::Settings::load(config.as_deref())?;
            print!("{}", toml::to_string_pretty(&settings.masked())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn async_command(f: impl std::future::Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn read_package(manifest: &Path) -> Result<PackageParts> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let reader = move |name: &str| -> Result<Vec<u8>, String> {
        std::fs::read(dir.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
    };
    Ok(read_parts(&manifest.display().to_string(), &text, &reader)?)
}

/// Loads any framework file: a table (.csv/.xlsx) with a package's units, rules and calendar,
/// a package manifest (.toml) or a framework document (.json).
pub fn load_framework(file: &Path, package: Option<&Path>) -> Result<(Framework, Findings)> {
    let name = file.display().to_string();
    let lower = name.to_ascii_lowercase();
    if let Some(p) = package {
        if !p
            .display()
            .to_string()
            .to_ascii_lowercase()
            .ends_with(".toml")
        {
            bail!(
                "--package {}: 须为框架包清单 must be a package manifest (framework.toml)",
                p.display()
            );
        }
        if lower.ends_with(".toml") || lower.ends_with(".json") {
            bail!(
                "--package {} 仅用于指标表 only applies to a bare table (.csv, .xlsx); {name} is a {} and carries its own units, rules and calendar",
                p.display(),
                if lower.ends_with(".toml") {
                    "package manifest"
                } else {
                    "framework document"
                }
            );
        }
    }
    if lower.ends_with(".toml") {
        return Ok(read_package(file)?.build());
    }
    if lower.ends_with(".json") {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
        let doc: FrameworkDocument = serde_json::from_str(&text)
            .with_context(|| format!("{name} is not a framework document"))?;
        return Ok(Framework::from_document(doc));
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
    let rows = read_table(&name, &bytes)?;
    let base = match package {
        Some(m) => read_package(m)?,
        None => guangdong::parts(),
    };
    Ok(base.with_table(&name, rows).build())
}

/// The framework a command works on: `file` (with `package` for a bare table), else the
/// package `package`, else the embedded Guangdong framework.
fn chosen_framework(file: Option<&Path>, package: Option<&Path>) -> Result<(Framework, Findings)> {
    match (file, package) {
        (Some(f), _) => load_framework(f, package),
        (None, Some(p)) => {
            if !p
                .display()
                .to_string()
                .to_ascii_lowercase()
                .ends_with(".toml")
            {
                bail!(
                    "--package {}: 须为框架包清单 must be a package manifest (framework.toml); give a table with --file",
                    p.display()
                );
            }
            load_framework(p, None)
        }
        (None, None) => Ok(guangdong::framework()),
    }
}

/// The framework the demo scores; one with errors is refused with its findings.
pub fn demo_framework(file: Option<&Path>, package: Option<&Path>) -> Result<Framework> {
    let (fw, findings) = chosen_framework(file, package)?;
    if findings.has_errors() {
        eprint!("{}", render::findings(&findings));
        bail!(
            "框架有错误 the framework has {} error(s); the demo needs one that validates (see cezone framework validate)",
            findings.errors()
        );
    }
    Ok(fw)
}

fn framework(cmd: FrameworkCommand) -> Result<ExitCode> {
    match cmd {
        FrameworkCommand::Validate {
            file,
            package,
            format,
        } => {
            let (_, findings) = load_framework(&file, package.as_deref())?;
            match format {
                FindingsFormat::Text => print!("{}", render::findings(&findings)),
                FindingsFormat::Json => println!("{}", serde_json::to_string_pretty(&findings.0)?),
            }
            Ok(if findings.has_errors() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        FrameworkCommand::Show {
            file,
            package,
            format,
            interpretations,
        } => {
            let (fw, _) = chosen_framework(file.as_deref(), package.as_deref())?;
            if interpretations {
                let list = cezone_domain::interpret::interpretations(&fw);
                match format {
                    ShowFormat::Table => print!("{}", render::interpretations(&fw, &list)),
                    ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                    ShowFormat::Csv => print!("{}", render::interpretations_csv(&list)),
                }
                return Ok(ExitCode::SUCCESS);
            }
            match format {
                ShowFormat::Table => print!("{}", render::framework_tree(&fw)),
                ShowFormat::Json => println!("{}", export::to_json(&fw)),
                ShowFormat::Csv => print!("{}", export::to_csv(&fw)),
            }
            Ok(ExitCode::SUCCESS)
        }
        FrameworkCommand::Import {
            file,
            package,
            out,
            force,
        } => {
            let (fw, findings) = load_framework(&file, package.as_deref())?;
            eprint!("{}", render::findings(&findings));
            if findings.has_errors() && !force {
                bail!(
                    "{} has {} error(s); nothing written (use --force to write anyway)",
                    file.display(),
                    findings.errors()
                );
            }
            let json = export::to_json(&fw);
            match out {
                Some(path) => {
                    std::fs::write(&path, json)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {} ({} items)", path.display(), fw.len());
                }
                None => println!("{json}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        FrameworkCommand::Publish {
            file,
            package,
            dry_run,
            config,
        } => async_command(publish::run(
            &file,
            package.as_deref(),
            dry_run,
            config.as_deref(),
        )),
    }
}

fn demo(args: DemoArgs) -> Result<ExitCode> {
    if args.towns == 0 || args.communities < args.towns {
        bail!(
            "--towns must be at least 1 and --communities at least --towns (got {} and {})",
            args.towns,
            args.communities
        );
    }
    let fw = demo_framework(args.file.as_deref(), args.package.as_deref())?;
    let params = DemoParams {
        seed: args.seed,
        towns: args.towns,
        communities: args.communities,
        responses_per_community: args.responses_per_community,
        ..DemoParams::nanhai(args.seed)
    };
    let district = generate(&fw, &params);
    let facts = district.facts(&fw.catalog);
    let tree = OrgTree::build(district.units)?;
    let engine = Engine::new(
        fw.clone().into(),
        tree.clone().into(),
        &facts,
        params.period,
    );
    let board = engine.scoreboard();
    let summary = engine.summary(&board, tree.root(), args.weak_links);
    match args.format {
        OutputFormat::Text => print!("{}", render::scoreboard(&summary)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
    }
    Ok(ExitCode::SUCCESS)
}
