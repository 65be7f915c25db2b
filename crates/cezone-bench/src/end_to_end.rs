//! The real path, in separate processes as a deployment runs them: statistics filed through the
//! surveys service's API (`RecordStatistics`) → its outbox, committed with them → the relay →
//! RabbitMQ → scoring's consumer → change records → the scorer → the new score, visible to
//! `GetScores` (seen on `WatchScores`, which is told the moment the model changed). Measured
//! from each call's answer (the statistic accepted) to its score; at full speed and at half.
//! The surveys outbox's backlog is sampled throughout.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cezone_chaos::deployment::Deployment;
use cezone_client::demo::{self, Channels};
use cezone_domain::access::{Principal, Role};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::guangdong;
use cezone_domain::org::OrgLevel;
use cezone_platform::access::auth::Bearer;
use cezone_platform::scratch::{self, amqp_url};
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_proto::surveys::v1 as psv;
use futures::StreamExt;

use crate::pipeline::{Raw, Run, summarize};

/// Callers filing at once, and statistics per call.
const CALLERS: usize = 8;
const PER_CALL: usize = 50;

/// How long the runs are.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The steady window each full-load run needs at least.
    pub window: Duration,
    /// (ours, raw) pairs of full-load runs.
    pub pairs: usize,
    /// Length of the half-load runs.
    pub half: Duration,
}

/// Every run, in the order they ran (a warm-up of each side first, not kept): ours and raw
/// lapin at full load alternating, then ours and raw at half of ours' rate; the most events
/// the surveys outbox held unpublished at a sample during ours' full-load runs, and the encoded
/// size of one statistic's event (the baseline's messages).
#[derive(Debug)]
pub struct Measured {
    pub full: Vec<Run>,
    pub raw_full: Vec<Run>,
    pub half: Run,
    pub raw_half: Run,
    pub max_backlog: i64,
    pub event_bytes: usize,
    /// Statistics per full-load run of ours, and messages per raw one.
    pub sizes: (usize, usize),
}

/// Runs the workload against the surveys, registry, evidence and scoring services started as
/// processes of `binary`, and the baseline on the RabbitMQ at `amqp` with `prefetch`.
pub async fn measure(
    binary: &Path,
    params: &DemoParams,
    plan: Plan,
    prefetch: u16,
) -> Result<Measured> {
    let url = cezone_platform::scratch::create_database("cezone_b")
        .await
        .with_context(|| format!("PostgreSQL at {}", scratch::postgres_admin_url()))?;
    let result = measure_in(binary, &url, params, plan, prefetch).await;
    scratch::drop_database(&url).await;
    result
}

async fn measure_in(
    binary: &Path,
    url: &str,
    params: &DemoParams,
    plan: Plan,
    prefetch: u16,
) -> Result<Measured> {
    let mut d = Deployment::new(binary, url, &amqp_url(), cezone_bus::QueueType::Classic)?;
    d.set(
        "CEZONE__LOG__FILTER",
        &std::env::var("CEZONE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
    );
    if let Ok(p) = std::env::var("CEZONE__BUS__PREFETCH") {
        d.set("CEZONE__BUS__PREFETCH", &p);
    }
    d.start_only(&PROCESSES).await?;
    let result = run(&mut d, url, params, plan, prefetch).await;
    if let Ok(keep) = std::env::var("CEZONE_BENCH_KEEP_LOGS") {
        for p in PROCESSES {
            let _ = std::fs::copy(d.log_path(p), format!("{keep}/{p}.log"));
        }
    }
    if result.is_err() {
        for p in PROCESSES {
            eprintln!("--- {p} (last lines of its log)\n{}", d.log_tail(p, 10));
        }
    }
    d.stop_all();
    result
}

const PROCESSES: [&str; 4] = ["registry", "evidence", "surveys", "scoring-a"];

async fn run(
    d: &mut Deployment,
    url: &str,
    params: &DemoParams,
    plan: Plan,
    prefetch: u16,
) -> Result<Measured> {
    let keys = d.keys()?;
    let office = Bearer::minted(
        keys,
        Principal::new("bench", Role::EvaluationOffice, None, None)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let channels = Channels {
        registry: cezone_client::connect(&d.url("registry"), &office).await?,
        evidence: cezone_client::connect(&d.url("evidence"), &office).await?,
        surveys: cezone_client::connect(&d.url("surveys"), &office).await?,
    };
    let (fw, _) = guangdong::framework();
    let district = generate(&fw, params);
    demo::load(&channels, &fw, &district).await?;
    let mut scores =
        ScoringServiceClient::new(cezone_client::connect(&d.url("scoring-a"), &office).await?)
            .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES);
    let pool = sqlx::PgPool::connect(url).await?;
    // Loaded and scored: the outbox empty and the model there.
    let ready = Instant::now() + Duration::from_secs(120);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM surveys_outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await?;
        if pending == 0
            && scores
                .get_scores(ps::GetScoresRequest::default())
                .await
                .is_ok()
        {
            break;
        }
        if Instant::now() > ready {
            bail!("the demo district was not scored within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let communities: Vec<String> = district
        .units
        .iter()
        .filter(|u| u.level == OrgLevel::Community)
        .map(|u| u.id.to_string())
        .collect();
    let period = district.params.period;
    let batches = |count: usize, offset: usize| -> Vec<Vec<psv::StatisticReturn>> {
        (0..count.div_ceil(PER_CALL))
            .map(|b| {
                (0..PER_CALL.min(count - b * PER_CALL))
                    .map(|i| {
                        let k = offset + b * PER_CALL + i;
                        psv::StatisticReturn {
                            // Distinct communities within a call; a community's consecutive
                            // values differ, so each filing moves its score.
                            org_unit: communities[(b * PER_CALL + i) % communities.len()].clone(),
                            metric: "residents_served".into(),
                            period,
                            value: (k % 997) as i64 + 1,
                            filed_by: "bench".into(),
                            ..Default::default()
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let sample = psv::StatisticReturn {
        org_unit: communities[0].clone(),
        metric: "residents_served".into(),
        period,
        value: 1,
        filed_by: "bench".into(),
        version: 1,
        filed_at: cezone_platform::time::now_rfc3339(),
        ..Default::default()
    };
    let event_bytes = cezone_bus::encode(&cezone_bus::envelope(
        "statistic.recorded",
        "surveys",
        &cezone_proto::events::v1::StatisticRecorded {
            statistic: Some(sample),
        },
        None,
    ))
    .len()
        + 32;
    let raw = Raw::connect(&amqp_url(), event_bytes, prefetch).await?;
    let result = async {
        // Warm-up runs, not counted; their rates size the measured runs.
        let mut offset = 0;
        let (warm, _) = drive(&channels, &mut scores, &pool, batches(2_000, offset), None).await?;
        offset += 2_000;
        let warm_raw = raw.run(2_000, None).await?;
        let n =
            crate::pipeline::events_for(warm.per_second, plan.window).next_multiple_of(PER_CALL);
        let n_raw = crate::pipeline::events_for(warm_raw.per_second, plan.window);
        let (mut full, mut raw_full, mut max_backlog) = (Vec::new(), Vec::new(), 0);
        for pair in 0..plan.pairs {
            eprintln!(
                "bench: end to end: run {} of {}: {n} statistics at full speed, then {n_raw} raw \
                 messages …",
                pair + 1,
                plan.pairs
            );
            let (run, backlog) =
                drive(&channels, &mut scores, &pool, batches(n, offset), None).await?;
            offset += n;
            max_backlog = max_backlog.max(backlog);
            full.push(run);
            raw_full.push(raw.run(n_raw, None).await?);
        }
        let mut rates: Vec<f64> = full.iter().map(|r| r.per_second).collect();
        rates.sort_by(f64::total_cmp);
        let rate = crate::report::quantile(&rates, 0.5) / 2.0;
        let m = ((rate * plan.half.as_secs_f64()) as usize).max(PER_CALL * 4);
        eprintln!("bench: end to end: {m} statistics at {rate:.0}/s, then raw …");
        let (half, _) = drive(
            &channels,
            &mut scores,
            &pool,
            batches(m, offset),
            Some(rate),
        )
        .await?;
        let raw_half = raw.run(m, Some(rate)).await?;
        Ok(Measured {
            full,
            raw_full,
            half,
            raw_half,
            max_backlog,
            event_bytes,
            sizes: (n, n_raw),
        })
    }
    .await;
    let _ = raw.close().await;
    result
}

/// Files the batches (paced at `rate` statistics per second when given) and waits until every
/// statistic's event is named by a score update.
async fn drive(
    channels: &Channels,
    scores: &mut ScoringServiceClient<cezone_platform::access::auth::AuthChannel>,
    pool: &sqlx::PgPool,
    batches: Vec<Vec<psv::StatisticReturn>>,
    rate: Option<f64>,
) -> Result<(Run, i64)> {
    let total: usize = batches.iter().map(Vec::len).sum();
    let mut watch = scores
        .watch_scores(ps::WatchScoresRequest::default())
        .await?
        .into_inner();
    // The first message is the current state.
    watch.next().await;
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watching = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(u)) = watch.next().await {
                let at = Instant::now();
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                for id in u.caused_by {
                    seen.entry(id).or_insert(at);
                }
            }
        })
    };
    let backlog = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let sampling = {
        let (pool, backlog) = (pool.clone(), backlog.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(n) = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM surveys_outbox WHERE published_at IS NULL",
                )
                .fetch_one(&pool)
                .await
                {
                    backlog.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Each filed statistic: when its call answered, its key and its version.
    type Key = (String, String, i32);
    type Filed = (Instant, Key, u64);
    let accepted: Arc<Mutex<HashMap<String, Filed>>> = Arc::default();
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(batches.into_iter().enumerate()));
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (queue, accepted) = (queue.clone(), accepted.clone());
        let mut client = cezone_client::surveys::client(channels.surveys.clone());
        callers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((i, batch)) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64((i * PER_CALL) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let r = client
                    .record_statistics(psv::RecordStatisticsRequest {
                        statistics: batch,
                        dry_run: false,
                    })
                    .await?
                    .into_inner();
                let at = Instant::now();
                let mut accepted = accepted.lock().unwrap_or_else(|e| e.into_inner());
                for (id, s) in r.event_ids.into_iter().zip(r.statistics) {
                    accepted.insert(id, (at, (s.org_unit, s.metric, s.period), s.version));
                }
            }
        }));
    }
    for c in callers {
        c.await??;
    }
    // A statistic is visible once the scores show its version or a newer one of its key: a
    // version superseded before it was applied is counted by the one that superseded it.
    let visible = |accepted: &HashMap<String, Filed>, seen: &HashMap<String, Instant>| {
        let mut shown: HashMap<&Key, Vec<(u64, Instant)>> = HashMap::new();
        for (id, at) in seen {
            if let Some((_, key, version)) = accepted.get(id) {
                shown.entry(key).or_default().push((*version, *at));
            }
        }
        accepted
            .iter()
            .map(|(_, (filed, key, version))| {
                let at = shown
                    .get(key)
                    .into_iter()
                    .flatten()
                    .filter(|(v, _)| v >= version)
                    .map(|(_, at)| *at)
                    .min();
                (*filed, at)
            })
            .collect::<Vec<(Instant, Option<Instant>)>>()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let times = loop {
        let times = {
            let accepted = accepted.lock().unwrap_or_else(|e| e.into_inner());
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            visible(&accepted, &seen)
        };
        let done = times.iter().filter(|(_, at)| at.is_some()).count();
        if done == total {
            break times;
        }
        if Instant::now() > deadline {
            bail!("{done} of {total} statistics reached the scores within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    watching.abort();
    sampling.abort();
    let completions: Vec<f64> = times
        .iter()
        .filter_map(|(_, at)| {
            Some(
                at.as_ref()?
                    .saturating_duration_since(started)
                    .as_secs_f64(),
            )
        })
        .collect();
    let latencies: Vec<f64> = times
        .iter()
        .filter_map(|(filed, at)| {
            Some(at.as_ref()?.saturating_duration_since(*filed).as_secs_f64() * 1000.0)
        })
        .collect();
    Ok((
        summarize(&completions, latencies),
        backlog.load(std::sync::atomic::Ordering::Relaxed),
    ))
}
