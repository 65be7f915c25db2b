//! The audit log: every change a caller makes, appended in the same transaction as the change,
//! each entry carrying the SHA-256 of its predecessor. Editing or deleting a past entry breaks
//! the chain at that entry; `verify` finds the first break. Each service keeps its own log in
//! its own table (`{service}_audit`). The head hash `verify` reports can be written down
//! elsewhere, which also makes a removal of the newest entries detectable.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};
use sea_orm_migration::prelude::*;
use sha2::{Digest, Sha256};

use cezone_domain::access::Principal;

/// The hash the first entry links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The audit table of a service.
pub fn table(service: &str) -> String {
    format!("{service}_audit")
}

/// One change: who made it, what it was, on what, with its before/after or content hash.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: &'a Principal,
    /// `evidence.upload`, `framework.publish` …
    pub action: &'a str,
    /// The record changed: an evidence id, `framework/edition`, an org unit id …
    pub target: &'a str,
    pub details: serde_json::Value,
}

/// A stored entry, as `verify` reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Stored {
    /// The hash this entry must carry: every field, length-prefixed, and the previous hash.
    pub fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        for field in [
            self.seq.to_string().as_str(),
            &self.at,
            &self.actor,
            &self.action,
            &self.target,
            &self.details,
            &self.prev_hash,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The entry that follows `last` (its seq and hash; None for the first), sealed with its hash.
pub fn seal(entry: &Entry<'_>, last: Option<(i64, String)>) -> Stored {
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let mut s = Stored {
        seq,
        at: crate::time::now_rfc3339(),
        actor: entry.actor.describe(),
        action: entry.action.to_string(),
        target: entry.target.to_string(),
        details: entry.details.to_string(),
        prev_hash,
        hash: String::new(),
    };
    s.hash = s.expected_hash();
    s
}

/// PostgreSQL: appends to one log wait for each other until the appending transaction ends.
pub const PG_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext($1))";

/// The newest entry's seq and hash.
pub fn last_sql(service: &str) -> String {
    format!(
        "SELECT seq, hash FROM {} ORDER BY seq DESC LIMIT 1",
        table(service)
    )
}

/// Inserts one sealed entry; `$n` placeholders on PostgreSQL, `?` on SQLite.
pub fn insert_sql(service: &str, backend: DatabaseBackend) -> String {
    let p: Vec<String> = (1..=8)
        .map(|i| match backend {
            DatabaseBackend::Postgres => format!("${i}"),
            _ => "?".to_string(),
        })
        .collect();
    format!(
        "INSERT INTO {} (seq, at, actor, action, target, details, prev_hash, hash) VALUES ({})",
        table(service),
        p.join(", ")
    )
}

/// Appends `entry` on `conn`, which must be the transaction making the change, so the entry
/// commits or rolls back with it. On PostgreSQL appends to one log wait for each other (a
/// transaction-scoped advisory lock), so the chain never forks; SQLite has a single writer.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    service: &str,
    entry: Entry<'_>,
) -> Result<(), DbErr> {
    append_many(conn, service, std::slice::from_ref(&entry)).await
}

/// Appends several entries in order on `conn` (the transaction making the changes), under one
/// lock and in multi-row statements: a batch of changes is audited entry by entry at the cost
/// of one append.
pub async fn append_many<C: ConnectionTrait>(
    conn: &C,
    service: &str,
    entries: &[Entry<'_>],
) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    if backend == DatabaseBackend::Postgres {
        conn.execute(Statement::from_sql_and_values(
            backend,
            PG_LOCK_SQL,
            [table(service).into()],
        ))
        .await?;
    }
    let mut last = conn
        .query_one(Statement::from_string(backend, last_sql(service)))
        .await?
        .map(|row| -> Result<(i64, String), DbErr> {
            Ok((row.try_get("", "seq")?, row.try_get("", "hash")?))
        })
        .transpose()?;
    let mut sealed = Vec::with_capacity(entries.len());
    for entry in entries {
        let s = seal(entry, last.take());
        last = Some((s.seq, s.hash.clone()));
        sealed.push(s);
    }
    for chunk in sealed.chunks(500) {
        let mut tuples = Vec::with_capacity(chunk.len());
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 8);
        for (i, s) in chunk.iter().enumerate() {
            let p: Vec<String> = (1..=8)
                .map(|k| match backend {
                    DatabaseBackend::Postgres => format!("${}", i * 8 + k),
                    _ => "?".to_string(),
                })
                .collect();
            tuples.push(format!("({})", p.join(", ")));
            values.extend([
                s.seq.into(),
                s.at.clone().into(),
                s.actor.clone().into(),
                s.action.clone().into(),
                s.target.clone().into(),
                s.details.clone().into(),
                s.prev_hash.clone().into(),
                s.hash.clone().into(),
            ]);
        }
        conn.execute(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO {} (seq, at, actor, action, target, details, prev_hash, hash) VALUES {}",
                table(service),
                tuples.join(", ")
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// [`append_many`] on a PostgreSQL transaction held outside sea-orm (a write path that also
/// uses `COPY`): the same lock, the same chain, the rows in one statement.
pub async fn append_many_pg(
    conn: &mut sea_orm::sqlx::PgConnection,
    service: &str,
    entries: &[Entry<'_>],
) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx;
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query(PG_LOCK_SQL)
        .bind(table(service))
        .execute(&mut *conn)
        .await?;
    let mut last: Option<(i64, String)> = sqlx::query_as(&last_sql(service))
        .fetch_optional(&mut *conn)
        .await?;
    let mut sealed = Vec::with_capacity(entries.len());
    for entry in entries {
        let s = seal(entry, last.take());
        last = Some((s.seq, s.hash.clone()));
        sealed.push(s);
    }
    let column = |f: fn(&Stored) -> &str| sealed.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(&format!(
        "INSERT INTO {} (seq, at, actor, action, target, details, prev_hash, hash) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[])",
        table(service)
    ))
    .bind(sealed.iter().map(|s| s.seq).collect::<Vec<i64>>())
    .bind(column(|s| &s.at))
    .bind(column(|s| &s.actor))
    .bind(column(|s| &s.action))
    .bind(column(|s| &s.target))
    .bind(column(|s| &s.details))
    .bind(column(|s| &s.prev_hash))
    .bind(column(|s| &s.hash))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a check of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub entries: u64,
    /// The newest entry's hash: write it down to detect a later removal of the newest entries.
    pub head: Option<String>,
    /// The first entry that does not hold, and why.
    pub broken: Option<(i64, String)>,
}

/// Walks the whole chain in order, recomputing every hash.
pub async fn verify<C: ConnectionTrait>(conn: &C, service: &str) -> Result<Verification, DbErr> {
    let backend = conn.get_database_backend();
    let t = table(service);
    let mut v = Verification {
        entries: 0,
        head: None,
        broken: None,
    };
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut after = i64::MIN;
    loop {
        let rows = conn
            .query_all(Statement::from_string(
                backend,
                format!(
                    "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM {t} \
                     WHERE seq > {after} ORDER BY seq LIMIT 5000"
                ),
            ))
            .await?;
        if rows.is_empty() {
            return Ok(v);
        }
        for row in rows {
            let s = Stored {
                seq: row.try_get("", "seq")?,
                at: row.try_get("", "at")?,
                actor: row.try_get("", "actor")?,
                action: row.try_get("", "action")?,
                target: row.try_get("", "target")?,
                details: row.try_get("", "details")?,
                prev_hash: row.try_get("", "prev_hash")?,
                hash: row.try_get("", "hash")?,
            };
            after = s.seq;
            v.entries += 1;
            let problem = if s.seq < expected_seq {
                Some(format!("entry {} is out of sequence", s.seq))
            } else if s.seq != expected_seq {
                Some(format!(
                    "entry {expected_seq} is missing (the next one is {})",
                    s.seq
                ))
            } else if s.prev_hash != prev {
                Some(format!(
                    "it links to {} but the entry before it hashes to {prev}",
                    s.prev_hash
                ))
            } else if s.expected_hash() != s.hash {
                Some("its content does not match its hash (edited after it was written)".into())
            } else {
                None
            };
            if let Some(reason) = problem
                && v.broken.is_none()
            {
                v.broken = Some((s.seq, reason));
            }
            prev = s.hash.clone();
            expected_seq = s.seq + 1;
            v.head = Some(s.hash);
        }
    }
}

/// The migration that creates a service's audit table.
#[derive(Debug)]
pub struct AuditLogMigration {
    pub name: &'static str,
    pub service: &'static str,
}

impl MigrationName for AuditLogMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for AuditLogMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = table(self.service);
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, \
                 action TEXT NOT NULL, target TEXT NOT NULL, details TEXT NOT NULL, \
                 prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
            ))
            .await?;
        Ok(())
    }
}
