//! The in-process bus: RabbitMQ's semantics for one process, without durability.
//!
//! A [`Broker`] per prefix plays the part of the RabbitMQ vhost (queues, bindings, dead-letter
//! queues) and every [`InProcessBus`] connected with that prefix is a "connection" to it, so
//! services in one process that each call [`crate::connect`] share their queues. Topic routing
//! follows RabbitMQ's rules ([`crate::topic`]); a publish that no queue binding matches is
//! refused as unroutable, like a mandatory AMQP publish; each subscription holds at most
//! `prefetch` unacked deliveries; retried or abandoned deliveries go back to the front of the
//! queue marked redelivered; dead letters are kept per consumer with their reason.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use cezone_proto::events::v1::Envelope;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::Settler;
use crate::names::{check_key, check_name};
use crate::{Bus, BusConfig, BusError, DeadLetter, Delivery, Subscription, topic};

/// The brokers of this process, by prefix; a broker lives as long as a bus uses it.
static BROKERS: LazyLock<Mutex<HashMap<String, Weak<Broker>>>> = LazyLock::new(Default::default);

/// A bus for services running in one process.
pub struct InProcessBus {
    broker: Arc<Broker>,
    prefetch: u16,
    closed: CancellationToken,
    /// Subscriptions made through this handle; their unacked deliveries are requeued on close.
    subscriptions: Mutex<Vec<u64>>,
    event_key: Option<Arc<crate::EventKey>>,
}

impl InProcessBus {
    /// Joins (or creates) the in-process broker of `config.prefix`.
    pub fn connect(config: &BusConfig) -> Result<Self, BusError> {
        check_name("prefix", &config.prefix)?;
        let mut brokers = lock(&BROKERS);
        brokers.retain(|_, b| b.strong_count() > 0);
        let broker = match brokers.get(&config.prefix).and_then(Weak::upgrade) {
            Some(broker) => broker,
            None => {
                let broker = Arc::new(Broker {
                    prefix: config.prefix.clone(),
                    state: Mutex::default(),
                });
                brokers.insert(config.prefix.clone(), Arc::downgrade(&broker));
                broker
            }
        };
        tracing::debug!(prefix = %config.prefix, "in-process bus connected");
        Ok(InProcessBus {
            broker,
            prefetch: config.prefetch,
            closed: CancellationToken::new(),
            subscriptions: Mutex::default(),
            event_key: config.event_key.clone(),
        })
    }

    /// Takes the oldest message of `consumer`'s dead-letter queue (for tests and operators).
    pub async fn take_dead_letter(&self, consumer: &str) -> Result<Option<DeadLetter>, BusError> {
        let mut state = self.broker.lock();
        Ok(state
            .queues
            .get_mut(consumer)
            .and_then(|q| q.dead.pop_front()))
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        crate::envelope::check_publishable(envelope)?;
        let routing_key = envelope.r#type.as_str();
        let body = match &self.event_key {
            Some(key) => crate::encode(&key.sign(envelope)),
            None => crate::encode(envelope),
        };
        let mut state = self.broker.lock();
        let mut routed = 0;
        for queue in state.queues.values_mut() {
            if queue
                .patterns
                .iter()
                .any(|p| topic::matches(p, routing_key))
            {
                queue.ready.push_back(Message {
                    body: body.clone(),
                    routing_key: routing_key.to_string(),
                    redelivered: false,
                });
                queue.notify.notify_waiters();
                routed += 1;
            }
        }
        if routed == 0 {
            return Err(BusError::Unroutable {
                exchange: crate::exchange_name(&self.broker.prefix),
                routing_key: routing_key.to_string(),
            });
        }
        tracing::trace!(event_id = %envelope.event_id, routing_key, queues = routed, "event published in process");
        Ok(())
    }

    async fn subscribe(&self, consumer: &str, patterns: &[&str]) -> Result<Subscription, BusError> {
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        crate::names::check_consumer(consumer)?;
        for pattern in patterns {
            check_key("pattern", pattern)?;
        }
        let mut state = self.broker.lock();
        state.next_subscription += 1;
        let id = state.next_subscription;
        // Declaring is idempotent: the queue keeps its messages and gains any new binding.
        let queue = state.queues.entry(consumer.to_string()).or_default();
        for pattern in patterns {
            if !queue.patterns.iter().any(|p| p == pattern) {
                queue.patterns.push(pattern.to_string());
            }
        }
        let notify = queue.notify.clone();
        drop(state);
        lock(&self.subscriptions).push(id);
        tracing::debug!(
            consumer,
            ?patterns,
            prefetch = self.prefetch,
            "in-process subscription started"
        );
        Ok(Subscription::memory(MemorySubscription {
            broker: self.broker.clone(),
            queue: consumer.to_string(),
            id,
            prefetch: usize::from(self.prefetch),
            notify,
            closed: self.closed.clone(),
            event_key: self.event_key.clone(),
        }))
    }

    async fn close(&self) {
        self.closed.cancel();
        let ids = std::mem::take(&mut *lock(&self.subscriptions));
        let mut state = self.broker.lock();
        for queue in state.queues.values_mut() {
            for id in &ids {
                queue.requeue_subscription(*id);
            }
        }
        tracing::debug!(prefix = %self.broker.prefix, "in-process bus closed");
    }
}

impl fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessBus")
            .field("prefix", &self.broker.prefix)
            .field("prefetch", &self.prefetch)
            .field("closed", &self.closed.is_cancelled())
            .finish()
    }
}

struct Broker {
    prefix: String,
    state: Mutex<State>,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the queues stay
/// consistent because every critical section is a few pushes and pops.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    next_tag: u64,
    next_subscription: u64,
}

#[derive(Default)]
struct Queue {
    patterns: Vec<String>,
    ready: VecDeque<Message>,
    /// Delivery tag → (subscription, message).
    unacked: HashMap<u64, (u64, Message)>,
    dead: VecDeque<DeadLetter>,
    /// Woken on every change that may let a waiting subscription proceed.
    notify: Arc<Notify>,
}

impl Queue {
    /// Puts a subscription's unacked deliveries back at the front, oldest first.
    fn requeue_subscription(&mut self, subscription: u64) {
        let mut tags: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, (s, _))| *s == subscription)
            .map(|(t, _)| *t)
            .collect();
        tags.sort_unstable();
        for tag in tags.into_iter().rev() {
            if let Some((_, mut msg)) = self.unacked.remove(&tag) {
                msg.redelivered = true;
                self.ready.push_front(msg);
            }
        }
        self.notify.notify_waiters();
    }
}

#[derive(Clone)]
struct Message {
    body: Vec<u8>,
    routing_key: String,
    redelivered: bool,
}

/// The receiving end of an in-process subscription.
pub(crate) struct MemorySubscription {
    broker: Arc<Broker>,
    queue: String,
    id: u64,
    prefetch: usize,
    notify: Arc<Notify>,
    closed: CancellationToken,
    event_key: Option<Arc<crate::EventKey>>,
}

impl MemorySubscription {
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        loop {
            // Registered before looking at the queue, so no change between the look and the
            // wait is missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.is_cancelled() {
                return None;
            }
            if let Some(delivery) = self.try_take() {
                return Some(delivery);
            }
            tokio::select! {
                _ = notified => {}
                _ = self.closed.cancelled() => return None,
            }
        }
    }

    fn try_take(&self) -> Option<Delivery> {
        let mut state = self.broker.lock();
        state.next_tag += 1;
        let tag = state.next_tag;
        let queue = state.queues.get_mut(&self.queue)?;
        let outstanding = queue
            .unacked
            .values()
            .filter(|(s, _)| *s == self.id)
            .count();
        if self.prefetch != 0 && outstanding >= self.prefetch {
            return None;
        }
        let msg = queue.ready.pop_front()?;
        queue.unacked.insert(tag, (self.id, msg.clone()));
        Some(Delivery::new(
            msg.body,
            msg.redelivered,
            msg.routing_key,
            Settler::Memory(MemorySettler {
                broker: self.broker.clone(),
                queue: self.queue.clone(),
                tag,
            }),
            self.event_key.clone(),
        ))
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        if let Some(queue) = self.broker.lock().queues.get_mut(&self.queue) {
            queue.requeue_subscription(self.id);
        }
    }
}

impl fmt::Debug for MemorySubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscription")
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

/// Settles one in-process delivery. A tag that is no longer unacked (its subscription was
/// dropped or its bus closed, so it was requeued) is settled as a no-op, like an ack on a
/// closed AMQP channel.
pub(crate) struct MemorySettler {
    broker: Arc<Broker>,
    queue: String,
    tag: u64,
}

impl MemorySettler {
    fn take(&self, f: impl FnOnce(&mut Queue, Message)) {
        let mut state = self.broker.lock();
        let Some(queue) = state.queues.get_mut(&self.queue) else {
            return;
        };
        match queue.unacked.remove(&self.tag) {
            Some((_, msg)) => f(queue, msg),
            None => {
                tracing::debug!(queue = %self.queue, tag = self.tag, "delivery already requeued; settling it does nothing")
            }
        }
        queue.notify.notify_waiters();
    }

    pub(crate) fn ack(self) -> Result<(), BusError> {
        self.take(|_, _| {});
        Ok(())
    }

    pub(crate) fn retry(self) -> Result<(), BusError> {
        self.take(|queue, mut msg| {
            msg.redelivered = true;
            queue.ready.push_front(msg);
        });
        Ok(())
    }

    pub(crate) fn dead_letter(
        self,
        body: Vec<u8>,
        routing_key: String,
        reason: &str,
    ) -> Result<(), BusError> {
        tracing::warn!(consumer = %self.queue, routing_key, reason, "message dead-lettered");
        self.take(|queue, _| {
            queue.dead.push_back(DeadLetter {
                body,
                reason: reason.to_string(),
                routing_key,
            });
        });
        Ok(())
    }

    pub(crate) fn abandon(self) {
        tracing::debug!(queue = %self.queue, "delivery dropped unsettled; requeued");
        let _ = self.retry();
    }
}

impl fmt::Debug for MemorySettler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySettler")
            .field("queue", &self.queue)
            .field("tag", &self.tag)
            .finish()
    }
}
