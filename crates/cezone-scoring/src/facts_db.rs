//! The read model's fact tables, written by versioned upserts: a fact replaces the stored one
//! only if it is newer, so redelivered, duplicated or out-of-order events (and several scoring
//! replicas sharing one database) converge. Each upsert says whether the stored fact changed;
//! the consumer records exactly those changes for the scorer ([`crate::changes`]).

use cezone_domain::code::ItemCode;
use cezone_domain::facts::{EvidenceFact, EvidenceState, StatFact, SurveyTally};
use cezone_domain::org::{OrgUnit, OrgUnitId};
use cezone_domain::units::UnitId;
use cezone_platform::time::now_rfc3339;
use std::collections::{BTreeMap, HashSet};

use sea_orm::{ConnectionTrait, DbErr, Value};

pub use cezone_platform::db::{stmt, tuples};

async fn exec(c: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    Ok(c.execute(stmt(c.get_database_backend(), sql, values))
        .await?
        .rows_affected())
}

pub fn evidence_rank(s: EvidenceState) -> (&'static str, i32, i32) {
    match s {
        EvidenceState::Returned => ("returned", 0, 0),
        EvidenceState::Submitted => ("submitted", 1, 0),
        EvidenceState::Accepted { grade } => ("accepted", 2, i32::from(grade)),
    }
}

/// Each upsert returns whether the stored fact changed: false when the incoming one was not
/// newer than what is stored.
pub async fn upsert_tally(c: &impl ConnectionTrait, t: &SurveyTally) -> Result<bool, DbErr> {
    let n = exec(
        c,
        "INSERT INTO scoring_tally_facts (survey_id, org_unit, question, period, responses, positive, version, pending_responses, pending_positive) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (survey_id, org_unit, question, period) DO UPDATE SET \
         responses = excluded.responses, positive = excluded.positive, version = excluded.version, \
         pending_responses = excluded.pending_responses, pending_positive = excluded.pending_positive \
         WHERE (scoring_tally_facts.version, scoring_tally_facts.responses, scoring_tally_facts.positive, \
                scoring_tally_facts.pending_responses, scoring_tally_facts.pending_positive) \
             < (excluded.version, excluded.responses, excluded.positive, \
                excluded.pending_responses, excluded.pending_positive)",
        vec![
            t.source.clone().into(),
            t.org_unit.to_string().into(),
            t.question.to_string().into(),
            t.period.into(),
            (t.responses as i64).into(),
            (t.positive as i64).into(),
            (t.version as i64).into(),
            (t.pending_responses as i64).into(),
            (t.pending_positive as i64).into(),
        ],
    )
    .await?;
    Ok(n > 0)
}

pub async fn upsert_evidence(c: &impl ConnectionTrait, e: &EvidenceFact) -> Result<bool, DbErr> {
    let (state, rank, grade) = evidence_rank(e.state);
    let n = exec(
        c,
        "INSERT INTO scoring_evidence_facts (id, criterion, unit, org_unit, material, state, grade, version, rank) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET criterion = excluded.criterion, unit = excluded.unit, org_unit = excluded.org_unit, \
         material = excluded.material, state = excluded.state, grade = excluded.grade, version = excluded.version, rank = excluded.rank \
         WHERE scoring_evidence_facts.version < excluded.version \
         OR (scoring_evidence_facts.version = excluded.version AND (scoring_evidence_facts.rank < excluded.rank \
             OR (scoring_evidence_facts.rank = excluded.rank AND scoring_evidence_facts.grade < excluded.grade)))",
        vec![
            e.id.clone().into(),
            e.criterion.to_string().into(),
            e.unit.to_string().into(),
            e.org_unit.to_string().into(),
            e.material.clone().into(),
            state.into(),
            grade.into(),
            (e.version as i64).into(),
            rank.into(),
        ],
    )
    .await?;
    Ok(n > 0)
}

pub async fn upsert_org_unit(
    c: &impl ConnectionTrait,
    u: &OrgUnit,
    revision: u64,
) -> Result<bool, DbErr> {
    let json = serde_json::to_string(u).map_err(|e| DbErr::Custom(e.to_string()))?;
    let n = exec(
        c,
        "INSERT INTO scoring_org_units (id, unit_json, revision) VALUES (?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET unit_json = excluded.unit_json, revision = excluded.revision \
         WHERE scoring_org_units.revision < excluded.revision",
        vec![u.id.to_string().into(), json.into(), (revision as i64).into()],
    )
    .await?;
    Ok(n > 0)
}

/// The framework scored; replaced when another edition (or content) arrives.
pub async fn set_framework(
    c: &impl ConnectionTrait,
    framework_id: &str,
    edition: &str,
    document: &str,
) -> Result<bool, DbErr> {
    let n = exec(
        c,
        "INSERT INTO scoring_frameworks (slot, framework_id, edition, document_json) VALUES ('current', ?, ?, ?) \
         ON CONFLICT (slot) DO UPDATE SET framework_id = excluded.framework_id, edition = excluded.edition, \
         document_json = excluded.document_json \
         WHERE scoring_frameworks.edition <> excluded.edition OR scoring_frameworks.document_json <> excluded.document_json \
         OR scoring_frameworks.framework_id <> excluded.framework_id",
        vec![framework_id.into(), edition.into(), document.into()],
    )
    .await?;
    Ok(n > 0)
}

/// Which of `ids` the read model holds as org units.
pub async fn known_org_units(
    c: &impl ConnectionTrait,
    ids: &[String],
) -> Result<HashSet<String>, DbErr> {
    let mut out = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT id FROM scoring_org_units WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let values: Vec<Value> = chunk.iter().map(|id| id.clone().into()).collect();
        for r in c
            .query_all(stmt(c.get_database_backend(), &sql, values))
            .await?
        {
            out.insert(r.try_get("", "id")?);
        }
    }
    Ok(out)
}

/// Rows per multi-row statement: under PostgreSQL's 65,535 and SQLite's 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// (org unit, metric, period) of a statistic.
type StatKey = (String, String, i32);

/// Records events as processed; returns the ids not seen before (the others are duplicate
/// deliveries). One statement per 500 events.
pub async fn mark_processed_many(
    c: &impl ConnectionTrait,
    events: &[(&str, &str)],
) -> Result<HashSet<String>, DbErr> {
    let mut fresh = HashSet::with_capacity(events.len());
    let now = now_rfc3339();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let tuples = tuples(3, chunk.len());
        let sql = format!(
            "INSERT INTO scoring_processed_events (event_id, event_type, processed_at) \
             VALUES {tuples} ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
        for (id, kind) in chunk {
            values.push((*id).into());
            values.push((*kind).into());
            values.push(now.clone().into());
        }
        for r in c
            .query_all(stmt(c.get_database_backend(), &sql, values))
            .await?
        {
            fresh.insert(r.try_get("", "event_id")?);
        }
    }
    Ok(fresh)
}

/// Applies statistics, each only if newer than what is stored and than the others of the batch
/// with its key (exactly as one upsert after another would), in a few multi-row statements.
/// Returns the statistics that changed the stored fact, each with its event, in key order.
pub async fn upsert_stats<'a>(
    c: &impl ConnectionTrait,
    stats: &[(&'a StatFact, &'a str)],
) -> Result<Vec<(&'a StatFact, &'a str)>, DbErr> {
    if stats.is_empty() {
        return Ok(Vec::new());
    }
    // The newest of the batch per key: one statement cannot update a row twice.
    let mut newest: BTreeMap<StatKey, (&StatFact, &str)> = BTreeMap::new();
    for &(f, event_id) in stats {
        let k = (f.org_unit.to_string(), f.metric.to_string(), f.period);
        match newest.get(&k) {
            Some((held, _)) if held.precedence() >= f.precedence() => {}
            _ => {
                newest.insert(k, (f, event_id));
            }
        }
    }
    // Rows go in key order, so two replicas lock overlapping rows in the same order; the
    // guard leaves a stored newer fact alone and RETURNING names the rows really written.
    let winners: Vec<(StatKey, (&StatFact, &str))> = newest.into_iter().collect();
    let mut changed = Vec::new();
    for chunk in winners.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO scoring_stat_facts (org_unit, metric, period, value, version, state) VALUES {} \
             ON CONFLICT (org_unit, metric, period) DO UPDATE SET value = excluded.value, \
             version = excluded.version, state = excluded.state \
             WHERE scoring_stat_facts.version < excluded.version \
             OR (scoring_stat_facts.version = excluded.version AND scoring_stat_facts.state < excluded.state) \
             OR (scoring_stat_facts.version = excluded.version AND scoring_stat_facts.state = excluded.state \
                 AND scoring_stat_facts.value < excluded.value) \
             RETURNING org_unit, metric, period",
            tuples(6, chunk.len())
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for ((o, m, p), (f, _)) in chunk {
            values.push(o.clone().into());
            values.push(m.clone().into());
            values.push((*p).into());
            values.push(f.value.into());
            values.push((f.version as i64).into());
            values.push(i32::from(f.state.rank()).into());
        }
        let mut written = HashSet::with_capacity(chunk.len());
        for r in c
            .query_all(stmt(c.get_database_backend(), &sql, values))
            .await?
        {
            let k: StatKey = (
                r.try_get("", "org_unit")?,
                r.try_get("", "metric")?,
                r.try_get("", "period")?,
            );
            written.insert(k);
        }
        changed.extend(
            chunk
                .iter()
                .filter(|(k, _)| written.contains(k))
                .map(|(_, w)| *w),
        );
    }
    Ok(changed)
}

pub fn evidence_from_row(
    id: &str,
    r: &sea_orm::QueryResult,
) -> Result<Option<EvidenceFact>, DbErr> {
    let state: String = r.try_get("", "state")?;
    let grade: i32 = r.try_get("", "grade")?;
    let criterion: String = r.try_get("", "criterion")?;
    let unit: String = r.try_get("", "unit")?;
    let org_unit: String = r.try_get("", "org_unit")?;
    let (Ok(criterion), Ok(unit), Ok(org_unit)) = (
        ItemCode::parse(&criterion),
        UnitId::parse(&unit),
        OrgUnitId::parse(&org_unit),
    ) else {
        return Ok(None);
    };
    Ok(Some(EvidenceFact {
        id: id.to_string(),
        criterion,
        unit,
        org_unit,
        material: r.try_get("", "material")?,
        state: match state.as_str() {
            "accepted" => EvidenceState::Accepted {
                grade: grade.clamp(0, 100) as u8,
            },
            "returned" => EvidenceState::Returned,
            _ => EvidenceState::Submitted,
        },
        version: r.try_get::<i64>("", "version")? as u64,
        title: String::new(),
    }))
}
