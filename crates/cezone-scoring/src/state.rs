//! What the scoring service holds: the scored model, where its scorer stands in the change log,
//! and the channel watchers listen on.

use std::sync::Arc;
use std::time::Duration;

use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, Notify, RwLock, broadcast, watch};

use crate::changes::{self, Mark, Position};
use crate::model::{Inputs, Scored};
use crate::reconcile::{self, Upstream};
use crate::store;

/// How long a rebuild waits for its scorer to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// Written by the scorer alone.
    pub current: RwLock<Option<Arc<Scored>>>,
    /// One rebuild at a time in this process.
    pub rebuilding: Mutex<()>,
    /// Where the scorer stands (none before it first loaded); rebuilds wait on it.
    pub position: watch::Sender<Option<Position>>,
    /// Wakes the scorer: a local consumer commit, another replica's (PostgreSQL NOTIFY), a
    /// rebuild.
    pub wake: Notify,
    pub updates: broadcast::Sender<Arc<Update>>,
    pub relay: Option<cezone_bus::outbox::RelayHandle>,
    /// Cancelled when the service stops: ends watch streams, the consumer and the scorer.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
    /// The district's offset from UTC: times in reports are shown in its zone.
    pub utc_offset_hours: i32,
}

impl State {
    /// Scores from inputs, computed off the async threads.
    pub async fn score(inputs: Inputs) -> Result<Scored, ApiError> {
        let inputs = Arc::new(inputs);
        tokio::task::spawn_blocking(move || Scored::compute(inputs, now_rfc3339()))
            .await
            .map_err(|e| ApiError::internal_msg(format!("scoring task failed: {e}")))?
    }

    /// Reconciliation: pulls everything from the other services and replaces the read model
    /// with it (a fact an event brought after the pull began stays when it is newer), then
    /// waits until this replica's scorer has applied the replacement and returns its model.
    /// Every other replica reloads too: the replacement is a change like any other.
    pub async fn rebuild(
        &self,
        framework_id: &str,
        edition: &str,
        period: i32,
    ) -> Result<Arc<Scored>, ApiError> {
        let _one = self.rebuilding.lock().await;
        let start = changes::position_now(&self.db).await?;
        let pulled = reconcile::pull(&self.upstream, framework_id, edition, period).await?;
        // Refused here, before anything is replaced, when it cannot be scored.
        let check = State::score(pulled.clone()).await?;
        let mark = store::replace_all(&self.db, &pulled, &check, &start).await?;
        self.wake.notify_one();
        self.applied(mark).await?;
        self.current().await
    }

    /// Returns once the scorer's position includes `mark`.
    pub async fn applied(&self, mark: Mark) -> Result<(), ApiError> {
        let mut rx = self.position.subscribe();
        let wait = async {
            rx.wait_for(|p| p.as_ref().is_some_and(|p| p.includes(mark)))
                .await
                .map(|_| ())
        };
        tokio::select! {
            r = tokio::time::timeout(APPLY_TIMEOUT, wait) => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(ApiError::unavailable("the scorer has stopped")),
                Err(_) => Err(ApiError::unavailable(format!(
                    "the scorer has not applied the rebuild within {} s; it keeps trying",
                    APPLY_TIMEOUT.as_secs()
                ))),
            },
            () = self.shutdown.cancelled() => Err(ApiError::unavailable("the service is stopping")),
        }
    }

    pub async fn current(&self) -> Result<Arc<Scored>, ApiError> {
        self.current.read().await.clone().ok_or_else(|| {
            ApiError::precondition("no scores yet: the read model is empty; call Recompute")
        })
    }
}
