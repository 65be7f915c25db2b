//! `cezone chaos`: the fault-injection harness behind cezone's promise that every fact reaches
//! the score exactly once.
//!
//! It runs the services as separate processes on PostgreSQL and RabbitMQ — registry, evidence,
//! surveys and two scoring replicas, on a database and a bus prefix of their own — loads a demo
//! district through their APIs, and for each round drives concurrent writers while it injects
//! faults from a seeded schedule ([`faults`]). When the round is over it waits for quiet and
//! checks, cell by cell, that every replica's scores equal a from-scratch recompute from the
//! services' data, that every acknowledged fact is counted once ([`truth`]), and that the
//! dead-letter queue holds the poison that was sent and nothing else.

pub mod deployment;
pub mod faults;
pub mod report;
pub mod truth;
pub mod writers;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cezone_bus::{AmqpBus, Bus, Envelope, QueueType};
use cezone_client::demo::{self, Channels};
use cezone_domain::access::{Principal, Role};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::guangdong;
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_scoring::reconcile::Upstream;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sqlx::{Connection, PgPool};

use crate::deployment::Deployment;
use crate::faults::{Fault, Injector, Poison};
use crate::report::{Report, Round};
use crate::writers::{Ledger, Scope};

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: u32,
    pub seed: u64,
    pub queue_type: QueueType,
    /// A PostgreSQL database the harness may create databases from.
    pub postgres_url: String,
    pub amqp_url: String,
    /// The `cezone` binary the services run as.
    pub binary: PathBuf,
    /// Communities of the demo district (in 3 towns).
    pub communities: usize,
    /// How long the writers write each round.
    pub burst: Duration,
    /// How long a round may take to converge after its faults before it counts as diverged.
    pub converge_limit: Duration,
}

/// Runs the harness; the report says what it found (see [`Report::clean`]).
pub async fn run(opts: &Options, progress: &(dyn Fn(&str) + Sync)) -> Result<Report> {
    let admin = &opts.postgres_url;
    let name = format!(
        "cezone_chaos_{}_{}",
        chrono::Utc::now().timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let result = run_in(opts, &url, progress).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    result
}

struct Replica {
    name: &'static str,
    client: ScoringServiceClient<AuthChannel>,
}

async fn run_in(
    opts: &Options,
    database_url: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report> {
    let mut d = Deployment::new(&opts.binary, database_url, &opts.amqp_url, opts.queue_type)?;
    progress(&format!(
        "starting registry, evidence, surveys and two scoring replicas (logs in {})",
        d.logs.path().display()
    ));
    d.start_all().await?;
    let keys = d.keys()?;
    let office = Bearer::minted(
        keys.clone(),
        Principal::new("chaos", Role::EvaluationOffice, None, None)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let channels = Channels {
        registry: cezone_client::connect(&d.url("registry"), &office).await?,
        evidence: cezone_client::connect(&d.url("evidence"), &office).await?,
        surveys: cezone_client::connect(&d.url("surveys"), &office).await?,
    };
    let mut replicas = Vec::new();
    for name in ["scoring-a", "scoring-b"] {
        replicas.push(Replica {
            name,
            client: ScoringServiceClient::new(cezone_client::connect(&d.url(name), &office).await?)
                .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES),
        });
    }
    let upstream = Upstream::new(
        &d.url("registry"),
        &d.url("evidence"),
        &d.url("surveys"),
        cezone_client::MAX_MESSAGE_BYTES,
        &office,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = PgPool::connect(database_url).await?;

    let (fw, _) = guangdong::framework();
    let district = generate(
        &fw,
        &DemoParams {
            towns: 3,
            communities: opts.communities,
            responses_per_community: 10,
            ..DemoParams::nanhai(opts.seed)
        },
    );
    progress(&format!(
        "loading a district of {} communities through the APIs",
        opts.communities
    ));
    demo::load(&channels, &fw, &district).await?;
    let scope = Scope::new(&fw, &district);
    let framework_id = scope.framework_id.clone();
    let period = scope.period;
    let mut ledger = Ledger::default();
    for c in &scope.communities {
        ledger.responses.insert(
            c.clone(),
            u64::from(district.params.responses_per_community),
        );
    }
    for s in &district.statistics {
        ledger.statistics.insert(
            (s.org_unit.to_string(), s.metric.to_string(), s.period),
            (1, s.value),
        );
    }
    let ledger = Arc::new(Mutex::new(ledger));
    let first = converge(
        &upstream,
        &framework_id,
        period,
        &pool,
        &mut replicas,
        opts.converge_limit,
    )
    .await;
    anyhow::ensure!(
        first.is_some(),
        "the replicas did not score the loaded district within {:?}",
        opts.converge_limit
    );
    faults::install_delay(&pool).await?;

    let keyed = Arc::new(
        AmqpBus::connect(&cezone_bus::BusConfig {
            amqp_url: d.amqp_url.clone(),
            prefix: d.prefix.clone(),
            connection_name: "chaos".into(),
            prefetch: 64,
            queue_type: opts.queue_type,
            delivery_limit: cezone_bus::DEFAULT_DELIVERY_LIMIT,
            event_key: Some(
                cezone_platform::access::auth::ServiceSecret::new(d.secret.clone().into_bytes())?
                    .event_key(),
            ),
        })
        .await?,
    );
    let mut tap = keyed
        .subscribe("chaos-tap", &["statistic.recorded"])
        .await?;
    let captured: Arc<tokio::sync::Mutex<Vec<Envelope>>> = Arc::default();
    let tapping = {
        let captured = captured.clone();
        tokio::spawn(async move {
            while let Some(delivery) = tap.next().await {
                if let Ok(e) = delivery.envelope() {
                    let mut c = captured.lock().await;
                    c.push(e);
                    let n = c.len();
                    if n > 20 {
                        c.drain(..n - 20);
                    }
                }
                let _ = delivery.ack().await;
            }
        })
    };

    let deployment = tokio::sync::Mutex::new(d);
    let poison = tokio::sync::Mutex::new(Poison::default());
    let mut report = Report::new(opts.seed, opts.queue_type.name());
    for round in 1..=opts.rounds {
        let mut rng =
            ChaCha8Rng::seed_from_u64(opts.seed.wrapping_mul(7919).wrapping_add(u64::from(round)));
        let schedule = faults::schedule(&mut rng, round, opts.burst);
        let names: Vec<&'static str> = schedule.iter().map(|(f, _)| f.name()).collect();
        progress(&format!(
            "round {round}/{}: {}",
            opts.rounds,
            names.join(", ")
        ));
        ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writes
            .clear();
        *poison.lock().await = Poison::default();
        let injector = Injector {
            deployment: &deployment,
            pool: &pool,
            office: &office,
            keyed: &keyed,
            queue_type: opts.queue_type,
            captured: &captured,
            poison: &poison,
        };
        let writing = writers::burst(
            &channels,
            &scope,
            opts.seed ^ (u64::from(round) << 16),
            round,
            opts.burst,
            ledger.clone(),
        );
        let injecting =
            futures::future::join_all(schedule.iter().enumerate().map(|(i, (fault, at))| {
                let injector = &injector;
                let mut rng =
                    ChaCha8Rng::seed_from_u64(opts.seed ^ (u64::from(round) << 24) ^ i as u64);
                async move {
                    tokio::time::sleep(*at).await;
                    injector
                        .inject(*fault, &mut rng)
                        .await
                        .map_err(|e| format!("{}: {e:#}", fault.name()))
                }
            }));
        let ((), outcomes) = futures::future::join(writing, injecting).await;
        let mut notes: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
        // Whatever a fault left down comes up again before the checks.
        {
            let mut d = deployment.lock().await;
            for p in deployment::PROCESSES {
                if !d.is_running(p) {
                    d.start(p)?;
                }
                if let Err(e) = d.wait_healthy(p, Duration::from_secs(60)).await {
                    notes.push(format!("{p}: {e:#}"));
                }
            }
        }
        let converged = converge(
            &upstream,
            &framework_id,
            period,
            &pool,
            &mut replicas,
            opts.converge_limit,
        )
        .await;
        let (sent, poison_ids, garbage) = {
            let p = poison.lock().await;
            (p.dead, p.ids.clone(), p.garbage)
        };
        let drained = drain_dead_letters(&keyed, sent, &poison_ids, garbage).await;
        let dead_letters = drained.poison;
        notes.extend(drained.notes());
        let expected = truth::expected(&upstream, &framework_id, period).await?;
        let mut divergences = 0;
        for r in &mut replicas {
            let (n, examples) = truth::divergences(&mut r.client, &expected).await;
            divergences += n;
            for e in examples {
                notes.push(format!("{} diverges: {e}", r.name));
            }
        }
        let counted = {
            let snapshot = std::mem::take(&mut *ledger.lock().unwrap_or_else(|e| e.into_inner()));
            let c = truth::counted(&pool, &expected.inputs, &snapshot, &scope.survey_id).await;
            *ledger.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
            c?
        };
        notes.extend(counted.examples.iter().cloned());
        if converged.is_none() {
            notes.push(format!("not converged within {:?}", opts.converge_limit));
        }
        // More than were confirmed is fine: a poison message whose confirmation was lost to a
        // broker restart may have been stored all the same.
        if dead_letters < sent {
            notes.push(format!(
                "{dead_letters} dead letters for {sent} poison messages"
            ));
        }
        let facts = ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writes
            .values()
            .sum();
        report.add(
            Round {
                round,
                faults: names,
                facts,
                divergences,
                lost: counted.lost,
                doubled: counted.doubled,
                converged_ms: converged.map(|d| d.as_millis() as u64),
                poison_sent: sent,
                dead_letters,
                unexpected_dead_letters: drained.unexpected.len() as u64,
                notes,
            },
            opts.burst.as_secs_f64(),
        );
        let r = report.round_results.last().expect("just added");
        progress(&format!(
            "round {round}: {} facts, converged in {}, {} divergences, {} lost, {} doubled, {}/{} dead letters",
            r.facts,
            r.converged_ms
                .map_or("—".to_string(), |m| format!("{m} ms")),
            r.divergences,
            r.lost,
            r.doubled,
            r.dead_letters,
            r.poison_sent
        ));
    }
    tapping.abort();
    let _ = keyed
        .delete_topology(&["scoring", "evidence", "chaos-tap"])
        .await;
    keyed.close().await;
    let mut d = deployment.into_inner();
    if !report.clean() {
        for p in deployment::PROCESSES {
            progress(&format!(
                "--- {p} (last lines of its log)\n{}",
                d.log_tail(p, 15)
            ));
        }
        // A failed run's logs are what there is to find the cause with: they stay.
        d.logs.disable_cleanup(true);
        progress(&format!(
            "the processes' logs are kept in {}",
            d.logs.path().display()
        ));
    }
    d.stop_all();
    Ok(report)
}

/// Waits until the producers' outboxes are empty and every replica equals a from-scratch
/// recompute from the services' data; returns how long that took, none past `limit`.
async fn converge(
    upstream: &Upstream,
    framework_id: &str,
    period: i32,
    pool: &PgPool,
    replicas: &mut [Replica],
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if outboxes_empty(pool).await
            && let Ok(expected) = truth::expected(upstream, framework_id, period).await
        {
            let mut equal = true;
            for r in replicas.iter_mut() {
                if truth::divergences(&mut r.client, &expected).await.0 != 0 {
                    equal = false;
                    break;
                }
            }
            if equal {
                return Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

async fn outboxes_empty(pool: &PgPool) -> bool {
    for table in ["registry_outbox", "evidence_outbox", "surveys_outbox"] {
        let pending: Result<i64, _> = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE published_at IS NULL"
        ))
        .fetch_one(pool)
        .await;
        if !matches!(pending, Ok(0)) {
            return false;
        }
    }
    true
}

/// What the scoring consumer's dead-letter queue held after a round.
#[derive(Debug, Default)]
struct Drained {
    /// Poison messages, each counted once.
    poison: u64,
    /// Poison dead-lettered again (dead-lettering is at least once: an ack lost with its
    /// channel brings the message back, and it is dead-lettered a second time).
    again: u64,
    /// Anything else: a real event the consumer gave up on, with its reason.
    unexpected: Vec<String>,
}

impl Drained {
    fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .unexpected
            .iter()
            .map(|u| format!("dead-lettered, and not poison: {u}"))
            .collect();
        if self.again > 0 {
            notes.push(format!(
                "{} poison messages dead-lettered a second time (at least once)",
                self.again
            ));
        }
        notes
    }
}

/// Takes the scoring consumer's dead letters: waits up to 30 s for `expected` poison messages,
/// then a moment more for any beyond them. Each is told apart by its event id (`ids`; the
/// `garbage` messages that are no envelope have none).
async fn drain_dead_letters(
    bus: &AmqpBus,
    expected: u64,
    ids: &std::collections::HashSet<String>,
    garbage_sent: u64,
) -> Drained {
    let mut out = Drained::default();
    let mut seen = std::collections::HashSet::new();
    let mut garbage = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    loop {
        if let Ok(Some(d)) = bus.take_dead_letter("scoring").await {
            tracing::info!(reason = %d.reason, "dead letter");
            let id = cezone_bus::decode(&d.body)
                .ok()
                .map(|e| e.event_id)
                .or_else(|| {
                    // Signed envelopes travel wrapped; the reason names the event.
                    ids.iter()
                        .find(|id| d.reason.contains(id.as_str()))
                        .cloned()
                });
            match id {
                Some(id) if ids.contains(&id) => {
                    if seen.insert(id) {
                        out.poison += 1;
                    } else {
                        out.again += 1;
                    }
                }
                None if garbage < garbage_sent => {
                    garbage += 1;
                    out.poison += 1;
                }
                None => out.again += 1,
                Some(id) => out
                    .unexpected
                    .push(format!("{} event {id}: {}", d.routing_key, d.reason)),
            }
            continue;
        }
        if out.poison >= expected {
            let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_millis(1500));
            if Instant::now() >= until {
                return out;
            }
        } else if Instant::now() >= deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kinds of fault, for the command's help.
pub fn fault_names() -> Vec<&'static str> {
    Fault::ALL.iter().map(|f| f.name()).collect()
}
