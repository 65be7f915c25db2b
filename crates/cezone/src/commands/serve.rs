//! `cezone serve`: the services in one process, wired to each other, with an optional demo
//! district loaded through their own APIs.

use anyhow::{Context, Result};
use cezone_client::demo::{self, Channels};
use cezone_domain::access::{Principal, Role};
use cezone_domain::demo::{DemoParams, generate};
use cezone_platform::access::auth::{Bearer, Keys};
use cezone_platform::settings::Settings;
use cezone_platform::telemetry;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;

use cezone_stack::{Part, Stack};

use crate::cli::ServeArgs;
use crate::render;

pub async fn run(args: ServeArgs) -> Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    telemetry::init(&settings.log);
    // The demo's framework is the one the services score: another package's id and edition.
    let demo_framework = if args.demo {
        let fw = super::demo_framework(None, args.package.as_deref())?;
        if args.package.is_some() {
            settings.scoring.framework_id = fw.meta.id.to_string();
            settings.scoring.edition = fw.meta.edition.clone();
        }
        Some(fw)
    } else {
        None
    };
    let wanted = |s: Part| args.all || args.services.is_empty() || args.services.contains(&s);
    let parts: Vec<Part> = Part::ALL.into_iter().filter(|s| wanted(*s)).collect();
    let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
    // One bus (one named broker connection) for every service in this process.
    let bus = cezone_bus::connect(
        &settings
            .bus_config(&format!("cezone {}", names.join(",")))
            .context("loading the key events are signed with")?,
    )
    .await
    .context("connecting to the event bus")?;
    // Started in dependency order; each in-process service is reached at its real address.
    let stack = Stack::start(&settings, bus.clone(), &parts).await?;
    let settings = stack.settings.clone();
    println!("cezone is running:");
    for (part, url) in stack.listening() {
        match part {
            Part::Web => println!("  {part:<9}  {url}  (scoreboard page, HTTP)"),
            _ => println!("  {part:<9}  {url}  (gRPC, health and reflection)"),
        }
    }
    let page = stack.web.as_ref().map(|w| w.url());
    println!(
        "  database  {}",
        cezone_platform::settings::mask_url_password(&settings.database.url)
    );

    let mut accounts = Vec::new();
    if let Some(fw) = demo_framework {
        accounts = load_demo(&settings, fw).await?;
    }
    if let Some(url) = &page {
        println!("\nscoreboard page: {url}");
        println!("workbench:       {url}work/");
        if !accounts.is_empty() {
            println!(
                "demo accounts (password {}):",
                cezone_client::demo::DEMO_PASSWORD
            );
            for a in &accounts {
                let scope = [a.unit.as_str(), a.org_unit.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                println!("  {:<11} {:<18} {scope}", a.login, a.role);
            }
        }
    }
    println!("\nPress Ctrl-C to stop.");
    shutdown_signal().await;
    tracing::info!("shutting down");
    stack.stop().await;
    bus.close().await;
    Ok(())
}

async fn load_demo(
    settings: &Settings,
    fw: cezone_domain::framework::Framework,
) -> Result<Vec<demo::DemoAccount>> {
    let district = generate(&fw, &DemoParams::nanhai(2013));
    // The demo files everything as the evaluation office would, on behalf of every unit.
    let office = Bearer::minted(
        Keys::load(&settings.auth)?,
        Principal::new("demo-loader", Role::EvaluationOffice, None, None)
            .map_err(anyhow::Error::msg)?,
    )
    .with_tls(
        cezone_platform::tls::client_config(&settings.grpc)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?,
    );
    let channels = Channels {
        registry: cezone_client::connect(&settings.services.registry_url, &office).await?,
        evidence: cezone_client::connect(&settings.services.evidence_url, &office).await?,
        surveys: cezone_client::connect(&settings.services.surveys_url, &office).await?,
    };
    println!("\nloading the demo district through the services' APIs …");
    let report = demo::load(&channels, &fw, &district).await?;
    if report.already_loaded {
        println!("the services already hold the demo district; nothing loaded again");
    } else {
        println!(
            "loaded {} org units, {} survey responses, {} statistics, {} evidence documents",
            report.org_units, report.responses, report.statistics, report.evidence
        );
    }
    let mut scoring = ScoringServiceClient::new(
        cezone_client::connect(&settings.services.scoring_url, &office).await?,
    )
    .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES);
    let r = scoring
        .recompute(ps::RecomputeRequest::default())
        .await?
        .into_inner();
    println!(
        "recomputed {} cells for {} org units in {} ms\n",
        r.cells,
        r.org_units,
        r.elapsed_micros / 1000
    );
    let summary = scoring
        .get_summary(ps::GetSummaryRequest {
            org_unit: String::new(),
            weak_links: 8,
        })
        .await?
        .into_inner();
    let summary: cezone_domain::summary::Summary = serde_json::from_str(&summary.summary_json)?;
    print!("{}", render::scoreboard(&summary));
    let accounts = demo::create_accounts(channels.registry.clone(), &fw, &district).await?;
    Ok(accounts)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
