//! 得分说明 Explain: one criterion's (or group's) score at one org unit, as the scoring service
//! explains it — the rule and the document's words it rests on, the target, the facts read, the
//! evidence slots with their documents, the survey rates, the points lost and why, and the
//! office's choices (口径) the rule makes. Reached from the scoreboard and from the workbench.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use cezone_proto::scoring::v1 as ps;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageError, Workbench, finish, here};
use crate::api::Service;

#[derive(Debug, Default, Deserialize)]
pub struct At {
    /// Empty: the district.
    #[serde(default)]
    org_unit: String,
}

/// Chinese first, English beside it, for an evidence slot's status.
fn slot_status(s: &str) -> &'static str {
    match s {
        "accepted" => "已通过 Accepted",
        "pending" => "待审核 Pending",
        "returned" => "已退回 Returned",
        "missing" => "未提交 Missing",
        _ => "未知 Unknown",
    }
}

pub async fn page(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Path(code): Path<String>,
    Query(at): Query<At>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        if cezone_domain::code::ItemCode::parse(&code).is_err() {
            return Err(PageError::NotFound(format!("'{code}' is not an item code")));
        }
        let scores: ps::OrgUnitScores = wb
            .gateway()
            .unary(
                Service::Scoring,
                "GetScores",
                &caller.auth,
                ps::GetScoresRequest {
                    org_unit: at.org_unit.clone(),
                    items: vec![code.clone()],
                    explain: true,
                },
            )
            .await?;
        let item = scores
            .items
            .iter()
            .find(|i| i.code == code)
            .ok_or_else(|| PageError::NotFound(format!("no item {code} in the framework")))?;
        let mut x: Value = serde_json::from_str(&item.explanation_json).unwrap_or(Value::Null);
        if let Some(slots) = x
            .pointer_mut("/rule/evidence")
            .and_then(Value::as_array_mut)
        {
            for s in slots {
                let label = slot_status(s["status"].as_str().unwrap_or_default());
                s["status_label"] = json!(label);
            }
        }
        let computed_at = wb.local(&scores.computed_at);
        let ctx = json!({
            "code": item.code, "title": item.title, "key": item.key, "leaf": item.leaf,
            "points": item.points, "lost": item.lost,
            "confirmed": item.score.as_ref().map(|s| s.confirmed.clone()),
            "projected": item.score.as_ref().map(|s| s.projected.clone()),
            "org_unit": scores.org_unit, "org_unit_name": scores.name,
            "computed_at": computed_at,
            "x": x,
            "pretty": serde_json::to_string_pretty(&x).unwrap_or_default(),
        });
        Ok(wb.page(&caller, "explain.html", ctx))
    }
    .await;
    finish(&wb, r)
}
