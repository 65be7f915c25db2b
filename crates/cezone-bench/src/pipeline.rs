//! The event pipeline: statistic events published on RabbitMQ → scoring consumer commits the
//! facts → scorer recomputes the affected cells → scores committed (seen as `scores.changed`
//! naming the event). Beside it, a raw lapin publish-with-confirms + consume loop with messages
//! of the same size on the same broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cezone_bus::{Bus, Envelope};
use cezone_domain::org::OrgLevel;
use cezone_proto::events::v1 as ev;
use cezone_proto::surveys::v1::StatisticReturn;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use prost::Message;
use tokio::sync::Mutex;

use crate::report::quantile;
use crate::stack::Stack;

/// Publishers running at once, for both ours and the baseline.
const PUBLISHERS: usize = 8;
/// Events published and not yet through, at most, for both sides: at full load the queue stays
/// this deep instead of growing with the run's length, so latency at full load is a property
/// of the pipeline, not of how many events a run sends.
const IN_FLIGHT: usize = 1024;
/// Width of the bins the steady window is cut into for the throughput's spread, seconds.
pub const BIN_SECONDS: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct Run {
    pub events: usize,
    /// Steady throughput: between the 10th and 90th percentile of completions.
    pub per_second: f64,
    /// The steady window, seconds.
    pub window_seconds: f64,
    /// Throughput in each bin of the steady window.
    pub bins: Vec<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A run from each event's completion (seconds since the start) and latency (ms).
pub fn summarize(completions: &[f64], mut latencies: Vec<f64>) -> Run {
    latencies.sort_by(f64::total_cmp);
    let (per_second, window_seconds, bins) = crate::sample::steady_rate(completions, BIN_SECONDS);
    Run {
        events: completions.len(),
        per_second,
        window_seconds,
        bins,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
    }
}

/// How many events make a steady window of `window` at `rate` (the window is the middle 80 %
/// of the completions; a fifth more for a rate the warm-up underestimated).
pub fn events_for(rate: f64, window: Duration) -> usize {
    ((rate * window.as_secs_f64() / 0.8 * 1.2) as usize).clamp(2_000, 400_000)
}

/// Statistic events that each change a community's score: residents served well below the
/// target, a different value every time.
fn events(stack: &Stack, n: usize, offset: usize) -> Vec<Envelope> {
    let communities: Vec<&cezone_domain::org::OrgUnit> = stack
        .district
        .units
        .iter()
        .filter(|u| u.level == OrgLevel::Community)
        .collect();
    (0..n)
        .map(|k| {
            let i = offset + k;
            let c = communities[i % communities.len()];
            let statistic = StatisticReturn {
                org_unit: c.id.to_string(),
                metric: "residents_served".into(),
                period: stack.district.params.period,
                value: (i % 997) as i64 + 1,
                filed_by: "bench".into(),
                note: String::new(),
                version: 1_000_000 + i as u64,
                filed_at: String::new(),
                ..Default::default()
            };
            cezone_bus::envelope(
                "statistic.recorded",
                "bench",
                &ev::StatisticRecorded {
                    statistic: Some(statistic),
                },
                None,
            )
        })
        .collect()
}

/// Publishes `envs` (at most `rate` per second when given, at most `IN_FLIGHT` not yet
/// through) and returns the run: each event from its publish to the committed scores that
/// include it. `keys[i]` is the statistic event `i` files (its community): an event whose
/// version was superseded by a newer one of the same key before the scorer applied it is never
/// named by a score change; it is through when a version at least as new of its key is.
async fn drive(
    stack: &Stack,
    envs: Vec<Envelope>,
    keys: Vec<usize>,
    rate: Option<f64>,
) -> Result<Run> {
    let bus: Arc<dyn Bus> = stack.bus.clone();
    let mut observer = bus.subscribe("bench-observer", &["scores.changed"]).await?;
    let n = envs.len();
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; n]));
    // Event id → its index; events are numbered in publishing order, which per key is the
    // order of their versions.
    let index: HashMap<String, usize> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.clone(), i))
        .collect();
    // Per key, its events in order, and how many of them are through.
    let mut of_key: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        of_key.entry(*k).or_default().push(i);
    }
    let mut through: HashMap<usize, usize> = HashMap::new();
    let mut done_at: Vec<Option<Instant>> = vec![None; n];
    let mut done = 0usize;
    let room = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(
        envs.into_iter().enumerate().collect::<Vec<_>>().into_iter(),
    ));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let (bus, sent, queue, room) = (bus.clone(), sent.clone(), queue.clone(), room.clone());
        publishers.push(tokio::spawn(async move {
            loop {
                let Some((i, env)) = queue.lock().await.next() else {
                    return Ok::<_, anyhow::Error>(());
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                room.acquire().await?.forget();
                sent.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(Instant::now());
                bus.publish(&env).await?;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while done < n {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(30), observer.next()).await
        else {
            bail!("scores stopped changing with {done} of {n} events through");
        };
        let at = Instant::now();
        if let Ok(env) = d.envelope()
            && let Ok(p) = ev::ScoresChanged::decode(env.payload.as_slice())
        {
            let before = done;
            for id in p.caused_by {
                let Some(&i) = index.get(&id) else { continue };
                let events = &of_key[&keys[i]];
                // Every event of the key up to this one is through now.
                let upto = events.partition_point(|&j| j <= i);
                let from = through.entry(keys[i]).or_default();
                for &j in &events[*from..upto.max(*from)] {
                    done_at[j] = Some(at);
                    done += 1;
                }
                *from = (*from).max(upto);
            }
            room.add_permits(done - before);
        }
        d.ack().await?;
        if Instant::now() > deadline {
            bail!("the pipeline did not finish in 10 minutes");
        }
    }
    for p in publishers {
        p.await??;
    }
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let completions: Vec<f64> = done_at
        .iter()
        .flatten()
        .map(|t| t.duration_since(started).as_secs_f64())
        .collect();
    let latencies = (0..n)
        .filter_map(|i| Some(done_at[i]?.duration_since(sent[i]?).as_secs_f64() * 1000.0))
        .collect();
    Ok(summarize(&completions, latencies))
}

/// Ours: `n` events from `offset` (their values and versions follow the offset), at full speed
/// or at `rate` per second.
pub async fn ours(stack: &Stack, n: usize, offset: usize, rate: Option<f64>) -> Result<Run> {
    let communities = community_count(stack);
    let keys = (0..n).map(|k| (offset + k) % communities).collect();
    drive(stack, events(stack, n, offset), keys, rate).await
}

fn community_count(stack: &Stack) -> usize {
    stack
        .district
        .units
        .iter()
        .filter(|u| u.level == OrgLevel::Community)
        .count()
}

/// Raw lapin: publish with confirms (persistent, mandatory) and consume with acks and the same
/// prefetch as the services, messages of `size` bytes, on a queue of its own.
#[derive(Debug)]
pub struct Raw {
    conn: Arc<Connection>,
    queue: String,
    size: usize,
    prefetch: u16,
}

impl Raw {
    pub async fn connect(amqp_url: &str, size: usize, prefetch: u16) -> Result<Raw> {
        let conn = Arc::new(
            Connection::connect(
                amqp_url,
                ConnectionProperties::default().with_connection_name("cezone-bench-raw".into()),
            )
            .await?,
        );
        Ok(Raw {
            conn,
            queue: format!("bench-raw-{}", uuid::Uuid::new_v4().simple()),
            size,
            prefetch,
        })
    }

    /// `n` messages at full speed or at `rate` per second.
    pub async fn run(&self, n: usize, rate: Option<f64>) -> Result<Run> {
        raw_run(&self.conn, &self.queue, n, self.size, rate, self.prefetch).await
    }

    /// Deletes the queue and closes the connection.
    pub async fn close(self) -> Result<()> {
        let ch = self.conn.create_channel().await?;
        ch.queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        let _ = self.conn.close(200, "done".into()).await;
        Ok(())
    }
}

async fn raw_run(
    conn: &Arc<Connection>,
    queue: &str,
    n: usize,
    size: usize,
    rate: Option<f64>,
    prefetch: u16,
) -> Result<Run> {
    let consumer_ch = conn.create_channel().await?;
    consumer_ch
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    consumer_ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut consumer = consumer_ch
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let room = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let (sent, next, queue, room) =
            (sent.clone(), next.clone(), queue.to_string(), room.clone());
        publishers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                if let Some(rate) = rate {
                    tokio::time::sleep_until(
                        (started + Duration::from_secs_f64(i as f64 / rate)).into(),
                    )
                    .await;
                }
                room.acquire().await?.forget();
                let mut body = vec![0u8; size.max(8)];
                body[..8].copy_from_slice(&(i as u64).to_le_bytes());
                sent.lock().await[i] = Some(Instant::now());
                let confirm = ch
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        &body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?
                    .await?;
                if !confirm.is_ack() {
                    bail!("a raw publish was not acked");
                }
            }
        }));
    }
    let mut received = vec![None; n];
    let mut count = 0;
    while count < n {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await
        else {
            bail!("raw consumer stalled at {count} of {n}");
        };
        let d = d?;
        let at = Instant::now();
        let i = u64::from_le_bytes(d.data[..8].try_into()?) as usize;
        if i < n && received[i].is_none() {
            received[i] = Some(at);
            count += 1;
            room.add_permits(1);
        }
        d.ack(BasicAckOptions::default()).await?;
    }
    for p in publishers {
        p.await??;
    }
    let completions: Vec<f64> = received
        .iter()
        .flatten()
        .map(|t| t.duration_since(started).as_secs_f64())
        .collect();
    let sent = sent.lock().await;
    let latencies = (0..n)
        .filter_map(|i| Some(received[i]?.duration_since(sent[i]?).as_secs_f64() * 1000.0))
        .collect();
    consumer_ch.close(200, "done".into()).await?;
    Ok(summarize(&completions, latencies))
}

/// The encoded size of one of our events, for the baseline's messages.
pub fn event_size(stack: &Stack) -> usize {
    events(stack, 1, 0)
        .first()
        .map_or(256, |e| cezone_bus::encode(e).len())
}
