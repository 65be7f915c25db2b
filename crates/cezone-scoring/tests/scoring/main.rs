//! The scoring service with all four services over real gRPC, on SQLite and PostgreSQL.

use std::sync::Arc;

/// Each broker test in both queue modes: `…::classic` and `…::quorum`.
macro_rules! queue_type_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn classic() {
                    super::$name(cezone_bus::QueueType::Classic).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn quorum() {
                    super::$name(cezone_bus::QueueType::Quorum).await
                }
            }
        )*
    };
}

mod events;
mod reliability;
mod report;
mod untrusted_events;

use cezone_client::demo::{self, Channels};
use cezone_domain::demo::{DemoDistrict, DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;
use cezone_platform::access::auth::AuthChannel as Channel;
use cezone_platform::error::violations;
use cezone_platform::testing::{Backend, TestEnv, test_env};
use cezone_proto::evidence::v1 as pe;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use tonic::Code;

struct Stack {
    registry: cezone_registry::Application,
    evidence: cezone_evidence::Application,
    surveys: cezone_surveys::Application,
    scoring: Option<cezone_scoring::Application>,
    client: ScoringServiceClient<Channel>,
    channels: Channels,
    district: DemoDistrict,
    bus: std::sync::Arc<dyn cezone_bus::Bus>,
    env: TestEnv,
}

async fn spawn(backend: Backend) -> Stack {
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    spawn_with(backend, bus).await
}

/// The four services sharing one bus and one database, and a small demo district to load.
async fn spawn_with(backend: Backend, bus: std::sync::Arc<dyn cezone_bus::Bus>) -> Stack {
    spawn_tuned(backend, bus, |_| {}).await
}

/// [`spawn_with`] with settings of the test's own.
async fn spawn_tuned(
    backend: Backend,
    bus: std::sync::Arc<dyn cezone_bus::Bus>,
    tune: impl FnOnce(&mut cezone_platform::settings::Settings),
) -> Stack {
    let mut env = test_env(backend).await;
    tune(&mut env.settings);
    let registry = cezone_registry::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    env.settings.services.registry_url = registry.url();
    let evidence = cezone_evidence::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    let surveys = cezone_surveys::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    env.settings.services.evidence_url = evidence.url();
    env.settings.services.surveys_url = surveys.url();
    let scoring = cezone_scoring::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    let channels = Channels {
        registry: cezone_client::connect(&registry.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
        evidence: cezone_client::connect(&evidence.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
        surveys: cezone_client::connect(&surveys.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    };
    let client = ScoringServiceClient::new(
        cezone_client::connect(&scoring.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    let (fw, _) = guangdong::framework();
    let district = generate(
        &fw,
        &DemoParams {
            towns: 2,
            communities: 8,
            responses_per_community: 30,
            ..DemoParams::nanhai(11)
        },
    );
    Stack {
        registry,
        evidence,
        surveys,
        scoring: Some(scoring),
        client,
        channels,
        district,
        bus,
        env,
    }
}

impl Stack {
    async fn load(&self) {
        let (fw, _) = guangdong::framework();
        demo::load(&self.channels, &fw, &self.district)
            .await
            .unwrap();
    }

    async fn recompute(&mut self) -> ps::RecomputeResponse {
        self.client
            .recompute(ps::RecomputeRequest::default())
            .await
            .unwrap()
            .into_inner()
    }

    async fn stop(mut self) {
        if let Some(s) = self.scoring.take() {
            s.stop().await;
        }
        self.surveys.stop().await;
        self.evidence.stop().await;
        self.registry.stop().await;
    }

    /// The same district scored by the domain core directly.
    fn expected_total(&self) -> String {
        let (fw, _) = guangdong::framework();
        let facts = self.district.facts(&fw.catalog);
        let tree = OrgTree::build(self.district.units.clone()).unwrap();
        let engine = Engine::new(Arc::new(fw), Arc::new(tree), &facts, 2013);
        let board = engine.scoreboard();
        board.total(&engine.fw, 0).confirmed.to_string()
    }
}

async fn scores_through_the_services_equal_the_domain_on_the_same_data(backend: Backend) {
    let mut s = spawn(backend).await;
    let err = s
        .client
        .get_scores(ps::GetScoresRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "no scores before the first recompute"
    );
    s.load().await;
    let r = s.recompute().await;
    assert_eq!(r.org_units, 11);
    assert_eq!(r.cells, 11 * 61);
    assert_eq!(r.evidence as usize, s.district.evidence.len());
    assert_eq!(
        r.district_total.as_ref().unwrap().confirmed,
        s.expected_total()
    );

    let scores = s
        .client
        .get_scores(ps::GetScoresRequest {
            org_unit: String::new(),
            items: vec!["3.2".into(), "4.1.1".into()],
            explain: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scores.org_unit, "nanhai");
    assert_eq!(scores.max_points, "100");
    assert_eq!(scores.items.len(), 2);
    let group: serde_json::Value = serde_json::from_str(&scores.items[0].explanation_json).unwrap();
    assert_eq!(group["children"].as_array().unwrap().len(), 3);
    let key: serde_json::Value = serde_json::from_str(&scores.items[1].explanation_json).unwrap();
    assert_eq!(key["rule"]["rule"], "weighted");
    let survey = &key["rule"]["parts"][1];
    assert_eq!(survey["rule"], "survey_rate");
    assert_eq!(survey["surveys"].as_array().unwrap().len(), 2);
    assert!(survey["basis"].as_str().unwrap().contains("70%"));

    let summary = s
        .client
        .get_summary(ps::GetSummaryRequest {
            org_unit: String::new(),
            weak_links: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let doc: serde_json::Value = serde_json::from_str(&summary.summary_json).unwrap();
    assert_eq!(doc["format"], "cezone.summary.v1");
    assert_eq!(doc["children"].as_array().unwrap().len(), 2);
    assert_eq!(doc["weak_links"].as_array().unwrap().len(), 5);
    let readiness = s
        .client
        .get_readiness(ps::GetReadinessRequest {
            org_unit: String::new(),
            top: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(readiness.key_short > 0 && readiness.units_owing > 0);

    let err = s
        .client
        .get_scores(ps::GetScoresRequest {
            org_unit: "nanhai.x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "org_unit");
    let err = s
        .client
        .get_scores(ps::GetScoresRequest {
            items: vec!["9.9".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "items");
    let err = s
        .client
        .recompute(ps::RecomputeRequest {
            framework_id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "framework_id");
    let err = s
        .client
        .recompute(ps::RecomputeRequest {
            period: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "period");
    s.stop().await;
}

async fn snapshots_are_frozen_and_diffable(backend: Backend) {
    let mut s = spawn(backend).await;
    s.load().await;
    s.recompute().await;
    let first = s
        .client
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "materials-complete".into(),
            label: "自评一".into(),
            frozen_by: "评估办".into(),
            close_submissions: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.content_hash.len(), 64);

    // Accept every pending piece of evidence, then recompute and freeze again.
    let mut ev = cezone_client::evidence::client(s.channels.evidence.clone());
    let pending = ev
        .list_evidence(pe::ListEvidenceRequest {
            state: pe::ReviewState::Submitted as i32,
            page: Some(cezone_proto::common::v1::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .evidence;
    assert!(!pending.is_empty());
    for e in &pending {
        cezone_client::evidence::review(&mut ev, &e.id, pe::Decision::Accept, 100, "")
            .await
            .unwrap();
    }
    let after = s.recompute().await;
    let second = s
        .client
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "materials-submitted".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.district_total, after.district_total);
    assert!(
        second
            .district_total
            .as_ref()
            .unwrap()
            .confirmed
            .parse::<f64>()
            .unwrap()
            > first
                .district_total
                .as_ref()
                .unwrap()
                .confirmed
                .parse::<f64>()
                .unwrap()
    );

    // The first snapshot still shows what was frozen.
    let got = s
        .client
        .get_snapshot(ps::GetSnapshotRequest {
            id: first.id.clone(),
            org_unit: String::new(),
            explain: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.scores
            .as_ref()
            .unwrap()
            .total
            .as_ref()
            .unwrap()
            .confirmed,
        first.district_total.as_ref().unwrap().confirmed
    );
    let explained = s
        .client
        .get_snapshot(ps::GetSnapshotRequest {
            id: first.id.clone(),
            org_unit: String::new(),
            explain: true,
        })
        .await
        .unwrap()
        .into_inner();
    let items = &explained.scores.unwrap().items;
    assert!(items.iter().all(|i| !i.explanation_json.is_empty()));
    assert_eq!(
        items.iter().map(|i| i.score.clone()).collect::<Vec<_>>(),
        got.scores
            .unwrap()
            .items
            .iter()
            .map(|i| i.score.clone())
            .collect::<Vec<_>>()
    );

    let diff = s
        .client
        .diff_snapshots(ps::DiffSnapshotsRequest {
            from_id: first.id.clone(),
            to_id: second.id.clone(),
            org_unit: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!diff.changes.is_empty());
    assert!(
        diff.changes
            .iter()
            .all(|c| c.delta.parse::<f64>().unwrap() >= 0.0)
    );
    let listed = s
        .client
        .list_snapshots(ps::ListSnapshotsRequest { page: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .snapshots
            .iter()
            .map(|x| x.id.clone())
            .collect::<Vec<_>>(),
        vec![first.id.clone(), second.id.clone()]
    );

    let err = s
        .client
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "someday".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(violations(&err)[0].1.contains("materials-submitted"));
    let err = s
        .client
        .get_snapshot(ps::GetSnapshotRequest {
            id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    s.stop().await;
}

async fn a_restarted_scoring_service_serves_its_stored_read_model(backend: Backend) {
    let mut s = spawn(backend).await;
    s.load().await;
    let r = s.recompute().await;
    let before = s
        .client
        .get_scores(ps::GetScoresRequest::default())
        .await
        .unwrap()
        .into_inner();
    s.scoring.take().unwrap().stop().await;
    let scoring = cezone_scoring::Application::build(&s.env.settings, s.bus.clone())
        .await
        .unwrap();
    let mut client = ScoringServiceClient::new(
        cezone_client::connect(&scoring.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    let after = client
        .get_scores(ps::GetScoresRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.total, r.district_total);
    assert_eq!(after.items, before.items);
    s.scoring = Some(scoring);
    s.stop().await;
}

cezone_platform::contract_tests!(
    scores_through_the_services_equal_the_domain_on_the_same_data,
    snapshots_are_frozen_and_diffable,
    a_restarted_scoring_service_serves_its_stored_read_model,
);
