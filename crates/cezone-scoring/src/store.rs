//! The scoring service's own copy of the facts, and the current scores, in its tables.

use cezone_domain::code::ItemCode;
use cezone_domain::facts::{EvidenceFact, EvidenceState, Facts, StatFact, SurveyTally};
use cezone_domain::org::{OrgUnit, OrgUnitId};
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_domain::units::UnitId;
use cezone_platform::ApiError;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Set,
    TransactionTrait,
};

use crate::entities::{cell, evidence_fact, framework, org_unit, run, stat_fact, tally_fact};
use crate::model::{Inputs, Scored};

/// Rows per multi-row INSERT: well under SQLite's 32,766 parameters for 8 columns.
const CHUNK: usize = 3000;

async fn insert_chunked<E, A>(db: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), ApiError>
where
    E: sea_orm::EntityTrait,
    E::Model: sea_orm::IntoActiveModel<A>,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    let mut rows = rows;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(CHUNK));
        E::insert_many(std::mem::replace(&mut rows, rest))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

fn state_name(s: EvidenceState) -> (&'static str, i32) {
    match s {
        EvidenceState::Submitted => ("submitted", 0),
        EvidenceState::Accepted { grade } => ("accepted", i32::from(grade)),
        EvidenceState::Returned => ("returned", 0),
    }
}

/// Replaces the whole read model with `inputs` in one transaction (reconciliation).
pub async fn replace_all(db: &DatabaseConnection, inputs: &Inputs) -> Result<(), ApiError> {
    let txn = db.begin().await?;
    framework::Entity::delete_many().exec(&txn).await?;
    org_unit::Entity::delete_many().exec(&txn).await?;
    stat_fact::Entity::delete_many().exec(&txn).await?;
    tally_fact::Entity::delete_many().exec(&txn).await?;
    evidence_fact::Entity::delete_many().exec(&txn).await?;
    framework::ActiveModel {
        key: Set("current".into()),
        framework_id: Set(inputs.framework_id.clone()),
        edition: Set(inputs.edition.clone()),
        document_json: Set(inputs.framework_json.clone()),
    }
    .insert(&txn)
    .await?;
    insert_chunked(
        &txn,
        inputs
            .org_units
            .iter()
            .map(|(u, rev)| org_unit::ActiveModel {
                id: Set(u.id.to_string()),
                unit_json: Set(serde_json::to_string(u).unwrap_or_default()),
                revision: Set(*rev as i64),
            })
            .collect(),
    )
    .await?;
    insert_chunked(
        &txn,
        inputs
            .facts
            .statistics
            .iter()
            .map(|s| stat_fact::ActiveModel {
                org_unit: Set(s.org_unit.to_string()),
                metric: Set(s.metric.to_string()),
                period: Set(s.period),
                value: Set(s.value),
                version: Set(s.version as i64),
                ..Default::default()
            })
            .collect(),
    )
    .await?;
    insert_chunked(
        &txn,
        inputs
            .facts
            .surveys
            .iter()
            .map(|t| tally_fact::ActiveModel {
                org_unit: Set(t.org_unit.to_string()),
                question: Set(t.question.to_string()),
                period: Set(t.period),
                responses: Set(t.responses as i64),
                positive: Set(t.positive as i64),
                ..Default::default()
            })
            .collect(),
    )
    .await?;
    insert_chunked(
        &txn,
        inputs
            .facts
            .evidence
            .iter()
            .map(|e| {
                let (state, grade) = state_name(e.state);
                evidence_fact::ActiveModel {
                    id: Set(e.id.clone()),
                    criterion: Set(e.criterion.to_string()),
                    unit: Set(e.unit.to_string()),
                    org_unit: Set(e.org_unit.to_string()),
                    material: Set(e.material.clone()),
                    state: Set(state.to_string()),
                    grade: Set(grade),
                    version: Set(e.version as i64),
                }
            })
            .collect(),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The read model as stored, if it has ever been filled.
pub async fn load(
    db: &DatabaseConnection,
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
            source: String::new(),
            version: 0,
        });
    }
    for m in evidence_fact::Entity::find().all(db).await? {
        facts.evidence.push(EvidenceFact {
            id: m.id.clone(),
            criterion: ItemCode::parse(&m.criterion).map_err(|_| bad("criterion"))?,
            unit: UnitId::parse(&m.unit).map_err(|_| bad("unit"))?,
            org_unit: OrgUnitId::parse(&m.org_unit).map_err(|_| bad("evidence org unit"))?,
            material: m.material,
            state: match m.state.as_str() {
                "accepted" => EvidenceState::Accepted {
                    grade: m.grade.clamp(0, 100) as u8,
                },
                "returned" => EvidenceState::Returned,
                _ => EvidenceState::Submitted,
            },
            version: m.version as u64,
            title: String::new(),
        });
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

/// Stores the current scores (replacing the previous ones) and records the run.
pub async fn save_scores(db: &DatabaseConnection, scored: &Scored) -> Result<i64, ApiError> {
    let total = scored.total();
    let txn = db.begin().await?;
    cell::Entity::delete_many().exec(&txn).await?;
    insert_chunked(
        &txn,
        scored
            .cells()
            .into_iter()
            .map(|(org, item, c, p)| cell::ActiveModel {
                org_unit: Set(org),
                item: Set(item),
                confirmed_milli: Set(c.milli()),
                projected_milli: Set(p.milli()),
                ..Default::default()
            })
            .collect(),
    )
    .await?;
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
