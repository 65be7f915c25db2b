//! 问卷文件 Survey files: a survey platform's export uploaded once, its columns mapped to the
//! survey's questions (and labels the usual words do not cover mapped to answer codes), a
//! preview of what would be filed, then one all-or-nothing `IngestResponses` call. The file
//! waits on the server between the steps (for its session only, half an hour at most); the
//! mapping is remembered for the person and the survey, so the next export maps itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use cezone_client::files::Table;
use cezone_client::files::survey_export::{self, Mapping, QuestionColumn};
use cezone_domain::access::Role;
use cezone_proto::surveys::v1 as psv;
use serde_json::{Value, json};

use super::{Caller, PageError, PageResult, Workbench, finish, here, session};
use crate::api::Service;

/// Largest export taken from the page.
pub const MAX_EXPORT_BYTES: usize = 50 << 20;
/// How long an uploaded export waits for its mapping.
const KEPT: Duration = Duration::from_secs(30 * 60);
/// Responses per message of the ingest stream.
const PER_MESSAGE: usize = 500;
/// Distinct labels shown per question for mapping.
const MAX_LABELS: usize = 20;

/// Exports waiting between upload and ingest, and the mappings people made.
#[derive(Debug, Default)]
pub struct Exports {
    waiting: Mutex<HashMap<String, Waiting>>,
    mappings: Mutex<HashMap<(String, String), Mapping>>,
}

#[derive(Debug, Clone)]
struct Waiting {
    session: String,
    survey: String,
    file: String,
    bytes: Vec<u8>,
    at: Instant,
}

impl Exports {
    fn keep(&self, w: Waiting) -> String {
        let token = session::random_token();
        let mut map = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, x| x.at.elapsed() < KEPT && x.session != w.session);
        map.insert(token.clone(), w);
        token
    }

    fn get(&self, token: &str, session: &str) -> Option<Waiting> {
        let map = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        map.get(token)
            .filter(|w| w.session == session && w.at.elapsed() < KEPT)
            .cloned()
    }

    fn drop_token(&self, token: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    fn remembered(&self, login: &str, survey: &str) -> Option<Mapping> {
        self.mappings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(login.to_string(), survey.to_string()))
            .cloned()
    }

    fn remember(&self, login: &str, survey: &str, m: Mapping) {
        self.mappings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((login.to_string(), survey.to_string()), m);
    }
}

fn may_file(caller: &Caller) -> Result<(), PageError> {
    match caller.principal().role {
        Role::Town | Role::EvaluationOffice => Ok(()),
        _ => Err(PageError::Forbidden(format!(
            "{} may not file survey responses",
            caller.principal().describe()
        ))),
    }
}

async fn survey(wb: &Workbench, caller: &Caller, id: &str) -> Result<psv::Survey, PageError> {
    Ok(wb
        .gateway()
        .unary(
            Service::Surveys,
            "GetSurvey",
            &caller.auth,
            psv::GetSurveyRequest { id: id.to_string() },
        )
        .await?)
}

pub async fn page(State(wb): State<Workbench>, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        may_file(&caller)?;
        let default = cezone_client::demo::survey_id(wb.config().period);
        Ok(wb.page(&caller, "surveys.html", json!({ "survey": default })))
    }
    .await;
    finish(&wb, r)
}

/// The mapping page: every column of the file offered for the respondent, the community and
/// each question, chosen already where a header or the remembered mapping says; every label a
/// question's column holds that the usual words do not cover, with a code to give it.
fn mapping_page(
    wb: &Workbench,
    caller: &Caller,
    token: &str,
    w: &Waiting,
    s: &psv::Survey,
    m: &Mapping,
    extra: Value,
    status: StatusCode,
) -> PageResult {
    let table =
        Table::read(&w.file, &w.bytes).map_err(|e| PageError::bad("file", e.to_string()))?;
    let pick = |given: &Option<String>, aliases: &[&str]| {
        given
            .clone()
            .filter(|h| table.headers.contains(h))
            .or_else(|| table.column(aliases).map(|c| table.headers[c].clone()))
            .unwrap_or_default()
    };
    let questions: Vec<Value> = s
        .questions
        .iter()
        .map(|q| {
            let column = m
                .questions
                .get(&q.id)
                .map(|c| c.column.clone())
                .filter(|h| table.headers.contains(h))
                .or_else(|| table.column(&[q.id.as_str()]).map(|c| table.headers[c].clone()))
                .unwrap_or_default();
            let kind = psv::QuestionKind::try_from(q.kind).unwrap_or_default();
            let mut labels: Vec<Value> = Vec::new();
            if let Some(c) = table.headers.iter().position(|h| *h == column) {
                let mut seen: Vec<String> = Vec::new();
                for (_, cells) in &table.rows {
                    let v = cells.get(c).map(|x| x.trim()).unwrap_or_default();
                    if v.is_empty() || seen.iter().any(|x| x == v) {
                        continue;
                    }
                    seen.push(v.to_string());
                    if seen.len() > MAX_LABELS {
                        break;
                    }
                }
                for v in seen {
                    let known = survey_export::default_label(kind, &v);
                    let given = m.questions.get(&q.id).and_then(|c| c.labels.get(&v)).copied();
                    if known.is_none() || given.is_some() {
                        labels.push(json!({
                            "label": v,
                            "field": format!("l:{}:{}", q.id, v),
                            "code": given,
                        }));
                    }
                }
            }
            json!({
                "id": q.id, "text": q.text, "column": column, "labels": labels,
                "kind": if kind == psv::QuestionKind::YesNo { "是/否 yes or no: 1 or 0" } else { "满意度 satisfaction: 1 to 5" },
            })
        })
        .collect();
    let mut ctx = json!({
        "token": token, "file": w.file, "survey": s.id, "survey_title": s.title,
        "headers": table.headers, "rows": table.rows.len(),
        "respondent": pick(&m.respondent, survey_export::RESPONDENT),
        "org_unit": pick(&m.org_unit, survey_export::ORG_UNIT),
        "questions": questions,
    });
    if let (Some(base), Some(more)) = (ctx.as_object_mut(), extra.as_object()) {
        base.extend(more.clone());
    }
    let mut res = wb.page(caller, "survey_mapping.html", ctx);
    *res.status_mut() = status;
    Ok(res)
}

/// `POST /work/surveys/upload`: the form token, the survey id, then the export.
pub async fn upload(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/surveys").await?;
        may_file(&caller)?;
        let mut token = None;
        let mut survey_id = String::new();
        let mut file = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| PageError::bad("file", e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            if name != "csrf" {
                caller.check_form(token.as_deref())?;
            }
            match name.as_str() {
                "csrf" => token = field.text().await.ok(),
                "survey" => survey_id = field.text().await.unwrap_or_default().trim().to_string(),
                "file" => {
                    let file_name = field.file_name().unwrap_or("export.csv").to_string();
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| PageError::bad("file", e.body_text()))?;
                    file = Some((file_name, bytes.to_vec()));
                }
                _ => {}
            }
        }
        caller.check_form(token.as_deref())?;
        let s = survey(&wb, &caller, &survey_id).await?;
        let (file, bytes) = file.filter(|(_, b)| !b.is_empty()).ok_or_else(|| {
            PageError::bad("file", "choose the platform's export (.csv or .xlsx)")
        })?;
        Table::read(&file, &bytes).map_err(|e| PageError::bad("file", e.to_string()))?;
        let w = Waiting {
            session: caller.id.clone(),
            survey: s.id.clone(),
            file,
            bytes,
            at: Instant::now(),
        };
        let kept = wb.0.exports.keep(w.clone());
        let m =
            wb.0.exports
                .remembered(&caller.session.person.login, &s.id)
                .unwrap_or_default();
        mapping_page(&wb, &caller, &kept, &w, &s, &m, json!({}), StatusCode::OK)
    }
    .await;
    finish(&wb, r)
}

/// The mapping the form gives.
fn mapping_of(fields: &[(String, String)]) -> Mapping {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let mut questions: BTreeMap<String, QuestionColumn> = BTreeMap::new();
    for (k, v) in fields {
        if let Some(q) = k.strip_prefix("q:")
            && !v.is_empty()
        {
            questions.insert(
                q.to_string(),
                QuestionColumn {
                    column: v.clone(),
                    labels: BTreeMap::new(),
                },
            );
        }
    }
    for (k, v) in fields {
        if let Some(rest) = k.strip_prefix("l:")
            && let Some((q, label)) = rest.split_once(':')
            && let Ok(code) = v.trim().parse::<i32>()
            && let Some(qc) = questions.get_mut(q)
        {
            qc.labels.insert(label.to_string(), code);
        }
    }
    Mapping {
        respondent: field("respondent"),
        org_unit: field("org_unit"),
        questions,
    }
}

/// `POST /work/surveys/file`: the mapping; `action` is `preview` or `ingest`.
pub async fn file(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, "/work/surveys").await?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        caller.check_form(Some(field("csrf")))?;
        may_file(&caller)?;
        let token = field("upload");
        let w = wb.0.exports.get(token, &caller.id).ok_or_else(|| {
            PageError::bad(
                "upload",
                "the uploaded export is no longer waiting (half an hour at most); upload it again",
            )
        })?;
        let s = survey(&wb, &caller, &w.survey).await?;
        let m = mapping_of(&fields);
        let ingest = match field("action") {
            "preview" => false,
            "ingest" => true,
            other => {
                return Err(PageError::bad(
                    "action",
                    format!("'{other}' is not an action (preview or ingest)"),
                ));
            }
        };
        let responses = match survey_export::read(&w.file, &w.bytes, &s, &m) {
            Ok(r) => r,
            Err(e) => {
                let problems: Vec<String> = e.errors.iter().map(|c| c.to_string()).collect();
                let extra = json!({
                    "error": format!("{} 处有误，未读入 {} problems; nothing was filed", problems.len(), problems.len()),
                    "problems": problems,
                });
                return mapping_page(&wb, &caller, token, &w, &s, &m, extra, StatusCode::BAD_REQUEST);
            }
        };
        wb.0
            .exports
            .remember(&caller.session.person.login, &s.id, m.clone());
        let names = wb.names().await?;
        let mut by_org: BTreeMap<String, usize> = BTreeMap::new();
        for (_, r) in &responses.rows {
            *by_org.entry(r.org_unit.clone()).or_default() += 1;
        }
        let preview: Vec<Value> = responses
            .rows
            .iter()
            .take(10)
            .map(|(row, r)| {
                json!({
                    "at": responses.at(*row), "respondent": r.respondent_id,
                    "org_unit_name": names.org(&r.org_unit),
                    "answers": r.answers.iter().map(|a| format!("{}={}", a.question, a.value)).collect::<Vec<_>>().join(", "),
                })
            })
            .collect();
        let counts: Vec<Value> = by_org
            .iter()
            .map(|(o, n)| json!({"org_unit_name": names.org(o), "responses": n}))
            .collect();
        let summary = json!({
            "responses": responses.rows.len(), "org_units": by_org.len(),
            "preview": preview, "counts": counts,
        });
        if !ingest {
            return mapping_page(&wb, &caller, token, &w, &s, &m, json!({ "summary": summary }), StatusCode::OK);
        }
        let first = psv::IngestRequest {
            part: Some(psv::ingest_request::Part::SurveyId(s.id.clone())),
        };
        let all: Vec<psv::Response> = responses.rows.into_iter().map(|(_, r)| r).collect();
        let batches: Vec<psv::IngestRequest> = all
            .chunks(PER_MESSAGE)
            .map(|c| psv::IngestRequest {
                part: Some(psv::ingest_request::Part::Batch(psv::ResponseBatch {
                    responses: c.to_vec(),
                })),
            })
            .collect();
        let stream = futures::stream::iter(std::iter::once(first).chain(batches));
        let filed: Result<psv::IngestSummary, _> = wb
            .gateway()
            .client_stream(Service::Surveys, "IngestResponses", &caller.auth, stream)
            .await;
        match filed {
            Ok(done) => {
                wb.0.exports.drop_token(token);
                Ok(wb.page(
                    &caller,
                    "surveys.html",
                    json!({
                        "survey": s.id,
                        "ingested": { "batch": done.batch_id, "accepted": done.accepted, "org_units": done.org_units, "file": w.file,
                            "pending": done.state == psv::BatchState::Pending as i32 },
                    }),
                ))
            }
            Err(e) => {
                let (status, detail) = PageError::on_form(e)?;
                let extra = json!({ "error": format!("未提交 Nothing was filed: {detail}"), "summary": summary });
                mapping_page(&wb, &caller, token, &w, &s, &m, extra, status)
            }
        }
    }
    .await;
    finish(&wb, r)
}
