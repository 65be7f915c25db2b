//! `cezone statistics template|import|list|review`: a unit's statistical return as a
//! spreadsheet, and its review by the level above.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cezone_client::files::returns;
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_platform::glue::registry_view::{fetch_framework, fetch_org_tree};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::surveys::v1 as psv;

use super::connect::{Services, file_refused, indexed, progress, refused};
use crate::cli::StatisticsCommand;

/// Statistics per streamed part of an import (the service takes at most 10,000 per part).
const PART: usize = 5_000;

pub async fn run(cmd: StatisticsCommand) -> Result<ExitCode> {
    match cmd {
        StatisticsCommand::List {
            org_unit,
            metric,
            period,
            state,
            config,
        } => {
            let state = match state.as_str() {
                "any" => psv::StatisticState::Unspecified,
                "pending" => psv::StatisticState::Pending,
                "accepted" => psv::StatisticState::Accepted,
                "returned" => psv::StatisticState::Returned,
                "superseded" => psv::StatisticState::Superseded,
                other => bail!(
                    "--state: '{other}' is not pending, accepted, returned, superseded or any"
                ),
            };
            let svc = Services::load(config.as_deref())?;
            let mut client = svc.surveys().await?;
            let mut token = String::new();
            let mut n = 0usize;
            println!(
                "org_unit\tmetric\tperiod\tvalue\tversion\tstate\tfiled_by\treviewed_by\tcomment"
            );
            loop {
                let resp = client
                    .list_statistics(psv::ListStatisticsRequest {
                        org_unit: org_unit.clone().unwrap_or_default(),
                        metric: metric.clone().unwrap_or_default(),
                        period: period.unwrap_or(0),
                        all_versions: false,
                        page: Some(PageRequest {
                            page_size: 1_000,
                            page_token: token.clone(),
                        }),
                        state: state as i32,
                    })
                    .await
                    .map_err(|s| refused("ListStatistics", s))?
                    .into_inner();
                for s in &resp.statistics {
                    n += 1;
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        s.org_unit,
                        s.metric,
                        s.period,
                        s.value,
                        s.version,
                        state_name(s.state),
                        s.filed_by,
                        s.reviewed_by,
                        s.review_comment.replace(['\t', '\n'], " ")
                    );
                }
                token = resp.page.map(|p| p.next_page_token).unwrap_or_default();
                if token.is_empty() {
                    break;
                }
            }
            eprintln!("{n} statistic(s)");
            Ok(ExitCode::SUCCESS)
        }
        StatisticsCommand::Review {
            return_of,
            org_unit,
            metric,
            period,
            accept,
            return_with,
            dry_run,
            config,
        } => {
            let (decision, comment) = match (accept, return_with) {
                (true, None) => (psv::StatisticDecision::Accept, String::new()),
                (false, Some(c)) if !c.trim().is_empty() => (psv::StatisticDecision::Return, c),
                (false, Some(_)) => bail!("--return: say what is wrong (the comment is empty)"),
                _ => bail!("give --accept or --return COMMENT"),
            };
            let statistics = match (&org_unit, &metric) {
                (Some(o), Some(m)) => vec![psv::StatisticKey {
                    org_unit: o.clone(),
                    metric: m.clone(),
                    period,
                    version: 0,
                }],
                _ => Vec::new(),
            };
            let svc = Services::load(config.as_deref())?;
            let mut client = svc.surveys().await?;
            let resp = client
                .review_statistics(psv::ReviewStatisticsRequest {
                    statistics,
                    return_of: return_of.clone().unwrap_or_default(),
                    period,
                    metric: if return_of.is_some() {
                        metric.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    decision: decision as i32,
                    comment,
                    dry_run,
                })
                .await
                .map_err(|s| refused("ReviewStatistics", s))?
                .into_inner();
            for s in &resp.statistics {
                println!(
                    "{}\t{}\t{}\t{}\tv{}\t{}",
                    s.org_unit,
                    s.metric,
                    s.period,
                    s.value,
                    s.version,
                    state_name(s.state)
                );
            }
            let verb = if decision == psv::StatisticDecision::Accept {
                "accepted 已通过"
            } else {
                "returned 已退回"
            };
            if dry_run {
                println!(
                    "dry run, nothing recorded — {} statistic(s) would be {verb}",
                    resp.statistics.len()
                );
            } else {
                println!("{} statistic(s) {verb}", resp.statistics.len());
            }
            Ok(ExitCode::SUCCESS)
        }
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
            let parts: Vec<psv::RecordStatisticsRequest> = cells
                .chunks(PART)
                .map(|chunk| psv::RecordStatisticsRequest {
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
            if !done.import_id.is_empty() {
                // Where to find it again: `cezone audit list --target ID`.
                println!("导入编号 import id: {}", done.import_id);
            }
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
            .list_statistics(psv::ListStatisticsRequest {
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

fn state_name(state: i32) -> &'static str {
    match psv::StatisticState::try_from(state) {
        Ok(psv::StatisticState::Pending) => "pending 待审核",
        Ok(psv::StatisticState::Returned) => "returned 已退回",
        Ok(psv::StatisticState::Superseded) => "superseded 已更正",
        _ => "accepted 已通过",
    }
}

/// `statistics[7].value` → `row 9, column D (…) (value)`, with the sheet first in XLSX.
fn place(field: &str, cells: &[&returns::Filed]) -> String {
    match indexed(field, "statistics") {
        Some((i, rest)) if i < cells.len() => format!("{} ({rest})", cells[i].place()),
        _ => field.to_string(),
    }
}
