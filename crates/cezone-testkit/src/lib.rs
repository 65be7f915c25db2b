//! The four services in this process, each on its own 127.0.0.1 port and reached over real
//! gRPC, wired to each other and to one bus, as tests and benchmarks need them; and a demo
//! district to load through their public APIs.

use std::sync::Arc;

use cezone_bus::Bus;
use cezone_client::demo::{self, Channels, LoadReport};
use cezone_domain::access::Role;
use cezone_domain::demo::{DemoDistrict, DemoParams, generate};
use cezone_domain::guangdong;
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_platform::settings::Settings;
use cezone_platform::testing::bearer_for;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_stack::{Part, Stack};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct Services {
    pub registry: cezone_registry::Application,
    pub evidence: cezone_evidence::Application,
    pub surveys: cezone_surveys::Application,
    pub scoring: cezone_scoring::Application,
    pub channels: Channels,
    /// The settings given, with every `services.*_url` naming the running services.
    pub settings: Settings,
    pub bus: Arc<dyn Bus>,
}

impl Services {
    /// Starts registry, evidence, surveys and scoring (the stack's core, in its order) on
    /// `settings` (ports 0 pick free ones).
    pub async fn start(settings: &Settings, bus: Arc<dyn Bus>) -> Result<Services, Error> {
        let Stack {
            settings,
            registry: Some(registry),
            evidence: Some(evidence),
            surveys: Some(surveys),
            scoring: Some(scoring),
            ..
        } = Stack::start(settings, bus.clone(), &Part::CORE).await?
        else {
            unreachable!("the core parts were started");
        };
        let office = bearer_for(&settings, Role::EvaluationOffice);
        let channels = Channels {
            registry: cezone_client::connect(&registry.url(), &office).await?,
            evidence: cezone_client::connect(&evidence.url(), &office).await?,
            surveys: cezone_client::connect(&surveys.url(), &office).await?,
        };
        Ok(Services {
            registry,
            evidence,
            surveys,
            scoring,
            channels,
            settings,
            bus,
        })
    }

    /// The services as the stack they were started from.
    fn into_stack(self) -> Stack {
        Stack {
            settings: self.settings,
            registry: Some(self.registry),
            evidence: Some(self.evidence),
            surveys: Some(self.surveys),
            scoring: Some(self.scoring),
            scheduler: None,
            web: None,
        }
    }

    /// Loads `district` with the Guangdong framework through the services' APIs.
    pub async fn load(&self, district: &DemoDistrict) -> Result<LoadReport, Error> {
        let (fw, _) = guangdong::framework();
        Ok(demo::load(&self.channels, &fw, district).await?)
    }

    /// A scoring client that accepts the largest messages the services send.
    pub async fn scores(&self) -> Result<ScoringServiceClient<AuthChannel>, Error> {
        let office = self.bearer(Role::EvaluationOffice);
        Ok(
            ScoringServiceClient::new(cezone_client::connect(&self.scoring.url(), &office).await?)
                .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES),
        )
    }

    /// Credentials of an unscoped caller of `role` under these services' key.
    pub fn bearer(&self, role: Role) -> Bearer {
        bearer_for(&self.settings, role)
    }

    /// Publishes what the producers' outboxes hold.
    pub async fn flush_events(&self) {
        self.registry.flush_events().await;
        self.evidence.flush_events().await;
        self.surveys.flush_events().await;
    }

    /// Stops in reverse order of start.
    pub async fn stop(self) {
        self.into_stack().stop().await;
    }
}

/// A demo district of `towns` towns and `communities` communities with the Guangdong
/// framework: small enough for a test, every kind of fact present.
pub fn district(
    towns: usize,
    communities: usize,
    responses_per_community: u32,
    seed: u64,
) -> DemoDistrict {
    let (fw, _) = guangdong::framework();
    generate(
        &fw,
        &DemoParams {
            towns,
            communities,
            responses_per_community,
            ..DemoParams::nanhai(seed)
        },
    )
}
