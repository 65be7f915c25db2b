//! What the scoring service holds: the scored model, the scorer's position in the fact log,
//! and the channel watchers listen on.

use std::sync::Arc;

use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, Notify, RwLock, broadcast};

use crate::model::{Inputs, Scored};
use crate::reconcile::{self, Upstream};
use crate::scorer::TailPos;
use crate::{facts_db, store};

/// One committed change of scores, as watchers see it.
#[derive(Debug)]
pub struct Update {
    pub computed_at: String,
    pub model: Arc<Scored>,
    /// Org units whose totals changed.
    pub changed: Vec<usize>,
    pub cells_recomputed: u32,
    pub caused_by: Vec<String>,
}

#[derive(Debug)]
pub struct State {
    pub db: DatabaseConnection,
    pub upstream: Upstream,
    pub current: RwLock<Option<Arc<Scored>>>,
    /// One rebuild at a time.
    pub rebuilding: Mutex<()>,
    pub tail: Mutex<TailPos>,
    /// Woken by the consumer after it committed facts.
    pub wake: Notify,
    pub updates: broadcast::Sender<Arc<Update>>,
    pub relay: Option<cezone_bus::outbox::RelayHandle>,
    /// Cancelled when the service stops: ends watch streams, the consumer and the scorer.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
}

impl State {
    /// Scores from inputs, computed off the async threads.
    pub async fn score(inputs: Inputs) -> Result<Scored, ApiError> {
        let inputs = Arc::new(inputs);
        tokio::task::spawn_blocking(move || Scored::compute(inputs, now_rfc3339()))
            .await
            .map_err(|e| ApiError::internal_msg(format!("scoring task failed: {e}")))?
    }

    /// Reconciliation: pulls everything from the other services, merges it into the read model
    /// (newer facts win, as with events) and recomputes every score from the read model.
    pub async fn rebuild(
        &self,
        framework_id: &str,
        edition: &str,
        period: i32,
    ) -> Result<Arc<Scored>, ApiError> {
        let _one = self.rebuilding.lock().await;
        let pulled = reconcile::pull(&self.upstream, framework_id, edition, period).await?;
        store::merge_all(&self.db, &pulled).await?;
        // Everything logged so far is in what is loaded next.
        let mut tail = self.tail.lock().await;
        let last = facts_db::last_log_id(&self.db).await?;
        let inputs = store::load(&self.db, period)
            .await?
            .ok_or_else(|| ApiError::internal_msg("the read model is empty after a rebuild"))?;
        let scored = Arc::new(State::score(Inputs { period, ..inputs }).await?);
        store::save_scores(&self.db, &scored).await?;
        *self.current.write().await = Some(scored.clone());
        tail.next = tail.next.max(last + 1);
        tail.done.retain(|&id| id > last);
        Ok(scored)
    }

    /// Restores the model from the stored read model at start, if there is one.
    pub async fn restore(&self) -> Result<bool, ApiError> {
        let mut tail = self.tail.lock().await;
        let last = facts_db::last_log_id(&self.db).await?;
        let Some(inputs) = store::load(&self.db, self.period).await? else {
            tail.next = last + 1;
            return Ok(false);
        };
        tail.next = last + 1;
        if inputs.org_units.is_empty() {
            return Ok(false);
        }
        let scored = Arc::new(State::score(inputs).await?);
        *self.current.write().await = Some(scored);
        Ok(true)
    }

    pub async fn current(&self) -> Result<Arc<Scored>, ApiError> {
        self.current.read().await.clone().ok_or_else(|| {
            ApiError::precondition("no scores yet: the read model is empty; call Recompute")
        })
    }
}
