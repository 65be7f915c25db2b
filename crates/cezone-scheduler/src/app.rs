//! Building and running the scheduler: its table, its gRPC API (health, reflection, runs) and
//! the loop that wakes when a run falls due.

use std::sync::Arc;
use std::time::Duration;

use cezone_platform::ApiError;
use cezone_platform::grpc::routes_with_health;
use cezone_platform::service::{Kernel, StopOrder};
use cezone_platform::settings::Settings;
use cezone_proto::scheduler::v1::scheduler_service_server::SchedulerServiceServer;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::SchedulerApi;
use crate::clock::Clock;
use crate::scheduler::Scheduler;
use crate::store::{LOCK_KEY, Migrator};

/// After a failed look (a service down), how soon to look again.
const RETRY: chrono::Duration = chrono::Duration::seconds(30);

cezone_platform::application!(scheduler: Scheduler);

impl Application {
    /// Migrates, serves, and starts the loop; its first look runs whatever fell due while
    /// nothing was running.
    pub async fn build(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, ApiError> {
        let mut kernel = Kernel::open::<Migrator>(settings, "scheduler", LOCK_KEY).await?;
        let (keys, bearer) =
            cezone_platform::access::auth::service_credentials(settings, "scheduler").await?;
        let scheduler = Scheduler::new(settings, kernel.db.clone(), clock, &bearer)?;
        let kick = Arc::new(Notify::new());
        let poll = chrono::Duration::seconds(settings.scheduler.poll_seconds as i64);
        kernel.spawn(run_loop(
            scheduler.clone(),
            poll,
            kick.clone(),
            kernel.shutdown.clone(),
        ));
        let api = SchedulerApi {
            scheduler: scheduler.clone(),
            kick,
        };
        let routes = routes_with_health(
            cezone_platform::grpc_server!(SchedulerServiceServer, api, settings),
            keys,
        )
        .await;
        let service = kernel
            .serve(
                settings,
                settings.scheduler.port,
                routes,
                StopOrder::BackgroundFirst,
            )
            .await?;
        Ok(Application { service, scheduler })
    }
}

async fn run_loop(
    scheduler: Scheduler,
    poll: chrono::Duration,
    kick: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let look = tokio::select! {
            look = scheduler.look() => look,
            _ = shutdown.cancelled() => return,
        };
        // The reminders a run stored are e-mailed after it, and any a failed attempt left.
        if let Err(e) = scheduler.send_reminders().await {
            tracing::warn!(error = %e, "reminders not e-mailed; tried again at the next look");
        }
        let wake = match look {
            Ok(look) => {
                let later = look.at + poll;
                look.next_due.map_or(later, |due| due.min(later))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look at the schedule; retrying");
                scheduler.clock.now() + RETRY.min(poll)
            }
        };
        tracing::debug!(wake = %wake, "scheduler sleeping");
        tokio::select! {
            _ = scheduler.clock.sleep_until(wake) => {}
            _ = kick.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        // A clock that jumped far (a test clock, a resumed host) is looked at right away; a
        // short pause keeps a failing loop from spinning.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
