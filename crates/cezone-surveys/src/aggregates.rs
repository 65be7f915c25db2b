//! Survey aggregates per org unit: counts, population-weighted rates, Wilson intervals on the
//! effective sample size, for the unit and (optionally) each child.

use cezone_domain::engine::{Aggregates, Segment};
use cezone_domain::facts::SurveyTally;
use cezone_domain::org::{OrgIdx, OrgTree, OrgUnitId};
use cezone_domain::rules::QuestionId;
use cezone_platform::ApiError;
use cezone_proto::surveys::v1 as ps;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::tally;

/// Tallies summed over surveys, per (org unit, question, period).
pub async fn tallies(db: &DatabaseConnection, period: i32) -> Result<Vec<SurveyTally>, ApiError> {
    let mut q = tally::Entity::find();
    if period != 0 {
        q = q.filter(tally::Column::Period.eq(period));
    }
    let rows = q
        .order_by_asc(tally::Column::OrgUnit)
        .order_by_asc(tally::Column::Question)
        .order_by_asc(tally::Column::Period)
        .all(db)
        .await?;
    let mut out: Vec<SurveyTally> = Vec::new();
    for r in rows {
        let (Ok(org_unit), Ok(question)) = (
            OrgUnitId::parse(&r.org_unit),
            QuestionId::parse(&r.question),
        ) else {
            continue;
        };
        match out.last_mut() {
            Some(t) if t.org_unit == org_unit && t.question == question && t.period == r.period => {
                t.responses += r.responses as u64;
                t.positive += r.positive as u64;
            }
            _ => out.push(SurveyTally {
                org_unit,
                question,
                period: r.period,
                responses: r.responses as u64,
                positive: r.positive as u64,
                source: String::new(),
                version: 0,
            }),
        }
    }
    Ok(out)
}

fn org_aggregate(
    agg: &Aggregates,
    tree: &OrgTree,
    node: OrgIdx,
    period: i32,
    questions: &[QuestionId],
    target: f64,
) -> ps::OrgAggregate {
    let unit = tree.unit(node);
    ps::OrgAggregate {
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
                ps::QuestionAggregate {
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
    r: &ps::GetAggregatesRequest,
) -> Result<ps::Aggregates, ApiError> {
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
    Ok(ps::Aggregates {
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
