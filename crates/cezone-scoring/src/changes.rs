//! The scorer's one ordered input: change records.
//!
//! The consumer commits, in one transaction, the event ids it processed, the facts those events
//! changed in the read model's tables, and one typed change record per fact that changed (the
//! fact as now stored). The scorer applies the records as they are — it never re-reads a fact
//! by key — in an order behind which nothing can appear later:
//!
//! - **PostgreSQL.** Each record carries the id of the transaction that wrote it
//!   (`pg_current_xact_id()`). The scorer's position is the snapshot it last read under, and
//!   the next read returns exactly the records visible now that were not visible in that
//!   snapshot (`pg_visible_in_snapshot`). A transaction still running at a read is invisible to
//!   it and stays invisible to the position, so its records are read whenever it commits —
//!   a second or an hour later, whatever ids other transactions took meanwhile. No gap can be
//!   passed over and nothing waits on a timer; a rolled-back transaction leaves nothing behind.
//! - **SQLite.** One writer at a time: a transaction takes its ids while it holds the write lock,
//!   so ids are in commit order and the position is the highest id read.
//!
//! Loading the whole read model happens under one snapshot too ([`load`]), which then becomes
//! the position: what the scorer holds and where it stands always agree, after a start, a
//! structural change or a rebuild alike.
//!
//! Records older than the retention are purged ([`purge`]); the purge leaves a horizon, and a
//! scorer whose position is behind it (paused for longer than the retention) reloads instead of
//! reading on.

use cezone_domain::facts::{EvidenceFact, StatFact, SurveyTally};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, IsolationLevel,
    TransactionTrait, Value,
};
use serde::{Deserialize, Serialize};

use crate::facts_db::stmt;
use crate::model::Inputs;

/// The PostgreSQL channel a consumer notifies after committing changes; scorers listen on it.
pub const CHANNEL: &str = "scoring_changes";

/// One change to the read model, as committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Statistic {
        fact: StatFact,
    },
    Tally {
        fact: SurveyTally,
    },
    Evidence {
        fact: EvidenceFact,
    },
    /// An org unit created, moved or given a population: the tree is reloaded.
    OrgUnit {
        id: String,
        revision: u64,
    },
    /// Another framework document: everything is reloaded.
    Framework {
        framework_id: String,
        edition: String,
    },
    /// The whole read model replaced from the services (`Recompute`): everything is reloaded.
    Rebuild {
        period: i32,
    },
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Statistic { .. } => "statistic",
            Change::Tally { .. } => "tally",
            Change::Evidence { .. } => "evidence",
            Change::OrgUnit { .. } => "org_unit",
            Change::Framework { .. } => "framework",
            Change::Rebuild { .. } => "rebuild",
        }
    }

    /// The change to one fact, as the engine applies it; none for a change that reshapes the
    /// model (tree, framework, rebuild), which is applied by reloading.
    pub fn fact(&self) -> Option<cezone_domain::engine::Change> {
        use cezone_domain::engine::Change as E;
        match self {
            Change::Statistic { fact } => Some(E::Statistic(fact.clone())),
            Change::Tally { fact } => Some(E::Tally(fact.clone())),
            Change::Evidence { fact } => Some(E::Evidence(fact.clone())),
            _ => None,
        }
    }
}

/// A change record read back, with the event that caused it and where it is.
#[derive(Debug, Clone)]
pub struct Record {
    /// None when the stored body cannot be read by this version (the scorer then reloads).
    pub change: Option<Change>,
    pub event_id: String,
    pub mark: Mark,
}

/// A PostgreSQL snapshot (`pg_snapshot`, "xmin:xmax:xip,…"): the transactions whose effects it
/// sees are those below `xmax` and not in `xip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSnapshot {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

impl PgSnapshot {
    pub fn parse(text: &str) -> Option<PgSnapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        Some(PgSnapshot { xmin, xmax, xip })
    }

    /// Whether a committed transaction's effects are visible in this snapshot.
    pub fn visible(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.xip.contains(&xid))
    }

    /// Whether everything visible in `other` is visible in this one.
    pub fn covers(&self, other: &PgSnapshot) -> bool {
        // What `other` sees it saw committed; a later snapshot still sees it unless the
        // transaction is one this snapshot counts as running, which it then cannot be.
        self.xmax >= other.xmax && self.xip.iter().all(|x| !other.visible(*x))
    }
}

impl std::fmt::Display for PgSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let xip: Vec<String> = self.xip.iter().map(u64::to_string).collect();
        write!(f, "{}:{}:{}", self.xmin, self.xmax, xip.join(","))
    }
}

/// Where a scorer stands: it has applied exactly the changes this position sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// SQLite: every change up to this id.
    Id(i64),
    /// PostgreSQL: every change visible in this snapshot.
    Snapshot(PgSnapshot),
}

/// Where one committed change is: its record's id (SQLite) or its transaction (PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Id(i64),
    Xid(u64),
}

impl Position {
    /// Whether a scorer at this position has applied the change at `mark`.
    pub fn includes(&self, mark: Mark) -> bool {
        match (self, mark) {
            (Position::Id(p), Mark::Id(m)) => *p >= m,
            (Position::Snapshot(s), Mark::Xid(x)) => s.visible(x),
            _ => false,
        }
    }

    /// Whether this position has seen everything `other` has.
    pub fn covers(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::Id(a), Position::Id(b)) => a >= b,
            (Position::Snapshot(a), Position::Snapshot(b)) => a.covers(b),
            _ => false,
        }
    }

    /// The stored form (the `scoring_published` row).
    pub fn encode(&self) -> String {
        match self {
            Position::Id(id) => format!("id:{id}"),
            Position::Snapshot(s) => format!("snapshot:{s}"),
        }
    }

    pub fn decode(text: &str) -> Option<Position> {
        if let Some(id) = text.strip_prefix("id:") {
            return id.parse().ok().map(Position::Id);
        }
        text.strip_prefix("snapshot:")
            .and_then(PgSnapshot::parse)
            .map(Position::Snapshot)
    }
}

fn bad_position(text: &str) -> DbErr {
    DbErr::Custom(format!("unreadable snapshot or position {text:?}"))
}

/// The DDL of the change log (and its purge horizon), for the scoring migration.
pub fn create_tables(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => {
            "CREATE TABLE IF NOT EXISTS scoring_changes (\n\
             \x20   id BIGSERIAL PRIMARY KEY,\n\
             \x20   xid xid8 NOT NULL DEFAULT pg_current_xact_id(),\n\
             \x20   kind TEXT NOT NULL,\n\
             \x20   body TEXT NOT NULL,\n\
             \x20   event_id TEXT NOT NULL,\n\
             \x20   at TEXT NOT NULL\n\
             );\n\
             CREATE INDEX IF NOT EXISTS scoring_changes_xid ON scoring_changes (xid, id);\n\
             CREATE TABLE IF NOT EXISTS scoring_marks (slot TEXT PRIMARY KEY, mark TEXT NOT NULL);"
        }
        _ => {
            "CREATE TABLE IF NOT EXISTS scoring_changes (\n\
             \x20   id INTEGER PRIMARY KEY AUTOINCREMENT,\n\
             \x20   kind TEXT NOT NULL,\n\
             \x20   body TEXT NOT NULL,\n\
             \x20   event_id TEXT NOT NULL,\n\
             \x20   at TEXT NOT NULL\n\
             );\n\
             CREATE TABLE IF NOT EXISTS scoring_marks (slot TEXT PRIMARY KEY, mark TEXT NOT NULL);"
        }
    }
}

/// Rows per multi-row INSERT (4 values each).
const ROWS_PER_STATEMENT: usize = 500;

/// Appends change records on `c`, the transaction that changed the facts, and (PostgreSQL)
/// wakes every scorer when it commits.
pub async fn append(c: &impl ConnectionTrait, records: &[(Change, &str)]) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    let at = now_rfc3339();
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let tuples = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!("INSERT INTO scoring_changes (kind, body, event_id, at) VALUES {tuples}");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        for (change, event_id) in chunk {
            let body = serde_json::to_string(change).map_err(|e| DbErr::Custom(e.to_string()))?;
            values.push(change.kind().into());
            values.push(body.into());
            values.push((*event_id).into());
            values.push(at.clone().into());
        }
        c.execute(stmt(c.get_database_backend(), &sql, values))
            .await?;
    }
    if c.get_database_backend() == DatabaseBackend::Postgres {
        // Delivered at commit, to every session listening; a rollback delivers nothing.
        c.execute_unprepared(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok(())
}

/// The mark of the calling transaction's own changes (call it after appending).
pub async fn own_mark(c: &impl ConnectionTrait) -> Result<Mark, DbErr> {
    let b = c.get_database_backend();
    if b == DatabaseBackend::Postgres {
        let row = c
            .query_one(stmt(b, "SELECT pg_current_xact_id()::text AS x", vec![]))
            .await?
            .ok_or_else(|| DbErr::Custom("no transaction id".into()))?;
        let x: String = row.try_get("", "x")?;
        Ok(Mark::Xid(x.parse().map_err(|_| bad_position(&x))?))
    } else {
        let row = c
            .query_one(stmt(
                b,
                "SELECT COALESCE(MAX(id), 0) AS m FROM scoring_changes",
                vec![],
            ))
            .await?;
        Ok(Mark::Id(row.map_or(Ok(0), |r| r.try_get::<i64>("", "m"))?))
    }
}

/// The position of everything committed so far, as seen by `c`.
pub async fn position_now(c: &impl ConnectionTrait) -> Result<Position, DbErr> {
    let b = c.get_database_backend();
    if b == DatabaseBackend::Postgres {
        let row = c
            .query_one(stmt(b, "SELECT pg_current_snapshot()::text AS s", vec![]))
            .await?
            .ok_or_else(|| DbErr::Custom("no snapshot".into()))?;
        let s: String = row.try_get("", "s")?;
        Ok(Position::Snapshot(
            PgSnapshot::parse(&s).ok_or_else(|| bad_position(&s))?,
        ))
    } else {
        let row = c
            .query_one(stmt(
                b,
                "SELECT COALESCE(MAX(id), 0) AS m FROM scoring_changes",
                vec![],
            ))
            .await?;
        Ok(Position::Id(
            row.map_or(Ok(0), |r| r.try_get::<i64>("", "m"))?,
        ))
    }
}

/// The records committed after `pos` (in the order the scorer applies them) and the position
/// they bring the scorer to. `Err` only for database errors; a purged stretch is reported as
/// `behind_horizon`.
pub struct Read {
    pub records: Vec<Record>,
    pub position: Position,
    /// Records this position never saw were purged: the scorer must reload.
    pub behind_horizon: bool,
}

/// Reads the changes committed since `pos`, under one snapshot.
pub async fn since(db: &DatabaseConnection, pos: &Position) -> Result<Read, DbErr> {
    let txn = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    };
    let now = position_now(&txn).await?;
    let behind_horizon = match horizon(&txn).await? {
        Some(h) => !pos.includes(h),
        None => false,
    };
    let records = if behind_horizon {
        Vec::new()
    } else {
        records_since(&txn, pos).await?
    };
    txn.commit().await?;
    let position = match (&now, pos) {
        // SQLite's "now" is the highest id, which is what was read.
        (Position::Id(n), Position::Id(p)) => Position::Id((*n).max(*p)),
        _ => now,
    };
    Ok(Read {
        records,
        position,
        behind_horizon,
    })
}

/// The records `pos` has not seen, visible to `c`, in application order.
pub async fn records_since(c: &impl ConnectionTrait, pos: &Position) -> Result<Vec<Record>, DbErr> {
    let b = c.get_database_backend();
    let rows = match pos {
        Position::Snapshot(s) => {
            c.query_all(stmt(
                b,
                "SELECT body, event_id, xid::text AS mark FROM scoring_changes \
                 WHERE xid >= pg_snapshot_xmin(?::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, ?::pg_snapshot) \
                 ORDER BY xid, id",
                vec![s.to_string().into(), s.to_string().into()],
            ))
            .await?
        }
        Position::Id(id) => {
            c.query_all(stmt(
                b,
                "SELECT body, event_id, CAST(id AS TEXT) AS mark FROM scoring_changes WHERE id > ? ORDER BY id",
                vec![(*id).into()],
            ))
            .await?
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let body: String = r.try_get("", "body")?;
        let event_id: String = r.try_get("", "event_id")?;
        let mark: String = r.try_get("", "mark")?;
        let mark = match pos {
            Position::Snapshot(_) => Mark::Xid(mark.parse().map_err(|_| bad_position(&mark))?),
            Position::Id(_) => Mark::Id(mark.parse().map_err(|_| bad_position(&mark))?),
        };
        let change = serde_json::from_str(&body).ok();
        if change.is_none() {
            tracing::error!(
                event_id,
                body,
                "a change record cannot be read by this version"
            );
        }
        out.push(Record {
            change,
            event_id,
            mark,
        });
    }
    Ok(out)
}

/// The whole read model under one snapshot, and the position that snapshot is.
pub async fn load(
    db: &DatabaseConnection,
    default_period: i32,
) -> Result<(Option<Inputs>, Position), ApiError> {
    let txn = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    };
    let position = position_now(&txn).await?;
    let inputs = crate::store::load(&txn, default_period).await?;
    txn.commit().await?;
    Ok((inputs, position))
}

/// The purge horizon: every record at or below it may be gone.
async fn horizon(c: &impl ConnectionTrait) -> Result<Option<Mark>, DbErr> {
    let row = c
        .query_one(stmt(
            c.get_database_backend(),
            "SELECT mark FROM scoring_marks WHERE slot = 'horizon'",
            vec![],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get("", "mark")?;
    decode_mark(&text)
        .map(Some)
        .ok_or_else(|| bad_position(&text))
}

fn encode_mark(m: Mark) -> String {
    match m {
        Mark::Id(id) => format!("id:{id}"),
        Mark::Xid(x) => format!("xid:{x}"),
    }
}

fn decode_mark(text: &str) -> Option<Mark> {
    if let Some(id) = text.strip_prefix("id:") {
        return id.parse().ok().map(Mark::Id);
    }
    text.strip_prefix("xid:")?.parse().ok().map(Mark::Xid)
}

/// Deletes the records written before `before` (RFC 3339) and moves the horizon past them.
/// Returns how many were deleted.
pub async fn purge(db: &DatabaseConnection, before: &str) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let b = txn.get_database_backend();
    let (select, delete) = match b {
        DatabaseBackend::Postgres => (
            "SELECT MAX(xid)::text AS m FROM scoring_changes WHERE at < ?",
            "DELETE FROM scoring_changes WHERE xid <= ?::xid8",
        ),
        _ => (
            "SELECT CAST(MAX(id) AS TEXT) AS m FROM scoring_changes WHERE at < ?",
            "DELETE FROM scoring_changes WHERE id <= CAST(? AS INTEGER)",
        ),
    };
    let newest = txn
        .query_one(stmt(b, select, vec![before.into()]))
        .await?
        .and_then(|r| r.try_get::<Option<String>>("", "m").ok().flatten());
    let Some(newest) = newest else {
        txn.commit().await?;
        return Ok(0);
    };
    let mark = match b {
        DatabaseBackend::Postgres => Mark::Xid(newest.parse().map_err(|_| bad_position(&newest))?),
        _ => Mark::Id(newest.parse().map_err(|_| bad_position(&newest))?),
    };
    let deleted = txn
        .execute(stmt(b, delete, vec![newest.clone().into()]))
        .await?
        .rows_affected();
    txn.execute(stmt(
        b,
        "INSERT INTO scoring_marks (slot, mark) VALUES ('horizon', ?) \
         ON CONFLICT (slot) DO UPDATE SET mark = excluded.mark",
        vec![encode_mark(mark).into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_parse_and_tell_what_they_see() {
        let s = PgSnapshot::parse("10:20:12,15").unwrap();
        assert_eq!(s.to_string(), "10:20:12,15");
        assert!(s.visible(9) && s.visible(11) && s.visible(19));
        assert!(!s.visible(12) && !s.visible(15) && !s.visible(20) && !s.visible(25));
        assert_eq!(PgSnapshot::parse("5:5:").unwrap().xip, Vec::<u64>::new());
        assert!(PgSnapshot::parse("x:5:").is_none());
    }

    #[test]
    fn a_later_snapshot_covers_an_earlier_one() {
        let earlier = PgSnapshot::parse("10:20:12,15").unwrap();
        // 12 committed meanwhile, 15 still runs, 20–24 started and 22 still runs.
        let later = PgSnapshot::parse("15:25:15,22").unwrap();
        assert!(later.covers(&earlier));
        assert!(!earlier.covers(&later));
        assert!(earlier.covers(&earlier));
        let a = Position::Snapshot(later.clone());
        assert!(a.includes(Mark::Xid(12)) && !a.includes(Mark::Xid(15)));
        assert_eq!(Position::decode(&a.encode()), Some(a));
        assert_eq!(
            Position::decode(&Position::Id(7).encode()),
            Some(Position::Id(7))
        );
    }
}
