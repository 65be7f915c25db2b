//! Building and running the registry service.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_platform::ApiError;
use cezone_platform::grpc::routes_allowing;
use cezone_platform::service::{Kernel, StopOrder};
use cezone_platform::settings::Settings;
use cezone_proto::registry::v1::registry_service_server::RegistryServiceServer;

use crate::api::RegistryApi;
use crate::migration::{LOCK_KEY, Migrator};

cezone_platform::application!();

impl Application {
    /// Connects and migrates the database, binds `grpc.host:registry.port` (0 picks a free
    /// port) and starts serving.
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let mut kernel = Kernel::open::<Migrator>(settings, "registry", LOCK_KEY).await?;
        // The registry signs tokens: it verifies them with its own keys, not the published ones.
        let keys = cezone_platform::access::auth::Keys::load(&settings.auth)?;
        let secret = cezone_platform::access::auth::ServiceSecret::load(&settings.auth)?;
        let relay = kernel.relay(settings, crate::OUTBOX, bus);
        let api = RegistryApi {
            db: kernel.db.clone(),
            relay,
            keys: keys.clone(),
            secret,
        };
        // Signing in and refreshing are how a person gets a token, a service token how a
        // service does, and the public keys are public: they alone need none.
        let routes = routes_allowing(
            cezone_platform::grpc_server!(RegistryServiceServer, api, settings),
            keys,
            &cezone_platform::access::auth::OPEN_METHODS,
        )
        .await;
        let service = kernel
            .serve(
                settings,
                settings.registry.port,
                routes,
                StopOrder::CallsFirst,
            )
            .await?;
        Ok(Application { service })
    }
}
