//! The deployment without containers: each service a separate `cezone serve --services …`
//! process on PostgreSQL and RabbitMQ, as compose and Kubernetes run them. A demo district
//! loaded through the APIs is scored across processes by events alone; reviews made just
//! before a SIGTERM still reach the scores; the operator commands work against the processes.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cezone_client::demo::{self, Channels};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::facts::{EvidenceState, Facts};
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;
use cezone_platform::testing::{amqp_url, fresh_bus_prefix, fresh_postgres_database};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;

const SERVICES: [&str; 5] = ["registry", "evidence", "surveys", "scoring", "scheduler"];

struct Deployment {
    env: Vec<(String, String)>,
    urls: BTreeMap<&'static str, String>,
    children: BTreeMap<&'static str, Child>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    cezone_platform::testing::unused_port().expect("a free port")
}

impl Deployment {
    async fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            (
                "CEZONE__DATABASE__URL".to_string(),
                fresh_postgres_database().await,
            ),
            ("CEZONE__BUS__AMQP_URL".to_string(), amqp_url()),
            ("CEZONE__BUS__PREFIX".to_string(), fresh_bus_prefix()),
            (
                "CEZONE__AUTH__SECRET".to_string(),
                cezone_platform::testing::test_secret().to_string(),
            ),
            // The registry signs with the tests' keys; the other processes fetch its public
            // keys from it, as a deployment across machines does.
            (
                "CEZONE__AUTH__SIGNING_KEYS_FILE".to_string(),
                cezone_platform::testing::test_key_files()
                    .0
                    .display()
                    .to_string(),
            ),
            (
                "CEZONE__EVIDENCE__STORAGE_ROOT".to_string(),
                dir.path().join("evidence").display().to_string(),
            ),
            ("CEZONE__LOG__FORMAT".to_string(), "json".to_string()),
            // Shown only when a test fails (the runner keeps a passing test's output to
            // itself): enough to follow each event from the outbox to the scores.
            (
                "CEZONE__LOG__FILTER".to_string(),
                "warn,cezone_bus=info,cezone_scoring=debug".to_string(),
            ),
        ];
        let mut urls = BTreeMap::new();
        for s in SERVICES {
            let port = free_port();
            let key = s.to_uppercase();
            env.push((format!("CEZONE__{key}__PORT"), port.to_string()));
            env.push((
                format!("CEZONE__SERVICES__{key}_URL"),
                format!("http://127.0.0.1:{port}"),
            ));
            urls.insert(s, format!("http://127.0.0.1:{port}"));
        }
        Deployment {
            env,
            urls,
            children: BTreeMap::new(),
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cezone"));
        c.args(args)
            .envs(self.env.iter().cloned())
            .current_dir(self._dir.path());
        c
    }

    fn start(&mut self, service: &'static str) {
        let child = self
            .command(&["serve"])
            .env("CEZONE_SERVICES", service)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.children.insert(service, child);
    }

    /// `cezone health` until it says every named service is serving.
    fn wait_healthy(&self, services: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self
                .command(&["health", "--services", services])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not healthy within 60 s: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self, service: &str) -> std::process::ExitStatus {
        let mut child = self.children.remove(service).unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        child.wait().unwrap()
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.children) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The domain's total for the demo district with these service records accepted at grade 100.
/// The services' record ids are not the demo's: records match facts by slot and material.
fn expected_total(
    district: &cezone_domain::demo::DemoDistrict,
    accepted: &[pe::Evidence],
) -> String {
    let (fw, _) = guangdong::framework();
    let mut facts: Facts = district.facts(&fw.catalog);
    for e in &mut facts.evidence {
        let matches = accepted.iter().any(|r| {
            r.criterion == e.criterion.to_string()
                && r.responsible_unit == e.unit.to_string()
                && r.org_unit == e.org_unit.to_string()
                && e.material.as_deref().unwrap_or("") == r.material_type
        });
        if matches && e.state == EvidenceState::Submitted {
            e.state = EvidenceState::Accepted { grade: 100 };
        }
    }
    let tree = OrgTree::build(district.units.clone()).unwrap();
    let engine = Engine::new(Arc::new(fw), Arc::new(tree), &facts, district.params.period);
    engine
        .scoreboard()
        .total(&engine.fw, 0)
        .confirmed
        .to_string()
}

async fn wait_total(
    scores: &mut ScoringServiceClient<cezone_platform::access::auth::AuthChannel>,
    want: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(r) = scores
            .get_scores(ps::GetScoresRequest {
                items: vec!["1".into()],
                ..Default::default()
            })
            .await
        {
            last = r
                .into_inner()
                .total
                .map(|t| t.confirmed)
                .unwrap_or_default();
            if last == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the district total is {last}, not {want}, after 90 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_services_as_separate_processes_score_end_to_end() {
    let mut d = Deployment::new().await;
    for s in SERVICES {
        d.start(s);
    }
    d.wait_healthy("registry,evidence,surveys,scoring,scheduler");

    let channels = Channels {
        registry: cezone_client::connect(&d.urls["registry"], &cezone_platform::testing::office())
            .await
            .unwrap(),
        evidence: cezone_client::connect(&d.urls["evidence"], &cezone_platform::testing::office())
            .await
            .unwrap(),
        surveys: cezone_client::connect(&d.urls["surveys"], &cezone_platform::testing::office())
            .await
            .unwrap(),
    };
    let (fw, _) = guangdong::framework();
    let district = generate(
        &fw,
        &DemoParams {
            towns: 2,
            communities: 10,
            responses_per_community: 20,
            ..DemoParams::nanhai(3)
        },
    );
    demo::load(&channels, &fw, &district).await.unwrap();
    let mut scores = ScoringServiceClient::new(
        cezone_client::connect(&d.urls["scoring"], &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    // Never a Recompute: the other processes' events alone bring scoring to the domain's total.
    wait_total(&mut scores, &expected_total(&district, &[])).await;

    // Reviews committed just before SIGTERM: the evidence process flushes its outbox on the
    // way out, so every one reaches the scores though it never runs again.
    let mut ev = cezone_client::evidence::client(channels.evidence.clone());
    let pending = ev
        .list_evidence(pe::ListEvidenceRequest {
            state: pe::ReviewState::Submitted as i32,
            page: Some(PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .evidence;
    assert!(pending.len() >= 5, "the demo has pending evidence");
    let reviewed: Vec<pe::Evidence> = pending.iter().take(20).cloned().collect();
    for e in &reviewed {
        cezone_client::evidence::review(&mut ev, &e.id, pe::Decision::Accept, 100, "")
            .await
            .unwrap();
    }
    let exit = d.terminate("evidence");
    assert!(exit.success(), "evidence stopped cleanly: {exit:?}");
    wait_total(&mut scores, &expected_total(&district, &reviewed)).await;

    // The operator commands against the running processes.
    let (ok, text) = d.run(&["schedule", "list", "--all"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("materials-complete@T-72h") && text.contains("missed"),
        "{text}"
    );
    // People read times in the district's zone, with the offset shown.
    assert!(text.contains(" +08:00 "), "{text}");
    d.start("evidence");
    d.wait_healthy("evidence");
    let (ok, text) = d.run(&["snapshot", "freeze", "--checkpoint", "materials-submitted"]);
    assert!(ok, "{text}");
    let want = expected_total(&district, &reviewed);
    assert!(
        text.contains("frozen for materials-submitted") && text.contains(&want),
        "{text}"
    );
    let (ok, text) = d.run(&["snapshot", "freeze", "--checkpoint", "2014-02-30"]);
    assert!(!ok);
    assert!(
        text.contains("checkpoint") && text.contains("'2014-02-30'"),
        "{text}"
    );
    let snapshots = scores
        .list_snapshots(ps::ListSnapshotsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(snapshots.len(), 1);
    // Frozen by whoever the command signed in as (its token's subject), through the scheduler.
    assert!(
        snapshots[0].frozen_by.starts_with("cli:"),
        "{}",
        snapshots[0].frozen_by
    );

    for s in SERVICES.iter().rev() {
        let exit = d.terminate(s);
        assert!(exit.success(), "{s} stopped cleanly: {exit:?}");
    }
}
