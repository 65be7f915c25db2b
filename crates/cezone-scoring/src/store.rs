//! The scoring service's own copy of the facts in its tables: loading it whole, and replacing
//! it whole when a rebuild pulls everything from the services.

use std::collections::{BTreeMap, HashMap, HashSet};

use cezone_domain::facts::{EvidenceFact, Facts, StatFact, StatState, SurveyTally};
use cezone_domain::org::{OrgUnit, OrgUnitId};
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_platform::ApiError;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryOrder, Set, TransactionTrait, Value,
};

use crate::changes::{self, Change, Mark, Position};
use crate::entities::{framework, org_unit, run, stat_fact, tally_fact};
use crate::facts_db::{self, evidence_from_row};
use crate::model::{Inputs, Scored};

/// The event id recorded with a rebuild's change.
pub const REBUILD: &str = "rebuild";

/// The PostgreSQL advisory lock between consumer transactions (shared) and a rebuild's
/// replacement of the read model (exclusive): a rebuild sees every consumer commit that came
/// before it, and every later one comes after it in the change log.
pub const REPLACE_LOCK: i64 = 0x00ce_0014;

/// A rebuild: replaces the read model with `inputs` (pulled from the services after `start`)
/// and records one `rebuild` change, which makes every scorer reload. A fact an event changed
/// after `start` may be newer than what the pull saw: it stays when it is newer; every other
/// fact is the services' own, whatever version it carried before (a forged version does not
/// survive). `scored` is `inputs` computed, for the run's record. Returns the change's mark.
pub async fn replace_all(
    db: &DatabaseConnection,
    inputs: &Inputs,
    scored: &Scored,
    start: &Position,
) -> Result<Mark, ApiError> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute(facts_db::stmt(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(?)",
            vec![REPLACE_LOCK.into()],
        ))
        .await?;
    }
    // What events changed since the pull began.
    let mut kept_stats: HashMap<(String, String, i32), StatFact> = HashMap::new();
    let mut kept_tallies: HashMap<(String, String, String, i32), SurveyTally> = HashMap::new();
    let mut kept_evidence: HashMap<String, EvidenceFact> = HashMap::new();
    let mut kept_units: HashSet<String> = HashSet::new();
    let mut kept_framework = false;
    for r in changes::records_since(&txn, start).await? {
        match r.change {
            Some(Change::Statistic { fact }) => {
                let k = (
                    fact.org_unit.to_string(),
                    fact.metric.to_string(),
                    fact.period,
                );
                newest(&mut kept_stats, k, fact, StatFact::precedence);
            }
            Some(Change::Tally { fact }) => {
                let k = (
                    fact.source.clone(),
                    fact.org_unit.to_string(),
                    fact.question.to_string(),
                    fact.period,
                );
                newest(&mut kept_tallies, k, fact, |f| f.precedence());
            }
            Some(Change::Evidence { fact }) => {
                newest(&mut kept_evidence, fact.id.clone(), fact, |f| {
                    f.precedence()
                });
            }
            Some(Change::OrgUnit { id, .. }) => {
                kept_units.insert(id);
            }
            Some(Change::Framework { .. }) => kept_framework = true,
            Some(Change::Rebuild { .. }) | None => {}
        }
    }
    let mut stats: HashMap<(String, String, i32), StatFact> = inputs
        .facts
        .statistics
        .iter()
        .map(|f| {
            (
                (f.org_unit.to_string(), f.metric.to_string(), f.period),
                f.clone(),
            )
        })
        .collect();
    for (k, f) in kept_stats {
        newest(&mut stats, k, f, StatFact::precedence);
    }
    let mut tallies: HashMap<(String, String, String, i32), SurveyTally> = inputs
        .facts
        .surveys
        .iter()
        .map(|t| {
            (
                (
                    t.source.clone(),
                    t.org_unit.to_string(),
                    t.question.to_string(),
                    t.period,
                ),
                t.clone(),
            )
        })
        .collect();
    for (k, t) in kept_tallies {
        newest(&mut tallies, k, t, |f| f.precedence());
    }
    let mut evidence: HashMap<String, EvidenceFact> = inputs
        .facts
        .evidence
        .iter()
        .map(|e| (e.id.clone(), e.clone()))
        .collect();
    for (k, e) in kept_evidence {
        newest(&mut evidence, k, e, |f| f.precedence());
    }
    let mut units: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for (u, rev) in &inputs.org_units {
        let json = serde_json::to_string(u).map_err(|e| ApiError::internal_msg(e.to_string()))?;
        units.insert(u.id.to_string(), (json, *rev as i64));
    }
    if !kept_units.is_empty() {
        for m in org_unit::Entity::find().all(&txn).await? {
            if kept_units.contains(&m.id)
                && units.get(&m.id).is_none_or(|(_, rev)| *rev < m.revision)
            {
                units.insert(m.id.clone(), (m.unit_json, m.revision));
            }
        }
    }

    for table in [
        "scoring_stat_facts",
        "scoring_tally_facts",
        "scoring_evidence_facts",
        "scoring_org_units",
    ] {
        txn.execute_unprepared(&format!("DELETE FROM {table}"))
            .await?;
    }
    let units: Vec<(String, String, i64)> = units
        .into_iter()
        .map(|(id, (json, rev))| (id, json, rev))
        .collect();
    insert_rows(
        &txn,
        "scoring_org_units (id, unit_json, revision)",
        3,
        &units,
        |(id, json, rev)| vec![id.clone().into(), json.clone().into(), (*rev).into()],
    )
    .await?;
    let mut stats: Vec<StatFact> = stats.into_values().collect();
    stats.sort_by(|a, b| {
        (&a.org_unit, &a.metric, a.period).cmp(&(&b.org_unit, &b.metric, b.period))
    });
    insert_rows(
        &txn,
        "scoring_stat_facts (org_unit, metric, period, value, version, state)",
        6,
        &stats,
        |f| {
            vec![
                f.org_unit.to_string().into(),
                f.metric.to_string().into(),
                f.period.into(),
                f.value.into(),
                (f.version as i64).into(),
                i32::from(f.state.rank()).into(),
            ]
        },
    )
    .await?;
    let tallies: Vec<SurveyTally> = tallies.into_values().collect();
    insert_rows(
        &txn,
        "scoring_tally_facts (survey_id, org_unit, question, period, responses, positive, version, \
         pending_responses, pending_positive)",
        9,
        &tallies,
        |t| {
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
            ]
        },
    )
    .await?;
    let evidence: Vec<EvidenceFact> = evidence.into_values().collect();
    insert_rows(
        &txn,
        "scoring_evidence_facts (id, criterion, unit, org_unit, material, state, grade, version, rank)",
        9,
        &evidence,
        |e| {
            let (state, rank, grade) = facts_db::evidence_rank(e.state);
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
            ]
        },
    )
    .await?;
    if !kept_framework {
        txn.execute_unprepared("DELETE FROM scoring_frameworks")
            .await?;
        facts_db::set_framework(
            &txn,
            &inputs.framework_id,
            &inputs.edition,
            &inputs.framework_json,
        )
        .await?;
    }
    let total = scored.total();
    run::ActiveModel {
        framework_id: Set(inputs.framework_id.clone()),
        edition: Set(inputs.edition.clone()),
        period: Set(inputs.period),
        computed_at: Set(scored.computed_at.clone()),
        total_confirmed_milli: Set(total.confirmed.milli()),
        total_projected_milli: Set(total.projected.milli()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    changes::append(
        &txn,
        &[(
            Change::Rebuild {
                period: inputs.period,
            },
            REBUILD,
        )],
    )
    .await?;
    let mark = changes::own_mark(&txn).await?;
    txn.commit().await?;
    Ok(mark)
}

/// Keeps the fact with the higher precedence under `k`.
fn newest<K: std::hash::Hash + Eq, F, P: Ord>(
    map: &mut HashMap<K, F>,
    k: K,
    f: F,
    precedence: impl Fn(&F) -> P,
) {
    match map.get(&k) {
        Some(held) if precedence(held) >= precedence(&f) => {}
        _ => {
            map.insert(k, f);
        }
    }
}

/// Rows per multi-row INSERT: under SQLite's 32,766 parameters for 9 columns.
const CHUNK: usize = 3000;

/// Inserts `rows` into `target` ("table (columns)") in multi-row statements.
async fn insert_rows<T>(
    c: &impl ConnectionTrait,
    target: &str,
    width: usize,
    rows: &[T],
    values: impl Fn(&T) -> Vec<Value>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO {target} VALUES {}",
            facts_db::tuples(width, chunk.len())
        );
        let vals: Vec<Value> = chunk.iter().flat_map(&values).collect();
        c.execute(facts_db::stmt(c.get_database_backend(), &sql, vals))
            .await?;
    }
    Ok(())
}

/// The read model as stored, if it has ever been filled.
pub async fn load(
    db: &impl ConnectionTrait,
    default_period: i32,
) -> Result<Option<Inputs>, ApiError> {
    let Some(fw) = framework::Entity::find_by_id("current".to_string())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let bad =
        |what: &str| ApiError::internal_msg(format!("the stored read model has a bad {what}"));
    let period = run::Entity::find()
        .order_by_desc(run::Column::Id)
        .one(db)
        .await?
        .map_or(default_period, |r| r.period);
    let mut org_units = Vec::new();
    for m in org_unit::Entity::find().all(db).await? {
        let u: OrgUnit = serde_json::from_str(&m.unit_json).map_err(|_| bad("org unit"))?;
        org_units.push((u, m.revision as u64));
    }
    let mut facts = Facts::default();
    for m in stat_fact::Entity::find().all(db).await? {
        facts.statistics.push(StatFact {
            org_unit: OrgUnitId::parse(&m.org_unit).map_err(|_| bad("statistic"))?,
            metric: MetricId::parse(&m.metric).map_err(|_| bad("metric"))?,
            period: m.period,
            value: m.value,
            version: m.version as u64,
            state: StatState::from_rank(m.state as u8).ok_or_else(|| bad("statistic state"))?,
        });
    }
    for m in tally_fact::Entity::find().all(db).await? {
        facts.surveys.push(SurveyTally {
            org_unit: OrgUnitId::parse(&m.org_unit).map_err(|_| bad("tally"))?,
            question: QuestionId::parse(&m.question).map_err(|_| bad("question"))?,
            period: m.period,
            responses: m.responses as u64,
            positive: m.positive as u64,
            source: m.survey_id,
            version: m.version as u64,
            pending_responses: m.pending_responses as u64,
            pending_positive: m.pending_positive as u64,
        });
    }
    let rows = db
        .query_all(facts_db::stmt(
            db.get_database_backend(),
            "SELECT id, criterion, unit, org_unit, material, state, grade, version FROM scoring_evidence_facts",
            vec![],
        ))
        .await?;
    for r in rows {
        let id: String = r.try_get("", "id")?;
        if let Some(e) = evidence_from_row(&id, &r)? {
            facts.evidence.push(e);
        }
    }
    Ok(Some(Inputs {
        framework_id: fw.framework_id,
        edition: fw.edition,
        period,
        framework_json: fw.document_json,
        org_units,
        facts,
    }))
}
