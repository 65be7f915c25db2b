//! Building and running the scoring service: its gRPC API, the event consumer, the scorer and
//! the outbox relay.

use std::sync::Arc;
use std::time::Duration;

use cezone_bus::Bus;
use cezone_bus::outbox::Relay;
use cezone_platform::grpc::{Running, bind, routes_with_health, spawn};
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, ErrorCode, db};
use cezone_proto::scoring::v1::encoded::scoring_service_server::ScoringServiceServer;
use sea_orm::DatabaseConnection;
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

#[derive(Debug)]
pub struct Application {
    running: Running,
    shutdown: CancellationToken,
    pub db: DatabaseConnection,
    pub state: Arc<State>,
}

impl Application {
    /// Migrates, restores the stored read model, subscribes to the domain events, starts the
    /// scorer and the relay, and serves. An empty read model is rebuilt from the other services
    /// in the background.
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let db = db::connect(&settings.database, "scoring").await?;
        let (keys, bearer) =
            cezone_platform::auth::service_credentials(settings, "scoring").await?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
        let shutdown = CancellationToken::new();
        let relay = Relay::spawn_with(
            db.clone(),
            OUTBOX,
            bus.clone(),
            shutdown.clone(),
            settings.bus.relay(),
        );
        let max = settings.grpc.max_message_bytes;
        let s = &settings.services;
        let state = Arc::new(State {
            db: db.clone(),
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
            shutdown: shutdown.clone(),
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
        let subscription = bus
            .subscribe(CONSUMER, events::PATTERNS)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("cannot subscribe to the domain events: {e}"))
            })?;
        tokio::spawn(consumer::run(state.clone(), subscription, shutdown.clone()));
        tokio::spawn(scorer.run(shutdown.clone()));
        tokio::spawn(retention::run(
            db.clone(),
            retention::Settings::from(&settings.bus),
            shutdown.clone(),
        ));
        if !restored {
            tokio::spawn(initial_rebuild(state.clone(), shutdown.clone()));
        }
        let listener = bind(&settings.grpc.host, settings.scoring.port).await?;
        let svc = ScoringServiceServer::new(ScoringApi {
            state: state.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let tls = cezone_platform::tls::server_config(&settings.grpc)?;
        let running = spawn(
            listener,
            routes_with_health(svc, keys).await,
            tls,
            settings.grpc.max_connections,
        )?;
        tracing::info!(service = "scoring", address = %running.addr, "listening");
        Ok(Application {
            running,
            shutdown,
            db,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// Stops serving, stops consuming (unacked deliveries go back to the queue), publishes what
    /// the outbox holds, and returns.
    pub async fn stop(self) {
        // Watch streams end first, so the server can drain.
        self.shutdown.cancel();
        self.running.stop_logged("scoring").await;
        if let Some(relay) = self.state.relay.clone() {
            relay.stopped().await;
        }
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
