//! The read model's fact tables, written by versioned upserts: a fact replaces the stored one
//! only if it is newer, so redelivered, duplicated or out-of-order events (and several scoring
//! replicas sharing one database) converge. Every change appends to a fact log the scorer tails.

use cezone_domain::code::ItemCode;
use cezone_domain::facts::{EvidenceFact, EvidenceState, StatFact, SurveyTally};
use cezone_domain::org::{OrgUnit, OrgUnitId};
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_domain::units::UnitId;
use cezone_platform::time::now_rfc3339;
use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

/// What a log row points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactKey {
    Stat {
        org_unit: String,
        metric: String,
        period: i32,
    },
    Tally {
        survey: String,
        org_unit: String,
        question: String,
        period: i32,
    },
    Evidence {
        id: String,
    },
    OrgUnit {
        id: String,
    },
    Framework,
}

impl FactKey {
    pub fn kind(&self) -> &'static str {
        match self {
            FactKey::Stat { .. } => "stat",
            FactKey::Tally { .. } => "tally",
            FactKey::Evidence { .. } => "evidence",
            FactKey::OrgUnit { .. } => "org_unit",
            FactKey::Framework => "framework",
        }
    }

    pub fn encode(&self) -> String {
        match self {
            FactKey::Stat {
                org_unit,
                metric,
                period,
            } => format!("{org_unit}|{metric}|{period}"),
            FactKey::Tally {
                survey,
                org_unit,
                question,
                period,
            } => format!("{survey}|{org_unit}|{question}|{period}"),
            FactKey::Evidence { id } | FactKey::OrgUnit { id } => id.clone(),
            FactKey::Framework => "current".into(),
        }
    }

    pub fn decode(kind: &str, key: &str) -> Option<FactKey> {
        let p: Vec<&str> = key.split('|').collect();
        Some(match (kind, p.as_slice()) {
            ("stat", [o, m, y]) => FactKey::Stat {
                org_unit: o.to_string(),
                metric: m.to_string(),
                period: y.parse().ok()?,
            },
            ("tally", [s, o, q, y]) => FactKey::Tally {
                survey: s.to_string(),
                org_unit: o.to_string(),
                question: q.to_string(),
                period: y.parse().ok()?,
            },
            ("evidence", _) => FactKey::Evidence {
                id: key.to_string(),
            },
            ("org_unit", _) => FactKey::OrgUnit {
                id: key.to_string(),
            },
            ("framework", _) => FactKey::Framework,
            _ => return None,
        })
    }

    /// Whether a change of this kind reshapes the model (tree or framework) rather than a cell.
    pub fn structural(&self) -> bool {
        matches!(self, FactKey::OrgUnit { .. } | FactKey::Framework)
    }
}

/// `?` placeholders rewritten for the backend.
pub fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    if backend == DatabaseBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        Statement::from_sql_and_values(backend, out, values)
    } else {
        Statement::from_sql_and_values(backend, sql, values)
    }
}

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

pub async fn log(c: &impl ConnectionTrait, key: &FactKey, event_id: &str) -> Result<(), DbErr> {
    exec(
        c,
        "INSERT INTO scoring_fact_log (kind, fact_key, event_id) VALUES (?, ?, ?)",
        vec![key.kind().into(), key.encode().into(), event_id.into()],
    )
    .await?;
    Ok(())
}

/// Each upsert returns the key when the stored fact changed (and logs it), none when the
/// incoming one was not newer.
pub async fn upsert_tally(
    c: &impl ConnectionTrait,
    t: &SurveyTally,
    event_id: &str,
) -> Result<Option<FactKey>, DbErr> {
    let n = exec(
        c,
        "INSERT INTO scoring_tally_facts (survey_id, org_unit, question, period, responses, positive, version) VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (survey_id, org_unit, question, period) DO UPDATE SET \
         responses = excluded.responses, positive = excluded.positive, version = excluded.version \
         WHERE scoring_tally_facts.version < excluded.version \
         OR (scoring_tally_facts.version = excluded.version AND (scoring_tally_facts.responses < excluded.responses \
             OR (scoring_tally_facts.responses = excluded.responses AND scoring_tally_facts.positive < excluded.positive)))",
        vec![
            t.source.clone().into(),
            t.org_unit.to_string().into(),
            t.question.to_string().into(),
            t.period.into(),
            (t.responses as i64).into(),
            (t.positive as i64).into(),
            (t.version as i64).into(),
        ],
    )
    .await?;
    let key = FactKey::Tally {
        survey: t.source.clone(),
        org_unit: t.org_unit.to_string(),
        question: t.question.to_string(),
        period: t.period,
    };
    changed(c, n, key, event_id).await
}

pub async fn upsert_evidence(
    c: &impl ConnectionTrait,
    e: &EvidenceFact,
    event_id: &str,
) -> Result<Option<FactKey>, DbErr> {
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
    changed(c, n, FactKey::Evidence { id: e.id.clone() }, event_id).await
}

pub async fn upsert_org_unit(
    c: &impl ConnectionTrait,
    u: &OrgUnit,
    revision: u64,
    event_id: &str,
) -> Result<Option<FactKey>, DbErr> {
    let json = serde_json::to_string(u).map_err(|e| DbErr::Custom(e.to_string()))?;
    let n = exec(
        c,
        "INSERT INTO scoring_org_units (id, unit_json, revision) VALUES (?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET unit_json = excluded.unit_json, revision = excluded.revision \
         WHERE scoring_org_units.revision < excluded.revision",
        vec![u.id.to_string().into(), json.into(), (revision as i64).into()],
    )
    .await?;
    changed(
        c,
        n,
        FactKey::OrgUnit {
            id: u.id.to_string(),
        },
        event_id,
    )
    .await
}

/// The framework scored; replaced when another edition (or content) arrives.
pub async fn set_framework(
    c: &impl ConnectionTrait,
    framework_id: &str,
    edition: &str,
    document: &str,
    event_id: &str,
) -> Result<Option<FactKey>, DbErr> {
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
    changed(c, n, FactKey::Framework, event_id).await
}

async fn changed(
    c: &impl ConnectionTrait,
    rows: u64,
    key: FactKey,
    event_id: &str,
) -> Result<Option<FactKey>, DbErr> {
    if rows == 0 {
        return Ok(None);
    }
    log(c, &key, event_id).await?;
    Ok(Some(key))
}

/// Log rows after `after`, in id order.
pub async fn tail(
    c: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<(i64, FactKey, String)>, DbErr> {
    let rows = c
        .query_all(stmt(
            c.get_database_backend(),
            "SELECT id, kind, fact_key, event_id FROM scoring_fact_log WHERE id > ? ORDER BY id LIMIT ?",
            vec![after.into(), (limit as i64).into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("", "id")?;
        let kind: String = r.try_get("", "kind")?;
        let key: String = r.try_get("", "fact_key")?;
        let event: String = r.try_get("", "event_id")?;
        if let Some(k) = FactKey::decode(&kind, &key) {
            out.push((id, k, event));
        }
    }
    Ok(out)
}

pub async fn last_log_id(c: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let row = c
        .query_one(stmt(
            c.get_database_backend(),
            "SELECT COALESCE(MAX(id), 0) AS m FROM scoring_fact_log",
            vec![],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "m").unwrap_or(0))
        .unwrap_or(0))
}

/// Rows per multi-row statement: under PostgreSQL's 65,535 and SQLite's 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// `n` rows of `width` placeholders for a multi-row statement: "(?, ?), (?, ?)".
fn tuples(width: usize, n: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; n].join(", ")
}

/// (org unit, metric, period) of a statistic.
type StatKey = (String, String, i32);

/// The stored (value, version) of each of `keys` that has one, in one query per 500 keys.
async fn stored_stats(
    c: &impl ConnectionTrait,
    keys: &[StatKey],
) -> Result<HashMap<StatKey, (i64, u64)>, DbErr> {
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let tuples = tuples(3, chunk.len());
        let sql = format!(
            "SELECT org_unit, metric, period, value, version FROM scoring_stat_facts \
             WHERE (org_unit, metric, period) IN ({tuples})"
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
        for (o, m, p) in chunk {
            values.push(o.clone().into());
            values.push(m.clone().into());
            values.push((*p).into());
        }
        for r in c
            .query_all(stmt(c.get_database_backend(), &sql, values))
            .await?
        {
            out.insert(
                (
                    r.try_get("", "org_unit")?,
                    r.try_get("", "metric")?,
                    r.try_get("", "period")?,
                ),
                (
                    r.try_get("", "value")?,
                    r.try_get::<i64>("", "version")? as u64,
                ),
            );
        }
    }
    Ok(out)
}

/// The current stored values of several facts, as the domain's changes: statistics (what most
/// events carry) in one query per 500 keys, the other kinds one by one.
pub async fn read_many(
    c: &impl ConnectionTrait,
    keys: &[&FactKey],
) -> Result<Vec<cezone_domain::engine::Change>, DbErr> {
    use cezone_domain::engine::Change;
    let mut out = Vec::with_capacity(keys.len());
    let mut stats = Vec::new();
    for k in keys {
        match k {
            FactKey::Stat {
                org_unit,
                metric,
                period,
            } => stats.push((org_unit.clone(), metric.clone(), *period)),
            other => out.extend(read(c, other).await?),
        }
    }
    for ((org_unit, metric, period), (value, version)) in stored_stats(c, &stats).await? {
        if let (Ok(o), Ok(m)) = (OrgUnitId::parse(&org_unit), MetricId::parse(&metric)) {
            out.push(Change::Statistic(StatFact {
                org_unit: o,
                metric: m,
                period,
                value,
                version,
            }));
        }
    }
    Ok(out)
}

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

/// Applies statistics in the order given, each only if newer than what is stored or came
/// before it in the batch, exactly as one upsert after another would, and logs each one that
/// changed the fact with its event. Reads, writes and logs in a few multi-row statements.
/// Returns how many of them changed it.
pub async fn upsert_stats(
    c: &impl ConnectionTrait,
    stats: &[(&StatFact, &str)],
) -> Result<usize, DbErr> {
    if stats.is_empty() {
        return Ok(0);
    }
    // Each statistic's key, made once.
    let keyed: Vec<(StatKey, &StatFact, &str)> = stats
        .iter()
        .map(|&(f, event_id)| {
            let k = (f.org_unit.to_string(), f.metric.to_string(), f.period);
            (k, f, event_id)
        })
        .collect();
    let mut keys: Vec<StatKey> = keyed.iter().map(|(k, ..)| k.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut held = stored_stats(c, &keys).await?;
    let mut winners: HashMap<&StatKey, &StatFact> = HashMap::new();
    let mut logged: Vec<(&StatKey, &str)> = Vec::new();
    for (k, f, event_id) in &keyed {
        let newer = held
            .get(k)
            .is_none_or(|&(value, version)| (f.version, f.value) > (version, value));
        if newer {
            held.insert(k.clone(), (f.value, f.version));
            winners.insert(k, f);
            logged.push((k, event_id));
        }
    }
    if logged.is_empty() {
        return Ok(0);
    }
    // The same guard as one upsert: another replica may have stored something newer since
    // (its row is then left alone and the log row only makes the scorer re-read it). Rows go
    // in key order, so two replicas lock overlapping rows in the same order.
    let winners: Vec<(&StatKey, &StatFact)> = keys
        .iter()
        .filter_map(|k| winners.get(k).map(|&f| (k, f)))
        .collect();
    for chunk in winners.chunks(ROWS_PER_STATEMENT) {
        let tuples = tuples(5, chunk.len());
        let sql = format!(
            "INSERT INTO scoring_stat_facts (org_unit, metric, period, value, version) VALUES {tuples} \
             ON CONFLICT (org_unit, metric, period) DO UPDATE SET value = excluded.value, version = excluded.version \
             WHERE scoring_stat_facts.version < excluded.version \
             OR (scoring_stat_facts.version = excluded.version AND scoring_stat_facts.value < excluded.value)"
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        for ((o, m, p), f) in chunk {
            values.push(o.clone().into());
            values.push(m.clone().into());
            values.push((*p).into());
            values.push(f.value.into());
            values.push((f.version as i64).into());
        }
        exec(c, &sql, values).await?;
    }
    for chunk in logged.chunks(ROWS_PER_STATEMENT) {
        let tuples = tuples(3, chunk.len());
        let sql =
            format!("INSERT INTO scoring_fact_log (kind, fact_key, event_id) VALUES {tuples}");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
        for ((org_unit, metric, period), event_id) in chunk {
            let k = FactKey::Stat {
                org_unit: org_unit.clone(),
                metric: metric.clone(),
                period: *period,
            };
            values.push(k.kind().into());
            values.push(k.encode().into());
            values.push((*event_id).into());
        }
        exec(c, &sql, values).await?;
    }
    Ok(logged.len())
}

/// The current stored value of a fact, as the domain's change.
pub async fn read(
    c: &impl ConnectionTrait,
    key: &FactKey,
) -> Result<Option<cezone_domain::engine::Change>, DbErr> {
    use cezone_domain::engine::Change;
    let b = c.get_database_backend();
    Ok(match key {
        FactKey::Stat {
            org_unit,
            metric,
            period,
        } => {
            let r = c
                .query_one(stmt(b, "SELECT value, version FROM scoring_stat_facts WHERE org_unit = ? AND metric = ? AND period = ?", vec![
                    org_unit.clone().into(),
                    metric.clone().into(),
                    (*period).into(),
                ]))
                .await?;
            match (r, OrgUnitId::parse(org_unit), MetricId::parse(metric)) {
                (Some(r), Ok(o), Ok(m)) => Some(Change::Statistic(StatFact {
                    org_unit: o,
                    metric: m,
                    period: *period,
                    value: r.try_get("", "value")?,
                    version: r.try_get::<i64>("", "version")? as u64,
                })),
                _ => None,
            }
        }
        FactKey::Tally {
            survey,
            org_unit,
            question,
            period,
        } => {
            let r = c
                .query_one(stmt(
                    b,
                    "SELECT responses, positive, version FROM scoring_tally_facts WHERE survey_id = ? AND org_unit = ? AND question = ? AND period = ?",
                    vec![survey.clone().into(), org_unit.clone().into(), question.clone().into(), (*period).into()],
                ))
                .await?;
            match (r, OrgUnitId::parse(org_unit), QuestionId::parse(question)) {
                (Some(r), Ok(o), Ok(q)) => Some(Change::Tally(SurveyTally {
                    org_unit: o,
                    question: q,
                    period: *period,
                    responses: r.try_get::<i64>("", "responses")? as u64,
                    positive: r.try_get::<i64>("", "positive")? as u64,
                    source: survey.clone(),
                    version: r.try_get::<i64>("", "version")? as u64,
                })),
                _ => None,
            }
        }
        FactKey::Evidence { id } => {
            let r = c
                .query_one(stmt(
                    b,
                    "SELECT criterion, unit, org_unit, material, state, grade, version FROM scoring_evidence_facts WHERE id = ?",
                    vec![id.clone().into()],
                ))
                .await?;
            match r {
                Some(r) => evidence_from_row(id, &r)?.map(Change::Evidence),
                None => None,
            }
        }
        FactKey::OrgUnit { .. } | FactKey::Framework => None,
    })
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
