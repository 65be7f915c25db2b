//! gRPC edge of the scoring service, and the state it serves from.

use std::sync::Arc;
use std::time::Instant;

use cezone_platform::ApiError;
use cezone_platform::convert::score;
use cezone_platform::time::now_rfc3339;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_server::ScoringService;
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, RwLock};
use tonic::{Request, Response, Status};

use crate::model::{Inputs, Scored};
use crate::reconcile::{self, Upstream};
use crate::{snapshots, store};

#[derive(Debug)]
pub struct State {
    pub db: DatabaseConnection,
    pub upstream: Upstream,
    pub current: RwLock<Option<Arc<Scored>>>,
    /// One rebuild at a time.
    pub rebuilding: Mutex<()>,
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
}

impl State {
    /// Scores from inputs, computed off the async threads.
    async fn score(inputs: Inputs) -> Result<Scored, ApiError> {
        let inputs = Arc::new(inputs);
        tokio::task::spawn_blocking(move || Scored::compute(inputs, now_rfc3339()))
            .await
            .map_err(|e| ApiError::internal_msg(format!("scoring task failed: {e}")))?
    }

    /// Rebuilds the read model from the other services and recomputes everything.
    pub async fn rebuild(
        &self,
        framework_id: &str,
        edition: &str,
        period: i32,
    ) -> Result<Arc<Scored>, ApiError> {
        let _one = self.rebuilding.lock().await;
        let inputs = reconcile::pull(&self.upstream, framework_id, edition, period).await?;
        store::replace_all(&self.db, &inputs).await?;
        let scored = Arc::new(Self::score(inputs).await?);
        store::save_scores(&self.db, &scored).await?;
        *self.current.write().await = Some(scored.clone());
        Ok(scored)
    }

    /// Restores the read model stored by an earlier run, if any.
    pub async fn restore(&self) -> Result<bool, ApiError> {
        let Some(inputs) = store::load(&self.db, self.period).await? else {
            return Ok(false);
        };
        let scored = Arc::new(Self::score(inputs).await?);
        *self.current.write().await = Some(scored);
        Ok(true)
    }

    pub async fn current(&self) -> Result<Arc<Scored>, ApiError> {
        self.current.read().await.clone().ok_or_else(|| {
            ApiError::precondition("no scores yet: the read model is empty; call Recompute")
        })
    }
}

#[derive(Debug, Clone)]
pub struct ScoringApi {
    pub state: Arc<State>,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ScoringService for ScoringApi {
    async fn recompute(&self, req: Request<ps::RecomputeRequest>) -> Reply<ps::RecomputeResponse> {
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

    async fn get_scores(&self, req: Request<ps::GetScoresRequest>) -> Reply<ps::OrgUnitScores> {
        let r = req.into_inner();
        let scored = self.state.current().await?;
        let node = scored.node(&r.org_unit)?;
        Ok(Response::new(scored.scores(node, &r.items, r.explain)?))
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
        let r = req.into_inner();
        let scored = self.state.current().await?;
        let snap = snapshots::freeze(&self.state.db, &scored, &r).await?;
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
}
