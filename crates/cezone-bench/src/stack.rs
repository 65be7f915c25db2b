//! The four services in this process on a fresh PostgreSQL database and a fresh RabbitMQ
//! prefix, with a demo district loaded through their APIs and the scores converged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cezone_bus::{AmqpBus, Bus};
use cezone_domain::demo::{DemoDistrict, DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;
use cezone_platform::auth::AuthChannel;
use cezone_platform::settings::Settings;
use cezone_platform::testing::{amqp_url, fresh_bus_prefix, fresh_postgres_database};
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_testkit::Services;

#[derive(Debug)]
pub struct Stack {
    pub services: Services,
    pub bus: Arc<AmqpBus>,
    pub scores: ScoringServiceClient<AuthChannel>,
    pub district: DemoDistrict,
    pub settings: Settings,
    _dir: tempdir::Dir,
}

mod tempdir {
    #[derive(Debug)]
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Stack {
    pub async fn start(params: &DemoParams) -> Result<Stack> {
        let dir =
            std::env::temp_dir().join(format!("cezone-bench-{}", uuid::Uuid::new_v4().simple()));
        let mut settings = Settings::defaults();
        settings.registry.port = 0;
        settings.evidence.port = 0;
        settings.surveys.port = 0;
        settings.scoring.port = 0;
        settings.database.url = fresh_postgres_database().await;
        cezone_platform::testing::use_test_keys(&mut settings.auth);
        settings.evidence.storage_root = dir.join("evidence");
        settings.bus.amqp_url = amqp_url();
        settings.bus.prefix = fresh_bus_prefix();
        let bus = Arc::new(
            AmqpBus::connect(
                &settings
                    .bus_config("cezone-bench")
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
            .await
            .context("RabbitMQ on 127.0.0.1:5672")?,
        );
        let services = Services::start(&settings, bus.clone())
            .await
            .map_err(|e| anyhow::anyhow!("starting the services: {e}"))?;
        let settings = services.settings.clone();
        let scores = services
            .scores()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (fw, _) = guangdong::framework();
        let district = generate(&fw, params);
        Ok(Stack {
            services,
            bus,
            scores,
            district,
            settings,
            _dir: tempdir::Dir(dir),
        })
    }

    /// Loads the district through the APIs and waits until the event-fed scores are right.
    pub async fn load(&mut self) -> Result<Duration> {
        let started = Instant::now();
        self.services
            .load(&self.district)
            .await
            .map_err(|e| anyhow::anyhow!("loading the demo: {e}"))?;
        self.services.flush_events().await;
        let want = {
            let (fw, _) = guangdong::framework();
            let facts = self.district.facts(&fw.catalog);
            let tree = OrgTree::build(self.district.units.clone())?;
            let engine = Engine::new(
                Arc::new(fw),
                Arc::new(tree),
                &facts,
                self.district.params.period,
            );
            engine
                .scoreboard()
                .total(&engine.fw, 0)
                .confirmed
                .to_string()
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Ok(r) = self
                .scores
                .get_scores(ps::GetScoresRequest {
                    items: vec!["1".into()],
                    ..Default::default()
                })
                .await
                && r.into_inner().total.is_some_and(|t| t.confirmed == want)
            {
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!("scores did not converge to {want}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(self) {
        self.services.stop().await;
        let _ = self
            .bus
            .delete_topology(&["scoring", "bench-observer"])
            .await;
        self.bus.close().await;
    }
}
