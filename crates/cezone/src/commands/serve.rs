//! `cezone serve`: the services in one process, wired to each other, with an optional demo
//! district loaded through their own APIs.

use anyhow::{Context, Result};
use cezone_client::demo::{self, Channels};
use cezone_domain::access::{Principal, Role};
use cezone_domain::demo::{DemoParams, generate};
use cezone_platform::auth::{Bearer, Keys};
use cezone_platform::settings::Settings;
use cezone_platform::telemetry;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;

use crate::cli::{ServeArgs, ServiceName};
use crate::render;

enum Running {
    Registry(cezone_registry::Application),
    Evidence(cezone_evidence::Application),
    Surveys(cezone_surveys::Application),
    Scoring(cezone_scoring::Application),
    Scheduler(cezone_scheduler::Application),
    Web(cezone_web::Application),
}

impl Running {
    async fn stop(self) {
        match self {
            Running::Registry(a) => a.stop().await,
            Running::Evidence(a) => a.stop().await,
            Running::Surveys(a) => a.stop().await,
            Running::Scoring(a) => a.stop().await,
            Running::Scheduler(a) => a.stop().await,
            Running::Web(a) => a.stop().await,
        }
    }
}

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
    let wanted =
        |s: ServiceName| args.all || args.services.is_empty() || args.services.contains(&s);
    let names: Vec<&str> = ServiceName::ALL
        .iter()
        .filter(|s| wanted(**s))
        .map(|s| s.name())
        .collect();
    // One bus (one named broker connection) for every service in this process.
    let bus = cezone_bus::connect(
        &settings
            .bus_config(&format!("cezone {}", names.join(",")))
            .context("loading the key events are signed with")?,
    )
    .await
    .context("connecting to the event bus")?;
    let mut running = Vec::new();
    // Started in dependency order; each in-process service is reached at its real address.
    if wanted(ServiceName::Registry) {
        let app = cezone_registry::Application::build(&settings, bus.clone())
            .await
            .context("starting the registry")?;
        settings.services.registry_url = app.url();
        running.push(Running::Registry(app));
    }
    if wanted(ServiceName::Evidence) {
        let app = cezone_evidence::Application::build(&settings, bus.clone())
            .await
            .context("starting the evidence service")?;
        settings.services.evidence_url = app.url();
        running.push(Running::Evidence(app));
    }
    if wanted(ServiceName::Surveys) {
        let app = cezone_surveys::Application::build(&settings, bus.clone())
            .await
            .context("starting the survey service")?;
        settings.services.surveys_url = app.url();
        running.push(Running::Surveys(app));
    }
    if wanted(ServiceName::Scoring) {
        let app = cezone_scoring::Application::build(&settings, bus.clone())
            .await
            .context("starting the scoring service")?;
        settings.services.scoring_url = app.url();
        running.push(Running::Scoring(app));
    }
    if wanted(ServiceName::Scheduler) {
        let app = cezone_scheduler::Application::build(
            &settings,
            std::sync::Arc::new(cezone_scheduler::SystemClock),
        )
        .await
        .context("starting the scheduler")?;
        settings.services.scheduler_url = app.url();
        running.push(Running::Scheduler(app));
    }
    let mut page = None;
    if wanted(ServiceName::Web) {
        let app = cezone_web::Application::build(&settings)
            .await
            .context("starting the scoreboard page")?;
        page = Some(app.url());
        running.push(Running::Web(app));
    }
    println!("cezone is running:");
    for (name, url, on) in [
        (
            "registry",
            &settings.services.registry_url,
            wanted(ServiceName::Registry),
        ),
        (
            "evidence",
            &settings.services.evidence_url,
            wanted(ServiceName::Evidence),
        ),
        (
            "surveys",
            &settings.services.surveys_url,
            wanted(ServiceName::Surveys),
        ),
        (
            "scoring",
            &settings.services.scoring_url,
            wanted(ServiceName::Scoring),
        ),
        (
            "scheduler",
            &settings.services.scheduler_url,
            wanted(ServiceName::Scheduler),
        ),
    ] {
        if on {
            println!("  {name:<9}  {url}  (gRPC, health and reflection)");
        }
    }
    if let Some(url) = &page {
        println!("  {:<9}  {url}  (scoreboard page, HTTP)", "web");
    }
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
    for r in running.into_iter().rev() {
        r.stop().await;
    }
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
