//! Locked periods as the survey service announces them (`period.locked`, `period.unlocked`,
//! each with the whole lock and its revision): an upload of a locked period is refused unless
//! its org unit was unlocked for a correction, and an unlocked org unit may also upload after
//! the edition's submissions closed.

use cezone_platform::db::stmt;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

pub const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS evidence_period_locks (\
     period INTEGER PRIMARY KEY, reason TEXT NOT NULL, locked_by TEXT NOT NULL, \
     locked_at TEXT NOT NULL, revision BIGINT NOT NULL, unlocked TEXT NOT NULL)";

/// Keeps the announced lock if it is newer than the one held.
pub async fn apply(db: &DatabaseConnection, lock: &psv::PeriodLock) -> Result<(), DbErr> {
    let unlocked: Vec<&str> = lock.unlocked.iter().map(|u| u.org_unit.as_str()).collect();
    let unlocked = serde_json::to_string(&unlocked).map_err(|e| DbErr::Custom(e.to_string()))?;
    db.execute(stmt(
        db.get_database_backend(),
        "INSERT INTO evidence_period_locks (period, reason, locked_by, locked_at, revision, unlocked) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (period) DO UPDATE SET reason = excluded.reason, \
         locked_by = excluded.locked_by, locked_at = excluded.locked_at, \
         revision = excluded.revision, unlocked = excluded.unlocked \
         WHERE evidence_period_locks.revision < excluded.revision",
        vec![
            lock.period.into(),
            lock.reason.clone().into(),
            lock.locked_by.clone().into(),
            lock.locked_at.clone().into(),
            (lock.revision as i64).into(),
            unlocked.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// How a period stands for one org unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Open,
    /// Locked, with when, by whom and why.
    Locked {
        locked_at: String,
        locked_by: String,
        reason: String,
    },
    /// Locked, and this org unit unlocked for a correction.
    Unlocked,
}

pub async fn standing(
    db: &DatabaseConnection,
    period: i32,
    org_unit: &str,
) -> Result<Standing, DbErr> {
    let Some(r) = db
        .query_one(stmt(
            db.get_database_backend(),
            "SELECT reason, locked_by, locked_at, unlocked FROM evidence_period_locks WHERE period = ?",
            vec![period.into()],
        ))
        .await?
    else {
        return Ok(Standing::Open);
    };
    let unlocked: String = r.try_get("", "unlocked")?;
    let unlocked: Vec<String> =
        serde_json::from_str(&unlocked).map_err(|e| DbErr::Custom(e.to_string()))?;
    if unlocked.iter().any(|u| u == org_unit) {
        return Ok(Standing::Unlocked);
    }
    Ok(Standing::Locked {
        locked_at: r.try_get("", "locked_at")?,
        locked_by: r.try_get("", "locked_by")?,
        reason: r.try_get("", "reason")?,
    })
}
