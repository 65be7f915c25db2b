//! Survey aggregates per org unit: counts, population-weighted rates, Wilson intervals on the
//! effective sample size, for the unit and (optionally) each child.

use cezone_domain::engine::{Aggregates, Segment};
use cezone_domain::facts::SurveyTally;
use cezone_domain::org::{OrgIdx, OrgTree, OrgUnitId};
use cezone_domain::rules::QuestionId;
use cezone_platform::ApiError;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::tally;

/// Tallies per survey, org unit, question and period, with their versions.
pub async fn tallies(db: &DatabaseConnection, period: i32) -> Result<Vec<SurveyTally>, ApiError> {
    let mut q = tally::Entity::find();
    if period != 0 {
        q = q.filter(tally::Column::Period.eq(period));
    }
    let rows = q
        .order_by_asc(tally::Column::OrgUnit)
        .order_by_asc(tally::Column::Question)
        .order_by_asc(tally::Column::Period)
        .order_by_asc(tally::Column::SurveyId)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(SurveyTally {
                org_unit: OrgUnitId::parse(&r.org_unit).ok()?,
                question: QuestionId::parse(&r.question).ok()?,
                period: r.period,
                responses: r.responses as u64,
                positive: r.positive as u64,
                source: r.survey_id,
                version: r.version as u64,
                pending_responses: r.pending_responses as u64,
                pending_positive: r.pending_positive as u64,
            })
        })
        .collect())
}

fn org_aggregate(
    agg: &Aggregates,
    tree: &OrgTree,
    node: OrgIdx,
    period: i32,
    questions: &[QuestionId],
    target: f64,
) -> psv::OrgAggregate {
    let unit = tree.unit(node);
    psv::OrgAggregate {
        org_unit: unit.id.to_string(),
        name: unit.name.clone(),
        population: agg.population(period, Segment::All, node),
        questions: questions
            .iter()
            .map(|q| {
                let wr = agg
                    .survey(q, period)
                    .map(|s| s.sum[Segment::All as usize][node])
                    .unwrap_or_default();
                let (lo, hi) = wr.interval().unwrap_or((0.0, 1.0));
                psv::QuestionAggregate {
                    question: q.to_string(),
                    responses: wr.responses,
                    positive: wr.positive,
                    rate: wr.rate(),
                    wilson_low: lo,
                    wilson_high: hi,
                    effective_n: wr.effective_n(),
                    straddles_target: target > 0.0
                        && wr.rate().is_some()
                        && lo < target
                        && target < hi,
                }
            })
            .collect(),
    }
}

pub fn compute(
    tree: &OrgTree,
    all: &[SurveyTally],
    r: &psv::GetAggregatesRequest,
) -> Result<psv::Aggregates, ApiError> {
    if !(1900..=2200).contains(&r.period) {
        return Err(ApiError::invalid(
            "period",
            format!("{} is not a plausible year", r.period),
        ));
    }
    if !(0.0..=1.0).contains(&r.target) {
        return Err(ApiError::invalid(
            "target",
            format!("{} is not a rate between 0 and 1", r.target),
        ));
    }
    let node = if r.org_unit.is_empty() {
        tree.root()
    } else {
        let id = OrgUnitId::parse(&r.org_unit).map_err(|e| ApiError::invalid("org_unit", e))?;
        tree.find(&id).ok_or_else(|| {
            ApiError::invalid("org_unit", format!("'{id}' is not an existing org unit"))
        })?
    };
    let agg = Aggregates::build(tree, &[], all, &[r.period]);
    let mut questions: Vec<QuestionId> = all
        .iter()
        .filter(|t| t.period == r.period)
        .map(|t| t.question.clone())
        .collect();
    questions.sort();
    questions.dedup();
    Ok(psv::Aggregates {
        total: Some(org_aggregate(
            &agg, tree, node, r.period, &questions, r.target,
        )),
        children: if r.include_children {
            tree.children(node)
                .iter()
                .map(|&c| org_aggregate(&agg, tree, c, r.period, &questions, r.target))
                .collect()
        } else {
            Vec::new()
        },
    })
}
