//! The relay: a background task per outbox table that publishes committed events in id order,
//! with confirms, and marks them published.
//!
//! Each pass takes a window of unpublished rows (`window`, 256 by default) and publishes them
//! with their confirmations outstanding together ([`Bus::publish_many`]), so throughput is a
//! window per round trip, not an event. On PostgreSQL a pass runs in a transaction holding the
//! table's advisory lock, so replicas relaying the same table take turns and never publish the
//! same rows at the same time; the marks commit with the transaction at the end of the pass. On SQLite (one
//! process) no transaction is held while publishing — that would block the service's own
//! writes — and the confirmed rows are marked after the window.
//!
//! A pass runs on [`RelayHandle::notify`] (after a commit) or every 500 ms. When the bus fails,
//! what was confirmed is marked, and the pass is retried after 100 ms, 200 ms … up to 5 s:
//! nothing committed is ever dropped. (An event no queue is bound for is the exception the
//! module documentation describes: it is marked published, with a warning.)
//!
//! **Backpressure.** After every pass the relay counts what is still unpublished (up to the
//! configured limit). Producers ask [`RelayHandle::admit`] before taking a write: past the
//! limit they refuse it, so a broker outage or a flood of writes builds a bounded backlog
//! instead of an ever-growing lag. **Retention.** Published rows older than the retention are
//! deleted once an hour.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sql::{Row, Sql};
use crate::backoff::Backoff;
use crate::{Bus, BusError};

const POLL: Duration = Duration::from_millis(500);
/// How often the backlog is counted for [`RelayHandle::admit`].
const COUNT_EVERY: Duration = Duration::from_millis(200);
/// How often published rows past the retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// At shutdown, how long the relay keeps publishing what is pending.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts outbox relays.
#[derive(Debug)]
pub struct Relay;

/// How a relay publishes and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// Rows published per pass, their confirmations outstanding together.
    pub window: u32,
    /// Unpublished rows past which [`RelayHandle::admit`] refuses new writes.
    pub backlog_limit: u64,
    /// How long published rows are kept.
    pub retention: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            window: 256,
            backlog_limit: 50_000,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The outbox holds more unpublished events than the configured limit: the producer refuses the
/// write until the relay catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{backlog} events are waiting to be published (limit {limit}); try again shortly")]
pub struct Saturated {
    pub backlog: u64,
    pub limit: u64,
}

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
    config: RelayConfig,
    /// Unpublished rows at the last count (at most the limit + 1).
    backlog: AtomicU64,
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
        Relay::spawn_with(db, table, bus, shutdown, RelayConfig::default())
    }

    /// [`Relay::spawn`] with a window, a backlog limit and a retention of one's own.
    ///
    /// # Panics
    /// When `table` is not a plain SQL identifier (see [`super::create_table`]).
    pub fn spawn_with(
        db: DatabaseConnection,
        table: &str,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
        config: RelayConfig,
    ) -> RelayHandle {
        let sql = Sql::new(db.get_database_backend(), table).unwrap_or_else(|e| panic!("{e}"));
        let shared = Arc::new(Shared {
            db,
            sql,
            wake: Notify::new(),
            progress: Notify::new(),
            done: CancellationToken::new(),
            config: RelayConfig {
                window: config.window.max(1),
                ..config
            },
            backlog: AtomicU64::new(0),
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

    /// Unpublished events at the last count.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed)
    }

    /// Whether a producer may take another write: refused while the backlog is past the limit.
    pub fn admit(&self) -> Result<(), Saturated> {
        let backlog = self.backlog();
        let limit = self.shared.config.backlog_limit;
        if backlog > limit {
            self.notify();
            Err(Saturated { backlog, limit })
        } else {
            Ok(())
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
    let window = shared.config.window as usize;
    let mut purged_at: Option<tokio::time::Instant> = None;
    let mut counted_at: Option<tokio::time::Instant> = None;
    loop {
        if purged_at.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            purged_at = Some(tokio::time::Instant::now());
            purge(&shared).await;
        }
        // A pass cut short by shutdown leaves its published-but-unmarked rows to be published
        // again (duplicates are dropped by consumers).
        let pass = tokio::select! {
            pass = pass(&shared, bus.as_ref()) => pass,
            _ = shutdown.cancelled() => break,
        };
        // Counting a long backlog costs a scan: at most five times a second, not every window.
        if counted_at.is_none_or(|t| t.elapsed() >= COUNT_EVERY) {
            counted_at = Some(tokio::time::Instant::now());
            count_backlog(&shared).await;
        }
        match pass {
            Ok(published) => {
                backoff.reset();
                if published == window {
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
                Ok(n) if n == window => continue,
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

/// One window: publish the oldest unpublished rows and mark those confirmed. Returns how many
/// rows it took; on a bus error the rows confirmed before it are still marked.
async fn pass(shared: &Shared, bus: &dyn Bus) -> Result<usize, PassError> {
    let sql = &shared.sql;
    let window = shared.config.window;
    let started = std::time::Instant::now();
    let result = match sql.backend() {
        DatabaseBackend::Sqlite => {
            let rows = sql.select_batch(&shared.db, window).await?;
            publish_rows(sql, &shared.db, bus, rows).await
        }
        _ => {
            let txn = shared.db.begin().await?;
            if !sql.try_lock(&txn).await? {
                // Another replica relays this table now; this one looks again later.
                txn.commit().await?;
                return Ok(0);
            }
            let rows = sql.select_batch(&txn, window).await?;
            let selected = started.elapsed();
            let result = publish_rows(sql, &txn, bus, rows).await;
            let published = started.elapsed();
            txn.commit().await?;
            tracing::debug!(
                table = sql.table(),
                rows = result.as_ref().ok(),
                select_ms = selected.as_millis() as u64,
                publish_ms = (published - selected).as_millis() as u64,
                commit_ms = (started.elapsed() - published).as_millis() as u64,
                "outbox pass"
            );
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
    let taken = rows.len();
    let mut ids = Vec::with_capacity(rows.len());
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        match crate::decode(&row.envelope) {
            Ok(envelope) => {
                ids.push(row.id);
                envelopes.push(envelope);
            }
            // Only a hand-edited row can get here; it stays for an operator to look at.
            Err(e) => {
                tracing::error!(table = sql.table(), id = row.id, error = %e, "outbox row is not an envelope; skipped")
            }
        }
    }
    if envelopes.is_empty() {
        return Ok(0);
    }
    let results = bus.publish_many(&envelopes).await;
    let mut confirmed = Vec::with_capacity(ids.len());
    let mut first_error = None;
    for ((id, envelope), result) in ids.iter().zip(&envelopes).zip(results) {
        match result {
            Ok(()) => confirmed.push(*id),
            // Nobody is bound for this type: the broker would drop it; blocking every later
            // event behind it would not help anyone. Announcements nobody listens to yet
            // (scores.changed without a dashboard) are normal, so this is at debug level.
            Err(BusError::Unroutable { routing_key, .. }) => {
                tracing::debug!(table = sql.table(), id, event_id = %envelope.event_id, routing_key, "no queue is bound for this event; marked published without a consumer");
                confirmed.push(*id);
            }
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    sql.mark_published_many(conn, &confirmed).await?;
    tracing::debug!(
        table = sql.table(),
        published = confirmed.len(),
        "outbox window published"
    );
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(taken),
    }
}

/// Counts the unpublished rows (up to the limit + 1) for [`RelayHandle::admit`].
async fn count_backlog(shared: &Shared) {
    let cap = shared.config.backlog_limit.saturating_add(1);
    match shared.sql.count_pending_capped(&shared.db, cap).await {
        Ok(n) => shared.backlog.store(n, Ordering::Relaxed),
        Err(e) => {
            tracing::warn!(table = shared.sql.table(), error = %e, "cannot count the outbox backlog")
        }
    }
}

/// Deletes published rows older than the retention.
async fn purge(shared: &Shared) {
    let before = chrono::Duration::from_std(shared.config.retention)
        .ok()
        .and_then(|r| chrono::Utc::now().checked_sub_signed(r))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match shared.sql.purge(&shared.db, &before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            table = shared.sql.table(),
            rows = n,
            "published outbox rows past the retention deleted"
        ),
        Err(e) => tracing::warn!(table = shared.sql.table(), error = %e, "cannot purge the outbox"),
    }
}
