//! Building and running the evidence service.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_bus::outbox::{Relay, RelayHandle};
use tokio_util::sync::CancellationToken;

use cezone_platform::grpc::{Running, bind, routes_with_health, spawn};
use cezone_platform::registry_view::RegistryView;
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, db};
use cezone_proto::evidence::v1::evidence_service_server::EvidenceServiceServer;
use sea_orm::DatabaseConnection;

use crate::api::EvidenceApi;
use crate::blobs::BlobStore;
use crate::migration::{LOCK_KEY, Migrator};

#[derive(Debug)]
pub struct Application {
    running: Running,
    shutdown: CancellationToken,
    relay: RelayHandle,
    pub db: DatabaseConnection,
}

impl Application {
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let db = db::connect(&settings.database, "evidence").await?;
        let (keys, bearer) =
            cezone_platform::auth::service_credentials(settings, "evidence").await?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
        let blobs = Arc::new(BlobStore::open(&settings.evidence.storage_root).await?);
        let max = settings.grpc.max_message_bytes;
        let shutdown = CancellationToken::new();
        let relay = Relay::spawn_with(
            db.clone(),
            crate::OUTBOX,
            bus.clone(),
            shutdown.clone(),
            settings.bus.relay(),
        );
        let subscription = bus
            .subscribe(crate::CONSUMER, crate::PATTERNS)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("cannot subscribe to snapshot events: {e}"))
            })?;
        tokio::spawn(crate::closures::run(
            db.clone(),
            subscription,
            shutdown.clone(),
        ));
        let api = EvidenceApi {
            db: db.clone(),
            relay: relay.clone(),
            blobs,
            view: RegistryView::new(&settings.services.registry_url, max, &bearer)?,
            max_file_bytes: settings.evidence.max_file_bytes,
            chunk_bytes: settings.evidence.chunk_bytes,
            limits: cezone_platform::grpc::StreamLimits::of(&settings.grpc),
        };
        let listener = bind(&settings.grpc.host, settings.evidence.port).await?;
        let svc = EvidenceServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let tls = cezone_platform::tls::server_config(&settings.grpc)?;
        let running = spawn(
            listener,
            routes_with_health(svc, keys).await,
            tls,
            settings.grpc.max_connections,
        )?;
        tracing::info!(
            service = "evidence",
            address = %running.addr,
            storage = %settings.evidence.storage_root.display(),
            "listening"
        );
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
        self.running.stop_logged("evidence").await;
        self.shutdown.cancel();
        self.relay.stopped().await;
    }

    /// Waits until every event committed so far is published.
    pub async fn flush_events(&self) {
        self.relay.flush().await;
    }
}
