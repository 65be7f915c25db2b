//! Building and running the scoring service: its gRPC API, the event consumer, the scorer and
//! the outbox relay.

use std::sync::Arc;
use std::time::Duration;

use cezone_bus::Bus;
use cezone_platform::grpc::routes_with_health;
use cezone_platform::service::{Kernel, StopOrder};
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, ErrorCode};
use cezone_proto::scoring::v1::encoded::scoring_service_server::ScoringServiceServer;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::api::ScoringApi;
use crate::migration::{LOCK_KEY, Migrator};
use crate::reconcile::Upstream;
use crate::scorer::Scorer;
use crate::state::State;
use crate::{OUTBOX, consumer, events, retention};

/// The consumer (and its queue: `{prefix}.scoring`).
pub const CONSUMER: &str = "scoring";

cezone_platform::application!(state: Arc<State>);

impl Application {
    /// Migrates, restores the stored read model, subscribes to the domain events, starts the
    /// scorer and the relay, and serves. An empty read model is rebuilt from the other services
    /// in the background.
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let mut kernel = Kernel::open::<Migrator>(settings, "scoring", LOCK_KEY).await?;
        let (keys, bearer) =
            cezone_platform::access::auth::service_credentials(settings, "scoring").await?;
        let relay = kernel.relay(settings, OUTBOX, bus.clone());
        let max = settings.grpc.max_message_bytes;
        let s = &settings.services;
        let state = Arc::new(State {
            db: kernel.db.clone(),
            upstream: Upstream::new(
                &s.registry_url,
                &s.evidence_url,
                &s.surveys_url,
                max,
                &bearer,
            )?,
            current: Default::default(),
            rebuilding: Default::default(),
            position: tokio::sync::watch::channel(None).0,
            wake: Notify::new(),
            updates: broadcast::channel(1024).0,
            relay: Some(relay),
            shutdown: kernel.shutdown.clone(),
            framework_id: settings.scoring.framework_id.clone(),
            edition: settings.scoring.edition.clone(),
            period: settings.scoring.period,
            utc_offset_hours: settings.scheduler.utc_offset_hours,
        });
        let scorer = Scorer::start(state.clone()).await?;
        let restored = state.current.read().await.is_some();
        if restored {
            tracing::info!(service = "scoring", "read model restored from the database");
        }
        let subscription = kernel
            .subscribe(&bus, CONSUMER, events::PATTERNS, "the domain events")
            .await?;
        let shutdown = kernel.shutdown.clone();
        kernel.spawn(consumer::run(state.clone(), subscription, shutdown.clone()));
        kernel.spawn(scorer.run(shutdown.clone()));
        kernel.spawn(retention::run(
            kernel.db.clone(),
            retention::Settings::from(&settings.bus),
            shutdown.clone(),
        ));
        if !restored {
            kernel.spawn(initial_rebuild(state.clone(), shutdown));
        }
        let api = ScoringApi {
            state: state.clone(),
        };
        let routes = routes_with_health(
            cezone_platform::grpc_server!(ScoringServiceServer, api, settings),
            keys,
        )
        .await;
        // Watch streams end with the background work, so the server can drain.
        let service = kernel
            .serve(
                settings,
                settings.scoring.port,
                routes,
                StopOrder::BackgroundFirst,
            )
            .await?;
        Ok(Application { service, state })
    }
}

/// Rebuilds an empty read model from the other services; retried while they are unreachable.
/// When they hold nothing yet, scores follow the events as they come.
async fn initial_rebuild(state: Arc<State>, shutdown: CancellationToken) {
    let mut wait = Duration::from_secs(1);
    loop {
        if state.current.read().await.is_some() {
            return;
        }
        match state
            .rebuild(&state.framework_id, &state.edition, state.period)
            .await
        {
            Ok(s) => {
                tracing::info!(
                    org_units = s.tree().len(),
                    "read model rebuilt from the services at start"
                );
                return;
            }
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::InvalidArgument
                        | ErrorCode::NotFound
                        | ErrorCode::FailedPrecondition
                ) =>
            {
                tracing::info!(reason = %e.message, "nothing to rebuild yet; scores will follow the events");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "cannot rebuild the read model yet");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}
