//! Building and running the evidence service.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_platform::ApiError;
use cezone_platform::glue::registry_view::RegistryView;
use cezone_platform::grpc::routes_with_health;
use cezone_platform::service::{Kernel, StopOrder};
use cezone_platform::settings::Settings;
use cezone_proto::evidence::v1::evidence_service_server::EvidenceServiceServer;

use crate::api::EvidenceApi;
use crate::blobs::BlobStore;
use crate::migration::{LOCK_KEY, Migrator};

cezone_platform::application!();

impl Application {
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let mut kernel = Kernel::open::<Migrator>(settings, "evidence", LOCK_KEY).await?;
        let (keys, bearer) =
            cezone_platform::access::auth::service_credentials(settings, "evidence").await?;
        let blobs = Arc::new(BlobStore::open(&settings.evidence.storage_root).await?);
        let max = settings.grpc.max_message_bytes;
        let relay = kernel.relay(settings, crate::OUTBOX, bus.clone());
        let subscription = kernel
            .subscribe(&bus, crate::CONSUMER, crate::PATTERNS, "snapshot events")
            .await?;
        kernel.spawn(crate::closures::run(
            kernel.db.clone(),
            subscription,
            kernel.shutdown.clone(),
        ));
        let api = EvidenceApi {
            db: kernel.db.clone(),
            relay,
            blobs,
            view: RegistryView::new(&settings.services.registry_url, max, &bearer)?,
            max_file_bytes: settings.evidence.max_file_bytes,
            chunk_bytes: settings.evidence.chunk_bytes,
            limits: cezone_platform::grpc::StreamLimits::of(&settings.grpc),
        };
        let routes = routes_with_health(
            cezone_platform::grpc_server!(EvidenceServiceServer, api, settings),
            keys,
        )
        .await;
        tracing::info!(
            service = "evidence",
            storage = %settings.evidence.storage_root.display(),
            "evidence files stored"
        );
        let service = kernel
            .serve(
                settings,
                settings.evidence.port,
                routes,
                StopOrder::CallsFirst,
            )
            .await?;
        Ok(Application { service })
    }
}
