//! The scoring consumer: one durable queue, prefetch, ack only after the event's effect is
//! committed, duplicates dropped by event id, transient failures retried, poison messages
//! dead-lettered with the reason.

use std::sync::Arc;
use std::time::Duration;

use cezone_bus::{Delivery, Subscription};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::events::{self, EventError};
use crate::state::State;

pub async fn run(state: Arc<State>, mut subscription: Subscription, shutdown: CancellationToken) {
    loop {
        let delivery = tokio::select! {
            () = shutdown.cancelled() => return,
            d = subscription.next() => d,
        };
        let Some(delivery) = delivery else {
            tracing::info!("event subscription ended");
            return;
        };
        handle(&state, delivery).await;
    }
}

async fn handle(state: &State, d: Delivery) {
    let env = match d.envelope() {
        Ok(env) => env,
        Err(e) => {
            let reason = format!("malformed envelope: {e}");
            tracing::warn!(routing_key = %d.routing_key, %reason, "dead-lettering a message");
            if let Err(e) = d.dead_letter(&reason).await {
                tracing::error!(error = %e, "cannot dead-letter a message");
            }
            return;
        }
    };
    let span = tracing::info_span!("event", event_id = %env.event_id, event_type = %env.r#type, redelivered = d.redelivered);
    async {
        match events::apply(&state.db, &env, &state.framework_id, &state.edition).await {
            Ok(changed) => {
                if let Err(e) = d.ack().await {
                    // The broker redelivers it; applying it again changes nothing.
                    tracing::warn!(error = %e, "ack failed after commit");
                }
                if changed {
                    state.wake.notify_one();
                }
            }
            Err(EventError::Malformed(reason)) => {
                tracing::warn!(%reason, "dead-lettering an event");
                if let Err(e) = d.dead_letter(&reason).await {
                    tracing::error!(error = %e, "cannot dead-letter an event");
                }
            }
            Err(EventError::Transient(e)) => {
                tracing::warn!(error = %e, "event not applied; it will be redelivered");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Err(e) = d.retry().await {
                    tracing::warn!(error = %e, "requeue failed");
                }
            }
        }
    }
    .instrument(span)
    .await
}
