//! What a consumer receives: a [`Subscription`] yielding [`Delivery`]s, each settled exactly
//! once by ack, retry or dead-letter. A delivery dropped without being settled (a handler that
//! panicked, say) goes back to its queue, as it would when a channel closes.

use std::fmt;

use cezone_proto::events::v1::Envelope;
use tokio::sync::mpsc;
use tokio_util::sync::DropGuard;

use crate::{BusError, amqp, memory};

/// A stream of deliveries from one consumer queue. Dropping it stops consuming; the unacked
/// deliveries go back to the queue.
#[derive(Debug)]
pub struct Subscription {
    inner: SubscriptionInner,
}

#[derive(Debug)]
enum SubscriptionInner {
    /// Fed by a supervisor task that reconnects; dropping the guard stops the task.
    Amqp {
        deliveries: mpsc::Receiver<Delivery>,
        _stop: DropGuard,
    },
    Memory(memory::MemorySubscription),
}

impl Subscription {
    pub(crate) fn amqp(deliveries: mpsc::Receiver<Delivery>, stop: DropGuard) -> Self {
        Subscription {
            inner: SubscriptionInner::Amqp {
                deliveries,
                _stop: stop,
            },
        }
    }

    pub(crate) fn memory(sub: memory::MemorySubscription) -> Self {
        Subscription {
            inner: SubscriptionInner::Memory(sub),
        }
    }

    /// The next delivery, or `None` once `shutdown` is cancelled or the bus closed (logged):
    /// the loop of a consumer that applies events one by one.
    pub async fn next_until(
        &mut self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Option<Delivery> {
        let d = tokio::select! {
            () = shutdown.cancelled() => return None,
            d = self.next() => d,
        };
        if d.is_none() {
            tracing::info!("event subscription ended");
        }
        d
    }

    /// The next delivery; waits while the queue is empty or `prefetch` deliveries are unacked.
    /// `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        match &mut self.inner {
            SubscriptionInner::Amqp { deliveries, .. } => deliveries.recv().await,
            SubscriptionInner::Memory(sub) => sub.next().await,
        }
    }
}

/// One message from a consumer queue.
pub struct Delivery {
    /// The encoded envelope (see [`Delivery::envelope`]).
    pub body: Vec<u8>,
    /// True when the message was delivered before and not acked (retry, consumer crash,
    /// connection loss): the consumer may have applied it already.
    pub redelivered: bool,
    /// The event type it was published with.
    pub routing_key: String,
    settler: Option<Settler>,
    /// Checks the signature of the envelope (the subscribing bus's key).
    event_key: Option<std::sync::Arc<crate::EventKey>>,
}

/// How a delivery is settled on its transport.
#[derive(Debug)]
pub(crate) enum Settler {
    Amqp(amqp::AmqpSettler),
    Memory(memory::MemorySettler),
}

impl Delivery {
    pub(crate) fn new(
        body: Vec<u8>,
        redelivered: bool,
        routing_key: String,
        settler: Settler,
        event_key: Option<std::sync::Arc<crate::EventKey>>,
    ) -> Self {
        Delivery {
            body,
            redelivered,
            routing_key,
            settler: Some(settler),
            event_key,
        }
    }

    /// Decodes the body and, when the bus has the deployment's event key, checks its
    /// signature; a malformed or forged one should be dead-lettered, it will never pass.
    pub fn envelope(&self) -> Result<Envelope, BusError> {
        let envelope = crate::decode(&self.body)?;
        if let Some(key) = &self.event_key {
            key.verify(&envelope)?;
        }
        Ok(envelope)
    }

    /// Done: call it after the consumer committed the effect of the event. An error for which
    /// [`BusError::is_channel_gone`] holds settled nothing: the delivery's channel closed first
    /// and the message comes again (consumers drop it then by its event id).
    pub async fn ack(mut self) -> Result<(), BusError> {
        match self.settler.take() {
            Some(Settler::Amqp(s)) => s.ack().await,
            Some(Settler::Memory(s)) => s.ack(),
            None => Ok(()),
        }
    }

    /// Transient failure (database down …): the message goes back to the front of the queue and
    /// comes again with `redelivered = true`.
    pub async fn retry(mut self) -> Result<(), BusError> {
        match self.settler.take() {
            Some(Settler::Amqp(s)) => s.retry().await,
            Some(Settler::Memory(s)) => s.retry(),
            None => Ok(()),
        }
    }

    /// Permanent failure (malformed, unknown schema version …): the message goes to the
    /// consumer's dead-letter queue `{prefix}.{consumer}.dead` with `reason`, and the consumer
    /// receives the following messages.
    ///
    /// On RabbitMQ the original body and properties are republished (confirmed) to the
    /// dead-letter exchange with the headers `x-cezone-reason` and
    /// `x-cezone-original-routing-key`, and only then is the original acked. (A plain reject
    /// would dead-letter it through the queue's `x-dead-letter-exchange` too, but the broker
    /// records only "rejected", not why.) If the republish fails the original is requeued and
    /// the error returned: nothing is lost, it comes again. A crash between the two steps leaves
    /// a copy in the dead-letter queue and redelivers the original.
    pub async fn dead_letter(mut self, reason: &str) -> Result<(), BusError> {
        let body = std::mem::take(&mut self.body);
        let routing_key = std::mem::take(&mut self.routing_key);
        match self.settler.take() {
            Some(Settler::Amqp(s)) => s.dead_letter(body, &routing_key, reason).await,
            Some(Settler::Memory(s)) => s.dead_letter(body, routing_key, reason),
            None => Ok(()),
        }
    }
}

/// Why a consumer could not apply a delivery.
#[derive(Debug)]
pub enum NotApplied {
    /// It will never pass (malformed, forged, missing its payload): dead-letter it with why.
    Unreadable(String),
    /// The consumer's own store refused (database down …): it comes again.
    Failed(String),
}

impl Delivery {
    /// Settles a delivery by what the consumer made of it: acked once applied (or ignored),
    /// dead-lettered when unreadable, requeued after a short pause when applying failed. A
    /// failed settlement is logged: the broker redelivers, and consumers drop duplicates.
    pub async fn settle(self, outcome: Result<(), NotApplied>) {
        match outcome {
            Ok(()) => {
                if let Err(e) = self.ack().await {
                    tracing::warn!(error = %e, "ack failed after commit");
                }
            }
            Err(NotApplied::Unreadable(reason)) => {
                tracing::warn!(routing_key = %self.routing_key, %reason, "dead-lettering an event");
                if let Err(e) = self.dead_letter(&reason).await {
                    tracing::error!(error = %e, "cannot dead-letter an event");
                }
            }
            Err(NotApplied::Failed(reason)) => {
                tracing::warn!(routing_key = %self.routing_key, %reason, "event not applied; it will be redelivered");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if let Err(e) = self.retry().await {
                    tracing::warn!(error = %e, "requeue failed");
                }
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        match self.settler.take() {
            Some(Settler::Amqp(s)) => s.abandon(),
            Some(Settler::Memory(s)) => s.abandon(),
            None => {}
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("routing_key", &self.routing_key)
            .field("redelivered", &self.redelivered)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A message read back from a dead-letter queue (for tests and operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    /// Why the consumer gave up on it; for messages the broker dead-lettered by itself
    /// (expiry, overflow), the broker's `x-death` reason.
    pub reason: String,
    /// The routing key (event type) it was originally published with.
    pub routing_key: String,
}
