//! 办公室工具 Office tools: accounts (create, disable, enable, reset a password), the period's
//! lock and the org units unlocked for a correction, the checkpoint runs (and one started now),
//! the frozen snapshots, and the reports to download. Each section shows only for the roles
//! the services let use it; each form goes to the service with the person's own token.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use cezone_domain::access::{self, Action, Role};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::registry::v1 as pr;
use cezone_proto::scheduler::v1 as psch;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::surveys::v1 as psv;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, PageError, PageResult, Workbench, finish, here};
use crate::api::Service;

fn may(caller: &Caller, action: &Action) -> bool {
    access::authorize(caller.principal(), action, None).is_ok()
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

/// What a finished action says, by its key in the redirect.
fn done_message(key: &str) -> Option<&'static str> {
    Some(match key {
        "created" => "账号已创建 The account was created",
        "disabled" => "账号已停用 The account was disabled",
        "enabled" => "账号已启用 The account was enabled",
        "reset" => "密码已重置 The password was reset",
        "updated" => "提醒邮箱已保存 The reminder e-mail was saved",
        "locked" => "期间已锁定 The period was locked",
        "unlocked" => "已为该单位解锁 The org unit was unlocked for a correction",
        "ran" => "检查点已运行 The checkpoint run is done",
        _ => return None,
    })
}

async fn show(
    wb: &Workbench,
    caller: &Caller,
    done: Option<&'static str>,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let names = wb.names().await?;
    let period = wb.config().period;
    let mut ctx = json!({ "done": done, "error": error, "period": period });
    if may(caller, &Action::ManageAccounts) {
        ctx["accounts"] = section(accounts(wb, caller, &names).await);
    }
    if may(caller, &Action::LockPeriod) {
        ctx["lock"] = section(lock(wb, caller, &names, period).await);
    }
    if may(caller, &Action::RunSchedule) {
        ctx["runs"] = section(runs(wb, caller).await);
    }
    ctx["snapshots"] = section(snapshots(wb, caller).await);
    let mut res = wb.page(caller, "office.html", ctx);
    *res.status_mut() = status;
    Ok(res)
}

/// A section's data, or what keeps it from being shown (the rest of the page still is).
fn section(data: Result<Value, PageError>) -> Value {
    data.unwrap_or_else(|e| {
        let (_, title, detail) = e.explain();
        json!({ "unavailable": format!("{title}: {detail}") })
    })
}

/// Every account, the roles a new one may have and the units it may act as.
async fn accounts(
    wb: &Workbench,
    caller: &Caller,
    names: &super::Names,
) -> Result<Value, PageError> {
    let accounts: pr::ListAccountsResponse = wb
        .gateway()
        .unary(
            Service::Registry,
            "ListAccounts",
            &caller.auth,
            pr::ListAccountsRequest {
                page: Some(PageRequest {
                    page_size: 1000,
                    page_token: String::new(),
                }),
            },
        )
        .await?;
    let rows: Vec<Value> = accounts
        .accounts
        .iter()
        .map(|a| {
            let role = Role::parse(&a.role).ok();
            json!({
                "login": a.login, "display_name": a.display_name,
                "role_label": role.map(super::role_label).unwrap_or(a.role.as_str()),
                "unit": a.unit, "org_unit": a.org_unit,
                "org_unit_name": if a.org_unit.is_empty() { String::new() } else { names.org(&a.org_unit) },
                "active": a.active, "locked_until": wb.local(&a.locked_until),
                "last_login_at": wb.local(&a.last_login_at),
                "email": a.email,
                "is_me": a.login == caller.session.person.login,
            })
        })
        .collect();
    let roles: Vec<Value> = [
        Role::EvaluationOffice,
        Role::ResponsibleUnit,
        Role::Town,
        Role::Inspector,
        Role::DistrictAdmin,
    ]
    .iter()
    .map(|r| json!({"id": r.as_str(), "label": super::role_label(*r)}))
    .collect();
    let units: Vec<Value> = names
        .fw
        .units
        .units
        .iter()
        .map(|u| json!({"id": u.id.to_string(), "name": u.name}))
        .collect();
    Ok(json!({ "rows": rows, "roles": roles, "units": units }))
}

/// The period's lock and the org units unlocked for a correction.
async fn lock(
    wb: &Workbench,
    caller: &Caller,
    names: &super::Names,
    period: i32,
) -> Result<Value, PageError> {
    let lock: psv::PeriodLock = wb
        .gateway()
        .unary(
            Service::Surveys,
            "GetPeriodLock",
            &caller.auth,
            psv::GetPeriodLockRequest { period },
        )
        .await?;
    Ok(json!({
        "locked": lock.locked, "reason": lock.reason, "locked_by": lock.locked_by,
        "locked_at": wb.local(&lock.locked_at),
        "unlocked": lock.unlocked.iter().map(|u| json!({
            "org_unit_name": names.org(&u.org_unit), "reason": u.reason,
            "unlocked_by": u.unlocked_by, "unlocked_at": wb.local(&u.unlocked_at),
        })).collect::<Vec<_>>(),
    }))
}

/// The planned checkpoint runs and the checkpoints a run can be started for now.
async fn runs(wb: &Workbench, caller: &Caller) -> Result<Value, PageError> {
    let runs: psch::ListRunsResponse = wb
        .gateway()
        .unary(
            Service::Scheduler,
            "ListRuns",
            &caller.auth,
            psch::ListRunsRequest::default(),
        )
        .await?;
    let mut checkpoints: Vec<(String, String)> = Vec::new();
    let rows: Vec<Value> = runs
        .runs
        .iter()
        .map(|r| {
            if !checkpoints.iter().any(|(c, _)| *c == r.checkpoint) {
                checkpoints.push((r.checkpoint.clone(), r.checkpoint_name.clone()));
            }
            let state = match psch::RunState::try_from(r.state).unwrap_or_default() {
                psch::RunState::Done => "已完成 Done",
                psch::RunState::Due => "待运行 Due",
                psch::RunState::Upcoming => "未到期 Upcoming",
                psch::RunState::Missed => "已错过 Missed",
                psch::RunState::Unspecified => "",
            };
            json!({
                "key": r.key, "checkpoint_name": r.checkpoint_name, "lead_hours": r.lead_hours,
                "due_at": wb.local(&r.due_at), "state": state,
                "total": r.record.as_ref().and_then(|x| x.district_total.as_ref()).map(|t| t.confirmed.clone()),
                "snapshot": r.record.as_ref().map(|x| x.snapshot_id.clone()),
            })
        })
        .collect();
    Ok(json!({
        "rows": rows,
        "checkpoints": checkpoints.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
    }))
}

/// The frozen snapshots, newest first.
async fn snapshots(wb: &Workbench, caller: &Caller) -> Result<Value, PageError> {
    let snapshots: ps::ListSnapshotsResponse = wb
        .gateway()
        .unary(
            Service::Scoring,
            "ListSnapshots",
            &caller.auth,
            ps::ListSnapshotsRequest {
                page: Some(PageRequest {
                    page_size: 50,
                    page_token: String::new(),
                }),
            },
        )
        .await?;
    Ok(json!({ "rows":
        snapshots
            .snapshots
            .iter()
            .map(|s| json!({
                "id": s.id, "label": s.label, "checkpoint": s.checkpoint,
                "frozen_at": wb.local(&s.frozen_at), "frozen_by": s.frozen_by,
                "total": s.district_total.as_ref().map(|t| t.confirmed.clone()),
            }))
            .collect::<Vec<_>>()
    }))
}

pub async fn page(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Done>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        show(&wb, &caller, done_message(&q.done), StatusCode::OK, None).await
    }
    .await;
    finish(&wb, r)
}

/// One form of the page, by its action.
#[derive(Debug, Default, Deserialize)]
pub struct OfficeForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    login: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    org_unit: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    checkpoint: String,
}

pub async fn act(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(f): Form<OfficeForm>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/office").await?;
        caller.check_form(f.csrf.as_deref())?;
        let period = wb.config().period;
        let g = wb.gateway();
        let a = &caller.auth;
        let result: Result<&str, crate::api::errors::GatewayError> = match action.as_str() {
            "create-account" => g
                .unary::<_, pr::Account>(
                    Service::Registry,
                    "CreateAccount",
                    a,
                    pr::CreateAccountRequest {
                        login: f.login.clone(),
                        display_name: f.display_name.clone(),
                        role: f.role.clone(),
                        unit: f.unit.clone(),
                        org_unit: f.org_unit.clone(),
                        password: f.password.clone(),
                        email: f.email.clone(),
                    },
                )
                .await
                .map(|_| "created"),
            "disable-account" => g
                .unary::<_, pr::Account>(
                    Service::Registry,
                    "DisableAccount",
                    a,
                    pr::DisableAccountRequest {
                        login: f.login.clone(),
                    },
                )
                .await
                .map(|_| "disabled"),
            "enable-account" => g
                .unary::<_, pr::Account>(
                    Service::Registry,
                    "EnableAccount",
                    a,
                    pr::EnableAccountRequest {
                        login: f.login.clone(),
                    },
                )
                .await
                .map(|_| "enabled"),
            "reset-password" => g
                .unary::<_, pr::Account>(
                    Service::Registry,
                    "ResetPassword",
                    a,
                    pr::ResetPasswordRequest {
                        login: f.login.clone(),
                        new_password: f.password.clone(),
                    },
                )
                .await
                .map(|_| "reset"),
            "update-email" => g
                .unary::<_, pr::Account>(
                    Service::Registry,
                    "UpdateAccount",
                    a,
                    pr::UpdateAccountRequest {
                        login: f.login.clone(),
                        display_name: None,
                        email: Some(f.email.clone()),
                    },
                )
                .await
                .map(|_| "updated"),
            "lock-period" => g
                .unary::<_, psv::PeriodLock>(
                    Service::Surveys,
                    "LockPeriod",
                    a,
                    psv::LockPeriodRequest {
                        period,
                        reason: f.reason.clone(),
                    },
                )
                .await
                .map(|_| "locked"),
            "unlock-org-unit" => g
                .unary::<_, psv::PeriodLock>(
                    Service::Surveys,
                    "UnlockOrgUnit",
                    a,
                    psv::UnlockOrgUnitRequest {
                        period,
                        org_unit: f.org_unit.clone(),
                        reason: f.reason.clone(),
                    },
                )
                .await
                .map(|_| "unlocked"),
            "run-now" => g
                .unary::<_, psch::RunRecord>(
                    Service::Scheduler,
                    "RunNow",
                    a,
                    psch::RunNowRequest {
                        checkpoint: f.checkpoint.clone(),
                        requested_by: String::new(),
                    },
                )
                .await
                .map(|_| "ran"),
            other => return Err(PageError::NotFound(format!("no office action '{other}'"))),
        };
        match result {
            Ok(done) => Ok(Redirect::to(&format!("/work/office?done={done}")).into_response()),
            Err(e) => {
                let (status, detail) = PageError::on_form(e)?;
                show(&wb, &caller, None, status, Some(detail)).await
            }
        }
    }
    .await;
    finish(&wb, r)
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    format: String,
    #[serde(default)]
    snapshot: String,
}

/// `GET /work/reports/{kind}?format=xlsx|html`: the self-score explanation or the checklist,
/// as the scoring service makes it, downloaded.
pub async fn report(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Path(kind): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        let (info, body) = crate::api::streams::report_file(
            wb.gateway(),
            &caller.auth,
            ps::ExportReportRequest {
                kind,
                format: if q.format.is_empty() {
                    "xlsx".into()
                } else {
                    q.format
                },
                snapshot_id: q.snapshot,
                ..Default::default()
            },
        )
        .await?;
        let mut res = Response::new(body);
        for (k, v) in crate::api::streams::file_headers(
            &info.content_type,
            info.size,
            &info.file_name,
            &info.sha256,
            false,
        ) {
            res.headers_mut().insert(k, v);
        }
        Ok(res)
    }
    .await;
    finish(&wb, r)
}
