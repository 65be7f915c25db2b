//! Subscriptions on RabbitMQ: a supervisor task per subscription owns a channel and its
//! consumer, forwards deliveries to the [`Subscription`], and when the channel dies (broker
//! restart, connection loss, consumer cancelled because the queue was deleted) opens a new one,
//! re-declares the topology and consumes again. Unacked deliveries of the dead channel are
//! redelivered by the broker with `redelivered = true`.
//!
//! A consumer the broker cancels leaves its channel open, holding every delivery it was sent
//! and not yet settled: the broker gives those to nobody else until that channel closes. So a
//! lost session's channel is closed (bounded in time) before the next one opens, and every
//! step of opening a session is bounded too: a declaration the broker never answers would
//! otherwise stop the subscription for good.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Shared, retry};
use crate::backoff::Backoff;
use crate::delivery::Settler;
use crate::names::check_key;
use crate::{BusError, Delivery, QueueType, Subscription};

/// A session that lasted this long was healthy: the reconnect backoff starts over.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);
/// Opening a session (channel, declarations, consume) that takes longer is abandoned: the
/// connection is dropped and the next attempt starts on a new one.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long closing a lost session's channel may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a subscription declares and consumes.
struct Spec {
    consumer: String,
    queue: String,
    dead_queue: String,
    patterns: Vec<String>,
    prefetch: u16,
}

pub(super) async fn subscribe(
    shared: Arc<Shared>,
    consumer: &str,
    patterns: &[&str],
) -> Result<Subscription, BusError> {
    crate::names::check_consumer(consumer)?;
    for pattern in patterns {
        check_key("pattern", pattern)?;
    }
    let prefix = &shared.config.prefix;
    let spec = Arc::new(Spec {
        consumer: consumer.to_string(),
        queue: crate::queue_name(prefix, consumer),
        dead_queue: crate::dead_queue_name(prefix, consumer),
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        prefetch: shared.config.prefetch,
    });
    // The first session is opened here, so a declaration the broker refuses (e.g. a queue
    // that exists with other arguments) is the caller's error rather than a log line.
    let session =
        retry::retry("subscribe", &shared.closed, || open_bounded(&shared, &spec)).await?;
    tracing::info!(consumer, queue = %spec.queue, patterns = ?spec.patterns, prefetch = spec.prefetch, "subscribed");
    // Deliveries in flight never exceed the prefetch (plus stale ones from a lost channel).
    let capacity = usize::from(spec.prefetch.max(1)).min(1024);
    let (tx, rx) = mpsc::channel(capacity);
    let stop = CancellationToken::new();
    tokio::spawn(supervise(shared, spec, session, tx, stop.clone()));
    Ok(Subscription::amqp(rx, stop.drop_guard()))
}

/// [`open`], abandoned after [`OPEN_TIMEOUT`]: the connection it was using is dropped (a broker
/// that does not answer on it will not answer later either), so the next attempt reconnects.
async fn open_bounded(shared: &Shared, spec: &Spec) -> Result<(Channel, Consumer), BusError> {
    let conn = shared.connector.connection().await?;
    match tokio::time::timeout(OPEN_TIMEOUT, open(&conn, shared, spec)).await {
        Ok(opened) => opened,
        Err(_) => {
            shared.connector.discard(&conn).await;
            Err(BusError::Unavailable(format!(
                "the broker did not open the subscription of {} within {OPEN_TIMEOUT:?}",
                spec.consumer
            )))
        }
    }
}

/// Declares the consumer's topology on a new channel of `conn` and starts consuming.
async fn open(
    conn: &lapin::Connection,
    shared: &Shared,
    spec: &Spec,
) -> Result<(Channel, Consumer), BusError> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(spec.prefetch, BasicQosOptions::default())
        .await?;
    shared.declare_exchanges(&channel).await?;
    // Messages the broker dead-letters by itself (reject without requeue, expiry) go to the
    // same dead-letter queue as the ones `Delivery::dead_letter` republishes.
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(shared.dead_exchange.as_str().into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(spec.consumer.as_str().into()),
    );
    let mut dead_arguments = FieldTable::default();
    if shared.config.queue_type == QueueType::Quorum {
        for args in [&mut arguments, &mut dead_arguments] {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        // A message the broker dead-letters by itself (delivery limit) is held until the
        // dead-letter queue confirms it, and a full queue refuses publishes (the publisher
        // sees a nack and retries) rather than dropping or dead-lettering its head.
        arguments.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(i32::try_from(shared.config.delivery_limit).unwrap_or(i32::MAX)),
        );
    }
    channel
        .queue_declare(
            spec.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await?;
    channel
        .queue_declare(
            spec.dead_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            dead_arguments,
        )
        .await?;
    channel
        .queue_bind(
            spec.dead_queue.as_str().into(),
            shared.dead_exchange.as_str().into(),
            spec.consumer.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for pattern in &spec.patterns {
        channel
            .queue_bind(
                spec.queue.as_str().into(),
                shared.exchange.as_str().into(),
                pattern.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let consumer = channel
        .basic_consume(
            spec.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}

/// Why a session ended.
enum Ended {
    /// The subscription was dropped or the bus closed: stop for good.
    Stopped,
    /// The channel or connection died: open a new session.
    Lost(String),
}

async fn supervise(
    shared: Arc<Shared>,
    spec: Arc<Spec>,
    first: (Channel, Consumer),
    tx: mpsc::Sender<Delivery>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut session = Some(first);
    loop {
        let (channel, consumer) = match session.take() {
            Some(session) => session,
            None => {
                let delay = backoff.next_delay();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return,
                    _ = shared.closed.cancelled() => return,
                }
                let opened = tokio::select! {
                    opened = open_bounded(&shared, &spec) => opened,
                    _ = stop.cancelled() => return,
                    _ = shared.closed.cancelled() => return,
                };
                match opened {
                    Ok(session) => {
                        tracing::info!(consumer = %spec.consumer, queue = %spec.queue, "subscription resumed");
                        session
                    }
                    Err(e) => {
                        tracing::warn!(consumer = %spec.consumer, error = %e, "re-subscribing failed; retrying");
                        continue;
                    }
                }
            }
        };
        let started = Instant::now();
        match pump(&shared, &spec, &channel, consumer, &tx, &stop).await {
            Ended::Stopped => {
                if channel.status().connected() {
                    let closing = channel.close(200, "subscription ended".into());
                    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
                }
                tracing::debug!(consumer = %spec.consumer, "subscription stopped");
                return;
            }
            Ended::Lost(reason) => {
                tracing::warn!(consumer = %spec.consumer, reason, "subscription lost its channel; re-subscribing");
                // A cancelled consumer's channel is still open and still holds what it was
                // sent: closing it gives those deliveries back to the queue. (Deliveries of it
                // being handled now can no longer be acked; they come again, and consumers drop
                // duplicates by event id.)
                if channel.status().connected() {
                    let closing = channel.close(200, "consumer cancelled; re-subscribing".into());
                    match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
                        Ok(Ok(())) => {}
                        // Closed meanwhile (with the connection, or by the broker): released.
                        Ok(Err(e)) => {
                            tracing::debug!(consumer = %spec.consumer, error = %e, "the lost session's channel was already closed");
                        }
                        Err(_) => {
                            tracing::warn!(consumer = %spec.consumer, "closing the lost session's channel timed out; dropping the connection");
                            shared.connector.discard_current().await;
                        }
                    }
                }
                if started.elapsed() >= HEALTHY_SESSION {
                    backoff.reset();
                }
            }
        }
    }
}

/// Forwards deliveries until the consumer ends or the subscription stops.
async fn pump(
    shared: &Arc<Shared>,
    spec: &Spec,
    channel: &Channel,
    mut consumer: Consumer,
    tx: &mpsc::Sender<Delivery>,
    stop: &CancellationToken,
) -> Ended {
    loop {
        let next = tokio::select! {
            next = consumer.next() => next,
            _ = stop.cancelled() => return Ended::Stopped,
            _ = shared.closed.cancelled() => return Ended::Stopped,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            None => {
                let state = if channel.status().connected() {
                    "consumer cancelled"
                } else {
                    "channel closed"
                };
                return Ended::Lost(state.to_string());
            }
        };
        let delivery = Delivery::new(
            delivery.data,
            delivery.redelivered,
            delivery.routing_key.to_string(),
            Settler::Amqp(super::AmqpSettler::new(
                delivery.acker,
                delivery.properties,
                shared.clone(),
                spec.consumer.clone(),
            )),
            shared.config.event_key.clone(),
        );
        tokio::select! {
            sent = tx.send(delivery) => if sent.is_err() { return Ended::Stopped },
            _ = stop.cancelled() => return Ended::Stopped,
        }
    }
}
