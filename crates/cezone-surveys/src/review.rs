//! Reviews of filed statistics: the level above accepts a pending figure or returns it with a
//! comment, named one by one or a whole return at once, all or nothing. A decision changes
//! the state of the filing it decides (same version); a correction is a new filing.

use std::collections::HashSet;

use cezone_bus::Envelope;
use cezone_domain::access::Principal;
use cezone_domain::facts::StatState;
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::rules::MetricId;
use cezone_platform::ApiError;
use cezone_platform::access::audit::Entry;
use cezone_platform::db::stmt;
use cezone_platform::time::now_rfc3339;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait, Value,
};

use crate::entities::statistic as st;
use crate::statistics::{MAX_PER_CALL, to_proto};

/// A review request parsed at the edge.
#[derive(Debug)]
pub struct Request {
    pub decision: StatState,
    pub comment: String,
    pub dry_run: bool,
    pub target: Target,
}

#[derive(Debug)]
pub enum Target {
    /// Each key with the version it expects (none: the latest).
    Named(Vec<(OrgUnitId, MetricId, i32, Option<i32>)>),
    /// Every pending figure under `org_unit` in `period`, of `metric` when given.
    Return {
        org_unit: OrgUnitId,
        period: i32,
        metric: Option<MetricId>,
    },
}

impl Target {
    pub fn is_named(&self) -> bool {
        matches!(self, Target::Named(_))
    }
}

/// Checks the request's own fields: which field is wrong and why.
pub fn parse(r: &psv::ReviewStatisticsRequest) -> Result<Request, ApiError> {
    let decision = match psv::StatisticDecision::try_from(r.decision) {
        Ok(psv::StatisticDecision::Accept) => StatState::Accepted,
        Ok(psv::StatisticDecision::Return) => StatState::Returned,
        _ => {
            return Err(ApiError::invalid(
                "decision",
                format!("{} is not a decision; accept (1) or return (2)", r.decision),
            ));
        }
    };
    let comment = r.comment.trim().to_string();
    if comment.chars().count() > 500 || comment.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid(
            "comment",
            "must be at most 500 printable characters",
        ));
    }
    if decision == StatState::Returned && comment.is_empty() {
        return Err(ApiError::invalid(
            "comment",
            "a return must say what is wrong and what to file instead",
        ));
    }
    let target = match (r.statistics.is_empty(), r.return_of.trim().is_empty()) {
        (false, false) => {
            return Err(ApiError::invalid(
                "return_of",
                "give either statistics or return_of, not both",
            ));
        }
        (true, true) => {
            return Err(ApiError::invalid(
                "statistics",
                "name the statistics to review, or a whole return with return_of and period",
            ));
        }
        (true, false) => {
            let org_unit = OrgUnitId::parse(r.return_of.trim())
                .map_err(|e| ApiError::invalid("return_of", e))?;
            if r.period == 0 {
                return Err(ApiError::invalid(
                    "period",
                    "a whole return is of one period (the year, e.g. 2013)",
                ));
            }
            let metric = if r.metric.trim().is_empty() {
                None
            } else {
                Some(MetricId::parse(r.metric.trim()).map_err(|e| ApiError::invalid("metric", e))?)
            };
            Target::Return {
                org_unit,
                period: r.period,
                metric,
            }
        }
        (false, true) => {
            if r.statistics.len() > MAX_PER_CALL {
                return Err(ApiError::invalid(
                    "statistics",
                    format!(
                        "{} statistics in one call; at most {MAX_PER_CALL}",
                        r.statistics.len()
                    ),
                ));
            }
            let mut keys = Vec::with_capacity(r.statistics.len());
            let mut seen = HashSet::new();
            for (i, k) in r.statistics.iter().enumerate() {
                let field = |f: &str| format!("statistics[{i}].{f}");
                let org = OrgUnitId::parse(&k.org_unit)
                    .map_err(|e| ApiError::invalid(&field("org_unit"), e))?;
                let metric = MetricId::parse(&k.metric)
                    .map_err(|e| ApiError::invalid(&field("metric"), e))?;
                if k.period == 0 {
                    return Err(ApiError::invalid(&field("period"), "is required"));
                }
                let version = match k.version {
                    0 => None,
                    v => Some(i32::try_from(v).map_err(|_| {
                        ApiError::invalid(&field("version"), format!("{v} is not a version"))
                    })?),
                };
                if !seen.insert((org.clone(), metric.clone(), k.period)) {
                    return Err(ApiError::invalid(
                        &field("org_unit"),
                        format!(
                            "{} of {org} in {} is named twice; once per call",
                            metric, k.period
                        ),
                    ));
                }
                keys.push((org, metric, k.period, version));
            }
            Target::Named(keys)
        }
    };
    Ok(Request {
        decision,
        comment,
        dry_run: r.dry_run,
        target,
    })
}

fn pending_or_why(i: usize, m: &st::Model) -> Result<(), ApiError> {
    match m.state.as_str() {
        "pending" => Ok(()),
        state => Err(ApiError::precondition(format!(
            "statistics[{i}]: {} of {} in {} (version {}) is already {state}{}",
            m.metric,
            m.org_unit,
            m.period,
            m.version,
            if m.reviewed_by.is_empty() {
                " (as filed by the evaluation office)".to_string()
            } else {
                format!(" by {} at {}", m.reviewed_by, m.reviewed_at)
            }
        ))),
    }
}

/// The filings the request decides on, in key order: named ones must each be the latest of
/// their key and pending; a whole return is every pending latest filing under the org unit.
pub async fn select(
    db: &DatabaseConnection,
    target: &Target,
    tree: &OrgTree,
) -> Result<Vec<st::Model>, ApiError> {
    let mut rows = Vec::new();
    match target {
        Target::Named(keys) => {
            for (i, (org, metric, period, version)) in keys.iter().enumerate() {
                let Some(m) = st::Entity::find()
                    .filter(st::Column::OrgUnit.eq(org.as_str()))
                    .filter(st::Column::Metric.eq(metric.as_str()))
                    .filter(st::Column::Period.eq(*period))
                    .filter(st::Column::Latest.eq(true))
                    .one(db)
                    .await?
                else {
                    return Err(ApiError::not_found(format!(
                        "statistics[{i}]: no {metric} has been filed for {org} in {period}"
                    )));
                };
                if let Some(v) = version
                    && *v != m.version
                {
                    return Err(ApiError::precondition(format!(
                        "statistics[{i}]: version {v} of {metric} for {org} in {period} is \
                         superseded by version {}",
                        m.version
                    )));
                }
                pending_or_why(i, &m)?;
                rows.push(m);
            }
        }
        Target::Return {
            org_unit,
            period,
            metric,
        } => {
            let Some(root) = tree.find(org_unit) else {
                return Err(ApiError::invalid(
                    "return_of",
                    format!("{org_unit} is not an org unit"),
                ));
            };
            let under: HashSet<&str> = tree
                .subtree(root)
                .map(|i| tree.unit(i).id.as_str())
                .collect();
            let mut q = st::Entity::find()
                .filter(st::Column::Latest.eq(true))
                .filter(st::Column::State.eq(StatState::Pending.as_str()))
                .filter(st::Column::Period.eq(*period));
            if let Some(m) = metric {
                q = q.filter(st::Column::Metric.eq(m.as_str()));
            }
            // The pending queue of a period is small next to the table; the subtree is
            // applied here rather than as a list of thousands of ids.
            rows = q
                .order_by_asc(st::Column::Id)
                .all(db)
                .await?
                .into_iter()
                .filter(|m| under.contains(m.org_unit.as_str()))
                .collect();
        }
    }
    rows.sort_by(|a, b| {
        (&a.org_unit, &a.metric, a.period).cmp(&(&b.org_unit, &b.metric, b.period))
    });
    Ok(rows)
}

/// Rows per UPDATE: well under either backend's parameter limit.
const ROWS: usize = 500;

/// Stores the decision on `rows` in one transaction with an event and an audit entry each.
/// Refused, changing nothing, when any of them was decided or corrected meanwhile.
pub async fn decide(
    db: &DatabaseConnection,
    who: &Principal,
    rows: Vec<st::Model>,
    decision: StatState,
    comment: &str,
    dry_run: bool,
) -> Result<(Vec<st::Model>, Vec<String>), ApiError> {
    let at = now_rfc3339();
    let decided: Vec<st::Model> = rows
        .into_iter()
        .map(|m| st::Model {
            state: decision.as_str().to_string(),
            reviewed_by: who.subject.clone(),
            reviewed_at: at.clone(),
            review_comment: comment.to_string(),
            ..m
        })
        .collect();
    if dry_run {
        return Ok((decided, Vec::new()));
    }
    let txn = db.begin().await?;
    let b = txn.get_database_backend();
    for chunk in decided.chunks(ROWS) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "UPDATE surveys_statistics SET state = ?, reviewed_by = ?, reviewed_at = ?, \
             review_comment = ? WHERE latest AND state = 'pending' AND id IN ({marks})"
        );
        let mut values: Vec<Value> = vec![
            decision.as_str().into(),
            who.subject.clone().into(),
            at.clone().into(),
            comment.to_string().into(),
        ];
        values.extend(chunk.iter().map(|m| Value::from(m.id)));
        let done = txn.execute(stmt(b, &sql, values)).await?;
        if done.rows_affected() != chunk.len() as u64 {
            txn.rollback().await?;
            return Err(ApiError::precondition(
                "some of these statistics were decided or corrected meanwhile; nothing was \
                 changed — list the pending ones again",
            ));
        }
    }
    let events: Vec<Envelope> = decided
        .iter()
        .map(|m| {
            let payload = cezone_proto::events::v1::StatisticReviewed {
                statistic: Some(to_proto(m)),
            };
            cezone_bus::envelope("statistic.reviewed", "surveys", &payload, None)
        })
        .collect();
    cezone_bus::outbox::enqueue_many(&txn, crate::OUTBOX, &events).await?;
    let action = match decision {
        StatState::Returned => "statistic.returned",
        _ => "statistic.accepted",
    };
    let targets: Vec<String> = decided
        .iter()
        .map(|m| format!("{}/{}/{}", m.org_unit, m.metric, m.period))
        .collect();
    let entries: Vec<Entry<'_>> = decided
        .iter()
        .zip(&targets)
        .map(|(m, target)| Entry {
            actor: who,
            action,
            target,
            details: serde_json::json!({
                "version": m.version,
                "value": m.value,
                "filed_by": m.filed_by,
                "comment": m.review_comment,
            }),
        })
        .collect();
    cezone_platform::access::audit::append_many(&txn, "surveys", &entries).await?;
    txn.commit().await?;
    Ok((decided, events.into_iter().map(|e| e.event_id).collect()))
}
