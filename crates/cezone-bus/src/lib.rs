//! cezone's event bus.
//!
//! Services publish [`Envelope`]s to one topic exchange (`{prefix}.events`, routing key = the
//! event type) and consume them from durable per-consumer queues. Two transports share one
//! contract, the [`Bus`] trait:
//!
//! - [`AmqpBus`] on RabbitMQ (lapin): publisher confirms, mandatory publishes, persistent
//!   messages, dead-lettering, and reconnection after a broker restart.
//! - [`InProcessBus`] for the embedded single-process setup (all services, SQLite): the same
//!   routing, prefetch, redelivery and dead-letter rules, in memory and without durability.
//!
//! Delivery is **at least once**: a publish whose confirmation was lost to a connection failure
//! is published again, and a delivery whose ack was lost comes again. Consumers drop duplicates
//! by `event_id`. Every state change and its event commit together through the [`outbox`].
//!
//! Connect once per process and share the `Arc<dyn Bus>`: each [`connect`] to RabbitMQ opens
//! its own named connection.
//!
//! ```no_run
//! # async fn example(db: sea_orm::DatabaseConnection) -> Result<(), Box<dyn std::error::Error>> {
//! use cezone_bus::outbox::{self, Relay};
//! use sea_orm::TransactionTrait;
//!
//! let bus = cezone_bus::connect(&cezone_bus::BusConfig::in_process("cezone")).await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let relay = Relay::spawn(db.clone(), "evidence_outbox", bus.clone(), shutdown.clone());
//!
//! // Producing: the state change and its event commit together.
//! let txn = db.begin().await?;
//! // ... write the change on `txn` ...
//! let payload = "the event's protobuf message".to_string();
//! let event = cezone_bus::envelope("evidence.reviewed", "evidence", &payload, None);
//! outbox::enqueue(&txn, "evidence_outbox", &event).await?;
//! txn.commit().await?;
//! relay.notify();
//!
//! // Consuming: ack after the effect committed, dead-letter what can never succeed.
//! let mut subscription = bus.subscribe("scoring", &["evidence.*"]).await?;
//! while let Some(delivery) = subscription.next().await {
//!     match delivery.envelope() {
//!         Ok(_event) => {
//!             // ... apply it idempotently (skip a known event_id), commit ...
//!             delivery.ack().await?;
//!         }
//!         Err(e) => delivery.dead_letter(&e.to_string()).await?,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod amqp;
mod backoff;
mod delivery;
pub mod envelope;
mod error;
mod memory;
mod names;
pub mod outbox;
mod signing;
pub mod topic;

use std::sync::Arc;

use async_trait::async_trait;
pub use cezone_proto::events::v1::Envelope;

pub use amqp::AmqpBus;
pub use delivery::{DeadLetter, Delivery, NotApplied, Subscription};
pub use envelope::{decode, encode, envelope};
pub use error::BusError;
pub use memory::InProcessBus;
pub use names::{dead_exchange_name, dead_queue_name, exchange_name, queue_name};
pub use signing::EventKey;

/// The header carrying the reason of a dead letter (see [`Delivery::dead_letter`]).
pub const REASON_HEADER: &str = "x-cezone-reason";
/// The header carrying the routing key a dead letter was originally published with.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-cezone-original-routing-key";

/// The event bus a service publishes to and consumes from.
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes durably (persistent delivery, routing key = envelope.type) and returns only once
    /// the broker confirmed it; a nack or an unroutable return (mandatory flag) is an error.
    /// Transient failures (connection lost) are retried with backoff up to a deadline before
    /// giving up. A retry after a lost confirmation may deliver the event twice.
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError>;

    /// Declares (idempotently) a durable queue named `{prefix}.{consumer}` bound to the events
    /// exchange with these topic patterns (e.g. "evidence.*"), with dead-lettering to the
    /// `{prefix}.dead` exchange → queue `{prefix}.{consumer}.dead`, and starts consuming with
    /// prefetch = config.prefetch. Deliveries keep arriving across broker restarts (the
    /// subscription reconnects and re-declares by itself).
    async fn subscribe(&self, consumer: &str, patterns: &[&str]) -> Result<Subscription, BusError>;

    /// Publishes several envelopes with their confirmations outstanding at once (one round trip
    /// for the window, not one per event), in order. Returns one result per envelope; a failed
    /// one is not retried here (the outbox relay retries what is not marked published).
    /// `Unroutable` is the one imprecise result: RabbitMQ's return names no delivery tag, so
    /// under an ack covering several messages it may be reported for a neighbour of the
    /// unroutable message (the relay treats both alike: published, nobody listening).
    async fn publish_many(&self, envelopes: &[Envelope]) -> Vec<Result<(), BusError>> {
        let mut out = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            out.push(self.publish(e).await);
        }
        out
    }

    /// Closes connections; pending confirms are awaited first. Subscriptions then end
    /// (`next()` returns `None`) and their unacked deliveries go back to their queues.
    async fn close(&self);
}

/// The default delivery limit of quorum queues.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 50;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `amqp://user:password@host:5672/%2f`; empty = the in-process bus.
    pub amqp_url: String,
    /// Namespaces every exchange and queue (`{prefix}.events`, `{prefix}.{consumer}` …).
    pub prefix: String,
    /// Shown by RabbitMQ's management UI for this process's connection.
    pub connection_name: String,
    /// How many unacked deliveries one subscription may hold (0 = unlimited).
    pub prefetch: u16,
    /// The kind of queue consumers declare (RabbitMQ).
    pub queue_type: QueueType,
    /// Quorum queues: deliveries of one message before the broker dead-letters it.
    pub delivery_limit: u32,
    /// Signs what this bus publishes and checks what it delivers (every cezone service has
    /// it); none publishes unsigned and accepts anything (tools, tests of the bus itself).
    pub event_key: Option<std::sync::Arc<EventKey>>,
}

/// The kind of RabbitMQ queue a consumer declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// A classic queue (one node; mirrored classic queues are deprecated).
    #[default]
    Classic,
    /// A quorum queue (replicated with Raft), with at-least-once dead-lettering, publishes
    /// refused rather than messages dropped when it is full, and a delivery limit.
    Quorum,
}

impl QueueType {
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(format!(
                "'{other}' is not a queue type: use classic or quorum"
            )),
        }
    }
}

impl BusConfig {
    /// This configuration, signing and checking events with `key`.
    pub fn signed_with(self, key: std::sync::Arc<EventKey>) -> Self {
        BusConfig {
            event_key: Some(key),
            ..self
        }
    }

    /// An in-process bus configuration (as used by the embedded single-process setup).
    pub fn in_process(prefix: &str) -> Self {
        BusConfig {
            amqp_url: String::new(),
            prefix: prefix.to_string(),
            connection_name: "cezone".to_string(),
            prefetch: 16,
            queue_type: QueueType::Classic,
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
            event_key: None,
        }
    }
}

/// Connects to RabbitMQ when `amqp_url` is set, otherwise returns the in-process bus of
/// `prefix` (buses connected with the same prefix in one process share their queues, as
/// connections to the same broker would).
pub async fn connect(config: &BusConfig) -> Result<Arc<dyn Bus>, BusError> {
    if config.amqp_url.is_empty() {
        Ok(Arc::new(InProcessBus::connect(config)?))
    } else {
        Ok(Arc::new(AmqpBus::connect(config).await?))
    }
}
