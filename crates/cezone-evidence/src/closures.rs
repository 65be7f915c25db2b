//! Submissions close when the evaluation office freezes the snapshot that ends them (a
//! FreezeSnapshot with `close_submissions`, typically for the "materials submitted"
//! checkpoint). Scoring announces every frozen snapshot (`snapshot.frozen`); a closing one
//! closes its framework edition here, and uploads for that edition are refused from then on,
//! whatever period they name: the frozen scores would not see them anyway, and refusing them
//! says so to the unit at once. The scheduler's runs before a checkpoint never close anything.

use cezone_bus::{Delivery, NotApplied, Subscription};
use cezone_domain::access::{Principal, Role};
use cezone_platform::ApiError;
use cezone_proto::events::v1 as ev;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait};
use tokio_util::sync::CancellationToken;

/// The evidence service's queue, `{prefix}.evidence`.
pub const CONSUMER: &str = "evidence";
/// Routing patterns the evidence consumer binds.
pub const PATTERNS: &[&str] = &["snapshot.frozen", "period.*"];

pub const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS evidence_closures (\
     framework_id TEXT NOT NULL, edition TEXT NOT NULL, checkpoint TEXT NOT NULL, \
     snapshot_id TEXT NOT NULL, frozen_at TEXT NOT NULL, PRIMARY KEY (framework_id, edition))";

/// A closed period: the snapshot that closed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub checkpoint: String,
    pub snapshot_id: String,
    pub frozen_at: String,
}

/// Applies `snapshot.frozen` events until shut down; acks after commit, dead-letters what
/// cannot be read, retries what the database refused.
pub async fn run(
    db: DatabaseConnection,
    mut subscription: Subscription,
    shutdown: CancellationToken,
) {
    while let Some(d) = subscription.next_until(&shutdown).await {
        let outcome = apply(&db, &d).await;
        d.settle(outcome).await;
    }
}

/// A closing snapshot closes its edition; a period lock announced by the survey service is
/// kept (the newest revision wins). Either, applied again, changes nothing.
async fn apply(db: &DatabaseConnection, d: &Delivery) -> Result<(), NotApplied> {
    let env = d
        .envelope()
        .map_err(|e| NotApplied::Unreadable(format!("malformed envelope: {e}")))?;
    let unreadable = |what: String| {
        NotApplied::Unreadable(format!("{} event {}: {what}", env.r#type, env.event_id))
    };
    if env.r#type.starts_with("period.") {
        let lock = ev::PeriodLockChanged::decode(env.payload.as_slice())
            .map_err(|e| unreadable(e.to_string()))?
            .lock
            .ok_or_else(|| unreadable("it carries no lock".into()))?;
        crate::period_locks::apply(db, &lock)
            .await
            .map_err(|e| NotApplied::Failed(format!("period lock not recorded: {e}")))?;
        tracing::info!(
            period = lock.period,
            revision = lock.revision,
            unlocked = lock.unlocked.len(),
            "period lock recorded"
        );
        return Ok(());
    }
    if env.r#type != "snapshot.frozen" {
        return Ok(());
    }
    let f = ev::SnapshotFrozen::decode(env.payload.as_slice())
        .map_err(|e| unreadable(e.to_string()))?;
    if !f.close_submissions {
        return Ok(());
    }
    close(db, &f)
        .await
        .map_err(|e| NotApplied::Failed(format!("closure not recorded: {e}")))?;
    tracing::info!(
        framework = %f.framework_id,
        edition = %f.edition,
        checkpoint = %f.checkpoint,
        snapshot = %f.snapshot_id,
        "submissions closed"
    );
    Ok(())
}

/// The first closing snapshot closes the edition; later ones change nothing. The closure is
/// in the audit log, as done by scoring on the evaluation office's request.
async fn close(db: &DatabaseConnection, f: &ev::SnapshotFrozen) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "INSERT INTO evidence_closures (framework_id, edition, checkpoint, snapshot_id, frozen_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
        }
        _ => {
            "INSERT INTO evidence_closures (framework_id, edition, checkpoint, snapshot_id, frozen_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        }
    };
    let inserted = txn
        .execute(Statement::from_sql_and_values(
            backend,
            sql,
            [
                f.framework_id.clone().into(),
                f.edition.clone().into(),
                f.checkpoint.clone().into(),
                f.snapshot_id.clone().into(),
                f.frozen_at.clone().into(),
            ],
        ))
        .await?;
    if inserted.rows_affected() == 1 {
        let scoring =
            Principal::new("scoring", Role::Service, None, None).map_err(DbErr::Custom)?;
        cezone_platform::access::audit::append(
            &txn,
            "evidence",
            cezone_platform::access::audit::Entry {
                actor: &scoring,
                action: "submissions.closed",
                target: &format!("{}/{}", f.framework_id, f.edition),
                details: serde_json::json!({
                    "checkpoint": f.checkpoint,
                    "snapshot": f.snapshot_id,
                    "frozen_at": f.frozen_at,
                    "period": f.period,
                }),
            },
        )
        .await?;
    }
    txn.commit().await
}

/// Whether `edition` of `framework_id` is closed, and by which snapshot.
pub async fn closed(
    db: &DatabaseConnection,
    framework_id: &str,
    edition: &str,
) -> Result<Option<Closure>, ApiError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT checkpoint, snapshot_id, frozen_at FROM evidence_closures \
             WHERE framework_id = $1 AND edition = $2"
        }
        _ => {
            "SELECT checkpoint, snapshot_id, frozen_at FROM evidence_closures \
             WHERE framework_id = ? AND edition = ?"
        }
    };
    let row = db
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [framework_id.into(), edition.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(Closure {
            checkpoint: r.try_get("", "checkpoint")?,
            snapshot_id: r.try_get("", "snapshot_id")?,
            frozen_at: r.try_get("", "frozen_at")?,
        }),
        None => None,
    })
}
