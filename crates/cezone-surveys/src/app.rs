//! Building and running the survey service.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_platform::ApiError;
use cezone_platform::glue::registry_view::RegistryView;
use cezone_platform::grpc::routes_with_health;
use cezone_platform::service::{Kernel, StopOrder};
use cezone_platform::settings::Settings;
use cezone_proto::surveys::v1::survey_service_server::SurveyServiceServer;

use crate::api::SurveyApi;
use crate::migration::{LOCK_KEY, Migrator};

cezone_platform::application!();

impl Application {
    pub async fn build(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Application, ApiError> {
        let mut kernel = Kernel::open::<Migrator>(settings, "surveys", LOCK_KEY).await?;
        let (keys, bearer) =
            cezone_platform::access::auth::service_credentials(settings, "surveys").await?;
        let max = settings.grpc.max_message_bytes;
        let relay = kernel.relay(settings, crate::OUTBOX, bus.clone());
        let subscription = kernel
            .subscribe(
                &bus,
                crate::freezes::CONSUMER,
                crate::freezes::PATTERNS,
                "snapshot events",
            )
            .await?;
        kernel.spawn(crate::freezes::run(
            kernel.db.clone(),
            relay.clone(),
            subscription,
            kernel.shutdown.clone(),
        ));
        let api = SurveyApi {
            db: kernel.db.clone(),
            relay,
            view: RegistryView::new(&settings.services.registry_url, max, &bearer)?,
            write_batch_rows: settings.surveys.write_batch_rows,
            framework_id: settings.scoring.framework_id.clone(),
            limits: cezone_platform::grpc::StreamLimits::of(&settings.grpc),
        };
        let routes = routes_with_health(
            cezone_platform::grpc_server!(SurveyServiceServer, api, settings),
            keys,
        )
        .await;
        let service = kernel
            .serve(
                settings,
                settings.surveys.port,
                routes,
                StopOrder::CallsFirst,
            )
            .await?;
        Ok(Application { service })
    }
}
