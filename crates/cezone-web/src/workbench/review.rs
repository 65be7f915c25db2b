//! 审核 Review: the evaluation office's queue of evidence, filtered by criterion, unit, org unit
//! and state; one record at a time with its document shown in the page, accepted with a grade
//! or returned with a comment, then on to the next one in the queue. Keys: j/k move through the
//! queue, a and r go to the grade and the comment, n opens the next record.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::evidence::{get_evidence, record_context, review_state};
use super::signin::encode_next;
use super::{Caller, PageError, PageResult, Workbench, finish, here, must_review};
use crate::api::Service;

/// The queue's filters, carried from the queue to each record and back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default)]
    criterion: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    org_unit: String,
    /// pending (default), returned, accepted or all.
    #[serde(default)]
    state: String,
    #[serde(default)]
    page: String,
}

impl Filters {
    fn state(&self) -> Result<pe::ReviewState, PageError> {
        match self.state.as_str() {
            "" | "pending" => Ok(pe::ReviewState::Submitted),
            "returned" => Ok(pe::ReviewState::Returned),
            "accepted" => Ok(pe::ReviewState::Accepted),
            "all" => Ok(pe::ReviewState::Unspecified),
            other => Err(PageError::bad(
                "state",
                format!("'{other}' is not a state (pending, returned, accepted or all)"),
            )),
        }
    }

    /// The query string that reopens the queue as it is (without the page).
    fn query(&self) -> String {
        [
            ("criterion", &self.criterion),
            ("unit", &self.unit),
            ("org_unit", &self.org_unit),
            ("state", &self.state),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode_next(v)))
        .collect::<Vec<_>>()
        .join("&")
    }

    async fn list(
        &self,
        wb: &Workbench,
        caller: &Caller,
        page_size: i32,
    ) -> Result<pe::ListEvidenceResponse, PageError> {
        Ok(wb
            .gateway()
            .unary(
                Service::Evidence,
                "ListEvidence",
                &caller.auth,
                pe::ListEvidenceRequest {
                    framework_id: wb.config().framework_id.clone(),
                    criterion: self.criterion.clone(),
                    org_unit: self.org_unit.clone(),
                    responsible_unit: self.unit.clone(),
                    state: self.state()? as i32,
                    page: Some(PageRequest {
                        page_size,
                        page_token: self.page.clone(),
                    }),
                },
            )
            .await?)
    }
}

pub async fn queue(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Response {
    let r = build_queue(&wb, &headers, &uri, f).await;
    finish(&wb, r)
}

async fn build_queue(wb: &Workbench, headers: &HeaderMap, uri: &Uri, f: Filters) -> PageResult {
    let caller = wb.caller(headers, &here(uri)).await?;
    must_review(&caller)?;
    let names = wb.names().await?;
    let list = f.list(wb, &caller, 50).await?;
    let query = f.query();
    let rows: Vec<Value> = list
        .evidence
        .iter()
        .map(|e| {
            let v = e.current.clone().unwrap_or_default();
            let (class, label) = review_state(v.state);
            let title = names
                .item(&e.criterion)
                .map(|i| i.title.clone())
                .unwrap_or_default();
            json!({
                "id": e.id, "criterion": e.criterion, "criterion_title": title,
                "title": e.title, "org_unit_name": names.org(&e.org_unit),
                "unit_name": names.unit(&e.responsible_unit),
                "file_name": v.file_name, "version": v.version, "state": class, "state_label": label,
                "submitted_at": wb.local(&v.submitted_at),
                "href": format!("/work/review/{}?{query}", e.id),
            })
        })
        .collect();
    let units: Vec<Value> = names
        .fw
        .units
        .units
        .iter()
        .map(|u| json!({"id": u.id.to_string(), "name": u.name}))
        .collect();
    let next = list
        .page
        .as_ref()
        .map(|p| p.next_page_token.clone())
        .filter(|t| !t.is_empty())
        .map(|t| format!("/work/review?{query}&page={}", encode_next(&t)));
    let ctx = json!({
        "rows": rows, "filters": f, "units": units, "next_page": next,
        "state": if f.state.is_empty() { "pending" } else { f.state.as_str() },
    });
    Ok(wb.page(&caller, "queue.html", ctx))
}

pub async fn item(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(f): Query<Filters>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        must_review(&caller)?;
        show_item(&wb, &caller, &id, &f, None).await
    }
    .await;
    finish(&wb, r)
}

async fn show_item(
    wb: &Workbench,
    caller: &Caller,
    id: &str,
    f: &Filters,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let record = get_evidence(wb, caller, id).await?;
    let mut ctx = record_context(wb, &record).await?;
    ctx["pending"] = json!(
        record
            .current
            .as_ref()
            .is_some_and(|v| v.state == pe::ReviewState::Submitted as i32)
    );
    ctx["queue"] = json!(format!("/work/review?{}", f.query()));
    ctx["filters"] = json!(f);
    ctx["next"] = json!(next_in_queue(wb, caller, f, id).await?);
    let status = match error {
        Some((status, message)) => {
            ctx["error"] = json!(message);
            status
        }
        None => StatusCode::OK,
    };
    let mut res = wb.page(caller, "review.html", ctx);
    *res.status_mut() = status;
    Ok(res)
}

/// The first pending record of the queue other than `id`, as a link.
async fn next_in_queue(
    wb: &Workbench,
    caller: &Caller,
    f: &Filters,
    id: &str,
) -> Result<Option<String>, PageError> {
    let pending = Filters {
        state: "pending".into(),
        page: String::new(),
        ..f.clone()
    };
    let list = pending.list(wb, caller, 2).await?;
    Ok(list
        .evidence
        .iter()
        .find(|e| e.id != id)
        .map(|e| format!("/work/review/{}?{}", e.id, f.query())))
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    comment: String,
    #[serde(flatten)]
    filters: Filters,
}

pub async fn decide(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(d): Form<Decision>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &format!("/work/review/{id}")).await?;
        caller.check_form(d.csrf.as_deref())?;
        must_review(&caller)?;
        let f = &d.filters;
        let request = match parse(&d) {
            Ok(r) => r,
            Err(e) => {
                let (status, _, detail) = e.explain();
                return show_item(&wb, &caller, &id, f, Some((status, detail))).await;
            }
        };
        let reviewed: Result<pe::Evidence, _> = wb
            .gateway()
            .unary(
                Service::Evidence,
                "Review",
                &caller.auth,
                pe::ReviewRequest {
                    id: id.clone(),
                    ..request
                },
            )
            .await;
        if let Err(e) = reviewed {
            let (status, detail) = PageError::on_form(e)?;
            return show_item(&wb, &caller, &id, f, Some((status, detail))).await;
        }
        let to = next_in_queue(&wb, &caller, f, &id)
            .await?
            .unwrap_or_else(|| format!("/work/review?{}", f.query()));
        Ok(Redirect::to(&to).into_response())
    }
    .await;
    finish(&wb, r)
}

/// The decision as the evidence service takes it; each bad field named.
fn parse(d: &Decision) -> Result<pe::ReviewRequest, PageError> {
    match d.decision.as_str() {
        "accept" => {
            let grade: u32 = d.grade.trim().parse().map_err(|_| {
                PageError::bad(
                    "grade",
                    format!("'{}' is not a grade (a whole number 0–100)", d.grade),
                )
            })?;
            if grade > 100 {
                return Err(PageError::bad("grade", format!("{grade} is more than 100")));
            }
            Ok(pe::ReviewRequest {
                decision: pe::Decision::Accept as i32,
                grade,
                ..Default::default()
            })
        }
        "return" => {
            let comment = d.comment.trim();
            if comment.is_empty() {
                return Err(PageError::bad(
                    "comment",
                    "say what is wrong, so the unit can put it right",
                ));
            }
            Ok(pe::ReviewRequest {
                decision: pe::Decision::Return as i32,
                comment: comment.to_string(),
                ..Default::default()
            })
        }
        other => Err(PageError::bad(
            "decision",
            format!("'{other}' is not a decision (accept or return)"),
        )),
    }
}
