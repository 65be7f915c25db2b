//! Locked periods: once the evaluation office locks a period (the materials are handed in), or
//! freezes a snapshot that closes submissions, no statistic of it is filed and no survey batch
//! of it ingested, except by an org unit the office has unlocked for a correction, with a
//! reason. Locks, unlocks and every refusal are in the audit log; every change of a lock is
//! announced (`period.locked`, `period.unlocked`) with the whole lock, so the evidence service
//! refuses uploads by the same rule.

use std::collections::{BTreeMap, HashSet};

use cezone_domain::access::Principal;
use cezone_domain::org::OrgUnitId;
use cezone_platform::ApiError;
use cezone_platform::access::audit::Entry;
use cezone_platform::db::stmt;
use cezone_platform::time::now_rfc3339;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

/// A reason or comment: required, short, printable.
pub fn reason(field: &str, text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(field, "is required: say why"));
    }
    if t.chars().count() > 500 || t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must be at most 500 printable characters",
        ));
    }
    Ok(t.to_string())
}

pub fn period(p: i32) -> Result<i32, ApiError> {
    if (1900..=2200).contains(&p) {
        Ok(p)
    } else {
        Err(ApiError::invalid("period", format!("{p} is not a year")))
    }
}

/// A period's lock as stored (unlocked: `locked` false, nothing else set).
pub async fn get(db: &impl ConnectionTrait, period: i32) -> Result<psv::PeriodLock, ApiError> {
    let b = db.get_database_backend();
    let mut out = psv::PeriodLock {
        period,
        ..Default::default()
    };
    if let Some(r) = db
        .query_one(stmt(
            b,
            "SELECT reason, locked_by, locked_at, revision FROM surveys_period_locks WHERE period = ?",
            vec![period.into()],
        ))
        .await?
    {
        out.locked = true;
        out.reason = r.try_get("", "reason")?;
        out.locked_by = r.try_get("", "locked_by")?;
        out.locked_at = r.try_get("", "locked_at")?;
        out.revision = r.try_get::<i64>("", "revision")? as u64;
    } else {
        // Unlocks exist only in a locked period: every filing asks, most of them of an open one.
        return Ok(out);
    }
    for r in db
        .query_all(stmt(
            b,
            "SELECT org_unit, reason, unlocked_by, unlocked_at FROM surveys_unlocks \
             WHERE period = ? ORDER BY org_unit",
            vec![period.into()],
        ))
        .await?
    {
        out.unlocked.push(psv::Unlocked {
            org_unit: r.try_get("", "org_unit")?,
            reason: r.try_get("", "reason")?,
            unlocked_by: r.try_get("", "unlocked_by")?,
            unlocked_at: r.try_get("", "unlocked_at")?,
        });
    }
    Ok(out)
}

/// Locks `period` (again): every earlier unlock of it ends.
pub async fn lock(
    db: &DatabaseConnection,
    who: &Principal,
    period: i32,
    reason: &str,
) -> Result<psv::PeriodLock, ApiError> {
    let txn = db.begin().await?;
    guard_exclusive(&txn, period).await?;
    let b = txn.get_database_backend();
    let at = now_rfc3339();
    txn.execute(stmt(
        b,
        "INSERT INTO surveys_period_locks (period, reason, locked_by, locked_at, revision) \
         VALUES (?, ?, ?, ?, 1) ON CONFLICT (period) DO UPDATE SET reason = excluded.reason, \
         locked_by = excluded.locked_by, locked_at = excluded.locked_at, \
         revision = surveys_period_locks.revision + 1",
        vec![
            period.into(),
            reason.into(),
            who.subject.clone().into(),
            at.clone().into(),
        ],
    ))
    .await?;
    let ended = txn
        .execute(stmt(
            b,
            "DELETE FROM surveys_unlocks WHERE period = ?",
            vec![period.into()],
        ))
        .await?
        .rows_affected();
    let target = period.to_string();
    cezone_platform::access::audit::append_many(
        &txn,
        "surveys",
        &[Entry {
            actor: who,
            action: "period.locked",
            target: &target,
            details: serde_json::json!({ "reason": reason, "unlocks_ended": ended }),
        }],
    )
    .await?;
    let out = get(&txn, period).await?;
    announce(&txn, "period.locked", &out).await?;
    txn.commit().await?;
    Ok(out)
}

/// A snapshot frozen with `close_submissions` locks its period, unless it is locked already
/// (a later closing freeze leaves the office's unlocks alone). Returns whether it locked.
pub async fn lock_on_freeze(
    db: &DatabaseConnection,
    f: &cezone_proto::events::v1::SnapshotFrozen,
) -> Result<bool, ApiError> {
    let txn = db.begin().await?;
    guard_exclusive(&txn, f.period).await?;
    let b = txn.get_database_backend();
    let reason = format!(
        "快照冻结 snapshot {} frozen for checkpoint {}",
        f.snapshot_id, f.checkpoint
    );
    let inserted = txn
        .execute(stmt(
            b,
            "INSERT INTO surveys_period_locks (period, reason, locked_by, locked_at, revision) \
             VALUES (?, ?, ?, ?, 1) ON CONFLICT (period) DO NOTHING",
            vec![
                f.period.into(),
                reason.clone().into(),
                "scoring".into(),
                f.frozen_at.clone().into(),
            ],
        ))
        .await?
        .rows_affected();
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let scoring = Principal::new("scoring", cezone_domain::access::Role::Service, None, None)
        .map_err(ApiError::internal_msg)?;
    let target = f.period.to_string();
    cezone_platform::access::audit::append_many(
        &txn,
        "surveys",
        &[Entry {
            actor: &scoring,
            action: "period.locked",
            target: &target,
            details: serde_json::json!({
                "reason": reason,
                "snapshot": f.snapshot_id,
                "checkpoint": f.checkpoint,
            }),
        }],
    )
    .await?;
    let out = get(&txn, f.period).await?;
    announce(&txn, "period.locked", &out).await?;
    txn.commit().await?;
    Ok(true)
}

/// The lock as it now stands, in the outbox with the change.
async fn announce(
    txn: &sea_orm::DatabaseTransaction,
    kind: &str,
    lock: &psv::PeriodLock,
) -> Result<(), ApiError> {
    let payload = cezone_proto::events::v1::PeriodLockChanged {
        lock: Some(lock.clone()),
    };
    let e = cezone_bus::envelope(kind, "surveys", &payload, None);
    cezone_bus::outbox::enqueue_many(txn, crate::OUTBOX, &[e]).await?;
    Ok(())
}

/// Lets `org_unit` file again in locked `period`.
pub async fn unlock(
    db: &DatabaseConnection,
    who: &Principal,
    period: i32,
    org_unit: &OrgUnitId,
    reason: &str,
) -> Result<psv::PeriodLock, ApiError> {
    let txn = db.begin().await?;
    let b = txn.get_database_backend();
    if !get(&txn, period).await?.locked {
        txn.rollback().await?;
        return Err(ApiError::precondition(format!(
            "period {period} is not locked; there is nothing to unlock"
        )));
    }
    txn.execute(stmt(
        b,
        "INSERT INTO surveys_unlocks (period, org_unit, reason, unlocked_by, unlocked_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (period, org_unit) DO UPDATE SET \
         reason = excluded.reason, unlocked_by = excluded.unlocked_by, \
         unlocked_at = excluded.unlocked_at",
        vec![
            period.into(),
            org_unit.as_str().into(),
            reason.into(),
            who.subject.clone().into(),
            now_rfc3339().into(),
        ],
    ))
    .await?;
    txn.execute(stmt(
        b,
        "UPDATE surveys_period_locks SET revision = revision + 1 WHERE period = ?",
        vec![period.into()],
    ))
    .await?;
    let target = format!("{period}/{org_unit}");
    cezone_platform::access::audit::append_many(
        &txn,
        "surveys",
        &[Entry {
            actor: who,
            action: "period.unlocked",
            target: &target,
            details: serde_json::json!({ "reason": reason }),
        }],
    )
    .await?;
    let out = get(&txn, period).await?;
    announce(&txn, "period.unlocked", &out).await?;
    txn.commit().await?;
    Ok(out)
}

/// The locked periods among `periods`.
pub async fn locked(
    db: &impl ConnectionTrait,
    periods: impl IntoIterator<Item = i32>,
) -> Result<BTreeMap<i32, psv::PeriodLock>, ApiError> {
    let periods: HashSet<i32> = periods.into_iter().collect();
    let mut locks = BTreeMap::new();
    for p in periods {
        let l = get(db, p).await?;
        if l.locked {
            locks.insert(p, l);
        }
    }
    Ok(locks)
}

/// Which of `targets` (field, org unit, period) a lock refuses: the first, and how many.
#[derive(Debug)]
pub struct Refusal {
    field: String,
    org_unit: String,
    lock: psv::PeriodLock,
    refused: usize,
    of: usize,
}

pub fn refusal(
    locks: &BTreeMap<i32, psv::PeriodLock>,
    targets: &[(String, &str, i32)],
) -> Option<Refusal> {
    if locks.is_empty() {
        return None;
    }
    let refused: Vec<&(String, &str, i32)> = targets
        .iter()
        .filter(|(_, org, p)| {
            locks
                .get(p)
                .is_some_and(|l| !l.unlocked.iter().any(|u| u.org_unit == *org))
        })
        .collect();
    let first = refused.first()?;
    Some(Refusal {
        field: first.0.clone(),
        org_unit: first.1.to_string(),
        lock: locks[&first.2].clone(),
        refused: refused.len(),
        of: targets.len(),
    })
}

/// Audits a refusal and says what was refused and what to do.
pub async fn refuse(db: &DatabaseConnection, who: &Principal, what: &str, r: Refusal) -> ApiError {
    let p = r.lock.period;
    let target = format!("{p}/{}", r.org_unit);
    let audited = cezone_platform::access::audit::append_many(
        db,
        "surveys",
        &[Entry {
            actor: who,
            action: "period.refused",
            target: &target,
            details: serde_json::json!({ "what": what, "refused": r.refused, "of": r.of }),
        }],
    )
    .await;
    if let Err(e) = audited {
        return e.into();
    }
    tracing::warn!(subject = %who.subject, period = p, org_unit = %r.org_unit, refused = r.refused, what, "refused: the period is locked");
    ApiError::precondition(format!(
        "{}: period {p} is locked 已锁定 since {} by {} ({}); {} of {} refused, nothing was \
         stored — the evaluation office can unlock {} for a correction",
        r.field, r.lock.locked_at, r.lock.locked_by, r.lock.reason, r.refused, r.of, r.org_unit
    ))
}

/// The lock revision of each period a check looked at (0: not locked).
pub type Revisions = BTreeMap<i32, u64>;

/// Refuses (audited) when any of `targets` lies in a locked period and its org unit is not
/// unlocked; otherwise gives the lock revisions it saw, for the write to confirm inside its
/// transaction ([`guard_pg`], [`unchanged`]).
pub async fn check(
    db: &DatabaseConnection,
    who: &Principal,
    what: &str,
    targets: &[(String, &str, i32)],
) -> Result<Revisions, ApiError> {
    let locks = locked(db, targets.iter().map(|t| t.2)).await?;
    match refusal(&locks, targets) {
        Some(r) => Err(refuse(db, who, what, r).await),
        None => Ok(targets
            .iter()
            .map(|t| (t.2, locks.get(&t.2).map_or(0, |l| l.revision)))
            .collect()),
    }
}

/// Where the periods' advisory locks start (apart from other users of advisory locks).
const PERIOD_GUARD_BASE: i64 = 0x5045_5249_0000; // "PERI"

/// PostgreSQL: the advisory lock that makes a change of `period`'s lock and the filings of
/// that period exclude each other — exclusive for locking, shared for filing — so a filing
/// checked before a lock committed either commits before the lock or sees it.
pub fn period_guard(period: i32) -> i64 {
    PERIOD_GUARD_BASE + i64::from(period)
}

/// Takes the exclusive guard of `period` in a transaction that locks it (PostgreSQL; SQLite
/// has one writer).
async fn guard_exclusive(txn: &impl ConnectionTrait, period: i32) -> Result<(), ApiError> {
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        txn.execute(stmt(
            txn.get_database_backend(),
            "SELECT pg_advisory_xact_lock(?)",
            vec![period_guard(period).into()],
        ))
        .await?;
    }
    Ok(())
}

/// PostgreSQL, in a filing's transaction: the shared guards of the filing's periods (in
/// order), then whether their locks are as the check saw them.
pub async fn guard_pg(
    tx: &mut sea_orm::sqlx::PgConnection,
    seen: &Revisions,
) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx;
    if seen.is_empty() {
        return Ok(true);
    }
    let guards: Vec<i64> = seen.keys().map(|p| period_guard(*p)).collect();
    sqlx::query("SELECT pg_advisory_xact_lock_shared(k) FROM unnest($1::int8[]) AS k")
        .bind(&guards)
        .execute(&mut *tx)
        .await?;
    let periods: Vec<i32> = seen.keys().copied().collect();
    let now: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT period, revision FROM surveys_period_locks WHERE period = ANY($1::int4[])",
    )
    .bind(&periods)
    .fetch_all(&mut *tx)
    .await?;
    Ok(same(seen, now.into_iter().map(|(p, r)| (p, r as u64))))
}

/// In a filing's transaction (SQLite, one writer): whether the periods' locks are as the
/// check saw them.
pub async fn unchanged(txn: &impl ConnectionTrait, seen: &Revisions) -> Result<bool, ApiError> {
    if seen.is_empty() {
        return Ok(true);
    }
    let b = txn.get_database_backend();
    let marks = vec!["?"; seen.len()].join(", ");
    let rows = txn
        .query_all(stmt(
            b,
            &format!("SELECT period, revision FROM surveys_period_locks WHERE period IN ({marks})"),
            seen.keys().map(|p| (*p).into()).collect(),
        ))
        .await?;
    let mut now = Vec::with_capacity(rows.len());
    for r in rows {
        now.push((
            r.try_get::<i32>("", "period")?,
            r.try_get::<i64>("", "revision")? as u64,
        ));
    }
    Ok(same(seen, now))
}

/// Whether the locked periods now (period, revision) are those `seen` (0: not locked).
fn same(seen: &Revisions, now: impl IntoIterator<Item = (i32, u64)>) -> bool {
    let now: BTreeMap<i32, u64> = now.into_iter().collect();
    seen.iter()
        .all(|(p, r)| now.get(p).copied().unwrap_or(0) == *r)
}

/// Values for a list of (field, org unit, period) built from anything indexed.
pub fn targets<'a, T>(
    items: &'a [T],
    prefix: &str,
    key: impl Fn(&'a T) -> (&'a str, i32),
) -> Vec<(String, &'a str, i32)> {
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (org, p) = key(t);
            (format!("{prefix}[{i}]"), org, p)
        })
        .collect()
}
