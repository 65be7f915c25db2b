//! Building and running the registry service.

use cezone_platform::grpc::{Running, bind, routes_with_health, spawn};
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, db};
use cezone_proto::registry::v1::registry_service_server::RegistryServiceServer;
use sea_orm::DatabaseConnection;

use crate::api::RegistryApi;
use crate::migration::{LOCK_KEY, Migrator};

#[derive(Debug)]
pub struct Application {
    running: Running,
    pub db: DatabaseConnection,
}

impl Application {
    /// Connects and migrates the database, binds `grpc.host:registry.port` (0 picks a free
    /// port) and starts serving.
    pub async fn build(settings: &Settings) -> Result<Application, ApiError> {
        let db = db::connect(&settings.database, "registry").await?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
        let listener = bind(&settings.grpc.host, settings.registry.port).await?;
        let api = RegistryApi { db: db.clone() };
        let max = settings.grpc.max_message_bytes;
        let svc = RegistryServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let running = spawn(listener, routes_with_health(svc).await)?;
        tracing::info!(service = "registry", address = %running.addr, "listening");
        Ok(Application { running, db })
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    pub async fn stop(self) {
        self.running.stop_logged("registry").await;
    }
}
