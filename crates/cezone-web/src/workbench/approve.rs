//! 审核报表 Approving returns: the statistics waiting for the caller's decision — a town its
//! communities' figures, the responsible department the towns' and communities' figures for its
//! metrics, the evaluation office anyone's (never one's own filing) — grouped by org unit,
//! accepted or returned (with a comment) one by one, as a selection, or a whole return at once;
//! and the survey batches the towns filed, for the department responsible for the criteria the
//! survey feeds or the office, each accepted or returned whole.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use cezone_client::files::returns;
use cezone_domain::access::{self, Action};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::surveys::v1 as psv;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Names, PageError, PageResult, Workbench, finish, here};
use crate::api::Service;

/// Pages of pending statistics read for one screen (1,000 each).
const MAX_PAGES: usize = 10;

#[derive(Debug, Default, Deserialize)]
pub struct Shown {
    #[serde(default)]
    decided: Option<usize>,
}

/// Refuses a person whose role decides on no statistic.
fn may_approve(caller: &Caller) -> Result<(), PageError> {
    use cezone_domain::access::Role::*;
    match caller.principal().role {
        Town | ResponsibleUnit | EvaluationOffice => Ok(()),
        _ => Err(PageError::Forbidden(format!(
            "{} may not review statistics",
            caller.principal().describe()
        ))),
    }
}

/// The pending figures `caller` may decide on, by the rule the surveys service applies.
async fn waiting(
    wb: &Workbench,
    caller: &Caller,
    names: &Names,
) -> Result<Vec<psv::StatisticReturn>, PageError> {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page: psv::ListStatisticsResponse = wb
            .gateway()
            .unary(
                Service::Surveys,
                "ListStatistics",
                &caller.auth,
                psv::ListStatisticsRequest {
                    period: wb.config().period,
                    state: psv::StatisticState::Pending as i32,
                    page: Some(PageRequest {
                        page_size: 1000,
                        page_token: token.clone(),
                    }),
                    ..Default::default()
                },
            )
            .await?;
        for s in page.statistics {
            let (Ok(org), Ok(metric)) = (
                cezone_domain::org::OrgUnitId::parse(&s.org_unit),
                cezone_domain::rules::MetricId::parse(&s.metric),
            ) else {
                continue;
            };
            let responsible = cezone_domain::obligations::responsible_for(&names.fw, &s.metric);
            let action = Action::ReviewStatistic {
                org_unit: &org,
                metric: &metric,
                responsible: &responsible,
                filed_by: &s.filed_by,
            };
            if access::authorize(caller.principal(), &action, Some(&names.tree)).is_ok() {
                out.push(s);
            }
        }
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// The pending survey batches `caller` may decide on, by the rule the surveys service applies.
async fn waiting_batches(
    wb: &Workbench,
    caller: &Caller,
    names: &Names,
) -> Result<Vec<Value>, PageError> {
    let list: psv::ListSurveyBatchesResponse = wb
        .gateway()
        .unary(
            Service::Surveys,
            "ListSurveyBatches",
            &caller.auth,
            psv::ListSurveyBatchesRequest {
                survey_id: String::new(),
                state: psv::BatchState::Pending as i32,
            },
        )
        .await?;
    let mut responsible: BTreeMap<String, Vec<cezone_domain::units::UnitId>> = BTreeMap::new();
    let mut out = Vec::new();
    for b in list.batches {
        if !responsible.contains_key(&b.survey_id) {
            let survey: psv::Survey = wb
                .gateway()
                .unary(
                    Service::Surveys,
                    "GetSurvey",
                    &caller.auth,
                    psv::GetSurveyRequest {
                        id: b.survey_id.clone(),
                    },
                )
                .await?;
            let questions: Vec<&str> = survey.questions.iter().map(|q| q.id.as_str()).collect();
            responsible.insert(
                b.survey_id.clone(),
                cezone_domain::obligations::responsible_for_questions(&names.fw, &questions),
            );
        }
        let action = Action::ReviewSurveyBatch {
            survey: &b.survey_id,
            responsible: &responsible[&b.survey_id],
            filed_by: &b.filed_by,
        };
        if access::authorize(caller.principal(), &action, Some(&names.tree)).is_ok() {
            out.push(json!({
                "id": b.id, "survey": b.survey_id, "responses": b.responses,
                "filed_by": b.filed_by, "received_at": wb.local(&b.received_at),
            }));
        }
    }
    Ok(out)
}

async fn show(
    wb: &Workbench,
    caller: &Caller,
    decided: Option<usize>,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let names = wb.names().await?;
    let pending = waiting(wb, caller, &names).await?;
    let batches = waiting_batches(wb, caller, &names).await?;
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in &pending {
        let def = names
            .fw
            .catalog
            .metrics
            .iter()
            .find(|m| m.id.as_str() == s.metric);
        groups.entry(s.org_unit.clone()).or_default().push(json!({
            "key": format!("k:{}:{}:{}", s.org_unit, s.metric, s.version),
            "metric": s.metric,
            "metric_name": def.map(|d| d.name.clone()).unwrap_or_else(|| s.metric.clone()),
            "unit": def.map(|d| returns::unit_label(d.unit)).unwrap_or_default(),
            "value": def.map_or(s.value.to_string(), |d| returns::shown(d, s.value)),
            "version": s.version,
            "filed_by": s.filed_by,
            "filed_at": wb.local(&s.filed_at),
        }));
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(org, rows)| json!({ "org_unit": org, "org_unit_name": names.org(&org), "rows": rows }))
        .collect();
    let mut res = wb.page(
        caller,
        "approve.html",
        json!({
            "groups": groups, "count": pending.len(), "decided": decided,
            "error": error, "period": wb.config().period, "batches": batches,
        }),
    );
    *res.status_mut() = status;
    Ok(res)
}

pub async fn page(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Shown>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        may_approve(&caller)?;
        show(&wb, &caller, q.decided, StatusCode::OK, None).await
    }
    .await;
    finish(&wb, r)
}

/// The decision as the surveys service takes it: named figures (`k:org:metric:version`
/// fields) or a whole return (`return_of`), accept or return with a comment.
/// A form field, trimmed; empty when absent.
fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// After a decision: back to the screen saying how many were decided, or the screen again
/// with the service's refusal on it.
async fn after_decision<T>(
    wb: &Workbench,
    caller: &Caller,
    outcome: Result<T, crate::api::errors::GatewayError>,
    decided: impl FnOnce(&T) -> usize,
) -> PageResult {
    match outcome {
        Ok(r) => Ok(
            Redirect::to(&format!("/work/statistics/review?decided={}", decided(&r)))
                .into_response(),
        ),
        Err(e) => {
            let (status, detail) = PageError::on_form(e)?;
            show(
                wb,
                caller,
                None,
                status,
                Some(format!("未作决定 Nothing was decided: {detail}")),
            )
            .await
        }
    }
}

fn parse(
    fields: &[(String, String)],
    period: i32,
) -> Result<psv::ReviewStatisticsRequest, PageError> {
    let field = |name: &str| field(fields, name);
    let decision = match field("decision").as_str() {
        "accept" => psv::StatisticDecision::Accept,
        "return" => psv::StatisticDecision::Return,
        other => {
            return Err(PageError::bad(
                "decision",
                format!("'{other}' is not a decision (accept or return)"),
            ));
        }
    };
    let comment = field("comment");
    if decision == psv::StatisticDecision::Return && comment.is_empty() {
        return Err(PageError::bad(
            "comment",
            "say what is wrong and what to file instead",
        ));
    }
    let mut keys = Vec::new();
    for (k, _) in fields {
        let Some(rest) = k.strip_prefix("k:") else {
            continue;
        };
        let mut parts = rest.rsplitn(2, ':');
        let (Some(version), Some(org_metric)) = (parts.next(), parts.next()) else {
            return Err(PageError::bad(
                "statistics",
                format!("'{k}' is not a figure"),
            ));
        };
        let (Some((org, metric)), Ok(version)) = (org_metric.split_once(':'), version.parse())
        else {
            return Err(PageError::bad(
                "statistics",
                format!("'{k}' is not a figure"),
            ));
        };
        keys.push(psv::StatisticKey {
            org_unit: org.into(),
            metric: metric.into(),
            period,
            version,
        });
    }
    let return_of = field("return_of");
    if keys.is_empty() && return_of.is_empty() {
        return Err(PageError::bad(
            "statistics",
            "choose the figures to decide on, or a whole return",
        ));
    }
    Ok(psv::ReviewStatisticsRequest {
        statistics: if return_of.is_empty() {
            keys
        } else {
            Vec::new()
        },
        period: if return_of.is_empty() { 0 } else { period },
        return_of,
        decision: decision as i32,
        comment,
        ..Default::default()
    })
}

pub async fn decide(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/statistics/review").await?;
        let token = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        caller.check_form(token)?;
        may_approve(&caller)?;
        let request = match parse(&fields, wb.config().period) {
            Ok(r) => r,
            Err(e) => {
                let (status, _, detail) = e.explain();
                return show(&wb, &caller, None, status, Some(detail)).await;
            }
        };
        let decided: Result<psv::ReviewStatisticsResponse, _> = wb
            .gateway()
            .unary(Service::Surveys, "ReviewStatistics", &caller.auth, request)
            .await;
        after_decision(&wb, &caller, decided, |r| r.statistics.len()).await
    }
    .await;
    finish(&wb, r)
}

/// A survey batch accepted or returned (with a comment), whole.
pub async fn decide_batch(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/statistics/review").await?;
        let field = |name: &str| field(&fields, name);
        caller.check_form(Some(&field("csrf")))?;
        may_approve(&caller)?;
        let accept = match field("decision").as_str() {
            "accept" => true,
            "return" => false,
            other => {
                return show(
                    &wb,
                    &caller,
                    None,
                    StatusCode::BAD_REQUEST,
                    Some(format!(
                        "decision: '{other}' is not a decision (accept or return)"
                    )),
                )
                .await;
            }
        };
        let decided: Result<psv::SurveyBatch, _> = wb
            .gateway()
            .unary(
                Service::Surveys,
                "ReviewSurveyBatch",
                &caller.auth,
                psv::ReviewSurveyBatchRequest {
                    batch_id: field("batch"),
                    accept,
                    comment: field("comment"),
                },
            )
            .await;
        after_decision(&wb, &caller, decided, |_| 1).await
    }
    .await;
    finish(&wb, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decisions_name_their_figures_or_a_whole_return() {
        let r = parse(
            &f(&[
                ("decision", "accept"),
                ("k:nanhai.t0000:staff_fulltime:3", "on"),
            ]),
            2013,
        )
        .unwrap();
        assert_eq!(r.statistics.len(), 1);
        assert_eq!(r.statistics[0].org_unit, "nanhai.t0000");
        assert_eq!(r.statistics[0].metric, "staff_fulltime");
        assert_eq!(r.statistics[0].version, 3);
        let r = parse(
            &f(&[("decision", "accept"), ("return_of", "nanhai.t0000")]),
            2013,
        )
        .unwrap();
        assert_eq!((r.return_of.as_str(), r.period), ("nanhai.t0000", 2013));
        assert!(matches!(
            parse(&f(&[("decision", "return"), ("return_of", "x")]), 2013),
            Err(PageError::Bad { field, .. }) if field == "comment"
        ));
        assert!(matches!(
            parse(&f(&[("decision", "accept")]), 2013),
            Err(PageError::Bad { field, .. }) if field == "statistics"
        ));
        assert!(matches!(
            parse(&f(&[("decision", "maybe")]), 2013),
            Err(PageError::Bad { field, .. }) if field == "decision"
        ));
    }
}
