//! Building and running the scoring service.

use std::sync::Arc;

use cezone_platform::grpc::{Running, bind, routes_with_health, spawn};
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, db};
use cezone_proto::scoring::v1::scoring_service_server::ScoringServiceServer;
use sea_orm::DatabaseConnection;

use crate::api::{ScoringApi, State};
use crate::migration::{LOCK_KEY, Migrator};
use crate::reconcile::Upstream;

#[derive(Debug)]
pub struct Application {
    running: Running,
    pub db: DatabaseConnection,
    pub state: Arc<State>,
}

impl Application {
    /// Migrates, restores the stored read model (if any) and starts serving.
    pub async fn build(settings: &Settings) -> Result<Application, ApiError> {
        let db = db::connect(&settings.database, "scoring").await?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
        let max = settings.grpc.max_message_bytes;
        let s = &settings.services;
        let state = Arc::new(State {
            db: db.clone(),
            upstream: Upstream::new(&s.registry_url, &s.evidence_url, &s.surveys_url, max)?,
            current: Default::default(),
            rebuilding: Default::default(),
            framework_id: settings.scoring.framework_id.clone(),
            edition: settings.scoring.edition.clone(),
            period: settings.scoring.period,
        });
        if state.restore().await? {
            tracing::info!(service = "scoring", "read model restored from the database");
        }
        let listener = bind(&settings.grpc.host, settings.scoring.port).await?;
        let svc = ScoringServiceServer::new(ScoringApi {
            state: state.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
        let running = spawn(listener, routes_with_health(svc).await)?;
        tracing::info!(service = "scoring", address = %running.addr, "listening");
        Ok(Application { running, db, state })
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    pub async fn stop(self) {
        self.running.stop_logged("scoring").await;
    }
}
