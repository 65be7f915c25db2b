//! Building and running the survey service.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_bus::outbox::{Relay, RelayHandle};
use cezone_platform::grpc::{Running, bind, routes_with_health, spawn};
use cezone_platform::registry_view::RegistryView;
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, db};
use cezone_proto::surveys::v1::survey_service_server::SurveyServiceServer;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::api::SurveyApi;
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
        let db = db::connect(&settings.database, "surveys").await?;
        let (keys, bearer) =
            cezone_platform::auth::service_credentials(settings, "surveys").await?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
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
            .subscribe(crate::freezes::CONSUMER, crate::freezes::PATTERNS)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("cannot subscribe to snapshot events: {e}"))
            })?;
        tokio::spawn(crate::freezes::run(
            db.clone(),
            relay.clone(),
            subscription,
            shutdown.clone(),
        ));
        let api = SurveyApi {
            db: db.clone(),
            relay: relay.clone(),
            view: RegistryView::new(&settings.services.registry_url, max, &bearer)?,
            write_batch_rows: settings.surveys.write_batch_rows,
            framework_id: settings.scoring.framework_id.clone(),
            limits: cezone_platform::grpc::StreamLimits::of(&settings.grpc),
        };
        let listener = bind(&settings.grpc.host, settings.surveys.port).await?;
        let svc = SurveyServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let tls = cezone_platform::tls::server_config(&settings.grpc)?;
        let running = spawn(
            listener,
            routes_with_health(svc, keys).await,
            tls,
            settings.grpc.max_connections,
        )?;
        tracing::info!(service = "surveys", address = %running.addr, "listening");
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
        self.running.stop_logged("surveys").await;
        self.shutdown.cancel();
        self.relay.stopped().await;
    }

    /// Waits until every event committed so far is published.
    pub async fn flush_events(&self) {
        self.relay.flush().await;
    }
}
