//! 统计数据 Statistics: a department's or a town's return as a grid (org units × the metrics
//! the matrix gives it), filled in on the page or from the XLSX template uploaded back. Every
//! cell is checked first and each bad one is shown in place; a check shows what would change;
//! a submission stores every changed figure or none (one `RecordStatistics` call).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use cezone_client::files::returns;
use cezone_domain::access::Role;
use cezone_domain::rules::MetricDef;
use cezone_proto::surveys::v1 as psv;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Names, PageError, PageResult, Workbench, finish, here};
use crate::api::Service;

/// Largest return file taken from the page.
pub const MAX_RETURN_BYTES: usize = 10 << 20;

/// Whose return: a town's or a department's own; the office names the unit (and org unit).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Whose {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    org_unit: String,
    #[serde(default)]
    saved: Option<usize>,
}

impl Whose {
    fn of(caller: &Caller, q: &Whose) -> Result<Whose, PageError> {
        let p = caller.principal();
        match p.role {
            Role::Town | Role::ResponsibleUnit => {
                let (unit, org_unit) = caller.scope();
                Ok(Whose {
                    unit,
                    org_unit,
                    saved: q.saved,
                })
            }
            Role::EvaluationOffice if !q.unit.is_empty() => Ok(q.clone()),
            Role::EvaluationOffice => Err(PageError::bad(
                "unit",
                "name the unit whose return to open (?unit=finance)",
            )),
            _ => Err(PageError::Forbidden(format!(
                "{} files no statistics",
                p.describe()
            ))),
        }
    }

    fn query(&self) -> String {
        if self.unit.is_empty() {
            return String::new();
        }
        let mut q = format!("?unit={}", super::signin::encode_next(&self.unit));
        if !self.org_unit.is_empty() {
            q.push_str(&format!(
                "&org_unit={}",
                super::signin::encode_next(&self.org_unit)
            ));
        }
        q
    }
}

/// A cell's key in the form: `c:{org unit}:{metric}` (ids hold no colon).
fn cell_key(org_unit: &str, metric: &str) -> String {
    format!("c:{org_unit}:{metric}")
}

/// What a grid shows besides the current figures: what a person typed (or a file held) and
/// what is wrong with it, by (org unit, metric).
#[derive(Debug, Default)]
struct Entered {
    texts: HashMap<(String, String), String>,
    errors: HashMap<(String, String), String>,
}

async fn obligations(
    wb: &Workbench,
    caller: &Caller,
    whose: &Whose,
) -> Result<psv::Obligations, PageError> {
    Ok(wb
        .gateway()
        .unary(
            Service::Surveys,
            "ListObligations",
            &caller.auth,
            psv::ListObligationsRequest {
                responsible_unit: whose.unit.clone(),
                org_unit: whose.org_unit.clone(),
                period: wb.config().period,
                ..Default::default()
            },
        )
        .await?)
}

fn metric<'a>(names: &'a Names, id: &str) -> Option<&'a MetricDef> {
    names
        .fw
        .catalog
        .metrics
        .iter()
        .find(|m| m.id.as_str() == id)
}

/// The grid: one row per org unit owing something, one column per metric; a cell only where
/// the return owes a figure.
fn grid(names: &Names, ob: &psv::Obligations, entered: &Entered) -> Value {
    let mut metrics: Vec<&str> = Vec::new();
    let mut orgs: Vec<(&str, &str)> = Vec::new();
    for o in &ob.items {
        if !metrics.contains(&o.metric.as_str()) {
            metrics.push(&o.metric);
        }
        if !orgs.iter().any(|(id, _)| *id == o.org_unit) {
            orgs.push((&o.org_unit, &o.org_unit_name));
        }
    }
    let by_key: HashMap<(&str, &str), &psv::Obligation> = ob
        .items
        .iter()
        .map(|o| ((o.org_unit.as_str(), o.metric.as_str()), o))
        .collect();
    let columns: Vec<Value> = metrics
        .iter()
        .map(|id| {
            let m = metric(names, id);
            json!({
                "id": id,
                "name": m.map(|m| m.name.clone()).unwrap_or_else(|| id.to_string()),
                "unit": m.map(|m| returns::unit_label(m.unit)).unwrap_or_default(),
            })
        })
        .collect();
    let rows: Vec<Value> = orgs
        .iter()
        .map(|(org, org_name)| {
            let cells: Vec<Value> = metrics
                .iter()
                .map(|m| {
                    let Some(o) = by_key.get(&(*org, *m)) else {
                        return json!({ "owed": false });
                    };
                    let (class, label) = super::tasks::standing(o.standing);
                    let def = metric(names, m);
                    let current = match (o.value, def) {
                        (Some(v), Some(d)) => returns::shown(d, v),
                        (Some(v), None) => v.to_string(),
                        _ => String::new(),
                    };
                    let key = (org.to_string(), m.to_string());
                    let text = entered.texts.get(&key).cloned().unwrap_or(current.clone());
                    json!({
                        "owed": true,
                        "key": cell_key(org, m),
                        "text": text,
                        "current": current,
                        "changed": text.trim() != current && !text.trim().is_empty(),
                        "error": entered.errors.get(&key),
                        "state": class, "state_label": label, "late": o.late,
                        "comment": o.review_comment,
                        "label": format!("{org_name} {}", def.map(|d| d.name.as_str()).unwrap_or(m)),
                    })
                })
                .collect();
            json!({ "org_unit": org, "org_unit_name": org_name, "cells": cells })
        })
        .collect();
    json!({ "columns": columns, "rows": rows })
}

/// The grid page of one return, for one person.
struct Screen<'a> {
    wb: &'a Workbench,
    caller: &'a Caller,
    whose: &'a Whose,
    ob: &'a psv::Obligations,
}

impl Screen<'_> {
    /// The grid with what was entered, and `extra` (messages, the changes) beside it.
    async fn show(&self, entered: &Entered, status: StatusCode, extra: Value) -> PageResult {
        let names = self.wb.names().await?;
        let mut ctx = json!({
            "grid": grid(&names, self.ob, entered),
            "period": self.wb.config().period,
            "deadline": self.ob.deadline,
            "unit_name": names.unit(&self.ob.responsible_unit),
            "org_unit_name": names.org(&self.ob.org_unit),
            "query": self.whose.query(),
            "saved": self.whose.saved,
            "bad_cells": entered.errors.len(),
            "counts": { "missing": self.ob.missing, "returned": self.ob.returned, "pending": self.ob.pending,
                        "accepted": self.ob.accepted, "late": self.ob.late },
        });
        if let (Some(base), Some(more)) = (ctx.as_object_mut(), extra.as_object()) {
            base.extend(more.clone());
        }
        let mut res = self.wb.page(self.caller, "statistics.html", ctx);
        *res.status_mut() = status;
        Ok(res)
    }
}

pub async fn page(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Whose>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        if caller.principal().role == Role::EvaluationOffice && q.unit.is_empty() {
            return choose(&wb, &caller).await;
        }
        let whose = Whose::of(&caller, &q)?;
        let ob = obligations(&wb, &caller, &whose).await?;
        let screen = Screen {
            wb: &wb,
            caller: &caller,
            whose: &whose,
            ob: &ob,
        };
        screen
            .show(&Entered::default(), StatusCode::OK, json!({}))
            .await
    }
    .await;
    finish(&wb, r)
}

/// For the evaluation office, which files on any unit's behalf: the units that file a return
/// (those responsible for a criterion reading a statistic) and the towns, to open one.
async fn choose(wb: &Workbench, caller: &Caller) -> PageResult {
    let names = wb.names().await?;
    let units: Vec<Value> = names
        .fw
        .units
        .units
        .iter()
        .filter(|u| !cezone_domain::obligations::metrics_of(&names.fw, &u.id).is_empty())
        .map(|u| json!({ "id": u.id.to_string(), "name": u.name }))
        .collect();
    let towns: Vec<Value> = names
        .tree
        .units()
        .iter()
        .filter(|u| u.level == cezone_domain::org::OrgLevel::Town)
        .map(|u| json!({ "id": u.id.to_string(), "name": u.name }))
        .collect();
    Ok(wb.page(
        caller,
        "statistics.html",
        json!({ "choose": { "units": units, "towns": towns }, "period": wb.config().period }),
    ))
}

/// The figures that change, from what was entered; every bad cell named in `entered.errors`.
fn changes(
    names: &Names,
    ob: &psv::Obligations,
    entered: &mut Entered,
    period: i32,
) -> Vec<(psv::StatisticReturn, Option<i64>)> {
    let owed: HashMap<(String, String), &psv::Obligation> = ob
        .items
        .iter()
        .map(|o| ((o.org_unit.clone(), o.metric.clone()), o))
        .collect();
    let mut out = Vec::new();
    let mut keys: Vec<_> = entered.texts.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let text = entered.texts[&key].trim().to_string();
        let Some(o) = owed.get(&key) else {
            entered.errors.insert(
                key.clone(),
                format!("{} {} is not in this return", names.org(&key.0), key.1),
            );
            continue;
        };
        if text.is_empty() {
            continue; // left empty: nothing filed
        }
        let Some(def) = metric(names, &key.1) else {
            entered.errors.insert(
                key.clone(),
                format!("{} is not a metric of the framework", key.1),
            );
            continue;
        };
        match returns::parse_value(def, &text) {
            Ok(v) if Some(v) == o.value => {}
            Ok(v) => out.push((
                psv::StatisticReturn {
                    org_unit: key.0.clone(),
                    metric: key.1.clone(),
                    period,
                    value: v,
                    ..Default::default()
                },
                o.value,
            )),
            Err(e) => {
                entered.errors.insert(key.clone(), e);
            }
        }
    }
    out
}

/// The changes as people read them: org unit · metric: before → after.
fn summary(names: &Names, changes: &[(psv::StatisticReturn, Option<i64>)]) -> Vec<Value> {
    changes
        .iter()
        .map(|(s, before)| {
            let def = metric(names, &s.metric);
            let show = |v: i64| def.map_or(v.to_string(), |d| returns::shown(d, v));
            json!({
                "org_unit_name": names.org(&s.org_unit),
                "metric_name": def.map(|d| d.name.clone()).unwrap_or_else(|| s.metric.clone()),
                "before": before.map(show),
                "after": show(s.value),
            })
        })
        .collect()
}

/// `POST /work/statistics`: the grid's cells; `action` is `check` (nothing stored) or `submit`.
pub async fn submit(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Query(q): Query<Whose>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/statistics").await?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        caller.check_form(field("csrf"))?;
        let whose = Whose::of(&caller, &q)?;
        let submit = match field("action").unwrap_or_default() {
            "check" => false,
            "submit" => true,
            other => {
                return Err(PageError::bad(
                    "action",
                    format!("'{other}' is not an action (check or submit)"),
                ));
            }
        };
        let mut entered = Entered::default();
        for (k, v) in &fields {
            if let Some(rest) = k.strip_prefix("c:")
                && let Some((org, metric)) = rest.split_once(':')
            {
                entered
                    .texts
                    .insert((org.to_string(), metric.to_string()), v.clone());
            }
        }
        let ob = obligations(&wb, &caller, &whose).await?;
        file(&wb, &caller, &whose, &ob, entered, submit).await
    }
    .await;
    finish(&wb, r)
}

/// Checks what was entered and, when it is all good and `submit`, files it in one call.
async fn file(
    wb: &Workbench,
    caller: &Caller,
    whose: &Whose,
    ob: &psv::Obligations,
    mut entered: Entered,
    submit: bool,
) -> PageResult {
    let names = wb.names().await?;
    let screen = Screen {
        wb,
        caller,
        whose,
        ob,
    };
    let changes = changes(&names, ob, &mut entered, wb.config().period);
    if !entered.errors.is_empty() {
        let message = format!(
            "{} 个单元格有误，未保存任何数据 {} cells need correcting; nothing was saved",
            entered.errors.len(),
            entered.errors.len()
        );
        return screen
            .show(
                &entered,
                StatusCode::BAD_REQUEST,
                json!({ "error": message }),
            )
            .await;
    }
    if changes.is_empty() {
        return screen
            .show(
                &entered,
                StatusCode::OK,
                json!({ "notice": "没有改动 Nothing changed" }),
            )
            .await;
    }
    let statistics: Vec<psv::StatisticReturn> = changes.iter().map(|(s, _)| s.clone()).collect();
    let n = statistics.len();
    let filed: Result<psv::RecordStatisticsResponse, _> = wb
        .gateway()
        .unary(
            Service::Surveys,
            "RecordStatistics",
            &caller.auth,
            psv::RecordStatisticsRequest {
                statistics,
                dry_run: !submit,
            },
        )
        .await;
    if let Err(e) = filed {
        let (status, detail) = PageError::on_form(e)?;
        return screen.show(
            &entered,
            status,
            json!({ "error": format!("未保存任何数据 Nothing was saved: {detail}"), "changes": summary(&names, &changes) }),
        )
        .await;
    }
    if submit {
        let mut to = format!("/work/statistics{}", whose.query());
        to.push_str(if to.contains('?') { "&" } else { "?" });
        to.push_str(&format!("saved={n}"));
        return Ok(Redirect::to(&to).into_response());
    }
    screen
        .show(
            &entered,
            StatusCode::OK,
            json!({ "changes": summary(&names, &changes), "checked": true }),
        )
        .await
}

/// `GET /work/statistics/template.xlsx`: the return to fill in, current figures pre-filled.
pub async fn template(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Whose>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        let whose = Whose::of(&caller, &q)?;
        let ob = obligations(&wb, &caller, &whose).await?;
        let names = wb.names().await?;
        let period = wb.config().period;
        let current: returns::Current = ob
            .items
            .iter()
            .filter_map(|o| Some(((o.org_unit.clone(), o.metric.clone(), period), o.value?)))
            .collect();
        let unit = cezone_domain::units::UnitId::parse(&whose.unit)
            .map_err(|e| PageError::bad("unit", e))?;
        let scope = (!whose.org_unit.is_empty())
            .then(|| cezone_domain::org::OrgUnitId::parse(&whose.org_unit))
            .transpose()
            .map_err(|e| PageError::bad("org_unit", e))?;
        let bytes = returns::template(
            &names.fw,
            &names.tree,
            &unit,
            period,
            scope.as_ref(),
            &current,
        )
        .map_err(|e| PageError::bad("unit", e))?;
        let name = format!("{}-{period}.xlsx", whose.unit);
        let mut res = Response::new(axum::body::Body::from(bytes));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(res)
    }
    .await;
    finish(&wb, r)
}

/// `POST /work/statistics/upload`: a filled-in return file. Its figures fill the grid (changes
/// marked), every bad cell is listed by sheet, row and column; nothing is stored until the
/// grid is submitted.
pub async fn upload(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Query(q): Query<Whose>,
    mut multipart: Multipart,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/statistics").await?;
        let whose = Whose::of(&caller, &q)?;
        let mut token = None;
        let mut file: Option<(String, Vec<u8>)> = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| PageError::bad("file", e.body_text()))?
        {
            match field.name().unwrap_or_default() {
                "csrf" => {
                    token = Some(
                        field
                            .text()
                            .await
                            .map_err(|e| PageError::bad("csrf", e.body_text()))?,
                    )
                }
                "file" => {
                    // Nothing of the file is read before the form's token.
                    caller.check_form(token.as_deref())?;
                    let name = field.file_name().unwrap_or("return.xlsx").to_string();
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| PageError::bad("file", e.body_text()))?;
                    file = Some((name, bytes.to_vec()));
                }
                _ => {}
            }
        }
        caller.check_form(token.as_deref())?;
        let ob = obligations(&wb, &caller, &whose).await?;
        let screen = Screen { wb: &wb, caller: &caller, whose: &whose, ob: &ob };
        let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
            return screen.show(
                &Entered::default(),
                StatusCode::BAD_REQUEST,
                json!({ "error": "file: choose the filled-in return (.xlsx or .csv)" }),
            )
            .await;
        };
        let names = wb.names().await?;
        let period = wb.config().period;
        match returns::read(&name, &bytes, &names.fw, &names.tree) {
            Err(e) => {
                let problems: Vec<String> = e.errors.iter().map(|c| c.to_string()).collect();
                screen.show(
                    &Entered::default(),
                    StatusCode::BAD_REQUEST,
                    json!({
                        "error": format!("{name}: {} 处有误，未读入 {} problems; nothing was taken from the file", problems.len(), problems.len()),
                        "file_problems": problems,
                    }),
                )
                .await
            }
            Ok(filed) => {
                let mut entered = Entered::default();
                let mut problems = Vec::new();
                for f in filed {
                    let s = &f.statistic;
                    if s.period != period {
                        problems.push(format!(
                            "{}: the year {} is not this return's ({period})",
                            f.place(),
                            s.period
                        ));
                        continue;
                    }
                    let key = (s.org_unit.clone(), s.metric.clone());
                    let def = metric(&names, &s.metric);
                    let text = def.map_or(s.value.to_string(), |d| returns::shown(d, s.value));
                    entered.texts.insert(key, text);
                }
                // Figures the return does not owe are named with their place in the file.
                let owed: std::collections::HashSet<(String, String)> = ob
                    .items
                    .iter()
                    .map(|o| (o.org_unit.clone(), o.metric.clone()))
                    .collect();
                entered.texts.retain(|k, _| {
                    let keep = owed.contains(k);
                    if !keep {
                        problems.push(format!(
                            "{} {}: not in this return; left out",
                            names.org(&k.0),
                            k.1
                        ));
                    }
                    keep
                });
                let changes = changes(&names, &ob, &mut entered, period);
                screen.show(
                    &entered,
                    if problems.is_empty() {
                        StatusCode::OK
                    } else {
                        StatusCode::BAD_REQUEST
                    },
                    json!({
                        "notice": format!("{name}: 已读入，请核对后提交 read; check the changes below and submit"),
                        "file_problems": problems,
                        "changes": summary(&names, &changes),
                    }),
                )
                .await
            }
        }
    }
    .await;
    finish(&wb, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_keys_split_back_into_org_unit_and_metric() {
        let k = cell_key("nanhai.guicheng", "funding_yuan");
        let rest = k.strip_prefix("c:").unwrap();
        assert_eq!(
            rest.split_once(':'),
            Some(("nanhai.guicheng", "funding_yuan"))
        );
    }
}
