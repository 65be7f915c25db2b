//! Building and running the registry service.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_bus::outbox::{Relay, RelayHandle};
use cezone_platform::grpc::{Running, bind, routes_allowing, spawn};
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, db};
use cezone_proto::registry::v1::registry_service_server::RegistryServiceServer;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::api::RegistryApi;
use crate::migration::{LOCK_KEY, Migrator};

#[derive(Debug)]
pub struct Application {
    running: Running,
    shutdown: CancellationToken,
    relay: RelayHandle,
    pub db: DatabaseConnection,
}

impl Application {
    /// Connects and migrates the database, binds `grpc.host:registry.port` (0 picks a free
    /// port) and starts serving.
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let db = db::connect(&settings.database, "registry").await?;
        let keys = cezone_platform::auth::Keys::load(&settings.auth)?;
        let secret = cezone_platform::auth::ServiceSecret::load(&settings.auth)?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
        let listener = bind(&settings.grpc.host, settings.registry.port).await?;
        let shutdown = CancellationToken::new();
        let relay = Relay::spawn_with(
            db.clone(),
            crate::OUTBOX,
            bus,
            shutdown.clone(),
            settings.bus.relay(),
        );
        let api = RegistryApi {
            db: db.clone(),
            relay: relay.clone(),
            keys: keys.clone(),
            secret,
        };
        let max = settings.grpc.max_message_bytes;
        let svc = RegistryServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let tls = cezone_platform::tls::server_config(&settings.grpc)?;
        let running = spawn(
            listener,
            // Signing in and refreshing are how a person gets a token, a service token how a
            // service does, and the public keys are public: they alone need none.
            routes_allowing(svc, keys, &cezone_platform::auth::OPEN_METHODS).await,
            tls,
            settings.grpc.max_connections,
        )?;
        tracing::info!(service = "registry", address = %running.addr, "listening");
        Ok(Application {
            running,
            shutdown,
            relay,
            db,
        })
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// Stops serving, publishes what the outbox holds (for up to 5 s), and returns.
    pub async fn stop(self) {
        self.running.stop_logged("registry").await;
        self.shutdown.cancel();
        self.relay.stopped().await;
    }

    /// Waits until every event committed so far is published.
    pub async fn flush_events(&self) {
        self.relay.flush().await;
    }
}
