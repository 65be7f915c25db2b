//! The four services in this process on a fresh PostgreSQL database and a fresh RabbitMQ
//! prefix, with a demo district loaded through their APIs and the scores converged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cezone_bus::{AmqpBus, Bus};
use cezone_client::demo::{self, Channels};
use cezone_domain::demo::{DemoDistrict, DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;
use cezone_platform::access::auth::AuthChannel;
use cezone_platform::scratch::{amqp_url, bus_prefix};
use cezone_platform::settings::Settings;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_stack::Part;

use crate::throwaway::Throwaway;

#[derive(Debug)]
pub struct Stack {
    pub services: Throwaway,
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
        let settings = Throwaway::prepare(|s| {
            s.evidence.storage_root = dir.join("evidence");
            s.bus.amqp_url = amqp_url();
            s.bus.prefix = bus_prefix("t");
        })
        .await?;
        let bus = Arc::new(
            AmqpBus::connect(
                &settings
                    .bus_config("cezone-bench")
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
            .await
            .context("RabbitMQ on 127.0.0.1:5672")?,
        );
        let services = Throwaway::start(&settings, bus.clone(), &Part::CORE).await?;
        let settings = services.stack.settings.clone();
        let scores = scores_client(&services).await?;
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
        let office = &self.services.office;
        let services = &self.settings.services;
        let channels = Channels {
            registry: cezone_client::connect(&services.registry_url, office).await?,
            evidence: cezone_client::connect(&services.evidence_url, office).await?,
            surveys: cezone_client::connect(&services.surveys_url, office).await?,
        };
        let (fw, _) = guangdong::framework();
        demo::load(&channels, &fw, &self.district)
            .await
            .context("loading the demo")?;
        self.services.stack.flush_events().await;
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

    /// A scoring client on a connection of its own, accepting the largest messages it sends.
    pub async fn scores(&self) -> Result<ScoringServiceClient<AuthChannel>> {
        scores_client(&self.services).await
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

async fn scores_client(services: &Throwaway) -> Result<ScoringServiceClient<AuthChannel>> {
    let url = &services.stack.settings.services.scoring_url;
    Ok(
        ScoringServiceClient::new(cezone_client::connect(url, &services.office).await?)
            .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES),
    )
}
