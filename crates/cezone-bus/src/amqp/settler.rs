//! Settling a RabbitMQ delivery: ack, nack with requeue, or dead-letter with a reason.
//!
//! lapin answers `Ok(false)` instead of sending anything when the delivery's channel is gone
//! (connection lost, subscription dropped). The broker then redelivers the message, so that is
//! logged and treated as settled: the consumer sees it again and drops it by event id.
//!
//! Every ack and nack is bounded in time ([`SETTLE_TIMEOUT`]): one sent on a connection that
//! died while it was queued may never be answered, and a consumer waiting on it would stop for
//! good (its subscription's buffer fills, so it does not even notice the next reconnection).
//! An unanswered settle is treated like one on a gone channel: the broker redelivers.

use std::fmt;
use std::sync::Arc;

use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, ShortString};
use lapin::{Acker, BasicProperties};

use super::Shared;
use crate::{BusError, ORIGINAL_ROUTING_KEY_HEADER, REASON_HEADER};

pub(crate) struct AmqpSettler {
    acker: Acker,
    properties: BasicProperties,
    shared: Arc<Shared>,
    consumer: String,
}

/// How long an ack or a nack may take before it is given up (the broker then redelivers).
pub(crate) const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

const REQUEUE: BasicNackOptions = BasicNackOptions {
    multiple: false,
    requeue: true,
};

impl AmqpSettler {
    pub(super) fn new(
        acker: Acker,
        properties: BasicProperties,
        shared: Arc<Shared>,
        consumer: String,
    ) -> Self {
        AmqpSettler {
            acker,
            properties,
            shared,
            consumer,
        }
    }

    fn sent(&self, what: &'static str, sent: bool) {
        if !sent {
            tracing::warn!(consumer = %self.consumer, what, "not sent: the delivery's channel is gone; the broker redelivers the message");
        }
    }

    pub(crate) async fn ack(self) -> Result<(), BusError> {
        let sent = self
            .bounded("ack", self.acker.ack(BasicAckOptions::default()))
            .await?;
        self.sent("ack", sent);
        Ok(())
    }

    pub(crate) async fn retry(self) -> Result<(), BusError> {
        let sent = self.bounded("nack", self.acker.nack(REQUEUE)).await?;
        self.sent("nack", sent);
        Ok(())
    }

    /// `settle` within [`SETTLE_TIMEOUT`]; past it, as not sent.
    async fn bounded(
        &self,
        what: &'static str,
        settle: impl std::future::Future<Output = lapin::Result<bool>>,
    ) -> Result<bool, BusError> {
        match tokio::time::timeout(SETTLE_TIMEOUT, settle).await {
            Ok(sent) => Ok(sent?),
            Err(_) => {
                tracing::warn!(consumer = %self.consumer, what, "no answer from the broker; the message is redelivered");
                Ok(true)
            }
        }
    }

    /// Republishes the message (same body and properties, plus the reason and the original
    /// routing key as headers) to the dead-letter exchange with the consumer's name as routing
    /// key, confirmed, then acks the original. If the republish fails, the original is requeued.
    pub(crate) async fn dead_letter(
        self,
        body: Vec<u8>,
        routing_key: &str,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = self.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(
            ORIGINAL_ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(routing_key.into()),
        );
        let properties = self
            .properties
            .clone()
            .with_delivery_mode(2)
            .with_headers(headers);
        let published = self
            .shared
            .publish_confirmed(
                &self.shared.dead_exchange,
                &self.consumer,
                &body,
                properties,
            )
            .await;
        let event_id = self
            .properties
            .message_id()
            .as_ref()
            .map(ShortString::to_string)
            .unwrap_or_default();
        match published {
            Ok(()) => {
                tracing::warn!(consumer = %self.consumer, routing_key, event_id, reason, "message dead-lettered");
                let sent = self
                    .bounded("ack", self.acker.ack(BasicAckOptions::default()))
                    .await?;
                self.sent("ack", sent);
                Ok(())
            }
            Err(e) => {
                tracing::error!(consumer = %self.consumer, routing_key, event_id, reason, error = %e, "dead-lettering failed; message requeued");
                let _ = self.bounded("nack", self.acker.nack(REQUEUE)).await;
                Err(e)
            }
        }
    }

    /// The delivery was dropped unsettled: requeue it (in the background, as drop cannot wait).
    pub(crate) fn abandon(self) {
        if !self.acker.usable() {
            return;
        }
        tracing::debug!(consumer = %self.consumer, "delivery dropped unsettled; requeueing");
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let acker = self.acker;
            runtime.spawn(async move {
                let _ = tokio::time::timeout(SETTLE_TIMEOUT, acker.nack(REQUEUE)).await;
            });
        }
    }
}

impl fmt::Debug for AmqpSettler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettler")
            .field("consumer", &self.consumer)
            .field("acker", &self.acker)
            .finish_non_exhaustive()
    }
}
