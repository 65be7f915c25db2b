//! The survey service hears of frozen snapshots: one frozen with `close_submissions` (the
//! materials are handed in) locks its period here, as the office's `LockPeriod` would.

use cezone_bus::outbox::RelayHandle;
use cezone_bus::{Delivery, NotApplied, Subscription};
use cezone_proto::events::v1 as ev;
use prost::Message;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// The survey service's queue, `{prefix}.surveys`.
pub const CONSUMER: &str = "surveys";
/// Routing patterns the survey consumer binds.
pub const PATTERNS: &[&str] = &["snapshot.frozen"];

/// Applies `snapshot.frozen` events until shut down; acks after commit, dead-letters what
/// cannot be read, retries what the database refused.
pub async fn run(
    db: DatabaseConnection,
    relay: RelayHandle,
    mut subscription: Subscription,
    shutdown: CancellationToken,
) {
    while let Some(d) = subscription.next_until(&shutdown).await {
        let outcome = apply(&db, &relay, &d).await;
        d.settle(outcome).await;
    }
}

async fn apply(
    db: &DatabaseConnection,
    relay: &RelayHandle,
    d: &Delivery,
) -> Result<(), NotApplied> {
    let env = d
        .envelope()
        .map_err(|e| NotApplied::Unreadable(format!("malformed envelope: {e}")))?;
    if env.r#type != "snapshot.frozen" {
        return Ok(());
    }
    let f = ev::SnapshotFrozen::decode(env.payload.as_slice()).map_err(|e| {
        NotApplied::Unreadable(format!("snapshot.frozen event {}: {e}", env.event_id))
    })?;
    if !f.close_submissions {
        return Ok(());
    }
    // Locking again by the same freeze (a redelivery) changes nothing.
    let locked = crate::locks::lock_on_freeze(db, &f)
        .await
        .map_err(|e| NotApplied::Failed(format!("period lock not recorded: {e}")))?;
    if locked {
        relay.notify();
        tracing::info!(period = f.period, snapshot = %f.snapshot_id, checkpoint = %f.checkpoint, "period locked by a closing snapshot");
    }
    Ok(())
}
