//! The faults, injected for real: signals to processes, `Recompute` mid-burst, a consumer
//! commit held past every timeout by a trigger in the deployment's database, the broker's
//! connections closed, the broker stopped and started, and messages published straight to the
//! exchange (duplicated, forged, undecodable, signed but invalid).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cezone_bus::{AmqpBus, Bus, BusConfig, Envelope, EventKey, QueueType};
use cezone_proto::events::v1 as ev;
use cezone_proto::scoring::v1 as ps;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use prost::Message;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sqlx::PgPool;

use crate::deployment::Deployment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// kill -9 of a scoring replica mid-burst, then a restart.
    KillScoring,
    /// SIGSTOP of a scoring replica for 12 s, then SIGCONT.
    PauseScoring,
    /// SIGTERM of a producer (surveys or evidence), then a restart.
    TermProducer,
    /// `Recompute` on a replica during the burst.
    Recompute,
    /// One consumer transaction's commit held for 12 s (a trigger in the database).
    DelayedCommit,
    /// Every connection to the broker closed.
    CloseConnections,
    /// The broker stopped for 2 s and started again.
    BrokerRestart,
    /// Duplicated, forged and undecodable messages published straight to the exchange.
    Poison,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::KillScoring,
        Fault::PauseScoring,
        Fault::TermProducer,
        Fault::Recompute,
        Fault::DelayedCommit,
        Fault::CloseConnections,
        Fault::BrokerRestart,
        Fault::Poison,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillScoring => "kill_scoring",
            Fault::PauseScoring => "pause_scoring",
            Fault::TermProducer => "term_producer",
            Fault::Recompute => "recompute",
            Fault::DelayedCommit => "delayed_commit",
            Fault::CloseConnections => "close_connections",
            Fault::BrokerRestart => "broker_restart",
            Fault::Poison => "poison",
        }
    }
}

/// The faults of round `round` (1-based) and when each starts within the burst: three kinds a
/// round in rotation, so any three consecutive rounds inject every kind, at seeded moments.
pub fn schedule(rng: &mut ChaCha8Rng, round: u32, burst: Duration) -> Vec<(Fault, Duration)> {
    let start = (round as usize - 1) * 3;
    (0..3)
        .map(|i| {
            let fault = Fault::ALL[(start + i) % Fault::ALL.len()];
            let at = burst.mul_f64(rng.random_range(0.1..0.7));
            (fault, at)
        })
        .collect()
}

/// The delay trigger: the consumer transaction whose change records are written when
/// `chaos_control.target` comes up sleeps before inserting them, holding its commit back.
pub async fn install_delay(pool: &PgPool) -> Result<()> {
    for sql in [
        "CREATE TABLE IF NOT EXISTS chaos_control (id INT PRIMARY KEY, target BIGINT NOT NULL, delay_ms INT NOT NULL)",
        "INSERT INTO chaos_control VALUES (1, -1, 0) ON CONFLICT DO NOTHING",
        "CREATE SEQUENCE IF NOT EXISTS chaos_tick",
        "CREATE OR REPLACE FUNCTION chaos_delay() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE t BIGINT; d INT; \
         BEGIN \
           SELECT target, delay_ms INTO t, d FROM chaos_control WHERE id = 1; \
           IF nextval('chaos_tick') = t THEN PERFORM pg_sleep(d / 1000.0); END IF; \
           RETURN NULL; \
         END $$",
        "DROP TRIGGER IF EXISTS chaos_delay ON scoring_changes",
        "CREATE TRIGGER chaos_delay BEFORE INSERT ON scoring_changes FOR EACH STATEMENT EXECUTE FUNCTION chaos_delay()",
    ] {
        sqlx::query(sql)
            .execute(pool)
            .await
            .with_context(|| sql.to_string())?;
    }
    Ok(())
}

/// What poison was sent (and must be, exactly, in the dead-letter queue).
#[derive(Debug, Default)]
pub struct Poison {
    /// Messages the consumer must dead-letter.
    pub dead: u64,
    /// The event ids of those that are envelopes, from the moment each is published (one
    /// whose confirmation was lost may still arrive).
    pub ids: std::collections::HashSet<String>,
    /// Messages published that are no envelope at all (the same way).
    pub garbage: u64,
    /// Real events published again (the consumer must drop them as duplicates).
    pub duplicates: u64,
}

/// Everything a fault needs.
#[allow(missing_debug_implementations)]
pub struct Injector<'a> {
    pub deployment: &'a tokio::sync::Mutex<Deployment>,
    pub pool: &'a PgPool,
    pub office: &'a cezone_platform::access::auth::Bearer,
    pub keyed: &'a Arc<AmqpBus>,
    pub queue_type: QueueType,
    /// Real statistic events seen on the tap, for duplicates and forgeries.
    pub captured: &'a tokio::sync::Mutex<Vec<Envelope>>,
    pub poison: &'a tokio::sync::Mutex<Poison>,
}

impl Injector<'_> {
    pub async fn inject(&self, fault: Fault, rng: &mut ChaCha8Rng) -> Result<()> {
        match fault {
            Fault::KillScoring => {
                let replica = if rng.random_bool(0.5) {
                    "scoring-a"
                } else {
                    "scoring-b"
                };
                self.restart(replica, "KILL", Duration::from_millis(800))
                    .await
            }
            Fault::PauseScoring => {
                let replica = if rng.random_bool(0.5) {
                    "scoring-a"
                } else {
                    "scoring-b"
                };
                self.deployment.lock().await.signal(replica, "STOP")?;
                tokio::time::sleep(Duration::from_secs(12)).await;
                self.deployment.lock().await.signal(replica, "CONT")
            }
            Fault::TermProducer => {
                let producer = if rng.random_bool(0.5) {
                    "surveys"
                } else {
                    "evidence"
                };
                self.restart(producer, "TERM", Duration::from_millis(300))
                    .await
            }
            Fault::Recompute => {
                let replica = if rng.random_bool(0.5) {
                    "scoring-a"
                } else {
                    "scoring-b"
                };
                let url = self.deployment.lock().await.url(replica);
                let mut client =
                    cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient::new(
                        cezone_client::connect(&url, self.office).await?,
                    )
                    .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES);
                client
                    .recompute(ps::RecomputeRequest::default())
                    .await
                    .with_context(|| format!("Recompute on {replica}"))?;
                Ok(())
            }
            Fault::DelayedCommit => {
                sqlx::query(
                    "UPDATE chaos_control SET delay_ms = 12000, target = \
                     (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM chaos_tick) \
                     WHERE id = 1",
                )
                .execute(self.pool)
                .await?;
                Ok(())
            }
            Fault::CloseConnections => rabbitmqctl(&["close_all_connections", "chaos"]).await,
            Fault::BrokerRestart => {
                rabbitmqctl(&["stop_app"]).await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                rabbitmqctl(&["start_app"]).await?;
                wait_for_broker().await
            }
            Fault::Poison => self.poison(rng).await,
        }
    }

    /// Signals a process, waits for it to exit, and starts it again after `down`.
    async fn restart(&self, process: &'static str, signal: &str, down: Duration) -> Result<()> {
        {
            let mut d = self.deployment.lock().await;
            d.signal(process, signal)?;
            d.reap(process, Duration::from_secs(20)).await?;
        }
        tokio::time::sleep(down).await;
        let mut d = self.deployment.lock().await;
        d.start(process)?;
        d.wait_healthy(process, Duration::from_secs(60)).await
    }

    async fn poison(&self, rng: &mut ChaCha8Rng) -> Result<()> {
        let captured: Vec<Envelope> = self.captured.lock().await.clone();
        let Some(real) = captured.last().cloned() else {
            bail!("no real statistic event was captured to forge from");
        };
        let (amqp_url, prefix) = {
            let d = self.deployment.lock().await;
            (d.amqp_url.clone(), d.prefix.clone())
        };
        let mut poison = self.poison.lock().await;
        // The same real events again, signed: duplicates, dropped by event id.
        for e in captured.iter().rev().take(2) {
            self.keyed.publish(e).await?;
            poison.duplicates += 1;
        }
        // A higher version of a real statistic, unsigned and signed with another key.
        let mut payload = ev::StatisticRecorded::decode(real.payload.as_slice())?;
        if let Some(s) = payload.statistic.as_mut() {
            s.version = 1_000_000_000 + rng.random_range(0..1000u64);
        }
        let forged = cezone_bus::envelope("statistic.recorded", "surveys", &payload, None);
        let outsider = AmqpBus::connect(&BusConfig {
            amqp_url: amqp_url.clone(),
            prefix: prefix.clone(),
            connection_name: "chaos-outsider".into(),
            prefetch: 1,
            queue_type: self.queue_type,
            delivery_limit: cezone_bus::DEFAULT_DELIVERY_LIMIT,
            event_key: None,
        })
        .await?;
        // Each is known before it is published and counted once confirmed: a fault cut short
        // (the broker restarting under it) still accounts for what it sent.
        poison.ids.insert(forged.event_id.clone());
        outsider.publish(&forged).await?;
        poison.dead += 1;
        let mut wrong = forged.clone();
        wrong.event_id = uuid::Uuid::now_v7().to_string();
        let other_key = EventKey::derive(b"a key that is not the deployment's, 32+ bytes");
        poison.ids.insert(wrong.event_id.clone());
        // Published raw so the outsider's bus does not re-sign it.
        publish_raw(
            &amqp_url,
            &prefix,
            "statistic.recorded",
            &cezone_bus::encode(&other_key.sign(&wrong)),
        )
        .await?;
        poison.dead += 1;
        outsider.close().await;
        // Bytes that are no envelope at all.
        poison.garbage += 1;
        publish_raw(
            &amqp_url,
            &prefix,
            "statistic.recorded",
            b"\xff\xfe not an envelope",
        )
        .await?;
        poison.dead += 1;
        // Signed, but a value the surveys service refuses.
        let mut bad = ev::StatisticRecorded::decode(real.payload.as_slice())?;
        if let Some(s) = bad.statistic.as_mut() {
            s.value = -1;
        }
        let refused = cezone_bus::envelope("statistic.recorded", "surveys", &bad, None);
        poison.ids.insert(refused.event_id.clone());
        self.keyed.publish(&refused).await?;
        poison.dead += 1;
        Ok(())
    }
}

/// Publishes bytes to the deployment's events exchange, bypassing every check of the bus.
async fn publish_raw(amqp_url: &str, prefix: &str, routing_key: &str, body: &[u8]) -> Result<()> {
    let conn = Connection::connect(
        amqp_url,
        ConnectionProperties::default().with_connection_name("chaos-raw".into()),
    )
    .await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(Default::default()).await?;
    ch.basic_publish(
        cezone_bus::exchange_name(prefix).as_str().into(),
        routing_key.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default().with_delivery_mode(2),
    )
    .await?
    .await?;
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

pub async fn rabbitmqctl(args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .context("running rabbitmqctl")?;
    if !out.status.success() {
        bail!(
            "rabbitmqctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub async fn wait_for_broker() -> Result<()> {
    for _ in 0..240 {
        if tokio::net::TcpStream::connect("127.0.0.1:5672")
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("RabbitMQ did not come back within 60 s")
}
