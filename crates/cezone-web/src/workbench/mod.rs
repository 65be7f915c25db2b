//! The workbench (工作台) under `/work/`: the pages the evaluation office, the departments and
//! the towns work in — sign in, what a unit owes, evidence uploads and revisions, the review
//! queue. Pages are rendered on the server (minijinja, escaping everything a person typed) with
//! one small vendored script for drag and drop, upload progress and the queue's keys.
//!
//! Every call a page makes goes to the services with the signed-in person's own token, so the
//! services' rules decide, once; a page that changes something also asks the same rule
//! (`cezone_domain::access`) first, so a person is not shown a form they may not use.

mod approve;
mod evidence;
mod explain;
mod office;
mod review;
pub mod session;
mod signin;
mod statistics;
mod surveys;
mod tasks;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cezone_domain::access::{self, Action, Role};
use cezone_domain::framework::Framework;
use cezone_domain::org::OrgTree;
use cezone_platform::glue::registry_view::RegistryView;
use cezone_proto::registry::v1 as pr;
use serde_json::{Value, json};

use crate::api::errors::GatewayError;
use crate::api::{Gateway, Service};
use session::{Session, Sessions, Tokens};
pub use views::Views;

/// At most this many files in one upload form.
pub const MAX_FILES_PER_UPLOAD: u64 = 10;

/// What the workbench needs from the deployment's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
    pub utc_offset_hours: i32,
    pub max_file_bytes: u64,
    pub session_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct Workbench(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    gateway: Gateway,
    /// The framework and the org tree, read with the web's own service token (they are open
    /// to every caller) and cached.
    registry: RegistryView,
    sessions: Sessions,
    views: Views,
    config: Config,
    /// Survey exports waiting between upload and ingest, and the mappings made for them.
    exports: surveys::Exports,
}

impl Workbench {
    pub fn new(gateway: Gateway, registry: RegistryView, config: Config) -> Workbench {
        Workbench(Arc::new(Inner {
            gateway,
            registry,
            sessions: Sessions::new(config.session_idle),
            views: Views::new(),
            config,
            exports: surveys::Exports::default(),
        }))
    }

    fn config(&self) -> &Config {
        &self.0.config
    }

    fn gateway(&self) -> &Gateway {
        &self.0.gateway
    }

    async fn framework(&self) -> Result<Arc<Framework>, PageError> {
        let c = self.config();
        self.0
            .registry
            .framework(&c.framework_id, &c.edition)
            .await
            .map(|(fw, _)| fw)
            .map_err(|e| PageError::Unavailable(format!("the framework: {}", e.message)))
    }

    async fn org_tree(&self) -> Result<Arc<OrgTree>, PageError> {
        self.0
            .registry
            .org_tree(false)
            .await
            .map_err(|e| PageError::Unavailable(format!("the org units: {}", e.message)))
    }

    /// The framework and the org tree together, to show codes and ids by their names.
    async fn names(&self) -> Result<Names, PageError> {
        Ok(Names {
            fw: self.framework().await?,
            tree: self.org_tree().await?,
        })
    }

    /// The signed-in person behind a request, with a fresh access token; a request without a
    /// live session is sent to the sign-in page (and back here after).
    async fn caller(&self, headers: &HeaderMap, here: &str) -> Result<Caller, PageError> {
        let sign_in = || PageError::SignIn {
            next: here.to_string(),
        };
        let (id, session) = self.0.sessions.find(headers).ok_or_else(sign_in)?;
        let mut tokens = session.tokens.lock().await;
        let now = chrono::Utc::now();
        if tokens.refresh_expires <= now {
            self.0.sessions.end(&id);
            return Err(sign_in());
        }
        if tokens.stale(now) {
            let refreshed: Result<pr::LoginResponse, _> = self
                .gateway()
                .unary(
                    Service::Registry,
                    "Refresh",
                    &HeaderMap::new(),
                    pr::RefreshRequest {
                        refresh_token: tokens.refresh.clone(),
                    },
                )
                .await;
            match refreshed.ok().as_ref().and_then(Tokens::from_login) {
                Some(t) => *tokens = t,
                None => {
                    self.0.sessions.end(&id);
                    return Err(sign_in());
                }
            }
        }
        let mut auth = HeaderMap::new();
        let bearer =
            HeaderValue::from_str(&format!("Bearer {}", tokens.access)).map_err(|_| sign_in())?;
        auth.insert(header::AUTHORIZATION, bearer);
        drop(tokens);
        Ok(Caller { id, session, auth })
    }

    /// A page for `caller`: the template with the person, the form token and the menu.
    fn page(&self, caller: &Caller, template: &str, mut ctx: Value) -> Response {
        let p = &caller.session.person;
        let role = p.principal.role;
        ctx["me"] = json!({
            "login": p.login,
            "display_name": p.display_name,
            "role": role.as_str(),
            "role_label": role_label(role),
            "unit": p.principal.unit.as_ref().map(|u| u.to_string()),
            "org_unit": p.principal.org_unit.as_ref().map(|o| o.to_string()),
            "may_review": access::authorize(&p.principal, &Action::ReviewEvidence, None).is_ok(),
            "files_statistics": matches!(role, Role::Town | Role::ResponsibleUnit | Role::EvaluationOffice),
            "files_surveys": matches!(role, Role::Town | Role::EvaluationOffice),
            "approves_statistics": matches!(role, Role::Town | Role::ResponsibleUnit | Role::EvaluationOffice),
        });
        ctx["csrf"] = json!(caller.session.csrf);
        self.0.views.html(StatusCode::OK, template, &ctx)
    }

    fn local(&self, rfc3339: &str) -> String {
        if rfc3339.is_empty() {
            return String::new();
        }
        cezone_platform::time::local(rfc3339, self.config().utc_offset_hours)
    }
}

/// Names people read for the codes and ids the services answer with.
#[derive(Debug, Clone)]
pub struct Names {
    pub fw: Arc<Framework>,
    pub tree: Arc<OrgTree>,
}

impl Names {
    /// The framework's item with this code (a criterion, a group).
    pub fn item(&self, code: &str) -> Option<&cezone_domain::framework::Item> {
        let code = cezone_domain::code::ItemCode::parse(code).ok()?;
        self.fw.find(&code).map(|i| self.fw.item(i))
    }

    /// An org unit's name, or its id when it is not in the tree.
    pub fn org(&self, id: &str) -> String {
        cezone_domain::org::OrgUnitId::parse(id)
            .ok()
            .and_then(|o| self.tree.find(&o))
            .map(|i| self.tree.unit(i).name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// A responsible unit's name (the table's spelling).
    pub fn unit(&self, id: &str) -> String {
        cezone_domain::units::UnitId::parse(id)
            .map(|u| self.fw.units.name_of(&u))
            .unwrap_or_default()
    }
}

/// A signed-in person's request: their session and the `Authorization` header their calls carry.
#[derive(Debug)]
pub struct Caller {
    id: String,
    session: Arc<Session>,
    auth: HeaderMap,
}

impl Caller {
    fn principal(&self) -> &access::Principal {
        &self.session.person.principal
    }

    /// The responsible unit and the org unit the person acts for ("" where none).
    fn scope(&self) -> (String, String) {
        let p = self.principal();
        (
            p.unit.as_ref().map(|u| u.to_string()).unwrap_or_default(),
            p.org_unit
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default(),
        )
    }

    /// Refuses a form whose token is not this session's.
    fn check_form(&self, sent: Option<&str>) -> Result<(), PageError> {
        match sent {
            Some(t) if session::same_token(t, &self.session.csrf) => Ok(()),
            _ => Err(PageError::BadFormToken),
        }
    }
}

/// Chinese first, English beside it.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::DistrictAdmin => "区信息中心 District IT",
        Role::EvaluationOffice => "评估办公室 Evaluation office",
        Role::ResponsibleUnit => "区直部门 Department",
        Role::Town => "镇街 Town",
        Role::Inspector => "督导评估 Inspector",
        Role::Service => "服务 Service",
    }
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: the sign-in page, then back to `next`.
    #[error("sign in first")]
    SignIn { next: String },
    /// A form without this session's token (or a sign-in form without its own).
    #[error("the form's security token is missing or wrong")]
    BadFormToken,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A field of a form or a query is not valid.
    #[error("{field}: {why}")]
    Bad { field: String, why: String },
    #[error("{0}")]
    Unavailable(String),
    /// A service refused or failed.
    #[error("{0}")]
    Service(#[from] GatewayError),
}

impl PageError {
    fn bad(field: &str, why: impl Into<String>) -> PageError {
        PageError::Bad {
            field: field.into(),
            why: why.into(),
        }
    }

    /// What the person is told, and the HTTP status.
    fn explain(&self) -> (StatusCode, String, String) {
        match self {
            PageError::SignIn { .. } => (
                StatusCode::UNAUTHORIZED,
                "请先登录 Sign in first".into(),
                String::new(),
            ),
            PageError::BadFormToken => (
                StatusCode::FORBIDDEN,
                "表单已失效 The form has expired".into(),
                "The form's security token is missing or does not belong to your session. \
                 Open the page again and resend it."
                    .into(),
            ),
            PageError::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                "无权操作 Not allowed".into(),
                m.clone(),
            ),
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, "未找到 Not found".into(), m.clone()),
            PageError::Bad { field, why } => (
                StatusCode::BAD_REQUEST,
                "填写有误 Please correct the form".into(),
                format!("{field}: {why}"),
            ),
            PageError::Unavailable(m) => {
                tracing::warn!(service = "web", error = %m, "workbench page unavailable");
                (
                    StatusCode::BAD_GATEWAY,
                    "服务暂不可用 A service is unavailable".into(),
                    "A service this page needs cannot be reached; try again shortly.".into(),
                )
            }
            PageError::Service(e) => match e {
                GatewayError::Status { status, .. } => {
                    let code = crate::api::errors::http_status(status.code());
                    let title = match code {
                        StatusCode::FORBIDDEN => "无权操作 Not allowed",
                        StatusCode::NOT_FOUND => "未找到 Not found",
                        StatusCode::BAD_REQUEST => "填写有误 Please correct the form",
                        StatusCode::CONFLICT => "暂不能办理 Not possible now",
                        _ => "服务暂不可用 A service is unavailable",
                    };
                    (code, title.into(), status.message().to_string())
                }
                other => (
                    StatusCode::BAD_REQUEST,
                    "填写有误 Please correct the form".into(),
                    other.to_string(),
                ),
            },
        }
    }

    /// A refusal to show on the form it answers (status and message), or the error itself when
    /// it must end the request (sign in again).
    fn on_form(e: GatewayError) -> Result<(StatusCode, String), PageError> {
        let e = PageError::from(e);
        if e.signs_in().is_some() {
            return Err(e);
        }
        let (status, _, detail) = e.explain();
        Ok((status, detail))
    }

    fn signs_in(&self) -> Option<String> {
        match self {
            PageError::SignIn { next } => Some(next.clone()),
            PageError::Service(GatewayError::Status { status, .. })
                if status.code() == tonic::Code::Unauthenticated =>
            {
                Some("/work/".into())
            }
            _ => None,
        }
    }
}

/// Renders errors as pages; the state carries the templates.
struct Failed(Workbench, PageError);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        let Failed(wb, e) = self;
        if let Some(next) = e.signs_in() {
            return Redirect::to(&format!("/work/login?next={}", signin::encode_next(&next)))
                .into_response();
        }
        let (status, title, detail) = e.explain();
        wb.0.views.html(
            status,
            "error.html",
            &json!({ "title": title, "detail": detail, "status": status.as_u16() }),
        )
    }
}

type PageResult = Result<Response, PageError>;

/// Turns a page handler's error into its page.
fn finish(wb: &Workbench, r: PageResult) -> Response {
    r.unwrap_or_else(|e| Failed(wb.clone(), e).into_response())
}

/// The workbench's routes, under `/work`.
pub fn router(wb: Workbench) -> Router {
    let upload_limit = wb
        .config()
        .max_file_bytes
        .saturating_mul(MAX_FILES_PER_UPLOAD)
        .saturating_add(1 << 20);
    let upload_limit = usize::try_from(upload_limit).unwrap_or(usize::MAX);
    Router::new()
        .route("/work", get(|| async { Redirect::permanent("/work/") }))
        .route("/work/", get(tasks::page))
        .route("/work/login", get(signin::form).post(signin::submit))
        .route("/work/logout", post(signin::logout))
        .route("/work/evidence/new", get(evidence::form))
        .route(
            "/work/evidence",
            post(evidence::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/work/evidence/{id}", get(evidence::detail))
        .route("/work/evidence/{id}/file", get(evidence::file))
        .route(
            "/work/statistics",
            get(statistics::page).post(statistics::submit),
        )
        .route("/work/statistics/template.xlsx", get(statistics::template))
        .route(
            "/work/statistics/review",
            get(approve::page).post(approve::decide),
        )
        .route(
            "/work/surveys/review",
            axum::routing::post(approve::decide_batch),
        )
        .route(
            "/work/statistics/upload",
            post(statistics::upload).layer(DefaultBodyLimit::max(statistics::MAX_RETURN_BYTES)),
        )
        .route("/work/explain/{code}", get(explain::page))
        .route("/work/office", get(office::page))
        .route("/work/office/{action}", post(office::act))
        .route("/work/reports/{kind}", get(office::report))
        .route("/work/surveys", get(surveys::page))
        .route(
            "/work/surveys/upload",
            post(surveys::upload).layer(DefaultBodyLimit::max(surveys::MAX_EXPORT_BYTES)),
        )
        .route("/work/surveys/file", post(surveys::file))
        .route("/work/review", get(review::queue))
        .route("/work/review/{id}", get(review::item).post(review::decide))
        .route("/work/assets/workbench.js", get(views::script))
        .route("/work/assets/workbench.css", get(views::style))
        .layer(axum::middleware::from_fn(no_store))
        .with_state(wb)
}

/// Workbench pages hold a person's own data: never kept by a cache.
async fn no_store(req: Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// The path and query a request was made to, for coming back after sign-in.
fn here(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/work/".into())
}

/// Whether `caller` may upload evidence for `criterion` at `org_unit` under `unit`, by the same
/// rule the evidence service applies.
async fn may_upload(
    wb: &Workbench,
    caller: &Caller,
    criterion: &str,
    org_unit: &str,
    unit: &str,
) -> Result<(), PageError> {
    let fw = wb.framework().await?;
    let code = cezone_domain::code::ItemCode::parse(criterion)
        .map_err(|e| PageError::bad("criterion", e))?;
    let idx = fw
        .find(&code)
        .ok_or_else(|| PageError::bad("criterion", format!("'{criterion}' is not a criterion")))?;
    let org = cezone_domain::org::OrgUnitId::parse(org_unit)
        .map_err(|e| PageError::bad("org_unit", e))?;
    let tree = wb.org_tree().await?;
    if tree.find(&org).is_none() {
        return Err(PageError::bad(
            "org_unit",
            format!("'{org_unit}' is not an org unit"),
        ));
    }
    let unit = cezone_domain::units::UnitId::parse(unit)
        .map_err(|e| PageError::bad("responsible_unit", e))?;
    let item = fw.item(idx);
    access::authorize(
        caller.principal(),
        &Action::UploadEvidence {
            org_unit: &org,
            criterion: &code,
            unit: &unit,
            responsible: &item.responsible,
        },
        Some(&tree),
    )
    .map_err(|d| PageError::Forbidden(d.to_string()))
}

/// Refuses a person who may not review evidence.
fn must_review(caller: &Caller) -> Result<(), PageError> {
    access::authorize(caller.principal(), &Action::ReviewEvidence, None)
        .map_err(|d| PageError::Forbidden(d.to_string()))
}
