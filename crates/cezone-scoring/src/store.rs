//! The scoring service's own copy of the facts, and the current scores, in its tables.

use cezone_domain::facts::{Facts, StatFact, SurveyTally};
use cezone_domain::org::{OrgUnit, OrgUnitId};
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_platform::ApiError;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Set,
    TransactionTrait,
};

use crate::entities::{cell, framework, org_unit, run, stat_fact, tally_fact};
use crate::facts_db::{self, FactKey, evidence_from_row};
use crate::model::{Inputs, Scored};

/// The cause recorded in the fact log for facts merged by a rebuild.
pub const REBUILD: &str = "rebuild";

/// Rows per multi-row INSERT: well under SQLite's 32,766 parameters for 8 columns.
const CHUNK: usize = 3000;

/// Merges `inputs` (pulled from the other services) into the read model: each fact replaces the
/// stored one only when newer, exactly as events do, so a rebuild racing with events converges.
/// Returns how many facts changed.
pub async fn merge_all(db: &DatabaseConnection, inputs: &Inputs) -> Result<usize, ApiError> {
    let mut changed = 0;
    let txn = db.begin().await?;
    let one = |k: Option<FactKey>| usize::from(k.is_some());
    changed += one(facts_db::set_framework(
        &txn,
        &inputs.framework_id,
        &inputs.edition,
        &inputs.framework_json,
        REBUILD,
    )
    .await?);
    for (u, rev) in &inputs.org_units {
        changed += one(facts_db::upsert_org_unit(&txn, u, *rev, REBUILD).await?);
    }
    let stats: Vec<(&StatFact, &str)> = inputs
        .facts
        .statistics
        .iter()
        .map(|s| (s, REBUILD))
        .collect();
    changed += facts_db::upsert_stats(&txn, &stats).await?;
    for t in &inputs.facts.surveys {
        changed += one(facts_db::upsert_tally(&txn, t, REBUILD).await?);
    }
    for e in &inputs.facts.evidence {
        changed += one(facts_db::upsert_evidence(&txn, e, REBUILD).await?);
    }
    txn.commit().await?;
    Ok(changed)
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

/// Stores every current score (replacing the previous ones) and records the run.
pub async fn save_scores(db: &DatabaseConnection, scored: &Scored) -> Result<i64, ApiError> {
    let total = scored.total();
    let txn = db.begin().await?;
    cell::Entity::delete_many().exec(&txn).await?;
    let rows: Vec<cell::ActiveModel> = scored
        .cells()
        .into_iter()
        .map(|(org, item, c, p)| cell::ActiveModel {
            org_unit: Set(org),
            item: Set(item),
            confirmed_milli: Set(c.milli()),
            projected_milli: Set(p.milli()),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        cell::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    let r = run::ActiveModel {
        framework_id: Set(scored.inputs.framework_id.clone()),
        edition: Set(scored.inputs.edition.clone()),
        period: Set(scored.inputs.period),
        computed_at: Set(scored.computed_at.clone()),
        total_confirmed_milli: Set(total.confirmed.milli()),
        total_projected_milli: Set(total.projected.milli()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(r.id)
}

/// Upserts the cells an incremental rescore changed.
pub async fn save_cells(
    txn: &impl ConnectionTrait,
    cells: &[(String, String, i64, i64)],
) -> Result<(), ApiError> {
    // One statement per chunk: a burst of events changes hundreds of cells.
    for chunk in cells.chunks(CHUNK) {
        let rows = chunk.iter().map(|(org, item, c, p)| cell::ActiveModel {
            org_unit: Set(org.clone()),
            item: Set(item.clone()),
            confirmed_milli: Set(*c),
            projected_milli: Set(*p),
            ..Default::default()
        });
        cell::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([cell::Column::OrgUnit, cell::Column::Item])
                    .update_columns([cell::Column::ConfirmedMilli, cell::Column::ProjectedMilli])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
