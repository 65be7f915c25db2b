//! `cezone statistics template|import`: a unit's statistical return as a spreadsheet.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cezone_client::files::returns;
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_platform::registry_view::{fetch_framework, fetch_org_tree};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::surveys::v1 as ps;

use super::connect::{Services, file_refused, indexed, progress, refused};
use crate::cli::StatisticsCommand;

/// Statistics per streamed part of an import (the service takes at most 10,000 per part).
const PART: usize = 5_000;

pub async fn run(cmd: StatisticsCommand) -> Result<ExitCode> {
    match cmd {
        StatisticsCommand::Template {
            unit,
            period,
            org_unit,
            out,
            config,
        } => {
            let unit = UnitId::parse(&unit).map_err(|e| anyhow!("--unit: {e}"))?;
            let scope = org_unit
                .as_deref()
                .map(OrgUnitId::parse)
                .transpose()
                .map_err(|e| anyhow!("--org-unit: {e}"))?;
            if !(1900..=2200).contains(&period) {
                bail!("--period: {period} is not a year");
            }
            let svc = Services::load(config.as_deref())?;
            let (fw, tree) = framework_and_tree(&svc).await?;
            if fw.units.get(&unit).is_none() {
                bail!(
                    "--unit: '{unit}' is not a responsible unit of framework {} (see `cezone framework show`)",
                    fw.meta.id
                );
            }
            let current = current_values(&svc, Some(period)).await?;
            let bytes = returns::template(&fw, &tree, &unit, period, scope.as_ref(), &current)
                .map_err(|e| anyhow!("{e}"))?;
            std::fs::write(&out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let metrics = returns::metrics_of(&fw, &unit);
            println!(
                "wrote {}: {} metric(s) for {} in {period}: {}",
                out.display(),
                metrics.len(),
                fw.units.name_of(&unit),
                metrics
                    .iter()
                    .map(|m| format!("{} {}", m.name, m.id))
                    .collect::<Vec<_>>()
                    .join("、")
            );
            Ok(ExitCode::SUCCESS)
        }
        StatisticsCommand::Import {
            file,
            dry_run,
            config,
        } => {
            let name = file.display().to_string();
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
            let svc = Services::load(config.as_deref())?;
            let (fw, tree) = framework_and_tree(&svc).await?;
            let filed = match returns::read(&name, &bytes, &fw, &tree) {
                Ok(f) => f,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let current = current_values(&svc, None).await?;
            let changes = returns::changes(&filed, &current);
            for (f, before) in changes.changed.iter().take(20) {
                let s = &f.statistic;
                let m = fw
                    .catalog
                    .metrics
                    .iter()
                    .find(|m| m.id.as_str() == s.metric)
                    .expect("read checked the metric");
                println!(
                    "  {}: {} {} {}: {} → {}",
                    f.at(),
                    s.org_unit,
                    m.name,
                    s.period,
                    before.map_or("—".to_string(), |b| returns::shown(m, b)),
                    returns::shown(m, s.value)
                );
            }
            if changes.changed.len() > 20 {
                println!("  … and {} more", changes.changed.len() - 20);
            }
            if changes.changed.is_empty() {
                println!(
                    "{name}: {} value(s), none differs from what is filed; nothing to store",
                    filed.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let cells: Vec<&returns::Filed> = changes.changed.iter().map(|(f, _)| *f).collect();
            let parts: Vec<ps::RecordStatisticsRequest> = cells
                .chunks(PART)
                .map(|chunk| ps::RecordStatisticsRequest {
                    statistics: chunk.iter().map(|f| f.statistic.clone()).collect(),
                    dry_run,
                })
                .collect();
            let bar = progress(cells.len() as u64, "sending");
            let sent = bar.clone();
            let stream = futures::stream::iter(parts).map(move |p| {
                sent.inc(p.statistics.len() as u64);
                p
            });
            let mut surveys = svc.surveys().await?;
            let result = surveys.import_statistics(stream).await;
            bar.finish_and_clear();
            let done = match result {
                Ok(r) => r.into_inner(),
                Err(status) => {
                    return file_refused(&name, "ImportStatistics", status, |f| place(f, &cells));
                }
            };
            println!(
                "{}{name}: {} value(s) read, {} stored ({} first filings, {} corrections), {} unchanged",
                if done.dry_run {
                    "dry run, nothing stored — "
                } else {
                    ""
                },
                filed.len(),
                done.recorded,
                done.first_filings,
                done.recorded - done.first_filings,
                changes.unchanged
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

use futures::StreamExt;

async fn framework_and_tree(
    svc: &Services,
) -> Result<(
    cezone_domain::framework::Framework,
    cezone_domain::org::OrgTree,
)> {
    let mut reg = svc.registry().await?;
    let s = &svc.settings.scoring;
    let (fw, _) = fetch_framework(&mut reg, &s.framework_id, &s.edition)
        .await
        .map_err(|e| anyhow!("framework {}: {}", s.framework_id, e.message))?;
    let tree = fetch_org_tree(&mut reg)
        .await
        .map_err(|e| anyhow!("org units: {}", e.message))?;
    Ok((fw, tree))
}

/// The latest filed value of every (org unit, metric, period), optionally of one period.
async fn current_values(svc: &Services, period: Option<i32>) -> Result<returns::Current> {
    let mut surveys = svc.surveys().await?;
    let mut out = returns::Current::new();
    let mut token = String::new();
    loop {
        let page = surveys
            .list_statistics(ps::ListStatisticsRequest {
                period: period.unwrap_or(0),
                page: Some(PageRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                }),
                ..Default::default()
            })
            .await
            .map_err(|s| refused("ListStatistics", s))?
            .into_inner();
        for s in page.statistics {
            out.insert((s.org_unit, s.metric, s.period), s.value);
        }
        match page.page.map(|p| p.next_page_token) {
            Some(t) if !t.is_empty() => token = t,
            _ => return Ok(out),
        }
    }
}

/// `statistics[7].value` → `row 9, column D (…) (value)`, with the sheet first in XLSX.
fn place(field: &str, cells: &[&returns::Filed]) -> String {
    match indexed(field, "statistics") {
        Some((i, rest)) if i < cells.len() => format!("{} ({rest})", cells[i].place()),
        _ => field.to_string(),
    }
}
