//! gRPC edge of the evidence service.

use std::pin::Pin;
use std::sync::Arc;

use cezone_domain::access::{Action, Principal, Role};
use cezone_domain::org::OrgUnitId;
use cezone_platform::ApiError;
use cezone_platform::access::auth::{caller, permit};
use cezone_platform::glue::registry_view::RegistryView;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::evidence::v1::evidence_service_server::EvidenceService;
use cezone_proto::evidence::v1::upload_request::Part;
use futures::Stream;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status, Streaming};

use crate::blobs::{BlobError, BlobStore};
use crate::{completeness, metadata, records};

#[derive(Debug, Clone)]
pub struct EvidenceApi {
    pub db: DatabaseConnection,
    /// Woken after a committed change whose event sits in the outbox.
    pub relay: cezone_bus::outbox::RelayHandle,
    pub blobs: Arc<BlobStore>,
    pub view: RegistryView,
    pub max_file_bytes: u64,
    pub chunk_bytes: usize,
    /// How long an upload may stay silent and last.
    pub limits: cezone_platform::grpc::StreamLimits,
}

fn blob_error(e: BlobError) -> Status {
    match e {
        BlobError::TooLarge { .. } => ApiError::invalid("chunk", e.to_string()).into(),
        BlobError::Missing { .. } | BlobError::Corrupted { .. } => {
            tracing::error!(error = %e, "evidence file failed its integrity check");
            Status::data_loss(e.to_string())
        }
        BlobError::Io(io) => ApiError::internal(io).into(),
    }
}

impl EvidenceApi {
    /// An upload a locked period refuses: audited, and the refusal as the caller sees it.
    async fn refused(
        &self,
        who: &Principal,
        checked: &crate::metadata::Checked,
        why: String,
    ) -> ApiError {
        let target = format!("{}/{}", checked.period, checked.org_unit);
        let audited = cezone_platform::access::audit::append(
            &self.db,
            "evidence",
            cezone_platform::access::audit::Entry {
                actor: who,
                action: "period.refused",
                target: &target,
                details: serde_json::json!({
                    "what": "evidence",
                    "criterion": checked.criterion.to_string(),
                    "unit": checked.unit.to_string(),
                }),
            },
        )
        .await;
        if let Err(e) = audited {
            return e.into();
        }
        tracing::warn!(subject = %who.subject, period = checked.period, org_unit = %checked.org_unit, "upload refused: the period is locked");
        ApiError::precondition(why)
    }

    /// The matrix decides, before any of the file is received: a department only for the
    /// criteria it is responsible for, a town also only inside its own subtree.
    async fn may_upload(&self, who: &Principal, meta: &pe::UploadMetadata) -> Result<(), ApiError> {
        let scoped = matches!(who.role, Role::ResponsibleUnit | Role::Town);
        let (responsible, tree) = if scoped {
            let (fw, _) = self
                .view
                .framework(&meta.framework_id, &meta.edition)
                .await?;
            let (_, idx) = metadata::leaf(&fw, "criterion", &meta.criterion)?;
            let mut tree = self.view.org_tree(false).await?;
            if who.role == Role::Town
                && OrgUnitId::parse(&meta.org_unit)
                    .ok()
                    .is_some_and(|o| tree.find(&o).is_none())
            {
                tree = self.view.org_tree(true).await?;
            }
            (fw.item(idx).responsible.clone(), Some(tree))
        } else {
            (Vec::new(), None)
        };
        let org = OrgUnitId::parse(&meta.org_unit).map_err(|e| ApiError::invalid("org_unit", e))?;
        let criterion = cezone_domain::code::ItemCode::parse(&meta.criterion)
            .map_err(|e| ApiError::invalid("criterion", e))?;
        let unit = cezone_domain::units::UnitId::parse(&meta.responsible_unit)
            .map_err(|e| ApiError::invalid("responsible_unit", e))?;
        permit(
            who,
            &Action::UploadEvidence {
                org_unit: &org,
                criterion: &criterion,
                unit: &unit,
                responsible: &responsible,
            },
            tree.as_deref(),
        )
    }
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<pe::DownloadResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EvidenceService for EvidenceApi {
    async fn list_audit(
        &self,
        req: tonic::Request<cezone_proto::common::v1::ListAuditRequest>,
    ) -> Result<tonic::Response<cezone_proto::common::v1::ListAuditResponse>, tonic::Status> {
        let who = cezone_platform::access::auth::caller(&req)?;
        let page =
            cezone_platform::access::audit_list::list(&self.db, "evidence", &who, req.get_ref())
                .await?;
        Ok(tonic::Response::new(page))
    }

    async fn upload(
        &self,
        req: Request<Streaming<pe::UploadRequest>>,
    ) -> Result<Response<pe::Evidence>, Status> {
        let who = caller(&req)?;
        let started = std::time::Instant::now();
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        let mut stream = req.into_inner();
        let meta = match self
            .limits
            .next(&mut stream, started)
            .await?
            .and_then(|m| m.part)
        {
            Some(Part::Metadata(m)) => m,
            Some(Part::Chunk(_)) => {
                return Err(ApiError::invalid(
                    "metadata",
                    "the first message must be the metadata, not a chunk",
                )
                .into());
            }
            None => {
                return Err(ApiError::invalid(
                    "metadata",
                    "the upload is empty; send the metadata first",
                )
                .into());
            }
        };
        self.may_upload(&who, &meta).await?;
        let mut checked = metadata::check(&meta, &self.view).await?;
        // Who submitted it is who is signed in, not what the metadata says.
        checked.submitted_by = who.acting_name(&checked.submitted_by);
        // Closed submissions (a closing snapshot) or a locked period take nothing, unless the
        // office unlocked this org unit for a correction.
        let standing =
            crate::period_locks::standing(&self.db, checked.period, checked.org_unit.as_str())
                .await
                .map_err(ApiError::from)?;
        if standing != crate::period_locks::Standing::Unlocked
            && let Some(c) =
                crate::closures::closed(&self.db, &checked.framework_id, &checked.edition).await?
        {
            let why = format!(
                "submissions for {} edition {} closed when checkpoint {} was frozen at {} \
                 (snapshot {}); the evaluation office can unlock {} for a correction",
                checked.framework_id,
                checked.edition,
                c.checkpoint,
                c.frozen_at,
                c.snapshot_id,
                checked.org_unit
            );
            return Err(self.refused(&who, &checked, why).await.into());
        }
        if let crate::period_locks::Standing::Locked {
            locked_at,
            locked_by,
            reason,
        } = &standing
        {
            let why = format!(
                "period {} is locked 已锁定 since {locked_at} by {locked_by} ({reason}); \
                 the evaluation office can unlock {} for a correction",
                checked.period, checked.org_unit
            );
            return Err(self.refused(&who, &checked, why).await.into());
        }
        if let Some(id) = &checked.replaces {
            // Refuse early, before the file is received; checked again when stored.
            let (rec, _) = records::get(&self.db, id).await.map_err(|_| {
                ApiError::invalid("replaces", format!("'{id}' is not an evidence record"))
            })?;
            if rec.state != records::RETURNED {
                return Err(ApiError::precondition(format!(
                    "evidence {id} is {}; only returned evidence is resubmitted",
                    rec.state
                ))
                .into());
            }
        }
        let mut writer = self
            .blobs
            .writer(self.max_file_bytes)
            .await
            .map_err(ApiError::from)?;
        // The file's beginning, for what it really is.
        let mut head: Vec<u8> = Vec::with_capacity(crate::content::HEAD_BYTES);
        // A stalled or endless upload ends here; dropping the writer removes its file.
        while let Some(msg) = self.limits.next(&mut stream, started).await? {
            match msg.part {
                Some(Part::Chunk(bytes)) => {
                    let room = crate::content::HEAD_BYTES - head.len();
                    head.extend_from_slice(&bytes[..room.min(bytes.len())]);
                    writer.write(&bytes).await.map_err(blob_error)?
                }
                Some(Part::Metadata(_)) => {
                    return Err(
                        ApiError::invalid("metadata", "sent twice; send it once, first").into(),
                    );
                }
                None => {}
            }
        }
        if writer.size() == 0 {
            return Err(ApiError::invalid("chunk", "the file is empty").into());
        }
        // Refused here, the writer is dropped and nothing is stored.
        checked.content_type =
            crate::content::check(&checked.file_name, &checked.content_type, &head)?;
        let stored = writer.finish(&self.blobs).await.map_err(blob_error)?;
        let evidence = records::submit(&self.db, &who, &checked, &stored).await?;
        self.relay.notify();
        tracing::info!(
            evidence = %evidence.id,
            criterion = %checked.criterion,
            unit = %checked.unit,
            org_unit = %checked.org_unit,
            bytes = stored.size,
            sha256 = %stored.sha256,
            deduplicated = !stored.new,
            "evidence submitted"
        );
        Ok(Response::new(evidence))
    }

    type DownloadStream = DownloadStream;

    async fn download(
        &self,
        req: Request<pe::DownloadRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let r = req.into_inner();
        let (rec, versions) = records::get(&self.db, &r.id).await?;
        let want = if r.version == 0 {
            rec.current_version
        } else {
            r.version as i32
        };
        let Some(v) = versions.iter().find(|v| v.version == want) else {
            return Err(
                ApiError::not_found(format!("evidence {} has no version {want}", r.id)).into(),
            );
        };
        let path = self
            .blobs
            .verify(&v.sha256, self.chunk_bytes)
            .await
            .map_err(blob_error)?;
        let first = pe::DownloadResponse {
            part: Some(pe::download_response::Part::Evidence(records::to_proto(
                &rec, &versions,
            ))),
        };
        let chunk = self.chunk_bytes;
        let expected = v.sha256.clone();
        let stream = async_stream::try_stream! {
            yield first;
            // Hashed again as it is sent: a file changed between the check and the read ends
            // the stream with DATA_LOSS instead of its last chunk.
            let mut file = tokio::fs::File::open(&path).await.map_err(|e| Status::from(ApiError::internal(e)))?;
            let mut buf = vec![0u8; chunk];
            let mut hasher = Sha256::new();
            let mut pending: Option<Vec<u8>> = None;
            loop {
                let n = file.read(&mut buf).await.map_err(|e| Status::from(ApiError::internal(e)))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                if let Some(ready) = pending.replace(buf[..n].to_vec()) {
                    yield pe::DownloadResponse { part: Some(pe::download_response::Part::Chunk(ready)) };
                }
            }
            let got = hex::encode(hasher.finalize());
            if got != expected {
                tracing::error!(sha256 = %expected, read = %got, "evidence file changed while it was being sent");
                Err(Status::data_loss(format!(
                    "the stored file {expected} changed while it was being sent (it now hashes to {got})"
                )))?;
            }
            if let Some(last) = pending {
                yield pe::DownloadResponse { part: Some(pe::download_response::Part::Chunk(last)) };
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn review(
        &self,
        req: Request<pe::ReviewRequest>,
    ) -> Result<Response<pe::Evidence>, Status> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        permit(&who, &Action::ReviewEvidence, None)?;
        let r = req.into_inner();
        let decision = pe::Decision::try_from(r.decision).map_err(|_| {
            ApiError::invalid("decision", format!("{} is not a decision", r.decision))
        })?;
        let evidence = records::review(
            &self.db,
            &who,
            &r.id,
            decision,
            r.grade,
            &r.comment,
            &who.acting_name(&r.reviewer),
        )
        .await?;
        self.relay.notify();
        tracing::info!(evidence = %r.id, decision = ?decision, grade = r.grade, "evidence reviewed");
        Ok(Response::new(evidence))
    }

    async fn get_evidence(
        &self,
        req: Request<pe::GetEvidenceRequest>,
    ) -> Result<Response<pe::Evidence>, Status> {
        let (rec, versions) = records::get(&self.db, &req.get_ref().id).await?;
        Ok(Response::new(records::to_proto(&rec, &versions)))
    }

    async fn list_evidence(
        &self,
        req: Request<pe::ListEvidenceRequest>,
    ) -> Result<Response<pe::ListEvidenceResponse>, Status> {
        let (evidence, page) = records::list(&self.db, req.get_ref()).await?;
        Ok(Response::new(pe::ListEvidenceResponse { evidence, page }))
    }

    async fn get_completeness(
        &self,
        req: Request<pe::GetCompletenessRequest>,
    ) -> Result<Response<pe::Completeness>, Status> {
        let r = req.into_inner();
        let (fw, _) = self.view.framework(&r.framework_id, &r.edition).await?;
        let tree = self.view.org_tree(false).await?;
        let all = records::all_records(&self.db, fw.meta.id.as_str()).await?;
        Ok(Response::new(completeness::compute(&fw, &tree, &all, &r)?))
    }
}
