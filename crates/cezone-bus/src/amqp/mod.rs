//! The RabbitMQ transport (lapin 4).
//!
//! One named connection per bus (one bus per process), carrying a publisher channel in confirm
//! mode and one channel per subscription. When the connection dies (broker restart, network)
//! each user rebuilds its channel on a new connection; see [`connector`] for why this is ours
//! rather than lapin's auto-recovery.
//!
//! Publishing: mandatory, persistent (delivery mode 2), awaited until the broker confirms.
//! A publish whose confirmation is lost with the connection is published again on the next
//! connection, so a consumer can see an event twice (it drops duplicates by event id) but an
//! event for which `publish` returned `Ok` is stored in every bound queue.

mod connector;
mod retry;
mod settler;
mod subscriber;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cezone_proto::events::v1::Envelope;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

pub(crate) use settler::AmqpSettler;

use crate::names::check_name;
use crate::{
    Bus, BusConfig, BusError, DeadLetter, ORIGINAL_ROUTING_KEY_HEADER, REASON_HEADER, Subscription,
};
use connector::Connector;

/// One attempt (publish + confirmation) that takes longer than this is abandoned and retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening the publisher channel (confirm mode, exchange declarations) that takes longer is
/// abandoned and the connection dropped.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `close` waits for publishes still awaiting their confirmation.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The event bus on RabbitMQ.
pub struct AmqpBus {
    shared: Arc<Shared>,
}

/// What the bus, its subscriptions and their deliveries share.
pub(crate) struct Shared {
    config: BusConfig,
    exchange: String,
    dead_exchange: String,
    connector: Connector,
    /// The publisher channel (confirm mode), rebuilt when found closed.
    publisher: Mutex<Option<Channel>>,
    /// Every publish holds a read guard until it is confirmed; `close` takes the write guard.
    in_flight: RwLock<()>,
    closed: CancellationToken,
}

impl AmqpBus {
    /// Connects, opens the publisher channel and declares the exchanges. Retries for up to 30 s
    /// while the broker is unreachable (services may start before it).
    pub async fn connect(config: &BusConfig) -> Result<Self, BusError> {
        check_name("prefix", &config.prefix)?;
        let closed = CancellationToken::new();
        let connector = Connector::new(&config.amqp_url, &config.connection_name, closed.clone())?;
        let shared = Arc::new(Shared {
            exchange: crate::exchange_name(&config.prefix),
            dead_exchange: crate::dead_exchange_name(&config.prefix),
            config: config.clone(),
            connector,
            publisher: Mutex::new(None),
            in_flight: RwLock::new(()),
            closed,
        });
        retry::retry("connect", &shared.closed, || shared.publisher_channel()).await?;
        tracing::info!(
            endpoint = %shared.connector.endpoint(),
            exchange = %shared.exchange,
            "event bus ready"
        );
        Ok(AmqpBus { shared })
    }

    /// Takes the oldest message of `consumer`'s dead-letter queue (for tests and operators).
    pub async fn take_dead_letter(&self, consumer: &str) -> Result<Option<DeadLetter>, BusError> {
        check_name("consumer", consumer)?;
        let queue = crate::dead_queue_name(&self.shared.config.prefix, consumer);
        let conn = self.shared.connector.connection().await?;
        let channel = conn.create_channel().await?;
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await;
        let _ = channel.close(200, "done".into()).await;
        let Some(message) = got? else {
            return Ok(None);
        };
        let delivery = message.delivery;
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let reason = header_string(&headers, REASON_HEADER)
            .or_else(|| x_death_reason(&headers))
            .unwrap_or_else(|| "unknown".to_string());
        let routing_key = header_string(&headers, ORIGINAL_ROUTING_KEY_HEADER)
            .unwrap_or_else(|| delivery.routing_key.to_string());
        Ok(Some(DeadLetter {
            body: delivery.data,
            reason,
            routing_key,
        }))
    }

    /// Deletes the consumers' queues (and dead-letter queues) and the two exchanges, messages
    /// included. For tests and decommissioning; running services re-declare what they use.
    pub async fn delete_topology(&self, consumers: &[&str]) -> Result<(), BusError> {
        let prefix = &self.shared.config.prefix;
        let mut queues = Vec::new();
        for consumer in consumers {
            queues.push(crate::queue_name(prefix, consumer));
            queues.push(crate::dead_queue_name(prefix, consumer));
        }
        let conn = self.shared.connector.connection().await?;
        let channel = conn.create_channel().await?;
        for queue in queues {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in [&self.shared.exchange, &self.shared.dead_exchange] {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        crate::envelope::check_publishable(envelope)?;
        let properties = envelope_properties(envelope)?;
        let body = self.shared.body(envelope);
        let exchange = self.shared.exchange.clone();
        self.shared
            .publish_confirmed(&exchange, &envelope.r#type, &body, properties)
            .await?;
        tracing::debug!(event_id = %envelope.event_id, routing_key = %envelope.r#type, "event published");
        Ok(())
    }

    async fn publish_many(&self, envelopes: &[Envelope]) -> Vec<Result<(), BusError>> {
        self.shared.publish_window(envelopes).await
    }

    async fn subscribe(&self, consumer: &str, patterns: &[&str]) -> Result<Subscription, BusError> {
        subscriber::subscribe(self.shared.clone(), consumer, patterns).await
    }

    async fn close(&self) {
        let shared = &self.shared;
        shared.closed.cancel();
        if tokio::time::timeout(CLOSE_TIMEOUT, shared.in_flight.write())
            .await
            .is_err()
        {
            tracing::warn!("closing the bus with publishes still unconfirmed");
        }
        if let Some(channel) = shared.publisher.lock().await.take()
            && channel.status().connected()
        {
            let _ = channel.close(200, "closing".into()).await;
        }
        shared.connector.close().await;
    }
}

impl fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpBus")
            .field("endpoint", &self.shared.connector.endpoint())
            .field("exchange", &self.shared.exchange)
            .field("connection_name", &self.shared.config.connection_name)
            .field("closed", &self.shared.closed.is_cancelled())
            .finish()
    }
}

impl Shared {
    /// Publishes to `exchange` and waits for the broker's confirmation, retrying transient
    /// failures on a fresh channel (and connection) until the deadline.
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let _in_flight = self.in_flight.read().await;
        let properties = &properties;
        retry::retry("publish", &self.closed, || async move {
            match tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                self.publish_once(exchange, routing_key, body, properties.clone()),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(BusError::Unavailable(format!(
                    "no confirmation within {ATTEMPT_TIMEOUT:?}"
                ))),
            }
        })
        .await
    }

    /// Publishes every envelope on the publisher channel, then awaits their confirmations: the
    /// broker confirms a window of messages in about the time it takes to confirm one. One
    /// attempt; a failure is reported for the envelopes it hit and the rest still count.
    async fn publish_window(&self, envelopes: &[Envelope]) -> Vec<Result<(), BusError>> {
        let _in_flight = self.in_flight.read().await;
        let mut results: Vec<Option<Result<(), BusError>>> =
            envelopes.iter().map(|_| None).collect();
        let channel = match self.publisher_channel().await {
            Ok(channel) => channel,
            Err(e) => {
                let reason = e.to_string();
                return envelopes
                    .iter()
                    .map(|_| Err(BusError::Unavailable(reason.clone())))
                    .collect();
            }
        };
        let mut confirms = Vec::with_capacity(envelopes.len());
        let mut broken: Option<String> = None;
        for (i, envelope) in envelopes.iter().enumerate() {
            if let Some(reason) = &broken {
                results[i] = Some(Err(BusError::Unavailable(reason.clone())));
                continue;
            }
            let prepared = crate::envelope::check_publishable(envelope)
                .and_then(|()| envelope_properties(envelope))
                .and_then(|p| Ok((p, short("routing key", &envelope.r#type)?)));
            let (properties, routing_key) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let body = self.body(envelope);
            match channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &body,
                    properties,
                )
                .await
            {
                Ok(confirm) => confirms.push((i, confirm)),
                Err(e) => {
                    broken = Some(e.to_string());
                    results[i] = Some(Err(e.into()));
                }
            }
        }
        for (i, confirm) in confirms {
            let routing_key = envelopes[i].r#type.as_str();
            let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, confirm).await {
                Err(_) => Err(BusError::Unavailable(format!(
                    "no confirmation within {ATTEMPT_TIMEOUT:?}"
                ))),
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(c)) => confirmation_of(&self.exchange, routing_key, c),
            };
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(BusError::Unavailable("not published".into()))))
            .collect()
    }

    /// The wire form of an envelope, signed when the bus has the deployment's event key.
    fn body(&self, envelope: &Envelope) -> Vec<u8> {
        match &self.config.event_key {
            Some(key) => crate::encode(&key.sign(envelope)),
            None => crate::encode(envelope),
        }
    }

    async fn publish_once(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let channel = self.publisher_channel().await?;
        let confirmation = channel
            .basic_publish(
                exchange.into(),
                short("routing key", routing_key)?,
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                properties,
            )
            .await?
            .await?;
        confirmation_of(exchange, routing_key, confirmation)
    }

    /// The publisher channel, reopened (confirm mode, exchanges declared) if it was closed.
    async fn publisher_channel(&self) -> Result<Channel, BusError> {
        let mut slot = self.publisher.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *slot = None;
        let conn = self.connector.connection().await?;
        // Bounded: the publisher mutex is held here, and a broker that never answers would
        // otherwise stop every publish of the process.
        let opening = async {
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            self.declare_exchanges(&channel).await?;
            Ok::<_, BusError>(channel)
        };
        let channel = match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Ok(opened) => opened?,
            Err(_) => {
                self.connector.discard(&conn).await;
                return Err(BusError::Unavailable(format!(
                    "the broker did not open a publisher channel within {OPEN_TIMEOUT:?}"
                )));
            }
        };
        tracing::debug!(channel = channel.id(), "publisher channel opened");
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// The events exchange and the dead-letter exchange: durable topic exchanges (idempotent).
    async fn declare_exchanges(&self, channel: &Channel) -> Result<(), BusError> {
        let options = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for exchange in [&self.exchange, &self.dead_exchange] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    options,
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// What a publisher confirmation means for the caller.
fn confirmation_of(
    exchange: &str,
    routing_key: &str,
    confirmation: Confirmation,
) -> Result<(), BusError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => {
            // The caller decides whether this matters (the relay expects it for
            // announcements nobody subscribes to).
            tracing::debug!(
                exchange,
                routing_key,
                reply_code = returned.reply_code,
                reply_text = %returned.reply_text,
                "publish returned unroutable"
            );
            Err(BusError::Unroutable {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
            })
        }
        Confirmation::Nack(_) => Err(BusError::Nacked {
            routing_key: routing_key.to_string(),
        }),
        Confirmation::NotRequested => Err(BusError::Config(
            "the publisher channel is not in confirm mode".into(),
        )),
    }
}

/// The AMQP properties of an event: persistent, typed, traceable in the management UI.
fn envelope_properties(envelope: &Envelope) -> Result<BasicProperties, BusError> {
    let timestamp = chrono::DateTime::parse_from_rfc3339(&envelope.occurred_at)
        .map(|t| t.timestamp())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp());
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/x-protobuf".into())
        .with_message_id(short("event_id", &envelope.event_id)?)
        .with_type(short("type", &envelope.r#type)?)
        .with_timestamp(u64::try_from(timestamp).unwrap_or_default())
        .with_app_id(short("producer", &envelope.producer)?);
    if !envelope.correlation_id.is_empty() {
        properties =
            properties.with_correlation_id(short("correlation_id", &envelope.correlation_id)?);
    }
    Ok(properties)
}

/// A short string (≤ 255 bytes), refused rather than panicking when longer.
fn short(what: &'static str, value: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(value).map_err(|_| BusError::InvalidName {
        what,
        value: value.to_string(),
        reason: "must be at most 255 bytes",
    })
}

fn value_string(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn header_string(headers: &FieldTable, key: &str) -> Option<String> {
    headers.inner().get(key).and_then(value_string)
}

/// The reason RabbitMQ recorded when it dead-lettered a message by itself.
fn x_death_reason(headers: &FieldTable) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    header_string(first, "reason").map(|r| format!("broker: {r}"))
}
