//! Concurrent writers, as a district's people and systems write during a burst: statistical
//! returns (new versions and new ones, single and batched), evidence uploads and reviews,
//! survey batches, population updates and an org unit moved away and back. Every write the
//! services acknowledged is entered in the ledger, which the checks hold the read model to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cezone_client::demo::Channels;
use cezone_domain::demo::DemoDistrict;
use cezone_domain::framework::Framework;
use cezone_domain::org::OrgLevel;
use cezone_domain::rules::QuestionKind;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::registry::v1 as pr;
use cezone_proto::surveys::v1 as psv;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

/// What the services acknowledged.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The newest acknowledged (version, value) of each (org unit, metric, period).
    pub statistics: HashMap<(String, String, i32), (u64, i64)>,
    /// Responses acknowledged per org unit (the demo's included).
    pub responses: HashMap<String, u64>,
    /// Acknowledged writes of this round, by kind.
    pub writes: HashMap<&'static str, u64>,
}

impl Ledger {
    fn wrote(&mut self, kind: &'static str, n: u64) {
        *self.writes.entry(kind).or_default() += n;
    }
}

/// What the writers write about.
#[derive(Debug, Clone)]
pub struct Scope {
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
    pub survey_id: String,
    pub communities: Vec<String>,
    pub towns: Vec<String>,
    pub metrics: Vec<String>,
    /// (criterion, unit, org unit, material) of the demo's evidence slots.
    pub slots: Vec<(String, String, String, String)>,
    /// (question, kind) the survey asks.
    pub questions: Vec<(String, QuestionKind)>,
    /// The unit name evidence is submitted as.
    pub unit_names: HashMap<String, String>,
}

impl Scope {
    pub fn new(fw: &Framework, district: &DemoDistrict) -> Scope {
        let ids = |level: OrgLevel| -> Vec<String> {
            district
                .units
                .iter()
                .filter(|u| u.level == level)
                .map(|u| u.id.to_string())
                .collect()
        };
        let mut metrics: Vec<String> = district
            .statistics
            .iter()
            .map(|s| s.metric.to_string())
            .collect();
        metrics.sort();
        metrics.dedup();
        Scope {
            framework_id: fw.meta.id.to_string(),
            edition: fw.meta.edition.clone(),
            period: district.params.period,
            survey_id: cezone_client::demo::survey_id(district.params.period),
            communities: ids(OrgLevel::Community),
            towns: ids(OrgLevel::Town),
            metrics,
            slots: district
                .evidence
                .iter()
                .map(|e| {
                    (
                        e.criterion.to_string(),
                        e.unit.to_string(),
                        e.org_unit.to_string(),
                        e.material.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            questions: ["awareness", "acceptance", "satisfaction"]
                .iter()
                .filter_map(|q| {
                    let id = cezone_domain::rules::QuestionId::parse(q).ok()?;
                    fw.catalog.question(&id).map(|d| (q.to_string(), d.kind))
                })
                .collect(),
            unit_names: district
                .evidence
                .iter()
                .map(|e| (e.unit.to_string(), fw.units.name_of(&e.unit)))
                .collect(),
        }
    }
}

/// Runs every writer until `duration` has passed. Refused calls (a producer down, a full
/// outbox) are not acknowledged and are simply retried later with other values.
pub async fn burst(
    ch: &Channels,
    scope: &Scope,
    seed: u64,
    round: u32,
    duration: Duration,
    ledger: Arc<Mutex<Ledger>>,
) {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for k in 0..3u64 {
        tasks.push(tokio::spawn(statistics(
            ch.surveys.clone(),
            scope.clone(),
            seed ^ (k << 8),
            deadline,
            ledger.clone(),
        )));
    }
    tasks.push(tokio::spawn(evidence(
        ch.evidence.clone(),
        scope.clone(),
        seed ^ 0x0e,
        deadline,
        ledger.clone(),
    )));
    tasks.push(tokio::spawn(surveys(
        ch.surveys.clone(),
        scope.clone(),
        seed ^ 0x5a,
        round,
        deadline,
        ledger.clone(),
    )));
    tasks.push(tokio::spawn(org_units(
        ch.registry.clone(),
        scope.clone(),
        seed ^ 0x0a,
        deadline,
        ledger.clone(),
    )));
    for t in tasks {
        let _ = t.await;
    }
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

async fn statistics(
    channel: cezone_platform::access::auth::AuthChannel,
    scope: Scope,
    seed: u64,
    deadline: Instant,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut client = cezone_client::surveys::client(channel);
    while Instant::now() < deadline {
        let n = if rng.random_bool(0.3) {
            1
        } else {
            rng.random_range(2..=20)
        };
        let mut batch: HashMap<(String, String), psv::StatisticReturn> = HashMap::new();
        for _ in 0..n {
            let org_unit = scope.communities[rng.random_range(0..scope.communities.len())].clone();
            let metric = scope.metrics[rng.random_range(0..scope.metrics.len())].clone();
            batch.insert(
                (org_unit.clone(), metric.clone()),
                psv::StatisticReturn {
                    org_unit,
                    metric,
                    period: scope.period,
                    value: rng.random_range(0..60),
                    filed_by: "chaos".into(),
                    ..Default::default()
                },
            );
        }
        let statistics: Vec<psv::StatisticReturn> = batch.into_values().collect();
        let stored = if statistics.len() == 1 {
            client
                .record_statistic(statistics[0].clone())
                .await
                .map(|r| vec![r.into_inner()])
        } else {
            client
                .record_statistics(psv::RecordStatisticsRequest {
                    statistics,
                    dry_run: false,
                })
                .await
                .map(|r| r.into_inner().statistics)
        };
        match stored {
            Ok(stored) => {
                let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
                l.wrote("statistic", stored.len() as u64);
                for s in stored {
                    let key = (s.org_unit.clone(), s.metric.clone(), s.period);
                    let held = l.statistics.entry(key).or_insert((0, 0));
                    if s.version >= held.0 {
                        *held = (s.version, s.value);
                    }
                }
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), "a filing was not taken");
                pause().await;
            }
        }
    }
}

async fn evidence(
    channel: cezone_platform::access::auth::AuthChannel,
    scope: Scope,
    seed: u64,
    deadline: Instant,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut client = cezone_client::evidence::client(channel);
    let mut uploaded: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        if !uploaded.is_empty() && rng.random_bool(0.5) {
            let id = uploaded.swap_remove(rng.random_range(0..uploaded.len()));
            let (decision, grade, comment) = if rng.random_bool(0.7) {
                (pe::Decision::Accept, rng.random_range(60..=100), "")
            } else {
                (pe::Decision::Return, 0, "请补充材料")
            };
            match cezone_client::evidence::review(&mut client, &id, decision, grade, comment).await
            {
                Ok(_) => ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .wrote("review", 1),
                Err(_) => pause().await,
            }
            continue;
        }
        let (criterion, unit, org_unit, material) =
            scope.slots[rng.random_range(0..scope.slots.len())].clone();
        let meta = pe::UploadMetadata {
            framework_id: scope.framework_id.clone(),
            edition: scope.edition.clone(),
            criterion: criterion.clone(),
            org_unit,
            responsible_unit: unit.clone(),
            period: scope.period,
            title: format!("{criterion} 补充材料"),
            material_type: material,
            file_name: format!("{criterion}.txt"),
            content_type: "text/plain; charset=utf-8".into(),
            replaces: String::new(),
            submitted_by: scope.unit_names.get(&unit).cloned().unwrap_or(unit),
        };
        let body = format!("chaos {}\n", rng.random::<u64>()).into_bytes();
        match cezone_client::evidence::upload(&mut client, meta, body).await {
            Ok(rec) => {
                uploaded.push(rec.id);
                ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .wrote("evidence", 1);
            }
            Err(_) => pause().await,
        }
    }
}

async fn surveys(
    channel: cezone_platform::access::auth::AuthChannel,
    scope: Scope,
    seed: u64,
    round: u32,
    deadline: Instant,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut client = cezone_client::surveys::client(channel);
    let mut batch = 0u32;
    while Instant::now() < deadline {
        batch += 1;
        let n = rng.random_range(10..=30);
        let mut counts: HashMap<String, u64> = HashMap::new();
        let responses: Vec<psv::Response> = (0..n)
            .map(|i| {
                let org_unit =
                    scope.communities[rng.random_range(0..scope.communities.len())].clone();
                *counts.entry(org_unit.clone()).or_default() += 1;
                psv::Response {
                    respondent_id: format!("chaos-{seed}-{round}-{batch}-{i}"),
                    org_unit,
                    answers: scope
                        .questions
                        .iter()
                        .map(|(q, kind)| psv::Answer {
                            question: q.clone(),
                            value: match kind {
                                QuestionKind::YesNo => rng.random_range(0..=1),
                                QuestionKind::Likert5 => rng.random_range(1..=5),
                            },
                        })
                        .collect(),
                }
            })
            .collect();
        match cezone_client::surveys::ingest(&mut client, &scope.survey_id, responses).await {
            Ok(summary) => {
                let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
                l.wrote("survey_response", summary.accepted);
                for (o, c) in counts {
                    *l.responses.entry(o).or_default() += c;
                }
            }
            Err(_) => pause().await,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Structural changes in the first half of the burst only — a community moved to another town
/// and back, three population updates — so that the second half is facts alone, applied
/// incrementally: a reload (which every structural change is) would repair what the
/// incremental path got wrong and hide it.
async fn org_units(
    channel: cezone_platform::access::auth::AuthChannel,
    scope: Scope,
    seed: u64,
    deadline: Instant,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut client = cezone_client::registry::client(channel);
    let half = deadline - (deadline - Instant::now()) / 2;
    let mover = scope.communities[rng.random_range(0..scope.communities.len())].clone();
    let home = client
        .get_org_unit(pr::GetOrgUnitRequest { id: mover.clone() })
        .await
        .ok()
        .map(|r| r.into_inner().parent_id);
    let away = home
        .as_ref()
        .and_then(|h| scope.towns.iter().find(|t| *t != h).cloned());
    let mut moved = false;
    if let Some(away) = away
        && client
            .move_org_unit(pr::MoveOrgUnitRequest {
                id: mover.clone(),
                new_parent_id: away,
            })
            .await
            .is_ok()
    {
        moved = true;
        ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wrote("org_unit_move", 1);
    }
    for _ in 0..3 {
        let community = scope.communities[rng.random_range(0..scope.communities.len())].clone();
        if client
            .update_population(pr::UpdatePopulationRequest {
                id: community,
                year: scope.period,
                residents: rng.random_range(2_000..20_000),
            })
            .await
            .is_ok()
        {
            ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .wrote("population", 1);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep_until(half).await;
    // Back home whatever happened meanwhile.
    if moved && let Some(home) = home {
        for _ in 0..50 {
            if client
                .move_org_unit(pr::MoveOrgUnitRequest {
                    id: mover.clone(),
                    new_parent_id: home.clone(),
                })
                .await
                .is_ok()
            {
                ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .wrote("org_unit_move", 1);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
