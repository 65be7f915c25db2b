//! `cezone period lock|unlock|show`: the evaluation office closes a year's filings when the
//! materials are handed in, and opens one org unit again for a correction. `cezone
//! obligations`: what a unit still owes for the year, and by when.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cezone_proto::surveys::v1 as psv;

use super::connect::{Services, refused};
use crate::cli::{ObligationsArgs, PeriodCommand};
use cezone_proto::evidence::v1 as pe;

pub async fn run(cmd: PeriodCommand) -> Result<ExitCode> {
    let (config, call) = match cmd {
        PeriodCommand::Lock {
            period,
            reason,
            config,
        } => (
            config,
            Call::Lock(psv::LockPeriodRequest {
                period,
                reason: required("--reason", &reason)?,
            }),
        ),
        PeriodCommand::Unlock {
            period,
            org_unit,
            reason,
            config,
        } => (
            config,
            Call::Unlock(psv::UnlockOrgUnitRequest {
                period,
                org_unit,
                reason: required("--reason", &reason)?,
            }),
        ),
        PeriodCommand::Show { period, config } => {
            (config, Call::Show(psv::GetPeriodLockRequest { period }))
        }
    };
    let svc = Services::load(config.as_deref())?;
    let mut client = svc.surveys().await?;
    let lock = match call {
        Call::Lock(r) => client
            .lock_period(r)
            .await
            .map_err(|s| refused("LockPeriod", s)),
        Call::Unlock(r) => client
            .unlock_org_unit(r)
            .await
            .map_err(|s| refused("UnlockOrgUnit", s)),
        Call::Show(r) => client
            .get_period_lock(r)
            .await
            .map_err(|s| refused("GetPeriodLock", s)),
    }?
    .into_inner();
    print!("{}", describe(&lock));
    Ok(ExitCode::SUCCESS)
}

enum Call {
    Lock(psv::LockPeriodRequest),
    Unlock(psv::UnlockOrgUnitRequest),
    Show(psv::GetPeriodLockRequest),
}

fn required(flag: &str, text: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        bail!("{flag}: say why (it is recorded in the audit log)");
    }
    Ok(t.to_string())
}

/// The lock as a person reads it: Chinese first, then the English.
fn describe(l: &psv::PeriodLock) -> String {
    if !l.locked {
        return format!("{} 未锁定 not locked\n", l.period);
    }
    let mut out = format!(
        "{} 已锁定 locked since {} by {}: {}\n",
        l.period, l.locked_at, l.locked_by, l.reason
    );
    for u in &l.unlocked {
        out.push_str(&format!(
            "  {} 已解锁更正 unlocked for a correction since {} by {}: {}\n",
            u.org_unit, u.unlocked_at, u.unlocked_by, u.reason
        ));
    }
    out
}

/// The unit's materials (by criterion and org unit) and its statistical return (by metric and
/// org unit), the outstanding items first; accepted ones only with `--all`.
pub async fn obligations(args: ObligationsArgs) -> Result<ExitCode> {
    let svc = Services::load(args.config.as_deref())?;
    let stats = svc
        .surveys()
        .await?
        .list_obligations(psv::ListObligationsRequest {
            responsible_unit: args.unit.clone().unwrap_or_default(),
            org_unit: args.org_unit.clone().unwrap_or_default(),
            period: args.period,
            checkpoint: String::new(),
            as_of: args.as_of.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| refused("ListObligations", s))?
        .into_inner();
    let materials = svc
        .evidence()
        .await?
        .get_completeness(pe::GetCompletenessRequest {
            framework_id: svc.settings.scoring.framework_id.clone(),
            edition: svc.settings.scoring.edition.clone(),
            responsible_unit: stats.responsible_unit.clone(),
            org_unit: stats.org_unit.clone(),
            checkpoint: String::new(),
            as_of: stats.as_of.clone(),
        })
        .await
        .map_err(|s| refused("GetCompleteness", s))?
        .into_inner();
    println!(
        "{} @ {} — 截止 deadline {} (as of {})",
        stats.responsible_unit, stats.org_unit, stats.deadline, stats.as_of
    );
    let slots: Vec<&pe::Slot> = materials
        .units
        .iter()
        .flat_map(|u| u.slots.iter())
        .collect();
    let slot_name = |s: i32| match pe::SlotState::try_from(s) {
        Ok(pe::SlotState::Missing) => "未提交 missing",
        Ok(pe::SlotState::Returned) => "已退回 returned",
        Ok(pe::SlotState::Submitted) => "待审核 pending",
        _ => "已通过 accepted",
    };
    let open = |s: &&&pe::Slot| args.all || s.state != pe::SlotState::Accepted as i32;
    println!(
        "台帐资料 materials: {} required, {} outstanding, {} late",
        slots.len(),
        slots
            .iter()
            .filter(|s| matches!(
                pe::SlotState::try_from(s.state),
                Ok(pe::SlotState::Missing | pe::SlotState::Returned)
            ))
            .count(),
        slots.iter().filter(|s| s.late).count()
    );
    for s in slots.iter().filter(open) {
        println!(
            "  {}\t{}\t{}{}",
            s.criterion,
            s.org_unit,
            slot_name(s.state),
            if s.late { "\t逾期 late" } else { "" }
        );
    }
    let standing = |s: i32| match psv::Standing::try_from(s) {
        Ok(psv::Standing::Missing) => "未报送 missing",
        Ok(psv::Standing::Returned) => "已退回 returned",
        Ok(psv::Standing::Pending) => "待审核 pending",
        _ => "已通过 accepted",
    };
    println!(
        "统计数据 statistics: {} owed — {} missing, {} returned, {} pending, {} accepted, {} late",
        stats.items.len(),
        stats.missing,
        stats.returned,
        stats.pending,
        stats.accepted,
        stats.late
    );
    for o in stats
        .items
        .iter()
        .filter(|o| args.all || o.standing != psv::Standing::Accepted as i32)
    {
        println!(
            "  {} {}\t{} {}\t{}{}{}",
            o.metric_name,
            o.metric,
            o.org_unit_name,
            o.org_unit,
            standing(o.standing),
            if o.late { "\t逾期 late" } else { "" },
            if o.review_comment.is_empty() {
                String::new()
            } else {
                format!("\t{}", o.review_comment)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
