//! `cezone period lock|unlock|show`: the evaluation office closes a year's filings when the
//! materials are handed in, and opens one org unit again for a correction.

use std::process::ExitCode;

use anyhow::{Result, bail};
use cezone_proto::surveys::v1 as ps;

use super::connect::{Services, refused};
use crate::cli::PeriodCommand;

pub async fn run(cmd: PeriodCommand) -> Result<ExitCode> {
    let (config, call) = match cmd {
        PeriodCommand::Lock {
            period,
            reason,
            config,
        } => (
            config,
            Call::Lock(ps::LockPeriodRequest {
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
            Call::Unlock(ps::UnlockOrgUnitRequest {
                period,
                org_unit,
                reason: required("--reason", &reason)?,
            }),
        ),
        PeriodCommand::Show { period, config } => {
            (config, Call::Show(ps::GetPeriodLockRequest { period }))
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
    Lock(ps::LockPeriodRequest),
    Unlock(ps::UnlockOrgUnitRequest),
    Show(ps::GetPeriodLockRequest),
}

fn required(flag: &str, text: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        bail!("{flag}: say why (it is recorded in the audit log)");
    }
    Ok(t.to_string())
}

/// The lock as a person reads it: Chinese first, then the English.
fn describe(l: &ps::PeriodLock) -> String {
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
