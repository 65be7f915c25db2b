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
use cezone_platform::audit::Entry;
use cezone_platform::db::{stmt, tuples};
use cezone_platform::paging::Page;
use cezone_platform::time::now_rfc3339;
use cezone_proto::common::v1::PageInfo;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, TransactionTrait, Value,
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

/// A return parsed and checked against the org tree and the framework's catalog, with the
/// domain's rules for statistics ([`cezone_domain::checks`], which scoring applies to the
/// event too): the statistic as the domain has it, or which field is wrong and why.
pub fn parse(
    r: &psv::StatisticReturn,
    tree: &OrgTree,
    fw: &Framework,
) -> Result<StatFact, FactError> {
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
    checks::statistic_plausible(&fact, fw, tree)?;
    short_text("filed_by", &r.filed_by, 100)?;
    short_text("note", &r.note, 500)?;
    Ok(fact)
}

/// Most statistics one call may carry.
pub const MAX_PER_CALL: usize = 10_000;

/// Statistics in one streamed import: a province's return (26,000 communities × 20 metrics)
/// with room to spare.
pub const MAX_PER_IMPORT: usize = 1_000_000;

/// Rows per multi-row statement.
const ROWS: usize = 500;

/// Stores checked returns in one transaction, all or nothing: each becomes the next version
/// of its (org unit, metric, period) and the latest, with its `statistic.recorded` event in the
/// outbox and its audit entry. Returns the stored rows and their events' ids, in order. With
/// `dry_run`, the versions are computed and nothing is written.
pub async fn record_many(
    db: &DatabaseConnection,
    who: &Principal,
    rs: &[psv::StatisticReturn],
    dry_run: bool,
) -> Result<(Vec<st::Model>, Vec<String>), ApiError> {
    // Two filings of one key at once race for the next version; the loser retries.
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let mut phases: Vec<(&str, u128)> = Vec::new();
        let lap = |name: &'static str, phases: &mut Vec<(&str, u128)>| {
            phases.push((name, started.elapsed().as_millis()));
        };
        let txn = db.begin().await?;
        let b = txn.get_database_backend();
        let keys: Vec<(String, String, i32)> = rs
            .iter()
            .map(|r| (r.org_unit.clone(), r.metric.clone(), r.period))
            .collect();
        if b == sea_orm::DatabaseBackend::Postgres {
            // One filing of a key at a time, across calls and replicas: each call takes its
            // keys' locks in one order (sorted), so two calls sharing keys queue rather than
            // deadlock, and the second sees the first's version once it may go on.
            let mut locks: Vec<i64> = keys.iter().map(key_lock).collect();
            locks.sort_unstable();
            locks.dedup();
            let list: Vec<String> = locks.iter().map(i64::to_string).collect();
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(ARRAY[{}]::bigint[]) AS k",
                list.join(",")
            ))
            .await?;
        }
        let mut latest: HashMap<(String, String, i32), (i32, i64)> = HashMap::new();
        for chunk in keys.chunks(key_chunk(b)) {
            let found = if b == sea_orm::DatabaseBackend::Postgres {
                // The keys as one JSON parameter joined against the table: an index lookup
                // per key. A row-wise IN list of hundreds of keys made PostgreSQL compare every
                // row of the table with every key (~0.8 s per 500 keys at 100,000 rows).
                txn.query_all(Statement::from_sql_and_values(
                    b,
                    "SELECT s.org_unit, s.metric, s.period, s.version, s.value \
                     FROM surveys_statistics s \
                     JOIN jsonb_to_recordset($1::jsonb) AS k(org_unit text, metric text, period int) \
                     ON s.org_unit = k.org_unit AND s.metric = k.metric AND s.period = k.period \
                     WHERE s.latest",
                    [keys_json(chunk).into()],
                ))
                .await?
            } else {
                let sql = format!(
                    "SELECT org_unit, metric, period, version, value FROM surveys_statistics \
                     WHERE latest AND (org_unit, metric, period) IN ({})",
                    tuples(3, chunk.len())
                );
                txn.query_all(stmt(b, &sql, key_values(chunk))).await?
            };
            for row in found {
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
        lap("locked_and_read", &mut phases);
        let filed_at = now_rfc3339();
        let state = filed_state(who).as_str().to_string();
        let models: Vec<st::Model> = rs
            .iter()
            .zip(&keys)
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
            .collect();
        if dry_run {
            txn.rollback().await?;
            return Ok((models, Vec::new()));
        }
        // Only keys filed before have a latest row to retire.
        let earlier: Vec<(String, String, i32)> = keys
            .iter()
            .filter(|k| latest.contains_key(*k))
            .cloned()
            .collect();
        for chunk in earlier.chunks(key_chunk(b)) {
            if b == sea_orm::DatabaseBackend::Postgres {
                txn.execute(Statement::from_sql_and_values(
                    b,
                    "UPDATE surveys_statistics s SET latest = false \
                     FROM jsonb_to_recordset($1::jsonb) AS k(org_unit text, metric text, period int) \
                     WHERE s.latest AND s.org_unit = k.org_unit AND s.metric = k.metric \
                     AND s.period = k.period",
                    [keys_json(chunk).into()],
                ))
                .await?;
            } else {
                let sql = format!(
                    "UPDATE surveys_statistics SET latest = ? WHERE latest AND (org_unit, metric, period) IN ({})",
                    tuples(3, chunk.len())
                );
                let mut values: Vec<Value> = vec![false.into()];
                values.extend(key_values(chunk));
                txn.execute(stmt(b, &sql, values)).await?;
            }
        }
        lap("retired", &mut phases);
        let mut inserted = Ok(());
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
                inserted = Err(e);
                break;
            }
        }
        match inserted {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                txn.rollback().await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        lap("inserted", &mut phases);
        let events: Vec<Envelope> = models
            .iter()
            .map(|m| {
                let payload = cezone_proto::events::v1::StatisticRecorded {
                    statistic: Some(to_proto(m)),
                };
                cezone_bus::envelope("statistic.recorded", "surveys", &payload, None)
            })
            .collect();
        cezone_bus::outbox::enqueue_many(&txn, crate::OUTBOX, &events).await?;
        lap("announced", &mut phases);
        let targets: Vec<String> = models
            .iter()
            .map(|m| format!("{}/{}/{}", m.org_unit, m.metric, m.period))
            .collect();
        let entries: Vec<Entry<'_>> = models
            .iter()
            .zip(&keys)
            .zip(&targets)
            .map(|((m, k), target)| Entry {
                actor: who,
                action: "statistic.recorded",
                target,
                details: serde_json::json!({
                    "version": m.version,
                    "value": m.value,
                    "before": latest.get(k).map(|(_, v)| *v),
                    "filed_by": m.filed_by,
                    "note": m.note,
                    "state": m.state,
                }),
            })
            .collect();
        cezone_platform::audit::append_many(&txn, "surveys", &entries).await?;
        lap("audited", &mut phases);
        txn.commit().await?;
        lap("committed", &mut phases);
        // Where a large return's time goes, milliseconds since the start of the transaction.
        tracing::debug!(statistics = rs.len(), ?phases, "statistics written");
        return Ok((models, events.into_iter().map(|e| e.event_id).collect()));
    }
    Err(ApiError::unavailable(
        "the statistics are being filed concurrently; try again",
    ))
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
fn key_lock(key: &(String, String, i32)) -> i64 {
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

/// Keys per statement: bound parameters on SQLite (three per key), one JSON document on
/// PostgreSQL.
fn key_chunk(b: sea_orm::DatabaseBackend) -> usize {
    if b == sea_orm::DatabaseBackend::Postgres {
        10_000
    } else {
        ROWS
    }
}

/// Keys as `[{"org_unit": …, "metric": …, "period": …}, …]` for `jsonb_to_recordset`.
fn keys_json(keys: &[(String, String, i32)]) -> String {
    serde_json::Value::Array(
        keys.iter()
            .map(|(o, m, p)| serde_json::json!({ "org_unit": o, "metric": m, "period": p }))
            .collect(),
    )
    .to_string()
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
