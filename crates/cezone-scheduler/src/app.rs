//! Building and running the scheduler: its table, its gRPC API (health, reflection, runs) and
//! the loop that wakes when a run falls due.

use std::sync::Arc;
use std::time::Duration;

use cezone_platform::grpc::{Running, bind, routes_with_health, spawn};
use cezone_platform::settings::Settings;
use cezone_platform::{ApiError, db};
use cezone_proto::scheduler::v1::scheduler_service_server::SchedulerServiceServer;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::SchedulerApi;
use crate::clock::Clock;
use crate::scheduler::Scheduler;
use crate::store::{LOCK_KEY, Migrator};

/// After a failed look (a service down), how soon to look again.
const RETRY: chrono::Duration = chrono::Duration::seconds(30);

#[derive(Debug)]
pub struct Application {
    running: Running,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    pub db: DatabaseConnection,
    pub scheduler: Scheduler,
}

impl Application {
    /// Migrates, serves, and starts the loop; its first look runs whatever fell due while
    /// nothing was running.
    pub async fn build(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, ApiError> {
        let db = db::connect(&settings.database, "scheduler").await?;
        let (keys, bearer) =
            cezone_platform::auth::service_credentials(settings, "scheduler").await?;
        db::migrate::<Migrator>(&db, LOCK_KEY).await?;
        let scheduler = Scheduler::new(settings, db.clone(), clock, &bearer)?;
        let shutdown = CancellationToken::new();
        let kick = Arc::new(Notify::new());
        let poll = chrono::Duration::seconds(settings.scheduler.poll_seconds as i64);
        let task = tokio::spawn(run_loop(
            scheduler.clone(),
            poll,
            kick.clone(),
            shutdown.clone(),
        ));
        let listener = bind(&settings.grpc.host, settings.scheduler.port).await?;
        let max = settings.grpc.max_message_bytes;
        let svc = SchedulerServiceServer::new(SchedulerApi {
            scheduler: scheduler.clone(),
            kick,
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
        tracing::info!(service = "scheduler", address = %running.addr, "listening");
        Ok(Application {
            running,
            shutdown,
            task,
            db,
            scheduler,
        })
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// Stops serving and stops the loop; a run in progress is abandoned uncommitted and done
    /// again by the next scheduler to look.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.running.stop_logged("scheduler").await;
        let _ = self.task.await;
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
