//! Reports as files: the self-score explanation and the responsible-unit checklist of any org
//! unit, from the current scores or a frozen snapshot, as XLSX or HTML. Evidence titles and file
//! hashes are read from the evidence service; scores and review states are the read model's.

use std::sync::Arc;

use cezone_domain::calendar::Date;
use cezone_platform::ApiError;
use cezone_platform::error::{ErrorCode, Violation};
use cezone_platform::glue::convert::score;
use cezone_platform::time::{local, now_rfc3339};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::scoring::v1 as ps;
use cezone_report::{
    Checklist, EvidenceCatalog, EvidenceMeta, ReportFormat, ReportKind, ReportMeta, ReportSource,
    SelfScore,
};
use sea_orm::EntityTrait;
use sha2::{Digest, Sha256};

use crate::entities::snapshot;
use crate::model::{Inputs, Scored};
use crate::state::State;

/// Bytes per streamed chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A rendered report and its description.
#[derive(Debug)]
pub struct Rendered {
    pub info: ps::ReportInfo,
    pub bytes: Vec<u8>,
}

fn not_found(field: &str, description: String) -> ApiError {
    ApiError {
        code: ErrorCode::NotFound,
        message: format!("{field}: {description}"),
        violations: vec![Violation {
            field: field.to_string(),
            description,
        }],
        retry_after: None,
        cause: None,
    }
}

/// Checks the request's own fields, reporting every bad one at once.
fn parse(
    r: &ps::ExportReportRequest,
) -> Result<(ReportKind, ReportFormat, Option<Date>), ApiError> {
    let mut bad = Vec::new();
    let kind =
        ReportKind::parse(&r.kind).map_err(|e| bad.push(("kind".to_string(), e.to_string())));
    let format =
        ReportFormat::parse(&r.format).map_err(|e| bad.push(("format".to_string(), e.to_string())));
    let as_of = if r.as_of.is_empty() {
        Ok(None)
    } else {
        Date::parse(&r.as_of)
            .map(Some)
            .map_err(|e| bad.push(("as_of".to_string(), e)))
    };
    match (kind, format, as_of) {
        (Ok(k), Ok(f), Ok(d)) => Ok((k, f, d)),
        _ if bad.len() == 1 => {
            let (field, description) = bad.remove(0);
            Err(ApiError::invalid(&field, description))
        }
        _ => Err(ApiError::invalid_many("the report request is invalid", bad)),
    }
}

/// The scored model a report is about: current, or recomputed from a snapshot's frozen inputs.
async fn scored_for(
    state: &State,
    snapshot_id: &str,
) -> Result<(Arc<Scored>, ReportSource), ApiError> {
    if snapshot_id.is_empty() {
        let scored = state.current().await?;
        let source = ReportSource::Current {
            computed_at: local(&scored.computed_at, state.utc_offset_hours),
        };
        return Ok((scored, source));
    }
    let m = snapshot::Entity::find_by_id(snapshot_id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            not_found(
                "snapshot_id",
                format!("snapshot '{snapshot_id}' does not exist"),
            )
        })?;
    let inputs: Inputs = serde_json::from_str(&m.inputs_json)
        .map_err(|e| ApiError::internal_msg(format!("snapshot {}: {e}", m.id)))?;
    let frozen_at = m.frozen_at.clone();
    let scored = tokio::task::spawn_blocking(move || Scored::compute(Arc::new(inputs), frozen_at))
        .await
        .map_err(|e| ApiError::internal_msg(format!("scoring task failed: {e}")))??;
    Ok((
        Arc::new(scored),
        ReportSource::Snapshot {
            id: m.id,
            checkpoint: m.checkpoint,
            label: m.label,
            frozen_at: local(&m.frozen_at, state.utc_offset_hours),
            content_hash: m.content_hash,
        },
    ))
}

/// Titles and hashes of the framework's evidence records. When the evidence service cannot be
/// reached the report still comes out, with ids in place of titles and no hashes.
async fn catalog(state: &State, framework_id: &str) -> EvidenceCatalog {
    let mut out = EvidenceCatalog::new();
    let mut client = state.upstream.evidence.clone();
    let mut token = String::new();
    loop {
        let resp = match client
            .list_evidence(pe::ListEvidenceRequest {
                framework_id: framework_id.to_string(),
                page: Some(PageRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                }),
                ..Default::default()
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => {
                tracing::warn!(code = ?s.code(), message = s.message(), "evidence titles unavailable for a report");
                return out;
            }
        };
        for e in resp.evidence {
            let sha256 = e
                .current
                .as_ref()
                .map(|v| v.sha256.clone())
                .unwrap_or_default();
            out.insert(
                e.id,
                EvidenceMeta {
                    title: e.title,
                    sha256,
                },
            );
        }
        token = resp.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            return out;
        }
    }
}

/// Renders the report a request asks for.
pub async fn export(state: &State, r: &ps::ExportReportRequest) -> Result<Rendered, ApiError> {
    let (kind, format, as_of) = parse(r)?;
    let (scored, source) = scored_for(state, &r.snapshot_id).await?;
    let node = scored.node(&r.org_unit)?;
    let fw = scored.framework();
    if !r.checkpoint.is_empty() && fw.calendar.checkpoint(&r.checkpoint).is_none() {
        let known: Vec<&str> = fw
            .calendar
            .checkpoints
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        return Err(ApiError::invalid(
            "checkpoint",
            format!(
                "'{}' is not a checkpoint (known: {})",
                r.checkpoint,
                known.join(", ")
            ),
        ));
    }
    let catalog = catalog(state, fw.meta.id.as_str()).await;
    let unit = scored.tree().unit(node);
    let meta = ReportMeta {
        framework_id: fw.meta.id.to_string(),
        edition: fw.meta.edition.clone(),
        framework_title: fw.meta.title.clone(),
        org_unit: unit.id.to_string(),
        org_unit_name: unit.name.clone(),
        period: scored.inputs.period,
        source,
        generated_at: local(&now_rfc3339(), state.utc_offset_hours),
    };
    let total = scored.board.total(fw, node);
    let file_name = format!(
        "{}-{}-{}{}.{}",
        unit.id,
        kind.as_str(),
        scored.inputs.period,
        if r.snapshot_id.is_empty() {
            String::new()
        } else {
            format!("-{}", r.snapshot_id)
        },
        format.extension()
    );
    let checkpoint = r.checkpoint.clone();
    let today = as_of.unwrap_or_else(|| Date(cezone_platform::time::now().date_naive()));
    let model = scored.clone();
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let engine = &model.engine;
        let out = match kind {
            ReportKind::SelfScore => {
                let report = SelfScore::build(engine, &model.board, node, meta, &catalog);
                cezone_report::render_self_score(&report, format)
            }
            ReportKind::Checklist => {
                let list = Checklist::build(engine, node, meta, &catalog, &checkpoint, today)
                    .map_err(|e| ApiError::invalid("checkpoint", e.to_string()))?;
                cezone_report::render_checklist(&list, format)
            }
        };
        out.map_err(ApiError::internal)
    })
    .await
    .map_err(|e| ApiError::internal_msg(format!("report task failed: {e}")))??;
    Ok(Rendered {
        info: ps::ReportInfo {
            file_name,
            content_type: format.content_type().to_string(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            org_unit: unit.id.to_string(),
            snapshot_id: r.snapshot_id.clone(),
            total: Some(score(total)),
        },
        bytes,
    })
}

/// The report as stream messages: its description, then the file in chunks.
pub fn chunks(rendered: Rendered) -> Vec<ps::ReportChunk> {
    use ps::report_chunk::Part;
    let mut out = vec![ps::ReportChunk {
        part: Some(Part::Info(rendered.info)),
    }];
    out.extend(rendered.bytes.chunks(CHUNK_BYTES).map(|c| ps::ReportChunk {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    out
}
