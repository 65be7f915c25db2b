//! Submissions close when the checkpoint that ends them is frozen. Scoring announces every
//! frozen snapshot (`snapshot.frozen`); when one is for the closing checkpoint
//! (`evidence.closing_checkpoint`, by default the plan's "materials submitted" deadline), the
//! period it scored is closed here, and uploads for that period are refused from then on. The
//! frozen snapshot would not see them anyway; refusing them says so to the unit at once.

use std::time::Duration;

use cezone_bus::{Delivery, Subscription};
use cezone_platform::ApiError;
use cezone_proto::events::v1 as ev;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use tokio_util::sync::CancellationToken;

/// The evidence service's queue, `{prefix}.evidence`.
pub const CONSUMER: &str = "evidence";
/// Routing patterns the evidence consumer binds.
pub const PATTERNS: &[&str] = &["snapshot.frozen"];

pub const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS evidence_closures (\
     framework_id TEXT NOT NULL, period INTEGER NOT NULL, checkpoint TEXT NOT NULL, \
     snapshot_id TEXT NOT NULL, frozen_at TEXT NOT NULL, PRIMARY KEY (framework_id, period))";

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
    closing: String,
    mut subscription: Subscription,
    shutdown: CancellationToken,
) {
    loop {
        let d = tokio::select! {
            () = shutdown.cancelled() => return,
            d = subscription.next() => d,
        };
        let Some(d) = d else {
            tracing::info!("event subscription ended");
            return;
        };
        handle(&db, &closing, d).await;
    }
}

async fn handle(db: &DatabaseConnection, closing: &str, d: Delivery) {
    let frozen = d
        .envelope()
        .map_err(|e| format!("malformed envelope: {e}"))
        .and_then(|env| {
            if env.r#type != "snapshot.frozen" {
                return Ok(None);
            }
            ev::SnapshotFrozen::decode(env.payload.as_slice())
                .map(Some)
                .map_err(|e| format!("snapshot.frozen event {}: {e}", env.event_id))
        });
    let frozen = match frozen {
        Ok(f) => f,
        Err(reason) => {
            tracing::warn!(routing_key = %d.routing_key, %reason, "dead-lettering an event");
            if let Err(e) = d.dead_letter(&reason).await {
                tracing::error!(error = %e, "cannot dead-letter an event");
            }
            return;
        }
    };
    if let Some(f) = frozen.filter(|f| !closing.is_empty() && f.checkpoint == closing) {
        if let Err(e) = close(db, &f).await {
            tracing::warn!(error = %e, "closure not recorded; it will be redelivered");
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = d.retry().await {
                tracing::warn!(error = %e, "requeue failed");
            }
            return;
        }
        tracing::info!(
            framework = %f.framework_id,
            period = f.period,
            checkpoint = %f.checkpoint,
            snapshot = %f.snapshot_id,
            "submissions closed"
        );
    }
    if let Err(e) = d.ack().await {
        // Redelivered; recording the closure again changes nothing.
        tracing::warn!(error = %e, "ack failed after commit");
    }
}

/// The first snapshot of the closing checkpoint closes the period; later ones change nothing.
async fn close(db: &DatabaseConnection, f: &ev::SnapshotFrozen) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "INSERT INTO evidence_closures (framework_id, period, checkpoint, snapshot_id, frozen_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
        }
        _ => {
            "INSERT INTO evidence_closures (framework_id, period, checkpoint, snapshot_id, frozen_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        }
    };
    db.execute(Statement::from_sql_and_values(
        backend,
        sql,
        [
            f.framework_id.clone().into(),
            f.period.into(),
            f.checkpoint.clone().into(),
            f.snapshot_id.clone().into(),
            f.frozen_at.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Whether `period` of `framework_id` is closed, and by which snapshot.
pub async fn closed(
    db: &DatabaseConnection,
    framework_id: &str,
    period: i32,
) -> Result<Option<Closure>, ApiError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT checkpoint, snapshot_id, frozen_at FROM evidence_closures \
             WHERE framework_id = $1 AND period = $2"
        }
        _ => {
            "SELECT checkpoint, snapshot_id, frozen_at FROM evidence_closures \
             WHERE framework_id = ? AND period = ?"
        }
    };
    let row = db
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [framework_id.into(), period.into()],
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
