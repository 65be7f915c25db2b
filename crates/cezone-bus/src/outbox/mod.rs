//! Transactional outbox: a service writes its state change and the event announcing it in one
//! database transaction ([`enqueue`]); the [`Relay`] publishes committed events with confirms
//! and marks them published. An event is therefore published if and only if its change
//! committed, and a broker outage only delays it.
//!
//! Publishing is at least once: a crash (or a lost confirmation) between publishing and marking
//! publishes the event again later. Consumers drop duplicates by event id. Events are published
//! in id order by one relay at a time; several replicas relaying the same table (PostgreSQL)
//! take turns under the table's advisory lock. A row committed late (a lower id, a later
//! commit) is published when seen, after higher ids, so consumers must not rely on a global
//! order.
//!
//! An event no queue is bound for (no consumer of its type has ever subscribed) is refused by
//! the broker as unroutable; the relay logs it and marks it published rather than blocking
//! every later event behind it — exactly what the broker does with a message nobody listens
//! to. Consumers therefore subscribe (declare their queues) at start-up, before they depend
//! on events; a read model that missed events rebuilds over gRPC.
//!
//! Published rows are kept (with `published_at`) as a record of what was announced, for the
//! relay's retention (7 days by default), then deleted.

mod relay;
mod sql;

use cezone_proto::events::v1::Envelope;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr};

pub use relay::{Relay, RelayConfig, RelayHandle, Saturated};
use sql::Sql;

/// The DDL of an outbox table (idempotent: `IF NOT EXISTS`), with an index on the unpublished
/// rows. Run it from the service's migration with
/// `manager.get_connection().execute_unprepared(&create_table(backend, "evidence_outbox"))`.
///
/// # Panics
/// When `table` is not a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 50 bytes):
/// table names are constants of the service, not input.
pub fn create_table(backend: DatabaseBackend, table: &str) -> String {
    Sql::new(backend, table)
        .unwrap_or_else(|e| panic!("{e}"))
        .create_table()
}

/// Inserts the event into the outbox on `conn`, which should be the transaction that also
/// writes the state change. Notify the relay ([`RelayHandle::notify`]) after committing.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    envelope: &Envelope,
) -> Result<(), DbErr> {
    crate::envelope::check_publishable(envelope).map_err(|e| DbErr::Custom(e.to_string()))?;
    let sql = Sql::new(conn.get_database_backend(), table)?;
    conn.execute(sql.insert(envelope)).await?;
    Ok(())
}

/// [`enqueue`] for several events, in multi-row statements (in order).
pub async fn enqueue_many<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    envelopes: &[Envelope],
) -> Result<(), DbErr> {
    for e in envelopes {
        crate::envelope::check_publishable(e).map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    let sql = Sql::new(conn.get_database_backend(), table)?;
    for chunk in envelopes.chunks(500) {
        conn.execute(sql.insert_many(chunk)).await?;
    }
    Ok(())
}

/// [`enqueue_many`] on a PostgreSQL transaction held outside sea-orm (a write path that also
/// uses `COPY`, which sea-orm cannot send): the same rows, in one statement.
pub async fn enqueue_many_pg(
    conn: &mut sea_orm::sqlx::PgConnection,
    table: &str,
    envelopes: &[Envelope],
) -> Result<(), DbErr> {
    if envelopes.is_empty() {
        return Ok(());
    }
    for e in envelopes {
        crate::envelope::check_publishable(e).map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    let sql = Sql::new(DatabaseBackend::Postgres, table)?;
    let at = sql::now();
    let ids: Vec<&str> = envelopes.iter().map(|e| e.event_id.as_str()).collect();
    let types: Vec<&str> = envelopes.iter().map(|e| e.r#type.as_str()).collect();
    let bodies: Vec<Vec<u8>> = envelopes.iter().map(crate::encode).collect();
    let ats: Vec<&str> = envelopes.iter().map(|_| at.as_str()).collect();
    sea_orm::sqlx::query(&sql.insert_arrays_pg())
        .bind(&ids)
        .bind(&types)
        .bind(&bodies)
        .bind(&ats)
        .execute(conn)
        .await
        .map_err(|e| DbErr::Custom(format!("enqueueing {} events: {e}", envelopes.len())))?;
    Ok(())
}

/// Deletes the rows published before `before` (RFC 3339); returns how many. The relay does
/// this for its retention once an hour.
pub async fn purge<C: ConnectionTrait>(conn: &C, table: &str, before: &str) -> Result<u64, DbErr> {
    Sql::new(conn.get_database_backend(), table)?
        .purge(conn, before)
        .await
}

/// How many committed events are not yet published.
pub async fn pending<C: ConnectionTrait>(db: &C, table: &str) -> Result<u64, DbErr> {
    let sql = Sql::new(db.get_database_backend(), table)?;
    sql.count_pending(db, None).await
}
