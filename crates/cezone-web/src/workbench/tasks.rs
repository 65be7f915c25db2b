//! 我的任务 My obligations: for a department or a town, every criterion it answers for with the
//! materials the table asks for, each slot's state (missing, pending, returned with the
//! reviewer's comment, accepted), the deadline and what is late, ★ criteria first; and the
//! statistics its return must hold. The evaluation office, inspectors and district IT see every
//! unit's counts.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use cezone_domain::access::Role;
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::surveys::v1 as psv;
use serde_json::{Value, json};

use super::{PageResult, Workbench, finish, here};
use crate::api::Service;

/// Chinese first, English beside it; the CSS class names the state.
fn slot_state(state: i32) -> (&'static str, &'static str) {
    match pe::SlotState::try_from(state).unwrap_or(pe::SlotState::Unspecified) {
        pe::SlotState::Missing => ("missing", "未提交 Missing"),
        pe::SlotState::Returned => ("returned", "已退回 Returned"),
        pe::SlotState::Submitted => ("pending", "待审核 Pending"),
        pe::SlotState::Accepted => ("accepted", "已通过 Accepted"),
        pe::SlotState::Unspecified => ("unknown", "未知 Unknown"),
    }
}

pub(super) fn standing(s: i32) -> (&'static str, &'static str) {
    match psv::Standing::try_from(s).unwrap_or(psv::Standing::Unspecified) {
        psv::Standing::Missing => ("missing", "未报送 Missing"),
        psv::Standing::Returned => ("returned", "已退回 Returned"),
        psv::Standing::Pending => ("pending", "待审核 Pending"),
        psv::Standing::Accepted => ("accepted", "已通过 Accepted"),
        psv::Standing::Unspecified => ("unknown", "未知 Unknown"),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct Shown {
    /// Files just uploaded (after an upload of several).
    #[serde(default)]
    uploaded: Option<usize>,
}

pub async fn page(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Query(shown): axum::extract::Query<Shown>,
) -> Response {
    let r = build(&wb, &headers, &uri, shown.uploaded).await;
    finish(&wb, r)
}

async fn build(
    wb: &Workbench,
    headers: &HeaderMap,
    uri: &Uri,
    uploaded: Option<usize>,
) -> PageResult {
    let caller = wb.caller(headers, &here(uri)).await?;
    let p = caller.principal().clone();
    let c = wb.config().clone();
    let names = wb.names().await?;
    let org_name = |id: &str| names.org(id);
    let (unit, org_unit) = caller.scope();
    let completeness: pe::Completeness = wb
        .gateway()
        .unary(
            Service::Evidence,
            "GetCompleteness",
            &caller.auth,
            pe::GetCompletenessRequest {
                framework_id: c.framework_id.clone(),
                edition: c.edition.clone(),
                responsible_unit: unit.clone(),
                org_unit,
                ..Default::default()
            },
        )
        .await?;
    let own = matches!(p.role, Role::Town | Role::ResponsibleUnit);
    // The scheduler's reminders to this unit (a town its own), newest first; the page still
    // shows without them when the scheduler is away.
    let reminders: Result<cezone_proto::scheduler::v1::ListNotificationsResponse, _> = wb
        .gateway()
        .unary(
            Service::Scheduler,
            "ListNotifications",
            &caller.auth,
            cezone_proto::scheduler::v1::ListNotificationsRequest { limit: 5 },
        )
        .await;
    let reminders: Vec<Value> = match reminders {
        Ok(r) if own => r
            .notifications
            .iter()
            .map(|n| json!({ "text": n.text, "at": wb.local(&n.created_at) }))
            .collect(),
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::warn!(service = "web", error = %e, "reminders unavailable");
            Vec::new()
        }
    };
    let mut ctx = json!({
        "deadline": completeness.deadline,
        "as_of": completeness.as_of,
        "own": own,
        "uploaded": uploaded,
        "reminders": reminders,
    });
    if !own {
        let units: Vec<Value> = completeness
            .units
            .iter()
            .map(|u| {
                json!({
                    "unit": u.responsible_unit, "name": u.name, "org_unit": org_name(&u.org_unit),
                    "required": u.required, "accepted": u.accepted, "submitted": u.submitted,
                    "missing": u.missing, "late": u.late,
                })
            })
            .collect();
        ctx["units"] = json!(units);
        return Ok(wb.page(&caller, "tasks.html", ctx));
    }

    // The reviewers' comments on returned records.
    let returned: pe::ListEvidenceResponse = wb
        .gateway()
        .unary(
            Service::Evidence,
            "ListEvidence",
            &caller.auth,
            pe::ListEvidenceRequest {
                framework_id: c.framework_id.clone(),
                responsible_unit: unit.clone(),
                state: pe::ReviewState::Returned as i32,
                page: Some(PageRequest {
                    page_size: 1000,
                    page_token: String::new(),
                }),
                ..Default::default()
            },
        )
        .await?;
    let by_id: HashMap<&str, &pe::Evidence> = returned
        .evidence
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();

    let mut rows = Vec::new();
    for u in &completeness.units {
        for s in &u.slots {
            let item = names.item(&s.criterion);
            let (class, label) = slot_state(s.state);
            let latest = s.evidence_ids.last().cloned().unwrap_or_default();
            let review = by_id.get(latest.as_str()).and_then(|e| e.current.as_ref());
            rows.push(json!({
                "criterion": s.criterion,
                "title": item.map(|i| i.title.clone()).unwrap_or_default(),
                "key": item.is_some_and(|i| i.key),
                "materials": item.map(|i| i.materials.clone()).unwrap_or_default(),
                "org_unit": s.org_unit,
                "org_unit_name": org_name(&s.org_unit),
                "unit": s.responsible_unit,
                "state": class,
                "state_label": label,
                "late": s.late,
                "evidence": latest,
                "count": s.evidence_ids.len(),
                "comment": review.map(|v| v.comment.clone()).unwrap_or_default(),
                "reviewed_by": review.map(|v| v.reviewed_by.clone()).unwrap_or_default(),
                "reviewed_at": review.map(|v| wb.local(&v.reviewed_at)).unwrap_or_default(),
            }));
        }
    }
    // ★ criteria first, then by code as the table orders them.
    rows.sort_by(|a, b| {
        let key = |r: &Value| !r["key"].as_bool().unwrap_or(false);
        let code = |r: &Value| {
            r["criterion"]
                .as_str()
                .unwrap_or_default()
                .split('.')
                .map(|s| s.parse::<u32>().unwrap_or(u32::MAX))
                .collect::<Vec<_>>()
        };
        (key(a), code(a), a["org_unit"].as_str()).cmp(&(key(b), code(b), b["org_unit"].as_str()))
    });
    let count = |state: &str| rows.iter().filter(|r| r["state"] == state).count();
    ctx["counts"] = json!({
        "missing": count("missing"), "returned": count("returned"),
        "pending": count("pending"), "accepted": count("accepted"),
        "late": rows.iter().filter(|r| r["late"] == true).count(),
    });
    ctx["rows"] = json!(rows);
    ctx["unit_name"] = json!(names.unit(&unit));
    ctx["org_unit_name"] = json!(p.org_unit.as_ref().map(|o| org_name(o.as_str())));

    let obligations: psv::Obligations = wb
        .gateway()
        .unary(
            Service::Surveys,
            "ListObligations",
            &caller.auth,
            psv::ListObligationsRequest {
                period: c.period,
                ..Default::default()
            },
        )
        .await?;
    let stats: Vec<Value> = obligations
        .items
        .iter()
        .map(|o| {
            let (class, label) = standing(o.standing);
            json!({
                "metric": o.metric, "metric_name": o.metric_name,
                "org_unit_name": o.org_unit_name, "state": class, "state_label": label,
                "late": o.late, "value": o.value, "comment": o.review_comment,
            })
        })
        .collect();
    ctx["statistics"] = json!(stats);
    ctx["statistics_deadline"] = json!(obligations.deadline);
    ctx["period"] = json!(c.period);
    Ok(wb.page(&caller, "tasks.html", ctx))
}
