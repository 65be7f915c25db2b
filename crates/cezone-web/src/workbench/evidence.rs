//! Evidence (台帐资料) in the workbench: the upload form (one or several files to a criterion,
//! or a revision answering a return), the record's page with its history, and the file itself
//! shown in the page. Uploads are streamed from the browser to the evidence service as they
//! arrive; the service's limits and checks apply unchanged.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use cezone_proto::evidence::v1 as pe;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Caller, MAX_FILES_PER_UPLOAD, PageError, PageResult, Workbench, finish, here, may_upload,
};
use crate::api::Service;

/// Chinese first, English beside it; the CSS class names the state.
pub fn review_state(state: i32) -> (&'static str, &'static str) {
    match pe::ReviewState::try_from(state).unwrap_or(pe::ReviewState::Unspecified) {
        pe::ReviewState::Submitted => ("pending", "待审核 Pending"),
        pe::ReviewState::Accepted => ("accepted", "已通过 Accepted"),
        pe::ReviewState::Returned => ("returned", "已退回 Returned"),
        pe::ReviewState::Unspecified => ("unknown", "未知 Unknown"),
    }
}

/// A size people read: 1.2 MB, 830 KB, 12 B.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub(super) async fn get_evidence(
    wb: &Workbench,
    caller: &Caller,
    id: &str,
) -> Result<pe::Evidence, PageError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(PageError::NotFound(format!("'{id}' is not an evidence id")));
    }
    Ok(wb
        .gateway()
        .unary(
            Service::Evidence,
            "GetEvidence",
            &caller.auth,
            pe::GetEvidenceRequest { id: id.to_string() },
        )
        .await?)
}

/// What the upload form is for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Target {
    #[serde(default)]
    criterion: String,
    #[serde(default)]
    org_unit: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    replaces: String,
    #[serde(default)]
    title: String,
    /// The kind of material, where the criterion's rule lists the materials it wants.
    #[serde(default)]
    material: String,
}

impl Target {
    /// A revision answers the returned record it replaces: same criterion, org unit and unit.
    async fn resolve(mut self, wb: &Workbench, caller: &Caller) -> Result<Target, PageError> {
        if !self.replaces.is_empty() {
            let record = get_evidence(wb, caller, &self.replaces).await?;
            self.criterion = record.criterion;
            self.org_unit = record.org_unit;
            self.unit = record.responsible_unit;
            if self.title.is_empty() {
                self.title = record.title;
            }
        }
        let p = caller.principal();
        if self.unit.is_empty()
            && let Some(u) = &p.unit
        {
            self.unit = u.to_string();
        }
        if self.org_unit.is_empty()
            && let Some(o) = &p.org_unit
        {
            self.org_unit = o.to_string();
        }
        for (field, value) in [
            ("criterion", &self.criterion),
            ("org_unit", &self.org_unit),
            ("unit", &self.unit),
        ] {
            if value.is_empty() {
                return Err(PageError::bad(field, "is required"));
            }
        }
        may_upload(wb, caller, &self.criterion, &self.org_unit, &self.unit).await?;
        Ok(self)
    }
}

async fn form_context(wb: &Workbench, t: &Target) -> Result<Value, PageError> {
    let names = wb.names().await?;
    let item = names.item(&t.criterion);
    let max = wb.config().max_file_bytes;
    let materials: Vec<String> = item
        .and_then(|i| i.rule.as_ref())
        .map(|r| match r {
            cezone_domain::rules::Rule::Evidence { materials } => materials.clone(),
            _ => Vec::new(),
        })
        .unwrap_or_default();
    Ok(json!({
        "material_types": materials,
        "material": t.material,
        "criterion": t.criterion,
        "title": item.map(|i| i.title.clone()).unwrap_or_default(),
        "key": item.is_some_and(|i| i.key),
        "materials": item.map(|i| i.materials.clone()).unwrap_or_default(),
        "org_unit": t.org_unit,
        "org_unit_name": names.org(&t.org_unit),
        "unit": t.unit,
        "unit_name": names.unit(&t.unit),
        "replaces": t.replaces,
        "doc_title": t.title,
        "max_bytes": max,
        "max_size": size(max),
        "max_files": MAX_FILES_PER_UPLOAD,
        "refused_extensions": cezone_domain::files::PROGRAM_EXTENSIONS.join(","),
    }))
}

pub async fn form(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Query(t): Query<Target>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        let t = t.resolve(&wb, &caller).await?;
        let ctx = form_context(&wb, &t).await?;
        Ok(wb.page(&caller, "upload.html", ctx))
    }
    .await;
    finish(&wb, r)
}

/// Reads a text field of the upload form (short: ids, a title).
async fn text_field(field: axum::extract::multipart::Field<'_>) -> Result<String, PageError> {
    let name = field.name().unwrap_or_default().to_string();
    let text = field
        .text()
        .await
        .map_err(|e| PageError::bad(&name, e.body_text()))?;
    if text.len() > 500 {
        return Err(PageError::bad(&name, "is longer than 500 bytes"));
    }
    Ok(text.trim().to_string())
}

/// Streams one file field to the evidence service as it arrives.
async fn send_file(
    wb: &Workbench,
    caller: &Caller,
    t: &Target,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<pe::Evidence, PageError> {
    let file_name = field.file_name().unwrap_or_default().to_string();
    let content_type = field.content_type().unwrap_or_default().to_string();
    let title = if t.title.is_empty() {
        file_name
            .rsplit_once('.')
            .map_or(file_name.as_str(), |(stem, _)| stem)
            .to_string()
    } else {
        t.title.clone()
    };
    let metadata = pe::UploadRequest {
        part: Some(pe::upload_request::Part::Metadata(pe::UploadMetadata {
            framework_id: wb.config().framework_id.clone(),
            edition: wb.config().edition.clone(),
            criterion: t.criterion.clone(),
            org_unit: t.org_unit.clone(),
            responsible_unit: t.unit.clone(),
            period: wb.config().period,
            title,
            material_type: t.material.clone(),
            file_name,
            content_type,
            replaces: t.replaces.clone(),
            submitted_by: String::new(),
        })),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<pe::UploadRequest>(4);
    let _ = tx.send(metadata).await;
    let gateway = wb.gateway().clone();
    let auth = caller.auth.clone();
    let call = tokio::spawn(async move {
        let parts = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        gateway
            .client_stream::<_, pe::Evidence, _>(Service::Evidence, "Upload", &auth, parts)
            .await
    });
    let mut read_error = None;
    loop {
        match field.chunk().await {
            Ok(Some(bytes)) => {
                let part = pe::UploadRequest {
                    part: Some(pe::upload_request::Part::Chunk(bytes.to_vec())),
                };
                // The service has answered already (a refusal): stop sending.
                if tx.send(part).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(PageError::bad("file", e.body_text()));
                break;
            }
        }
    }
    if let Some(e) = read_error {
        call.abort();
        return Err(e);
    }
    drop(tx);
    match call.await {
        Ok(r) => Ok(r?),
        Err(e) => Err(PageError::Unavailable(format!(
            "the upload call ended: {e}"
        ))),
    }
}

/// `POST /work/evidence`: the form token first, then the target's fields, then the files.
pub async fn upload(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let r = receive(&wb, &headers, multipart).await;
    finish(&wb, r)
}

async fn receive(wb: &Workbench, headers: &HeaderMap, mut multipart: Multipart) -> PageResult {
    let caller = wb.caller(headers, "/work/").await?;
    let mut token_checked = false;
    let mut target = Target::default();
    let mut resolved: Option<Target> = None;
    let mut stored: Vec<pe::Evidence> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let e = PageError::bad("file", e.body_text());
                return refused(wb, &caller, &target, &stored, e).await;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        if !token_checked {
            // Nothing of a form is read before its token: it must come first.
            let sent = if name == "csrf" {
                Some(text_field(field).await?)
            } else {
                None
            };
            caller.check_form(sent.as_deref())?;
            token_checked = true;
            continue;
        }
        match name.as_str() {
            "criterion" => target.criterion = text_field(field).await?,
            "org_unit" => target.org_unit = text_field(field).await?,
            "unit" => target.unit = text_field(field).await?,
            "replaces" => target.replaces = text_field(field).await?,
            "title" => target.title = text_field(field).await?,
            "material" => target.material = text_field(field).await?,
            "file" => {
                if field.file_name().is_none_or(str::is_empty) {
                    continue; // a file input left empty
                }
                if stored.len() as u64 >= MAX_FILES_PER_UPLOAD {
                    let e = PageError::bad(
                        "file",
                        format!("at most {MAX_FILES_PER_UPLOAD} files at a time"),
                    );
                    return refused(wb, &caller, &target, &stored, e).await;
                }
                if resolved.is_none() {
                    resolved = Some(target.clone().resolve(wb, &caller).await?);
                }
                let t = resolved.as_ref().expect("resolved above");
                match send_file(wb, &caller, t, field).await {
                    Ok(e) => stored.push(e),
                    Err(e) => return refused(wb, &caller, t, &stored, e).await,
                }
                // A revision is one file: the next would replace a record no longer returned.
                if !t.replaces.is_empty() {
                    break;
                }
            }
            _ => {}
        }
    }
    if !token_checked {
        return Err(PageError::BadFormToken);
    }
    match stored.as_slice() {
        [] => {
            let t = match resolved {
                Some(t) => t,
                None => target.resolve(wb, &caller).await?,
            };
            refused(
                wb,
                &caller,
                &t,
                &stored,
                PageError::bad("file", "choose at least one file"),
            )
            .await
        }
        [one] => Ok(Redirect::to(&format!("/work/evidence/{}", one.id)).into_response()),
        many => Ok(Redirect::to(&format!("/work/?uploaded={}", many.len())).into_response()),
    }
}

/// The upload form again with the service's refusal on it, and the files that went in before.
async fn refused(
    wb: &Workbench,
    caller: &Caller,
    t: &Target,
    stored: &[pe::Evidence],
    e: PageError,
) -> PageResult {
    if matches!(e, PageError::SignIn { .. } | PageError::BadFormToken) {
        return Err(e);
    }
    let (status, _, detail) = e.explain();
    let mut ctx = form_context(wb, t).await?;
    ctx["error"] = json!(detail);
    ctx["stored"] = json!(
        stored
            .iter()
            .filter_map(|s| s.current.as_ref().map(|v| v.file_name.clone()))
            .collect::<Vec<_>>()
    );
    let mut res = wb.page(caller, "upload.html", ctx);
    *res.status_mut() = status;
    Ok(res)
}

pub async fn detail(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        let record = get_evidence(&wb, &caller, &id).await?;
        let ctx = record_context(&wb, &record).await?;
        let state = record.current.as_ref().map_or(0, |v| v.state);
        let may_revise = state == pe::ReviewState::Returned as i32
            && may_upload(
                &wb,
                &caller,
                &record.criterion,
                &record.org_unit,
                &record.responsible_unit,
            )
            .await
            .is_ok();
        let mut ctx = ctx;
        ctx["may_revise"] = json!(may_revise);
        Ok(wb.page(&caller, "evidence.html", ctx))
    }
    .await;
    finish(&wb, r)
}

/// A record as pages show it: its criterion and org unit by name, every version newest first.
pub async fn record_context(wb: &Workbench, record: &pe::Evidence) -> Result<Value, PageError> {
    let names = wb.names().await?;
    let item = names.item(&record.criterion);
    let version = |v: &pe::Version| {
        let (class, label) = review_state(v.state);
        json!({
            "version": v.version, "file_name": v.file_name, "content_type": v.content_type,
            "size": size(v.size), "sha256": v.sha256, "state": class, "state_label": label,
            "grade": v.grade, "comment": v.comment,
            "submitted_by": v.submitted_by, "submitted_at": wb.local(&v.submitted_at),
            "reviewed_by": v.reviewed_by, "reviewed_at": wb.local(&v.reviewed_at),
            "inline": inline(&v.content_type),
            "image": v.content_type.starts_with("image/"),
        })
    };
    let current = record.current.as_ref().map(version);
    Ok(json!({
        "id": record.id,
        "criterion": record.criterion,
        "criterion_title": item.map(|i| i.title.clone()).unwrap_or_default(),
        "key": item.is_some_and(|i| i.key),
        "materials": item.map(|i| i.materials.clone()).unwrap_or_default(),
        "org_unit": record.org_unit,
        "org_unit_name": names.org(&record.org_unit),
        "unit": record.responsible_unit,
        "unit_name": names.unit(&record.responsible_unit),
        "title": record.title,
        "current": current,
        "history": record.history.iter().rev().map(version).collect::<Vec<_>>(),
    }))
}

/// Types a browser shows safely in the page: PDF and images (not SVG, which may hold script).
fn inline(content_type: &str) -> bool {
    content_type == "application/pdf"
        || (content_type.starts_with("image/") && !content_type.contains("svg"))
}

#[derive(Debug, Deserialize)]
pub struct FileQuery {
    #[serde(default)]
    version: u32,
}

/// A version's file, streamed from the evidence service (which checks its SHA-256 on the way).
/// PDF and images are shown in the page; anything else is downloaded, never rendered.
pub async fn file(
    State(wb): State<Workbench>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> Response {
    let r = async {
        let caller = wb.caller(&headers, &here(&uri)).await?;
        get_evidence(&wb, &caller, &id).await?;
        let (v, body) = crate::api::streams::evidence_file(
            wb.gateway(),
            &caller.auth,
            pe::DownloadRequest {
                id: id.clone(),
                version: q.version,
            },
        )
        .await?;
        let shown = inline(&v.content_type);
        let mut res = Response::new(body);
        let h = res.headers_mut();
        for (k, value) in crate::api::streams::file_headers(
            &v.content_type,
            v.size,
            &v.file_name,
            &v.sha256,
            shown,
        ) {
            h.insert(k, value);
        }
        if !shown {
            // Never rendered by the browser, whatever the file says it is.
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
        // Shown in a frame of the workbench itself, and nowhere else.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; \
                 object-src 'self'; frame-ancestors 'self'",
            ),
        );
        h.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        *res.status_mut() = StatusCode::OK;
        Ok(res)
    }
    .await;
    finish(&wb, r)
}
