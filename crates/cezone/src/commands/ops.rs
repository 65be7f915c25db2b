//! Operator commands against running services: health, the checkpoint schedule, snapshots.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cezone_platform::access::auth::AuthChannel;
use cezone_platform::settings::Settings;
use cezone_proto::scheduler::v1 as psch;
use cezone_proto::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use tonic::transport::ClientTlsConfig;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::{HealthArgs, OutputFormat, ScheduleCommand, ServiceName, SnapshotCommand};

/// Where a service listens, as seen from this host (a wildcard host is reached on loopback).
fn local_url(settings: &Settings, service: ServiceName) -> String {
    let host = if settings.grpc.host.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        settings.grpc.host
    };
    let port = match service {
        ServiceName::Registry => settings.registry.port,
        ServiceName::Evidence => settings.evidence.port,
        ServiceName::Surveys => settings.surveys.port,
        ServiceName::Scoring => settings.scoring.port,
        ServiceName::Scheduler => settings.scheduler.port,
        ServiceName::Web => settings.web.port,
    };
    format!("http://{}", std::net::SocketAddr::new(host, port))
}

/// With mutual TLS the gRPC services answer only a client with a certificate; the page's
/// port serves plain HTTP.
async fn check(url: &str, tls: Option<ClientTlsConfig>) -> Result<ServingStatus> {
    let channel = cezone_platform::channel::endpoint(url, &tls)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .with_context(|| format!("health check of {url}"))?
        .into_inner()
        .status();
    Ok(status)
}

/// Exit 0 when every named service answers SERVING, 1 otherwise.
pub async fn health(args: HealthArgs) -> Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref())?;
    let services = if args.services.is_empty() {
        ServiceName::ALL.to_vec()
    } else {
        args.services
    };
    let mut healthy = true;
    for s in services {
        let url = local_url(&settings, s);
        let tls = match s {
            ServiceName::Web => None,
            _ => cezone_platform::tls::client_config(&settings.grpc)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?,
        };
        match check(&url, tls).await {
            Ok(ServingStatus::Serving) => println!("{:<10} {url}  serving", s.name()),
            Ok(other) => {
                healthy = false;
                println!(
                    "{:<10} {url}  {}",
                    s.name(),
                    other.as_str_name().to_lowercase()
                );
            }
            Err(e) => {
                healthy = false;
                println!("{:<10} {url}  unreachable: {e:#}", s.name());
            }
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn scheduler(settings: &Settings) -> Result<SchedulerServiceClient<AuthChannel>> {
    let url = &settings.services.scheduler_url;
    let bearer = super::access::credentials(settings)?;
    Ok(SchedulerServiceClient::new(
        cezone_client::connect(url, &bearer)
            .await
            .with_context(|| {
                format!("cannot reach the scheduler at {url} (services.scheduler_url)")
            })?,
    ))
}

fn state_name(state: i32) -> &'static str {
    match psch::RunState::try_from(state) {
        Ok(psch::RunState::Done) => "done",
        Ok(psch::RunState::Due) => "due",
        Ok(psch::RunState::Upcoming) => "upcoming",
        Ok(psch::RunState::Missed) => "missed",
        _ => "?",
    }
}

fn record_json(r: &psch::RunRecord) -> serde_json::Value {
    serde_json::json!({
        "key": r.key,
        "checkpoint": r.checkpoint,
        "trigger": r.trigger,
        "snapshot_id": r.snapshot_id,
        "district_total": r.district_total.as_ref().map(|t| serde_json::json!({"confirmed": t.confirmed, "projected": t.projected})),
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "key_short": r.key_short,
        "units_owing": r.units_owing,
        "slots_missing": r.slots_missing,
        "slots_late": r.slots_late,
        "covers": r.covers,
    })
}

pub async fn schedule(cmd: ScheduleCommand) -> Result<ExitCode> {
    let ScheduleCommand::List {
        config,
        all,
        format,
    } = cmd;
    let settings = Settings::load(config.as_deref())?;
    let list = scheduler(&settings)
        .await?
        .list_runs(psch::ListRunsRequest { pending_only: !all })
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?
        .into_inner();
    if format == OutputFormat::Json {
        let runs: Vec<serde_json::Value> = list
            .runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "key": r.key,
                    "checkpoint": r.checkpoint,
                    "checkpoint_name": r.checkpoint_name,
                    "lead_hours": r.lead_hours,
                    "due_at": r.due_at,
                    "checkpoint_at": r.checkpoint_at,
                    "state": state_name(r.state),
                    "record": r.record.as_ref().map(record_json),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "format": "cezone.schedule.v1",
            "framework_id": list.framework_id,
            "edition": list.edition,
            "now": list.now,
            "runs": runs,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} {} — now {}{}",
        list.framework_id,
        list.edition,
        crate::render::local_time(&list.now, settings.scheduler.utc_offset_hours),
        if all {
            ""
        } else {
            " (pending runs; --all for every run)"
        }
    );
    if list.runs.is_empty() {
        println!("no runs pending: every checkpoint of the calendar is done or has passed");
    }
    for r in &list.runs {
        let detail = r
            .record
            .as_ref()
            .map(|rec| {
                format!(
                    "snapshot {} total {}",
                    rec.snapshot_id,
                    rec.district_total
                        .as_ref()
                        .map_or("", |t| t.confirmed.as_str())
                )
            })
            .unwrap_or_default();
        println!(
            "{:<36} {:<25} {:<9} {}",
            r.key,
            crate::render::local_time(&r.due_at, settings.scheduler.utc_offset_hours),
            state_name(r.state),
            detail
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn snapshot(cmd: SnapshotCommand) -> Result<ExitCode> {
    let SnapshotCommand::Freeze {
        checkpoint,
        config,
        format,
    } = cmd;
    let settings = Settings::load(config.as_deref())?;
    let record = scheduler(&settings)
        .await?
        .run_now(psch::RunNowRequest {
            checkpoint,
            // Who asks is the caller the command signs in as.
            requested_by: String::new(),
        })
        .await
        .map_err(|s| {
            let details = cezone_platform::error::violations(&s)
                .into_iter()
                .map(|(f, d)| format!("\n  {f}: {d}"))
                .collect::<String>();
            anyhow::anyhow!("{}: {}{details}", s.code(), s.message())
        })?
        .into_inner();
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&record_json(&record))?);
    } else {
        println!(
            "snapshot {} frozen for {} — district total {} (projected {}); {} key criteria short, {} units owing evidence, {} slots missing, {} late",
            record.snapshot_id,
            record.checkpoint,
            record
                .district_total
                .as_ref()
                .map_or("", |t| t.confirmed.as_str()),
            record
                .district_total
                .as_ref()
                .map_or("", |t| t.projected.as_str()),
            record.key_short,
            record.units_owing,
            record.slots_missing,
            record.slots_late
        );
    }
    Ok(ExitCode::SUCCESS)
}
