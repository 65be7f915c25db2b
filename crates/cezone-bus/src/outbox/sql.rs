//! The outbox's SQL for each backend (placeholders, types, quoting, row locking).

use cezone_proto::events::v1::Envelope;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

/// One outbox row as the relay reads it.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) envelope: Vec<u8>,
}

/// The statements of one outbox table on one backend.
#[derive(Debug, Clone)]
pub(super) struct Sql {
    backend: DatabaseBackend,
    table: String,
    quoted: String,
}

impl Sql {
    pub(super) fn new(backend: DatabaseBackend, table: &str) -> Result<Self, DbErr> {
        let valid = !table.is_empty()
            && table.len() <= 50
            && table
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(DbErr::Custom(format!(
                "invalid outbox table name {table:?}: use letters, digits and '_'"
            )));
        }
        let quoted = match backend {
            DatabaseBackend::MySql => format!("`{table}`"),
            _ => format!("\"{table}\""),
        };
        Ok(Sql {
            backend,
            table: table.to_string(),
            quoted,
        })
    }

    pub(super) fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    pub(super) fn table(&self) -> &str {
        &self.table
    }

    /// The n-th (1-based) bind placeholder.
    fn p(&self, n: usize) -> String {
        match self.backend {
            DatabaseBackend::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    fn statement(&self, sql: String, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    pub(super) fn create_table(&self) -> String {
        let (t, name) = (&self.quoted, &self.table);
        match self.backend {
            DatabaseBackend::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n\
                 \x20   id BIGSERIAL PRIMARY KEY,\n\
                 \x20   event_id TEXT NOT NULL UNIQUE,\n\
                 \x20   event_type TEXT NOT NULL,\n\
                 \x20   envelope BYTEA NOT NULL,\n\
                 \x20   created_at TEXT NOT NULL,\n\
                 \x20   published_at TEXT NULL\n\
                 );\n\
                 CREATE INDEX IF NOT EXISTS \"{name}_pending\" ON {t} (id) WHERE published_at IS NULL;"
            ),
            DatabaseBackend::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n\
                 \x20   id INTEGER PRIMARY KEY AUTOINCREMENT,\n\
                 \x20   event_id TEXT NOT NULL UNIQUE,\n\
                 \x20   event_type TEXT NOT NULL,\n\
                 \x20   envelope BLOB NOT NULL,\n\
                 \x20   created_at TEXT NOT NULL,\n\
                 \x20   published_at TEXT NULL\n\
                 );\n\
                 CREATE INDEX IF NOT EXISTS \"{name}_pending\" ON {t} (id) WHERE published_at IS NULL;"
            ),
            // Not exercised by cezone (no MySQL driver is built); kept so the match is total.
            DatabaseBackend::MySql => format!(
                "CREATE TABLE IF NOT EXISTS {t} (\n\
                 \x20   id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,\n\
                 \x20   event_id VARCHAR(64) NOT NULL UNIQUE,\n\
                 \x20   event_type VARCHAR(255) NOT NULL,\n\
                 \x20   envelope LONGBLOB NOT NULL,\n\
                 \x20   created_at VARCHAR(40) NOT NULL,\n\
                 \x20   published_at VARCHAR(40) NULL,\n\
                 \x20   INDEX `{name}_published_at` (published_at)\n\
                 );"
            ),
        }
    }

    pub(super) fn insert(&self, envelope: &Envelope) -> Statement {
        self.statement(
            format!(
                "INSERT INTO {} (event_id, event_type, envelope, created_at) VALUES ({}, {}, {}, {})",
                self.quoted,
                self.p(1),
                self.p(2),
                self.p(3),
                self.p(4)
            ),
            vec![
                envelope.event_id.clone().into(),
                envelope.r#type.clone().into(),
                crate::encode(envelope).into(),
                now().into(),
            ],
        )
    }

    /// One multi-row INSERT of these envelopes.
    /// PostgreSQL: the rows as four arrays ($1 ids, $2 types, $3 envelopes, $4 times).
    pub(super) fn insert_arrays_pg(&self) -> String {
        format!(
            "INSERT INTO {} (event_id, event_type, envelope, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])",
            self.quoted
        )
    }

    pub(super) fn insert_many(&self, envelopes: &[Envelope]) -> Statement {
        let at = now();
        let mut tuples = Vec::with_capacity(envelopes.len());
        let mut values: Vec<Value> = Vec::with_capacity(envelopes.len() * 4);
        for (i, e) in envelopes.iter().enumerate() {
            let n = i * 4;
            tuples.push(format!(
                "({}, {}, {}, {})",
                self.p(n + 1),
                self.p(n + 2),
                self.p(n + 3),
                self.p(n + 4)
            ));
            values.push(e.event_id.clone().into());
            values.push(e.r#type.clone().into());
            values.push(crate::encode(e).into());
            values.push(at.clone().into());
        }
        self.statement(
            format!(
                "INSERT INTO {} (event_id, event_type, envelope, created_at) VALUES {}",
                self.quoted,
                tuples.join(", ")
            ),
            values,
        )
    }

    /// Whether this relay may relay the table now (PostgreSQL): one relay at a time per table,
    /// the others skip their pass. A transaction-scoped advisory lock, so a relay that dies
    /// releases it with its connection. Taken instead of row locks (`FOR UPDATE`), which would
    /// write every selected row once more.
    pub(super) async fn try_lock<C: ConnectionTrait>(&self, conn: &C) -> Result<bool, DbErr> {
        let sql = format!(
            "SELECT pg_try_advisory_xact_lock(hashtext({})) AS held",
            self.p(1)
        );
        let row = conn
            .query_one(self.statement(sql, vec![format!("cezone.outbox.{}", self.table).into()]))
            .await?;
        Ok(match row {
            Some(r) => r.try_get("", "held")?,
            None => false,
        })
    }

    /// The oldest unpublished rows.
    pub(super) async fn select_batch<C: ConnectionTrait>(
        &self,
        conn: &C,
        limit: u32,
    ) -> Result<Vec<Row>, DbErr> {
        let sql = format!(
            "SELECT id, envelope FROM {} WHERE published_at IS NULL ORDER BY id LIMIT {limit}",
            self.quoted
        );
        let rows = conn.query_all(self.statement(sql, vec![])).await?;
        rows.into_iter()
            .map(|row| {
                Ok(Row {
                    id: row.try_get("", "id")?,
                    envelope: row.try_get("", "envelope")?,
                })
            })
            .collect()
    }

    /// Marks these rows published, in one statement.
    pub(super) async fn mark_published_many<C: ConnectionTrait>(
        &self,
        conn: &C,
        ids: &[i64],
    ) -> Result<(), DbErr> {
        for chunk in ids.chunks(1000) {
            let list: Vec<String> = (0..chunk.len()).map(|i| self.p(i + 2)).collect();
            let sql = format!(
                "UPDATE {} SET published_at = {} WHERE id IN ({})",
                self.quoted,
                self.p(1),
                list.join(", ")
            );
            let mut values: Vec<Value> = vec![now().into()];
            values.extend(chunk.iter().map(|id| Value::from(*id)));
            conn.execute(self.statement(sql, values)).await?;
        }
        Ok(())
    }

    /// Unpublished rows, counted up to `cap` (the count stays cheap however long the backlog).
    pub(super) async fn count_pending_capped<C: ConnectionTrait>(
        &self,
        conn: &C,
        cap: u64,
    ) -> Result<u64, DbErr> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM {} WHERE published_at IS NULL LIMIT {cap}) AS pending",
            self.quoted
        );
        let row = conn.query_one(self.statement(sql, vec![])).await?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Deletes rows published before `before` (RFC 3339). Returns how many.
    pub(super) async fn purge<C: ConnectionTrait>(
        &self,
        conn: &C,
        before: &str,
    ) -> Result<u64, DbErr> {
        let sql = format!(
            "DELETE FROM {} WHERE published_at IS NOT NULL AND published_at < {}",
            self.quoted,
            self.p(1)
        );
        Ok(conn
            .execute(self.statement(sql, vec![before.into()]))
            .await?
            .rows_affected())
    }

    /// The highest id committed so far (None for an empty table).
    pub(super) async fn max_id<C: ConnectionTrait>(&self, conn: &C) -> Result<Option<i64>, DbErr> {
        let sql = format!("SELECT MAX(id) AS m FROM {}", self.quoted);
        let row = conn.query_one(self.statement(sql, vec![])).await?;
        match row {
            Some(row) => row.try_get::<Option<i64>>("", "m"),
            None => Ok(None),
        }
    }

    /// Unpublished rows, all of them or those with an id up to `up_to`.
    pub(super) async fn count_pending<C: ConnectionTrait>(
        &self,
        conn: &C,
        up_to: Option<i64>,
    ) -> Result<u64, DbErr> {
        let (filter, values) = match up_to {
            Some(id) => (format!(" AND id <= {}", self.p(1)), vec![id.into()]),
            None => (String::new(), vec![]),
        };
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE published_at IS NULL{filter}",
            self.quoted
        );
        let row = conn.query_one(self.statement(sql, values)).await?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_odd_table_names() {
        for bad in ["", "1abc", "a-b", "a\"b", "a b", "x;drop"] {
            assert!(Sql::new(DatabaseBackend::Sqlite, bad).is_err(), "{bad}");
        }
        assert!(Sql::new(DatabaseBackend::Postgres, "evidence_outbox").is_ok());
    }

    #[test]
    fn ddl_per_backend() {
        let pg = Sql::new(DatabaseBackend::Postgres, "evidence_outbox")
            .unwrap()
            .create_table();
        assert!(pg.contains("BIGSERIAL") && pg.contains("BYTEA"));
        assert!(pg.contains("WHERE published_at IS NULL"));
        let lite = Sql::new(DatabaseBackend::Sqlite, "evidence_outbox")
            .unwrap()
            .create_table();
        assert!(lite.contains("AUTOINCREMENT") && lite.contains("BLOB"));
    }
}
