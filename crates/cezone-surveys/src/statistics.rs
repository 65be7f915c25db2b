//! Statistical returns: one value per org unit, metric and period, versioned — a correction is
//! a new version and the newest counts — with who filed it.

use std::collections::HashMap;

use cezone_bus::Envelope;
use cezone_domain::access::Principal;
use cezone_domain::checks::{self, FactError};
use cezone_domain::facts::{StatFact, StatState};
use cezone_domain::framework::Framework;
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::rules::MetricId;
use cezone_platform::ApiError;
use cezone_platform::access::audit::Entry;
use cezone_platform::db::{stmt, tuples};
use cezone_platform::paging::Page;
use cezone_platform::time::now_rfc3339;
use cezone_proto::common::v1::PageInfo;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, Value,
};

use crate::entities::statistic as st;

pub fn to_proto(m: &st::Model) -> psv::StatisticReturn {
    psv::StatisticReturn {
        org_unit: m.org_unit.clone(),
        metric: m.metric.clone(),
        period: m.period,
        value: m.value,
        filed_by: m.filed_by.clone(),
        note: m.note.clone(),
        version: m.version as u64,
        filed_at: m.filed_at.clone(),
        state: if m.latest {
            state_to_proto(state_of(m))
        } else {
            psv::StatisticState::Superseded
        } as i32,
        reviewed_by: m.reviewed_by.clone(),
        reviewed_at: m.reviewed_at.clone(),
        review_comment: m.review_comment.clone(),
    }
}

/// A stored row's review state (a row the service wrote always parses).
pub fn state_of(m: &st::Model) -> StatState {
    StatState::parse(&m.state).unwrap_or(StatState::Accepted)
}

pub fn state_to_proto(s: StatState) -> psv::StatisticState {
    match s {
        StatState::Pending => psv::StatisticState::Pending,
        StatState::Accepted => psv::StatisticState::Accepted,
        StatState::Returned => psv::StatisticState::Returned,
    }
}

/// A filing's state as it is stored: the evaluation office's own filings need nobody's
/// approval; everyone else's wait for the level above.
pub fn filed_state(who: &Principal) -> StatState {
    if who.role == cezone_domain::access::Role::EvaluationOffice {
        StatState::Accepted
    } else {
        StatState::Pending
    }
}

fn short_text(field: &'static str, v: &str, max: usize) -> Result<String, FactError> {
    let v = v.trim();
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(FactError {
            field,
            reason: format!("must be at most {max} printable characters"),
        });
    }
    Ok(v.to_string())
}

pub use cezone_domain::obligations::responsible_for;

/// Checks the statistics of one return against one tree and framework, keeping what each
/// check would otherwise recompute: the populations of each period and the units responsible
/// for each metric.
pub struct Checker<'a> {
    tree: &'a OrgTree,
    fw: &'a Framework,
    populations: HashMap<i32, Vec<u64>>,
    responsible: HashMap<String, Vec<cezone_domain::units::UnitId>>,
}

impl<'a> Checker<'a> {
    pub fn new(tree: &'a OrgTree, fw: &'a Framework) -> Checker<'a> {
        Checker {
            tree,
            fw,
            populations: HashMap::new(),
            responsible: HashMap::new(),
        }
    }

    /// A return parsed and checked against the org tree and the framework's catalog, with
    /// the domain's rules for statistics ([`cezone_domain::checks`], which scoring applies to
    /// the event too): the statistic as the domain has it, or which field is wrong and why.
    pub fn parse(&mut self, r: &psv::StatisticReturn) -> Result<StatFact, FactError> {
        let (tree, fw) = (self.tree, self.fw);
        let bad = |field: &'static str| move |reason: String| FactError { field, reason };
        let fact = StatFact {
            org_unit: OrgUnitId::parse(&r.org_unit).map_err(bad("org_unit"))?,
            metric: MetricId::parse(&r.metric).map_err(bad("metric"))?,
            period: r.period,
            value: r.value,
            version: 0,
            state: StatState::Accepted,
        };
        checks::statistic_in(&fact, fw, tree)?;
        let populations = self
            .populations
            .entry(fact.period)
            .or_insert_with(|| tree.populations(fact.period));
        checks::statistic_plausible_among(&fact, fw, tree, populations)?;
        short_text("filed_by", &r.filed_by, 100)?;
        short_text("note", &r.note, 500)?;
        Ok(fact)
    }

    /// The units responsible for the criteria that read `metric` ([`responsible_for`]).
    pub fn responsible(&mut self, metric: &str) -> &[cezone_domain::units::UnitId] {
        if !self.responsible.contains_key(metric) {
            let units = responsible_for(self.fw, metric);
            self.responsible.insert(metric.to_string(), units);
        }
        &self.responsible[metric]
    }
}

/// Most statistics one call may carry.
pub const MAX_PER_CALL: usize = 10_000;

/// Statistics in one streamed import: a province's return (26,000 communities × 20 metrics)
/// with room to spare.
pub const MAX_PER_IMPORT: usize = 1_000_000;

/// Rows per multi-row statement.
const ROWS: usize = 500;

/// Statistics per `statistic.imported` event.
pub const PER_IMPORT_EVENT: usize = 5_000;

/// How a filing is announced and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filing {
    /// `RecordStatistic(s)`: a `statistic.recorded` event and an audit entry per statistic.
    OneByOne,
    /// `ImportStatistics`: `statistic.imported` events of up to [`PER_IMPORT_EVENT`]
    /// statistics and one `statistics.imported` audit entry sealing a digest of every version
    /// stored (the versions keep who filed them and when).
    Import,
}

impl Filing {
    /// A new import's id; none for single filings.
    fn new_id(self) -> String {
        match self {
            Filing::Import => uuid::Uuid::new_v4().to_string(),
            Filing::OneByOne => String::new(),
        }
    }
}

/// What a filing stored.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The stored rows (or those a dry run would store), in the order filed.
    pub stored: Vec<st::Model>,
    /// The events announcing them: one per statistic filed one by one, one per part of an
    /// import; empty on a dry run.
    pub event_ids: Vec<String>,
    /// An import's id (its audit entry's target); empty otherwise and on a dry run.
    pub import_id: String,
}

type Key = (String, String, i32);

/// Stores checked returns in one transaction, all or nothing: each becomes the next version
/// of its (org unit, metric, period) and the latest, announced in the outbox and audited as
/// `filing` says, in the same transaction. With `dry_run`, the versions are computed and
/// nothing is written. On PostgreSQL the rows go in with `COPY` and the earlier versions are
/// retired in one statement that also reads them; SQLite takes multi-row statements.
///
/// `locks` are the period locks the check saw ([`crate::locks::check`]): when one of them has
/// changed by the time the transaction holds the period (a lock committed after the check),
/// nothing is written and the answer is `None` — check again.
pub async fn record_many(
    db: &DatabaseConnection,
    who: &Principal,
    rs: &[psv::StatisticReturn],
    dry_run: bool,
    filing: Filing,
    locks: &crate::locks::Revisions,
) -> Result<Option<Recorded>, ApiError> {
    // Two filings of one key at once race for the next version; the loser retries (on
    // PostgreSQL the keys' advisory locks make them queue instead).
    for _ in 0..5 {
        let done = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            record_pg(
                db.get_postgres_connection_pool(),
                who,
                rs,
                dry_run,
                filing,
                locks,
            )
            .await?
        } else {
            record_sea(db, who, rs, dry_run, filing, locks).await?
        };
        match done {
            Written::Stored(done) => return Ok(Some(done)),
            Written::LocksMoved => return Ok(None),
            Written::Raced => {}
        }
    }
    Err(ApiError::unavailable(
        "the statistics are being filed concurrently; try again",
    ))
}

/// How one attempt at a filing's transaction ended.
enum Written {
    Stored(Recorded),
    /// A concurrent filing took a version first: try again.
    Raced,
    /// A period's lock changed since the check: check again.
    LocksMoved,
}

/// Where a large filing's time goes: milliseconds since the start of the transaction.
struct Laps {
    started: std::time::Instant,
    phases: Vec<(&'static str, u128)>,
}

impl Laps {
    fn start() -> Laps {
        Laps {
            started: std::time::Instant::now(),
            phases: Vec::new(),
        }
    }

    fn lap(&mut self, name: &'static str) {
        self.phases.push((name, self.started.elapsed().as_millis()));
    }
}

fn keys_of(rs: &[psv::StatisticReturn]) -> Vec<Key> {
    rs.iter()
        .map(|r| (r.org_unit.clone(), r.metric.clone(), r.period))
        .collect()
}

/// The rows a filing stores: each the version after the latest stored one (`latest`: key →
/// (version, value)).
fn new_versions(
    who: &Principal,
    rs: &[psv::StatisticReturn],
    keys: &[Key],
    latest: &HashMap<Key, (i32, i64)>,
) -> Vec<st::Model> {
    let filed_at = now_rfc3339();
    let state = filed_state(who).as_str().to_string();
    rs.iter()
        .zip(keys)
        .map(|(r, k)| st::Model {
            id: 0,
            org_unit: r.org_unit.clone(),
            metric: r.metric.clone(),
            period: r.period,
            value: r.value,
            version: latest.get(k).map_or(1, |(v, _)| v + 1),
            latest: true,
            // Who filed it is who is signed in, not what the return says.
            filed_by: who.acting_name(&r.filed_by),
            note: r.note.trim().to_string(),
            filed_at: filed_at.clone(),
            state: state.clone(),
            reviewed_by: String::new(),
            reviewed_at: String::new(),
            review_comment: String::new(),
        })
        .collect()
}

/// The events announcing stored rows.
fn announce(models: &[st::Model], filing: Filing, import_id: &str) -> Vec<Envelope> {
    match filing {
        Filing::OneByOne => models
            .iter()
            .map(|m| {
                let payload = cezone_proto::events::v1::StatisticRecorded {
                    statistic: Some(to_proto(m)),
                };
                cezone_bus::envelope("statistic.recorded", "surveys", &payload, None)
            })
            .collect(),
        Filing::Import => {
            let parts = models.len().div_ceil(PER_IMPORT_EVENT);
            models
                .chunks(PER_IMPORT_EVENT)
                .enumerate()
                .map(|(i, chunk)| {
                    let payload = cezone_proto::events::v1::StatisticsImported {
                        statistics: chunk.iter().map(to_proto).collect(),
                        import_id: import_id.to_string(),
                        part: i as u32 + 1,
                        parts: parts as u32,
                    };
                    cezone_bus::envelope("statistic.imported", "surveys", &payload, None)
                })
                .collect()
        }
    }
}

/// The audit entries of stored rows, as (action, target, details).
fn audit_records(
    models: &[st::Model],
    keys: &[Key],
    latest: &HashMap<Key, (i32, i64)>,
    filing: Filing,
    import_id: &str,
) -> Vec<(&'static str, String, serde_json::Value)> {
    match filing {
        Filing::OneByOne => models
            .iter()
            .zip(keys)
            .map(|(m, k)| {
                (
                    "statistic.recorded",
                    format!("{}/{}/{}", m.org_unit, m.metric, m.period),
                    serde_json::json!({
                        "version": m.version,
                        "value": m.value,
                        "before": latest.get(k).map(|(_, v)| *v),
                        "filed_by": m.filed_by,
                        "note": m.note,
                        "state": m.state,
                    }),
                )
            })
            .collect(),
        Filing::Import => {
            let mut periods: Vec<i32> = models.iter().map(|m| m.period).collect();
            periods.sort_unstable();
            periods.dedup();
            let org_units: std::collections::HashSet<&str> =
                models.iter().map(|m| m.org_unit.as_str()).collect();
            let mut metrics: Vec<&str> = models.iter().map(|m| m.metric.as_str()).collect();
            metrics.sort_unstable();
            metrics.dedup();
            vec![(
                "statistics.imported",
                import_id.to_string(),
                serde_json::json!({
                    "statistics": models.len(),
                    "first_filings": models.iter().filter(|m| m.version == 1).count(),
                    "changed": models
                        .iter()
                        .zip(keys)
                        .filter(|(m, k)| latest.get(*k).is_none_or(|(_, v)| *v != m.value))
                        .count(),
                    "periods": periods,
                    "org_units": org_units.len(),
                    "metrics": metrics,
                    "state": models.first().map(|m| m.state.as_str()),
                    "digest": import_digest(models),
                }),
            )]
        }
    }
}

/// Audit entries of `who` for the records [`audit_records`] gives.
fn entries<'a>(
    who: &'a Principal,
    records: &'a [(&'static str, String, serde_json::Value)],
) -> Vec<Entry<'a>> {
    records
        .iter()
        .map(|(action, target, details)| Entry {
            actor: who,
            action,
            target,
            details: details.clone(),
        })
        .collect()
}

/// SHA-256 over one line per stored version, in the order filed:
/// `org_unit \t metric \t period \t version \t value \t filed_by \n`. Recomputed from the
/// statistics table's rows of an import (the versions filed at its time by its filer), it shows
/// the rows are those the import stored.
pub fn import_digest(models: &[st::Model]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for m in models {
        h.update(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                m.org_unit, m.metric, m.period, m.version, m.value, m.filed_by
            )
            .as_bytes(),
        );
    }
    hex::encode(h.finalize())
}

fn pg(e: sea_orm::sqlx::Error) -> ApiError {
    ApiError::internal(e)
}

/// One stored version as a line of `COPY surveys_statistics (org_unit, metric, period, value,
/// version, latest, filed_by, note, filed_at, state)` text.
fn copy_row(buf: &mut String, m: &st::Model) {
    use std::fmt::Write as _;
    crate::ingest::copy_field(buf, &m.org_unit);
    buf.push('\t');
    crate::ingest::copy_field(buf, &m.metric);
    let _ = write!(buf, "\t{}\t{}\t{}\tt", m.period, m.value, m.version);
    for text in [&m.filed_by, &m.note, &m.filed_at, &m.state] {
        buf.push('\t');
        crate::ingest::copy_field(buf, text);
    }
    buf.push('\n');
}

fn is_unique_violation(e: &sea_orm::sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("23505"))
}

/// PostgreSQL: the keys' advisory locks; the earlier versions retired and read in one
/// `UPDATE … RETURNING` joined against the keys as arrays; the new versions in one `COPY`;
/// the events and the audit entries.
async fn record_pg(
    pool: &sea_orm::sqlx::PgPool,
    who: &Principal,
    rs: &[psv::StatisticReturn],
    dry_run: bool,
    filing: Filing,
    locks: &crate::locks::Revisions,
) -> Result<Written, ApiError> {
    use sea_orm::sqlx;
    let mut laps = Laps::start();
    let keys = keys_of(rs);
    let mut tx = pool.begin().await.map_err(pg)?;
    // The periods first (shared: filings of a period go on together; a lock waits for them,
    // and they for a lock), then whether a lock committed since the check.
    if !crate::locks::guard_pg(&mut tx, locks).await.map_err(pg)? {
        tx.rollback().await.map_err(pg)?;
        return Ok(Written::LocksMoved);
    }
    // One filing of a key at a time, across calls and replicas: each call takes its keys'
    // locks in one order (sorted), so two calls sharing keys queue rather than deadlock, and
    // the second sees the first's version once it may go on.
    let mut locks: Vec<i64> = keys.iter().map(key_lock).collect();
    locks.sort_unstable();
    locks.dedup();
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
        .bind(&locks)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    let orgs: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let metrics: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let periods: Vec<i32> = keys.iter().map(|k| k.2).collect();
    // The keys as three arrays joined against the table: an index lookup per key. On a dry
    // run only read; otherwise the latest rows are retired by the same statement.
    let sql = if dry_run {
        "SELECT s.org_unit, s.metric, s.period, s.version, s.value \
         FROM surveys_statistics s \
         JOIN unnest($1::text[], $2::text[], $3::int4[]) AS k(org_unit, metric, period) \
         ON s.org_unit = k.org_unit AND s.metric = k.metric AND s.period = k.period \
         WHERE s.latest"
    } else {
        "UPDATE surveys_statistics s SET latest = false \
         FROM unnest($1::text[], $2::text[], $3::int4[]) AS k(org_unit, metric, period) \
         WHERE s.latest AND s.org_unit = k.org_unit AND s.metric = k.metric \
         AND s.period = k.period \
         RETURNING s.org_unit, s.metric, s.period, s.version, s.value"
    };
    let rows: Vec<(String, String, i32, i32, i64)> = sqlx::query_as(sql)
        .bind(&orgs)
        .bind(&metrics)
        .bind(&periods)
        .fetch_all(&mut *tx)
        .await
        .map_err(pg)?;
    let latest: HashMap<Key, (i32, i64)> = rows
        .into_iter()
        .map(|(o, m, p, v, x)| ((o, m, p), (v, x)))
        .collect();
    laps.lap("locked_read_and_retired");
    let models = new_versions(who, rs, &keys, &latest);
    if dry_run {
        tx.rollback().await.map_err(pg)?;
        return Ok(Written::Stored(Recorded {
            stored: models,
            ..Recorded::default()
        }));
    }
    let copied = async {
        let mut copy = tx
            .copy_in_raw(
                "COPY surveys_statistics (org_unit, metric, period, value, version, latest, \
                 filed_by, note, filed_at, state) FROM STDIN",
            )
            .await?;
        let mut buf = String::with_capacity(1 << 20);
        for m in &models {
            copy_row(&mut buf, m);
            if buf.len() >= 1 << 20 {
                copy.send(buf.as_bytes()).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_bytes()).await?;
        }
        copy.finish().await
    }
    .await;
    match copied {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            tx.rollback().await.map_err(pg)?;
            return Ok(Written::Raced);
        }
        Err(e) => return Err(pg(e)),
    }
    laps.lap("inserted");
    let import_id = filing.new_id();
    let events = announce(&models, filing, &import_id);
    cezone_bus::outbox::enqueue_many_pg(&mut tx, crate::OUTBOX, &events).await?;
    laps.lap("announced");
    let records = audit_records(&models, &keys, &latest, filing, &import_id);
    cezone_platform::access::audit::append_many_pg(&mut tx, "surveys", &entries(who, &records))
        .await
        .map_err(pg)?;
    laps.lap("audited");
    tx.commit().await.map_err(pg)?;
    laps.lap("committed");
    tracing::debug!(statistics = rs.len(), phases = ?laps.phases, "statistics written");
    Ok(Written::Stored(Recorded {
        stored: models,
        event_ids: events.into_iter().map(|e| e.event_id).collect(),
        import_id,
    }))
}

/// SQLite (a single writer): the latest versions read and retired, the new ones inserted, in
/// multi-row statements.
async fn record_sea(
    db: &DatabaseConnection,
    who: &Principal,
    rs: &[psv::StatisticReturn],
    dry_run: bool,
    filing: Filing,
    locks: &crate::locks::Revisions,
) -> Result<Written, ApiError> {
    let mut laps = Laps::start();
    let txn = db.begin().await?;
    if !crate::locks::unchanged(&txn, locks).await? {
        txn.rollback().await?;
        return Ok(Written::LocksMoved);
    }
    let b = txn.get_database_backend();
    let keys = keys_of(rs);
    let mut latest: HashMap<Key, (i32, i64)> = HashMap::new();
    for chunk in keys.chunks(ROWS) {
        let sql = format!(
            "SELECT org_unit, metric, period, version, value FROM surveys_statistics \
             WHERE latest AND (org_unit, metric, period) IN ({})",
            tuples(3, chunk.len())
        );
        for row in txn.query_all(stmt(b, &sql, key_values(chunk))).await? {
            latest.insert(
                (
                    row.try_get("", "org_unit")?,
                    row.try_get("", "metric")?,
                    row.try_get("", "period")?,
                ),
                (row.try_get("", "version")?, row.try_get("", "value")?),
            );
        }
    }
    laps.lap("read");
    let models = new_versions(who, rs, &keys, &latest);
    if dry_run {
        txn.rollback().await?;
        return Ok(Written::Stored(Recorded {
            stored: models,
            ..Recorded::default()
        }));
    }
    // Only keys filed before have a latest row to retire.
    let earlier: Vec<Key> = keys
        .iter()
        .filter(|k| latest.contains_key(*k))
        .cloned()
        .collect();
    for chunk in earlier.chunks(ROWS) {
        let sql = format!(
            "UPDATE surveys_statistics SET latest = ? WHERE latest AND (org_unit, metric, period) IN ({})",
            tuples(3, chunk.len())
        );
        let mut values: Vec<Value> = vec![false.into()];
        values.extend(key_values(chunk));
        txn.execute(stmt(b, &sql, values)).await?;
    }
    laps.lap("retired");
    for chunk in models.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO surveys_statistics (org_unit, metric, period, value, version, latest, filed_by, note, filed_at, state) VALUES {}",
            tuples(10, chunk.len())
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 10);
        for m in chunk {
            values.extend([
                m.org_unit.clone().into(),
                m.metric.clone().into(),
                m.period.into(),
                m.value.into(),
                m.version.into(),
                true.into(),
                m.filed_by.clone().into(),
                m.note.clone().into(),
                m.filed_at.clone().into(),
                m.state.clone().into(),
            ]);
        }
        if let Err(e) = txn.execute(stmt(b, &sql, values)).await {
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) {
                txn.rollback().await?;
                return Ok(Written::Raced);
            }
            return Err(e.into());
        }
    }
    laps.lap("inserted");
    let import_id = filing.new_id();
    let events = announce(&models, filing, &import_id);
    cezone_bus::outbox::enqueue_many(&txn, crate::OUTBOX, &events).await?;
    laps.lap("announced");
    let records = audit_records(&models, &keys, &latest, filing, &import_id);
    cezone_platform::access::audit::append_many(&txn, "surveys", &entries(who, &records)).await?;
    laps.lap("audited");
    txn.commit().await?;
    laps.lap("committed");
    tracing::debug!(statistics = rs.len(), phases = ?laps.phases, "statistics written");
    Ok(Written::Stored(Recorded {
        stored: models,
        event_ids: events.into_iter().map(|e| e.event_id).collect(),
        import_id,
    }))
}

/// Advisory locks a filing may take. PostgreSQL keeps every advisory lock in its shared lock
/// table (`max_locks_per_transaction` × connections, 6,400 by default), so a lock per key
/// would fail a large return with "out of shared memory": keys share a bounded set of locks
/// instead. The same key always takes the same lock, so two filings of a key still queue;
/// unrelated keys that share a lock queue too, briefly.
const LOCK_BUCKETS: u64 = 512;

/// Where the statistics' advisory locks start (apart from other users of advisory locks).
const LOCK_BASE: i64 = 0x5354_4154_0000; // "STAT"

/// The advisory lock of a statistic's key: FNV-1a of the key, the same in every process,
/// folded into one of `LOCK_BUCKETS`.
fn key_lock(key: &Key) -> i64 {
    LOCK_BASE + (key_hash(key) % LOCK_BUCKETS) as i64
}

fn key_hash((org_unit, metric, period): &(String, String, i32)) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in org_unit
        .bytes()
        .chain([0u8])
        .chain(metric.bytes())
        .chain([0u8])
        .chain(period.to_be_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn key_values(keys: &[(String, String, i32)]) -> Vec<Value> {
    keys.iter()
        .flat_map(|(o, m, p)| [o.clone().into(), m.clone().into(), (*p).into()])
        .collect()
}

pub async fn list(
    db: &DatabaseConnection,
    r: &psv::ListStatisticsRequest,
) -> Result<(Vec<psv::StatisticReturn>, Option<PageInfo>), ApiError> {
    let page = Page::parse(r.page.as_ref())?;
    let mut q = st::Entity::find();
    if !r.org_unit.is_empty() {
        q = q.filter(st::Column::OrgUnit.eq(&r.org_unit));
    }
    if !r.metric.is_empty() {
        q = q.filter(st::Column::Metric.eq(&r.metric));
    }
    if r.period != 0 {
        q = q.filter(st::Column::Period.eq(r.period));
    }
    // Superseded filings are earlier versions: asking for them asks for every version.
    if !r.all_versions && r.state != psv::StatisticState::Superseded as i32 {
        q = q.filter(st::Column::Latest.eq(true));
    }
    match psv::StatisticState::try_from(r.state) {
        Ok(psv::StatisticState::Unspecified) => {}
        Ok(psv::StatisticState::Superseded) => {
            q = q.filter(st::Column::Latest.eq(false));
        }
        Ok(s) => {
            let name = match s {
                psv::StatisticState::Pending => StatState::Pending,
                psv::StatisticState::Returned => StatState::Returned,
                _ => StatState::Accepted,
            };
            q = q
                .filter(st::Column::State.eq(name.as_str()))
                .filter(st::Column::Latest.eq(true));
        }
        Err(_) => {
            return Err(ApiError::invalid(
                "state",
                format!("{} is not a statistic state", r.state),
            ));
        }
    }
    if let Some(after) = &page.after {
        let after: i64 = after
            .parse()
            .map_err(|_| ApiError::invalid("page.page_token", "is not from this listing"))?;
        q = q.filter(st::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(st::Column::Id)
        .limit(page.size + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > page.size;
    let rows: Vec<st::Model> = rows.into_iter().take(page.size as usize).collect();
    let last = if more {
        rows.last().map(|m| m.id.to_string())
    } else {
        None
    };
    Ok((rows.iter().map(to_proto).collect(), page.info_after(last)))
}
