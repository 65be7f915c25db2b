//! The scoring consumer: one durable queue, prefetch, ack only after the events' effects are
//! committed, duplicates dropped by event id, transient failures retried, poison messages
//! dead-lettered with the reason. Deliveries already waiting, and those arriving within
//! [`LINGER`] of the last, are applied together in one transaction, so a burst costs one
//! commit, not one per event.

use std::sync::Arc;
use std::time::Duration;

use cezone_bus::{Delivery, Envelope, Subscription};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::events::{self, EventError, Fact};
use crate::state::State;

/// Deliveries applied in one transaction at most (bounded by the prefetch in practice).
const BATCH: usize = 256;
/// How long a batch waits for more deliveries once none is waiting: a few milliseconds on an
/// event's way to its score, for far fewer statements and commits per event under load.
const LINGER: Duration = Duration::from_millis(2);

pub async fn run(state: Arc<State>, mut subscription: Subscription, shutdown: CancellationToken) {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            d = subscription.next() => d,
        };
        let Some(first) = first else {
            tracing::info!("event subscription ended");
            return;
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match subscription.next().now_or_never() {
                Some(Some(d)) => {
                    batch.push(d);
                    continue;
                }
                Some(None) => break,
                None => {}
            }
            // Nothing waiting this instant: the rest of a burst gets a moment to arrive and
            // share the batch's statements, commit and rescore.
            match tokio::time::timeout_at(deadline, subscription.next()).await {
                Ok(Some(d)) => batch.push(d),
                _ => break,
            }
        }
        handle(&state, batch).await;
    }
}

async fn handle(state: &State, deliveries: Vec<Delivery>) {
    let mut ready: Vec<(Delivery, Envelope, Vec<Fact>)> = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let decoded = d
            .envelope()
            .map_err(|e| EventError::Malformed(format!("malformed envelope: {e}")))
            .and_then(|env| {
                events::decode(&env, &state.framework_id, &state.edition).map(|f| (env, f))
            });
        match decoded {
            Ok((env, facts)) => {
                tracing::debug!(
                    event_id = %env.event_id,
                    event_type = %env.r#type,
                    producer = %env.producer,
                    correlation_id = %env.correlation_id,
                    redelivered = d.redelivered,
                    facts = facts.len(),
                    "event received"
                );
                ready.push((d, env, facts))
            }
            Err(e) => {
                tracing::warn!(routing_key = %d.routing_key, reason = %e, "dead-lettering an event");
                if let Err(e) = d.dead_letter(&e.to_string()).await {
                    tracing::error!(error = %e, "cannot dead-letter an event");
                }
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    let items: Vec<(&Envelope, Vec<Fact>)> =
        ready.iter().map(|(_, env, f)| (env, f.clone())).collect();
    match events::apply_batch(&state.db, &items).await {
        Ok(changed) => {
            tracing::debug!(events = ready.len(), changed, "events applied");
            for (d, env, _) in ready {
                if let Err(e) = d.ack().await {
                    // The broker redelivers it; applying it again changes nothing.
                    tracing::warn!(event_id = %env.event_id, error = %e, "ack failed after commit");
                }
            }
            if changed {
                state.wake.notify_one();
            }
        }
        Err(e) => {
            tracing::warn!(events = ready.len(), error = %e, "events not applied; they will be redelivered");
            tokio::time::sleep(Duration::from_millis(200)).await;
            for (d, _, _) in ready {
                if let Err(e) = d.retry().await {
                    tracing::warn!(error = %e, "requeue failed");
                }
            }
        }
    }
}
