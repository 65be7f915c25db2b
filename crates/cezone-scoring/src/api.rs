//! gRPC edge of the scoring service, and the state it serves from.

use std::sync::Arc;
use std::time::Instant;

use std::pin::Pin;

use cezone_domain::access::{Action, Principal};
use cezone_platform::ApiError;
use cezone_platform::access::auth::{caller, permit};
use cezone_platform::glue::convert::score;
use cezone_proto::Encoded;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::encoded::scoring_service_server::ScoringService;
use futures::Stream;
use sea_orm::TransactionTrait;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::model::Scored;
use crate::state::State;
use crate::{events, snapshots};

#[derive(Debug, Clone)]
pub struct ScoringApi {
    pub state: Arc<State>,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ScoringService for ScoringApi {
    async fn list_audit(
        &self,
        req: tonic::Request<cezone_proto::common::v1::ListAuditRequest>,
    ) -> Result<tonic::Response<cezone_proto::common::v1::ListAuditResponse>, tonic::Status> {
        let who = cezone_platform::access::auth::caller(&req)?;
        let page = cezone_platform::access::audit_list::list(
            &self.state.db,
            "scoring",
            &who,
            req.get_ref(),
        )
        .await?;
        Ok(tonic::Response::new(page))
    }

    async fn recompute(&self, req: Request<ps::RecomputeRequest>) -> Reply<ps::RecomputeResponse> {
        let who = caller(&req)?;
        permit(&who, &Action::Recompute, None)?;
        let r = req.into_inner();
        let s = &self.state;
        let framework_id = if r.framework_id.is_empty() {
            s.framework_id.clone()
        } else {
            r.framework_id
        };
        let edition = if r.edition.is_empty() {
            s.edition.clone()
        } else {
            r.edition
        };
        let period = if r.period == 0 { s.period } else { r.period };
        if !(1900..=2200).contains(&period) {
            return Err(
                ApiError::invalid("period", format!("{period} is not a plausible year")).into(),
            );
        }
        let started = Instant::now();
        let scored = s.rebuild(&framework_id, &edition, period).await?;
        let facts = &scored.inputs.facts;
        tracing::info!(
            framework = %framework_id,
            edition = %scored.inputs.edition,
            period,
            org_units = scored.tree().len(),
            total = %scored.total().confirmed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scores recomputed from the services"
        );
        // The read model is derived data; what is accountable is who asked and what came out.
        let txn = s.db.begin().await.map_err(ApiError::from)?;
        cezone_platform::access::audit::append(
            &txn,
            "scoring",
            cezone_platform::access::audit::Entry {
                actor: &who,
                action: "scores.recomputed",
                target: &format!("{framework_id}/{}/{period}", scored.inputs.edition),
                details: serde_json::json!({
                    "total_confirmed": scored.total().confirmed.to_string(),
                    "statistics": facts.statistics.len(),
                    "tallies": facts.surveys.len(),
                    "evidence": facts.evidence.len(),
                }),
            },
        )
        .await
        .map_err(ApiError::from)?;
        txn.commit().await.map_err(ApiError::from)?;
        Ok(Response::new(ps::RecomputeResponse {
            framework_id,
            edition: scored.inputs.edition.clone(),
            period,
            org_units: scored.tree().len() as u32,
            cells: (scored.tree().len() * scored.framework().len()) as u32,
            district_total: Some(score(scored.total())),
            computed_at: scored.computed_at.clone(),
            statistics: facts.statistics.len() as u64,
            tallies: facts.surveys.len() as u64,
            evidence: facts.evidence.len() as u64,
            elapsed_micros: started.elapsed().as_micros() as u64,
        }))
    }

    async fn get_scores(&self, req: Request<ps::GetScoresRequest>) -> Reply<Encoded> {
        let r = req.into_inner();
        let scored = self.state.current().await?;
        let node = scored.node(&r.org_unit)?;
        Ok(Response::new(
            scored.encoded_scores(node, &r.items, r.explain)?,
        ))
    }

    async fn get_summary(&self, req: Request<ps::GetSummaryRequest>) -> Reply<ps::Summary> {
        let r = req.into_inner();
        let scored = self.state.current().await?;
        let node = scored.node(&r.org_unit)?;
        let weak = if r.weak_links == 0 {
            8
        } else {
            r.weak_links.min(100) as usize
        };
        let summary = scored.engine.summary(&scored.board, node, weak);
        Ok(Response::new(ps::Summary {
            summary_json: serde_json::to_string(&summary)
                .map_err(|e| ApiError::internal_msg(e.to_string()))?,
            total: Some(score(summary.total)),
            max_points: summary.max_points.to_string(),
        }))
    }

    async fn get_readiness(&self, req: Request<ps::GetReadinessRequest>) -> Reply<ps::Readiness> {
        let r = req.into_inner();
        let scored = self.state.current().await?;
        let node = scored.node(&r.org_unit)?;
        let top = if r.top == 0 {
            10
        } else {
            r.top.min(1000) as usize
        };
        let readiness = scored.engine.readiness(&scored.board, node, top);
        Ok(Response::new(ps::Readiness {
            readiness_json: serde_json::to_string(&readiness)
                .map_err(|e| ApiError::internal_msg(e.to_string()))?,
            key_short: readiness.key_short.len() as u32,
            units_owing: readiness.units.len() as u32,
        }))
    }

    async fn freeze_snapshot(
        &self,
        req: Request<ps::FreezeSnapshotRequest>,
    ) -> Reply<ps::Snapshot> {
        let who = caller(&req)?;
        permit(&who, &Action::FreezeSnapshot, None)?;
        if req.get_ref().close_submissions {
            permit(&who, &Action::CloseSubmissions, None)?;
        }
        let mut r = req.into_inner();
        // Who froze it is who is signed in (a service may name the person it acts for).
        r.frozen_by = who.acting_name(&r.frozen_by);
        let snap = self.state.freeze(&r, &who).await?;
        tracing::info!(snapshot = %snap.id, checkpoint = %snap.checkpoint, hash = %snap.content_hash, "snapshot frozen");
        Ok(Response::new(snap))
    }

    async fn list_snapshots(
        &self,
        req: Request<ps::ListSnapshotsRequest>,
    ) -> Reply<ps::ListSnapshotsResponse> {
        let (snapshots, page) =
            snapshots::list(&self.state.db, req.get_ref().page.as_ref()).await?;
        Ok(Response::new(ps::ListSnapshotsResponse { snapshots, page }))
    }

    async fn get_snapshot(
        &self,
        req: Request<ps::GetSnapshotRequest>,
    ) -> Reply<ps::SnapshotScores> {
        Ok(Response::new(
            snapshots::get(&self.state.db, req.get_ref()).await?,
        ))
    }

    async fn diff_snapshots(
        &self,
        req: Request<ps::DiffSnapshotsRequest>,
    ) -> Reply<ps::SnapshotDiff> {
        Ok(Response::new(
            snapshots::diff(&self.state.db, req.get_ref()).await?,
        ))
    }

    type ExportReportStream = Pin<Box<dyn Stream<Item = Result<ps::ReportChunk, Status>> + Send>>;

    async fn export_report(
        &self,
        req: Request<ps::ExportReportRequest>,
    ) -> Reply<Self::ExportReportStream> {
        let r = req.into_inner();
        let rendered = crate::report::export(&self.state, &r).await?;
        tracing::info!(file = %rendered.info.file_name, bytes = rendered.info.size, "report exported");
        let chunks = crate::report::chunks(rendered);
        Ok(Response::new(Box::pin(futures::stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }

    type WatchScoresStream = Pin<Box<dyn Stream<Item = Result<ps::ScoresUpdate, Status>> + Send>>;

    async fn watch_scores(
        &self,
        req: Request<ps::WatchScoresRequest>,
    ) -> Reply<Self::WatchScoresStream> {
        let r = req.into_inner();
        let mut updates = self.state.updates.subscribe();
        let scored = self.state.current().await?;
        let node = scored.node(&r.org_unit)?;
        let unit_id = scored.tree().unit(node).id.clone();
        let children = scored.tree().children(node).to_vec();
        let first = watch_update(&scored, node, &children, 0, Vec::new(), &scored.computed_at);
        let shutdown = self.state.shutdown.clone();
        let stream = async_stream::stream! {
            yield Ok(first);
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => break,
                    u = updates.recv() => u,
                };
                match next {
                    Ok(u) => {
                        let m = &u.model;
                        let Some(node) = m.tree().find(&unit_id) else { continue };
                        let inside: Vec<usize> = u.changed.iter().copied().filter(|&i| m.tree().contains(node, i)).collect();
                        if inside.is_empty() {
                            continue;
                        }
                        yield Ok(watch_update(m, node, &inside, u.cells_recomputed, u.caused_by.clone(), &u.computed_at));
                    }
                    // A slow watcher skips intermediate updates; the next one carries current totals.
                    Err(RecvError::Lagged(n)) => tracing::debug!(skipped = n, "score watcher lagged"),
                    Err(RecvError::Closed) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}

fn unit_score(scored: &Scored, i: usize) -> ps::UnitScore {
    let u = scored.tree().unit(i);
    ps::UnitScore {
        org_unit: u.id.to_string(),
        name: u.name.clone(),
        total: Some(score(scored.board.total(scored.framework(), i))),
    }
}

fn watch_update(
    scored: &Scored,
    node: usize,
    changed: &[usize],
    cells: u32,
    caused_by: Vec<String>,
    at: &str,
) -> ps::ScoresUpdate {
    ps::ScoresUpdate {
        computed_at: at.to_string(),
        unit: Some(unit_score(scored, node)),
        changed: changed.iter().map(|&i| unit_score(scored, i)).collect(),
        cells_recomputed: cells,
        caused_by,
    }
}

impl State {
    /// Freezes a snapshot computed from exactly the stored read model, and announces it.
    pub async fn freeze(
        &self,
        r: &ps::FreezeSnapshotRequest,
        who: &Principal,
    ) -> Result<ps::Snapshot, ApiError> {
        self.current().await?;
        let inputs = crate::store::load(&self.db, self.period)
            .await?
            .ok_or_else(|| {
                ApiError::precondition("no scores yet: the read model is empty; call Recompute")
            })?;
        let scored = State::score(inputs).await?;
        let txn = self.db.begin().await?;
        let snap = snapshots::freeze(&txn, &scored, r).await?;
        cezone_bus::outbox::enqueue(
            &txn,
            crate::OUTBOX,
            &events::snapshot_frozen(&snap, r.close_submissions),
        )
        .await?;
        cezone_platform::access::audit::append(
            &txn,
            "scoring",
            cezone_platform::access::audit::Entry {
                actor: who,
                action: "snapshot.frozen",
                target: &snap.id,
                details: serde_json::json!({
                    "checkpoint": snap.checkpoint,
                    "label": snap.label,
                    "content_hash": snap.content_hash,
                    "total_confirmed": snap.district_total.as_ref().map(|t| t.confirmed.clone()),
                    "close_submissions": r.close_submissions,
                }),
            },
        )
        .await?;
        txn.commit().await?;
        if let Some(relay) = &self.relay {
            relay.notify();
        }
        Ok(snap)
    }
}
