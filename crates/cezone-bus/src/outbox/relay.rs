//! The relay: a background task per outbox table that publishes committed events in id order,
//! with confirms, and marks them published.
//!
//! Each pass takes up to 100 unpublished rows. On PostgreSQL it does so in a transaction with
//! `FOR UPDATE SKIP LOCKED`, so replicas relaying the same table never publish the same rows
//! at the same time; the marks commit with the transaction at the end of the pass. On SQLite
//! (one process) no transaction is held while publishing — that would block the service's own
//! writes — and each row is marked as soon as it is confirmed.
//!
//! A pass runs on [`RelayHandle::notify`] (after a commit) or every 500 ms. When the bus fails,
//! what was published is marked, and the pass is retried after 100 ms, 200 ms … up to 5 s:
//! nothing committed is ever dropped. (An event no queue is bound for is the exception the
//! module documentation describes: it is marked published, with a warning.)

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sql::{Row, Sql};
use crate::backoff::Backoff;
use crate::{Bus, BusError};

const BATCH: u32 = 100;
const POLL: Duration = Duration::from_millis(500);
/// At shutdown, how long the relay keeps publishing what is pending.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts outbox relays.
#[derive(Debug)]
pub struct Relay;

/// Controls a running relay. Clones control the same relay.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: DatabaseConnection,
    sql: Sql,
    /// Wakes the relay for a pass now.
    wake: Notify,
    /// Signalled after a pass marked rows published (flush waits on it).
    progress: Notify,
    /// Cancelled when the relay task has ended.
    done: CancellationToken,
}

impl Relay {
    /// Spawns the relay of outbox `table` on `db`, publishing to `bus`, until `shutdown` is
    /// cancelled; it then publishes what it can within 5 s and stops.
    ///
    /// # Panics
    /// When `table` is not a plain SQL identifier (see [`super::create_table`]).
    pub fn spawn(
        db: DatabaseConnection,
        table: &str,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> RelayHandle {
        let sql = Sql::new(db.get_database_backend(), table).unwrap_or_else(|e| panic!("{e}"));
        let shared = Arc::new(Shared {
            db,
            sql,
            wake: Notify::new(),
            progress: Notify::new(),
            done: CancellationToken::new(),
        });
        tokio::spawn(run(shared.clone(), bus, shutdown));
        RelayHandle { shared }
    }
}

impl RelayHandle {
    /// Asks for a pass now (call it after committing a transaction that enqueued events).
    pub fn notify(&self) {
        self.shared.wake.notify_one();
    }

    /// Returns once every event committed before the call is published (by this relay or
    /// another replica), or once the relay has stopped. Waits as long as the bus is down; wrap
    /// it in a timeout where that matters.
    pub async fn flush(&self) {
        let shared = &self.shared;
        let target = loop {
            match shared.sql.max_id(&shared.db).await {
                Ok(target) => break target,
                Err(e) => {
                    tracing::warn!(table = shared.sql.table(), error = %e, "outbox flush cannot read the table; retrying");
                    if shared.done.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let Some(target) = target else {
            return;
        };
        loop {
            let progress = shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            match shared.sql.count_pending(&shared.db, Some(target)).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(table = shared.sql.table(), error = %e, "outbox flush cannot read the table; retrying");
                }
            }
            if shared.done.is_cancelled() {
                return;
            }
            self.notify();
            tokio::select! {
                _ = progress => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shared.done.cancelled() => {}
            }
        }
    }

    /// Waits until the relay task has ended (after its shutdown token was cancelled).
    pub async fn stopped(self) {
        self.shared.done.cancelled().await;
    }
}

async fn run(shared: Arc<Shared>, bus: Arc<dyn Bus>, shutdown: CancellationToken) {
    // Marks the relay done even if this task panics.
    let _done = shared.done.clone().drop_guard();
    let table = shared.sql.table().to_string();
    tracing::info!(table, "outbox relay started");
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        // A pass cut short by shutdown leaves its published-but-unmarked rows to be published
        // again (duplicates are dropped by consumers).
        let pass = tokio::select! {
            pass = pass(&shared, bus.as_ref()) => pass,
            _ = shutdown.cancelled() => break,
        };
        match pass {
            Ok(published) => {
                backoff.reset();
                if published == BATCH as usize {
                    continue;
                }
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(table, error = %e, delay_ms = delay.as_millis() as u64, "outbox relay pass failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    let last = tokio::time::timeout(SHUTDOWN_GRACE, async {
        loop {
            match pass(&shared, bus.as_ref()).await {
                Ok(n) if n == BATCH as usize => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    match last {
        Ok(Ok(())) => tracing::info!(table, "outbox relay stopped; everything published"),
        Ok(Err(e)) => {
            tracing::warn!(table, error = %e, "outbox relay stopped; pending events wait for the next start")
        }
        Err(_) => {
            tracing::warn!(
                table,
                "outbox relay stopped; pending events wait for the next start"
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// One batch: publish the oldest unpublished rows and mark them. Returns how many rows it
/// published; on a bus error the rows published before it are still marked.
async fn pass(shared: &Shared, bus: &dyn Bus) -> Result<usize, PassError> {
    let sql = &shared.sql;
    let result = match sql.backend() {
        DatabaseBackend::Sqlite => {
            let rows = sql.select_batch(&shared.db, BATCH).await?;
            publish_rows(sql, &shared.db, bus, rows).await
        }
        _ => {
            let txn = shared.db.begin().await?;
            let rows = sql.select_batch(&txn, BATCH).await?;
            let result = publish_rows(sql, &txn, bus, rows).await;
            txn.commit().await?;
            result
        }
    };
    if matches!(result, Ok(n) if n > 0) || result.is_err() {
        shared.progress.notify_waiters();
    }
    result
}

async fn publish_rows<C: sea_orm::ConnectionTrait>(
    sql: &Sql,
    conn: &C,
    bus: &dyn Bus,
    rows: Vec<Row>,
) -> Result<usize, PassError> {
    let mut published = 0;
    for row in rows {
        let envelope = match crate::decode(&row.envelope) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Only a hand-edited row can get here; it stays for an operator to look at.
                tracing::error!(table = sql.table(), id = row.id, error = %e, "outbox row is not an envelope; skipped");
                continue;
            }
        };
        match bus.publish(&envelope).await {
            Ok(()) => {}
            // Nobody is bound for this type: the broker would drop it; blocking every later
            // event behind it would not help anyone.
            Err(BusError::Unroutable { routing_key, .. }) => {
                // Announcements nobody listens to yet (scores.changed without a dashboard) are
                // normal; an operator who expects a consumer finds them at debug level.
                tracing::debug!(table = sql.table(), id = row.id, event_id = %envelope.event_id, routing_key, "no queue is bound for this event; marked published without a consumer");
            }
            Err(e) => return Err(e.into()),
        }
        sql.mark_published(conn, row.id).await?;
        published += 1;
        tracing::debug!(table = sql.table(), id = row.id, event_id = %envelope.event_id, "outbox event published");
    }
    Ok(published)
}
