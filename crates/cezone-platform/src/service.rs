//! One way to build, serve and stop a cezone service. A service opens a [`Kernel`] (its
//! database connected and migrated), starts its own background work on it (the outbox relay,
//! event consumers, loops: all under the kernel's one shutdown), and hands it its gRPC routes;
//! what comes back is a running [`Service`] with its address, a flush of its events and a
//! stop. Each service supplies only what is its own: its API, its tasks, its stop order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cezone_bus::outbox::{Relay, RelayHandle};
use cezone_bus::{Bus, Subscription};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::grpc::{Running, bind, spawn};
use crate::settings::Settings;
use crate::{ApiError, db};

/// How long a stopping service waits for its background tasks after telling them to stop.
pub const TASKS_GRACE: Duration = Duration::from_secs(5);

/// What ends first when a service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOrder {
    /// Stop taking calls and let those in flight finish, then stop the background work: for a
    /// service whose calls commit events, which its relay then publishes before it stops.
    CallsFirst,
    /// Stop the background work first: for a service whose calls wait on it (scoring's watch
    /// streams end with it), so the server can drain at all.
    BackgroundFirst,
}

/// A service being built: its name, its migrated database, and the background work started
/// so far.
#[derive(Debug)]
pub struct Kernel {
    name: &'static str,
    pub db: DatabaseConnection,
    /// Cancelled when the service stops; every background task ends with it.
    pub shutdown: CancellationToken,
    relay: Option<RelayHandle>,
    tasks: Vec<JoinHandle<()>>,
}

impl Kernel {
    /// Connects `name`'s database and brings its schema up to date (`lock_key` keeps two
    /// replicas starting together from migrating at once).
    pub async fn open<M: MigratorTrait>(
        settings: &Settings,
        name: &'static str,
        lock_key: i64,
    ) -> Result<Kernel, ApiError> {
        let db = db::connect(&settings.database, name).await?;
        db::migrate::<M>(&db, lock_key).await?;
        Ok(Kernel {
            name,
            db,
            shutdown: CancellationToken::new(),
            relay: None,
            tasks: Vec::new(),
        })
    }

    /// Starts publishing what outbox `table` receives to `bus`. At stop the relay publishes
    /// what the outbox still holds (for up to 5 s) before it ends.
    pub fn relay(&mut self, settings: &Settings, table: &str, bus: Arc<dyn Bus>) -> RelayHandle {
        let relay = Relay::spawn_with(
            self.db.clone(),
            table,
            bus,
            self.shutdown.clone(),
            settings.bus.relay(),
        );
        self.relay = Some(relay.clone());
        relay
    }

    /// Subscribes `consumer` to the events matching `patterns`; `what` names them in the error
    /// a broker that refuses gives.
    pub async fn subscribe(
        &self,
        bus: &Arc<dyn Bus>,
        consumer: &str,
        patterns: &[&str],
        what: &str,
    ) -> Result<Subscription, ApiError> {
        bus.subscribe(consumer, patterns)
            .await
            .map_err(|e| ApiError::unavailable(format!("cannot subscribe to {what}: {e}")))
    }

    /// Runs `task` in the background until it ends or the service stops (it must end when
    /// [`Kernel::shutdown`] is cancelled).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Binds `grpc.host:port` (0 picks a free port) and serves `routes` (the service's own
    /// routes with health and reflection, `grpc::routes_with_health`) under the deployment's
    /// TLS and connection limit.
    pub async fn serve(
        self,
        settings: &Settings,
        port: u16,
        routes: tonic::service::Routes,
        order: StopOrder,
    ) -> Result<Service, ApiError> {
        let listener = bind(settings.grpc.host, port).await?;
        let tls = crate::tls::server_config(&settings.grpc)?;
        let running = spawn(listener, routes, tls, settings.grpc.max_connections)?;
        tracing::info!(service = self.name, address = %running.addr, "listening");
        Ok(Service {
            name: self.name,
            running,
            shutdown: self.shutdown,
            relay: self.relay,
            tasks: self.tasks,
            order,
            db: self.db,
        })
    }
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    running: Running,
    shutdown: CancellationToken,
    relay: Option<RelayHandle>,
    tasks: Vec<JoinHandle<()>>,
    order: StopOrder,
    pub db: DatabaseConnection,
}

impl Service {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn port(&self) -> u16 {
        self.running.port()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// Waits until every event committed so far is published (at once for a service without
    /// an outbox).
    pub async fn flush_events(&self) {
        if let Some(relay) = &self.relay {
            relay.flush().await;
        }
    }

    /// Stops serving and stops the background work in the service's order, then waits for
    /// the relay's last publish and for the tasks (each for a bounded time).
    pub async fn stop(self) {
        match self.order {
            StopOrder::CallsFirst => {
                self.running.stop_logged(self.name).await;
                self.shutdown.cancel();
            }
            StopOrder::BackgroundFirst => {
                self.shutdown.cancel();
                self.running.stop_logged(self.name).await;
            }
        }
        if let Some(relay) = self.relay {
            relay.stopped().await;
        }
        for task in self.tasks {
            if tokio::time::timeout(TASKS_GRACE, task).await.is_err() {
                tracing::warn!(
                    service = self.name,
                    grace_s = TASKS_GRACE.as_secs(),
                    "a background task did not end in time; left to the runtime"
                );
            }
        }
    }
}

/// A service's generated tonic server for `api`, taking and sending messages of up to
/// `grpc.max_message_bytes` (generated servers take their limits one by one).
#[macro_export]
macro_rules! grpc_server {
    ($server:ident, $api:expr, $settings:expr) => {
        $server::new($api)
            .max_decoding_message_size($settings.grpc.max_message_bytes)
            .max_encoding_message_size($settings.grpc.max_message_bytes)
    };
}

/// Declares a service's `Application`: its running [`Service`], which it derefs to (`url()`,
/// `flush_events()`, `db`), and the service's own parts listed as `name: Type`, kept beside it.
#[macro_export]
macro_rules! application {
    ($($field:ident : $ty:ty),* $(,)?) => {
        #[derive(Debug)]
        pub struct Application {
            service: $crate::service::Service,
            $(pub $field: $ty,)*
        }

        impl std::ops::Deref for Application {
            type Target = $crate::service::Service;
            fn deref(&self) -> &$crate::service::Service {
                &self.service
            }
        }

        impl Application {
            /// Stops the service in its stop order and returns when it has stopped.
            pub async fn stop(self) {
                self.service.stop().await;
            }
        }
    };
}
