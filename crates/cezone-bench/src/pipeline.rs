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

#[derive(Debug, Clone)]
pub struct Run {
    pub events: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn summarize(events: usize, elapsed: Duration, mut latencies: Vec<f64>) -> Run {
    latencies.sort_by(f64::total_cmp);
    Run {
        events,
        per_second: events as f64 / elapsed.as_secs_f64(),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
    }
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

/// Publishes `envs` (at most `rate` per second when given) and returns, for each event, the
/// milliseconds from its publish to the committed scores that include it, and the wall time.
async fn drive(
    stack: &Stack,
    envs: Vec<Envelope>,
    rate: Option<f64>,
) -> Result<(Vec<f64>, Duration)> {
    let bus: Arc<dyn Bus> = stack.bus.clone();
    let mut observer = bus.subscribe("bench-observer", &["scores.changed"]).await?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let ids: Vec<String> = envs.iter().map(|e| e.event_id.clone()).collect();
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(
        envs.into_iter().enumerate().collect::<Vec<_>>().into_iter(),
    ));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let (bus, sent, queue) = (bus.clone(), sent.clone(), queue.clone());
        publishers.push(tokio::spawn(async move {
            loop {
                let Some((i, env)) = queue.lock().await.next() else {
                    return Ok::<_, anyhow::Error>(());
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                sent.lock()
                    .await
                    .insert(env.event_id.clone(), Instant::now());
                bus.publish(&env).await?;
            }
        }));
    }
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < ids.len() {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(30), observer.next()).await
        else {
            bail!(
                "scores stopped changing with {} of {} events seen",
                seen.len(),
                ids.len()
            );
        };
        let at = Instant::now();
        if let Ok(env) = d.envelope()
            && let Ok(p) = ev::ScoresChanged::decode(env.payload.as_slice())
        {
            for id in p.caused_by {
                seen.entry(id).or_insert(at);
            }
        }
        d.ack().await?;
        if Instant::now() > deadline {
            bail!("the pipeline did not finish in 10 minutes");
        }
    }
    for p in publishers {
        p.await??;
    }
    let elapsed = ids
        .iter()
        .filter_map(|id| seen.get(id))
        .max()
        .map_or(Duration::ZERO, |t| t.duration_since(started));
    let sent = sent.lock().await;
    let latencies = ids
        .iter()
        .filter_map(|id| Some(seen.get(id)?.duration_since(*sent.get(id)?).as_secs_f64() * 1000.0))
        .collect();
    Ok((latencies, elapsed))
}

/// Ours at full speed and at half that rate.
pub async fn ours(stack: &Stack, n: usize) -> Result<(Run, Run)> {
    let (lat, elapsed) = drive(stack, events(stack, n, 0), None).await?;
    let full = summarize(n, elapsed, lat);
    let rate = full.per_second / 2.0;
    let m = ((rate * 5.0) as usize).clamp(50, n);
    let (lat, elapsed) = drive(stack, events(stack, m, n), Some(rate)).await?;
    Ok((full, summarize(m, elapsed, lat)))
}

/// Raw lapin: publish with confirms (persistent, mandatory) and consume with acks and the same
/// prefetch as the services, messages of `size` bytes, at full speed and at `half_rate` per
/// second.
pub async fn baseline(
    amqp_url: &str,
    n: usize,
    size: usize,
    half_rate: f64,
    prefetch: u16,
) -> Result<(Run, Run)> {
    let conn = Arc::new(
        Connection::connect(
            amqp_url,
            ConnectionProperties::default().with_connection_name("cezone-bench-raw".into()),
        )
        .await?,
    );
    let queue = format!("bench-raw-{}", uuid::Uuid::new_v4().simple());
    let full = raw_run(&conn, &queue, n, size, None, prefetch).await?;
    let m = ((half_rate * 5.0) as usize).clamp(50, n);
    let half = raw_run(&conn, &queue, m, size, Some(half_rate), prefetch).await?;
    let ch = conn.create_channel().await?;
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    Ok((full, half))
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
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let (sent, next, queue) = (sent.clone(), next.clone(), queue.to_string());
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
        }
        d.ack(BasicAckOptions::default()).await?;
    }
    for p in publishers {
        p.await??;
    }
    let elapsed = received
        .iter()
        .flatten()
        .max()
        .map_or(Duration::ZERO, |t| t.duration_since(started));
    let sent = sent.lock().await;
    let latencies = (0..n)
        .filter_map(|i| Some(received[i]?.duration_since(sent[i]?).as_secs_f64() * 1000.0))
        .collect();
    consumer_ch.close(200, "done".into()).await?;
    Ok(summarize(n, elapsed, latencies))
}

/// The encoded size of one of our events, for the baseline's messages.
pub fn event_size(stack: &Stack) -> usize {
    events(stack, 1, 0)
        .first()
        .map_or(256, |e| cezone_bus::encode(e).len())
}
