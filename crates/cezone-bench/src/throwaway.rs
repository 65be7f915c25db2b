//! The deployments the benchmarks measure: the parts they need started by the one start-up
//! path (`cezone_stack`) on a PostgreSQL database of their own, with the machine's throwaway
//! keys; the database is dropped when the deployment stops.

use std::sync::Arc;

use anyhow::{Context, Result};
use cezone_bus::Bus;
use cezone_domain::access::Role;
use cezone_platform::access::auth::Bearer;
use cezone_platform::scratch;
use cezone_platform::settings::Settings;
use cezone_stack::{Part, Stack};

/// Running parts of a deployment made for one workload.
#[derive(Debug)]
pub struct Throwaway {
    pub stack: Stack,
    /// The evaluation office's credentials for its services.
    pub office: Bearer,
}

impl Throwaway {
    /// A database named `cezone_b_…` with every port 0 and the throwaway keys, changed by
    /// `tweak` before anything starts.
    pub async fn prepare(tweak: impl FnOnce(&mut Settings)) -> Result<Settings> {
        // Databases of runs that ended without dropping theirs (a crash, Ctrl-C).
        scratch::drop_stale_databases("cezone_b", 3600).await;
        let mut settings = Settings::defaults();
        settings.use_free_ports();
        settings.database.url = scratch::create_database("cezone_b")
            .await
            .with_context(|| format!("PostgreSQL at {}", scratch::postgres_admin_url()))?;
        scratch::use_keys(&mut settings.auth);
        tweak(&mut settings);
        Ok(settings)
    }

    /// Starts `parts` on `settings` (from [`Throwaway::prepare`]) and `bus`.
    pub async fn start(settings: &Settings, bus: Arc<dyn Bus>, parts: &[Part]) -> Result<Self> {
        let stack = match Stack::start(settings, bus, parts).await {
            Ok(stack) => stack,
            Err(e) => {
                scratch::drop_database(&settings.database.url).await;
                return Err(e.into());
            }
        };
        let office = scratch::bearer_named(&stack.settings, Role::EvaluationOffice, "bench");
        Ok(Throwaway { stack, office })
    }

    /// Stops the parts and drops the database.
    pub async fn stop(self) {
        let url = self.stack.settings.database.url.clone();
        self.stack.stop().await;
        scratch::drop_database(&url).await;
    }
}
