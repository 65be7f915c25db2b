//! `cezone audit list`: the services' audit logs as people read them, newest first, merged
//! across services, times in the district's zone.

use std::process::ExitCode;

use anyhow::Result;
use cezone_proto::common::v1::{AuditEntry, ListAuditRequest, PageRequest};

use super::connect::{Services, refused};
use crate::cli::{OutputFormat, ServiceName};
use crate::render;

/// What to ask each service.
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: u32,
}

pub async fn run(
    services: Vec<ServiceName>,
    filter: Filter,
    format: OutputFormat,
    config: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let services: Vec<ServiceName> = if services.is_empty() {
        ServiceName::ALL
            .into_iter()
            .filter(|s| *s != ServiceName::Web)
            .collect()
    } else {
        services
    };
    if services.contains(&ServiceName::Web) {
        anyhow::bail!("--services: the web page keeps no audit log");
    }
    let svc = Services::load(config)?;
    let mut rows: Vec<(&'static str, AuditEntry)> = Vec::new();
    for s in services {
        for e in newest(&svc, s, &filter).await? {
            rows.push((s.name(), e));
        }
    }
    // Newest first across services (each service's times are its own clock's, in UTC).
    rows.sort_by(|a, b| b.1.at.cmp(&a.1.at).then(b.1.seq.cmp(&a.1.seq)));
    rows.truncate(filter.limit as usize);
    let offset = svc.settings.scheduler.utc_offset_hours;
    match format {
        OutputFormat::Json => {
            let out: Vec<serde_json::Value> = rows
                .iter()
                .map(|(service, e)| {
                    serde_json::json!({
                        "service": service, "seq": e.seq, "at": e.at, "actor": e.actor,
                        "action": e.action, "target": e.target,
                        "details": serde_json::from_str::<serde_json::Value>(&e.details_json)
                            .unwrap_or(serde_json::Value::String(e.details_json.clone())),
                        "hash": e.hash,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Text => {
            println!(
                "{}  {}  {}  {}  {}  详情 details",
                render::fit("时间 time", 26),
                render::fit("服务 service", 12),
                render::fit("操作人 actor", 34),
                render::fit("操作 action", 24),
                render::fit("对象 target", 36),
            );
            for (service, e) in &rows {
                println!(
                    "{}  {}  {}  {}  {}  {}",
                    render::fit(&render::local_time(&e.at, offset), 26),
                    render::fit(service, 12),
                    render::fit(&e.actor, 34),
                    render::fit(&e.action, 24),
                    render::fit(&e.target, 36),
                    e.details_json
                );
            }
            eprintln!("{} entries (newest first)", rows.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Up to `filter.limit` of one service's newest entries that pass the filter.
async fn newest(svc: &Services, s: ServiceName, filter: &Filter) -> Result<Vec<AuditEntry>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let req = ListAuditRequest {
            actor: filter.actor.clone().unwrap_or_default(),
            action: filter.action.clone().unwrap_or_default(),
            target: filter.target.clone().unwrap_or_default(),
            since: filter.since.clone().unwrap_or_default(),
            until: filter.until.clone().unwrap_or_default(),
            page: Some(PageRequest {
                page_size: filter.limit.clamp(1, 1000) as i32,
                page_token: token.clone(),
            }),
        };
        let call = format!("ListAudit of {}", s.name());
        let page = match s {
            ServiceName::Registry => svc.registry().await?.list_audit(req).await,
            ServiceName::Evidence => svc.evidence().await?.list_audit(req).await,
            ServiceName::Surveys => svc.surveys().await?.list_audit(req).await,
            ServiceName::Scoring => svc.scoring().await?.list_audit(req).await,
            ServiceName::Scheduler => svc.scheduler().await?.list_audit(req).await,
            ServiceName::Web => unreachable!("refused above"),
        }
        .map_err(|status| refused(&call, status))?
        .into_inner();
        out.extend(page.entries);
        match page.page.map(|p| p.next_page_token) {
            Some(t) if !t.is_empty() && out.len() < filter.limit as usize => token = t,
            _ => break,
        }
    }
    out.truncate(filter.limit as usize);
    Ok(out)
}
