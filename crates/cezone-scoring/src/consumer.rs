//! The scoring consumer: one durable queue, prefetch, ack only after the events' effects are
//! committed, duplicates dropped by event id, poison messages dead-lettered with the reason.
//! Deliveries already waiting, and those arriving within [`LINGER`] of the last, are applied
//! together in one transaction, so a burst costs one commit, not one per event.
//!
//! Every fact is checked with the rules the service that records it applies
//! ([`cezone_domain::checks`]) before it is stored: a value that service would refuse, an org
//! unit the registry does not know, a metric or criterion the framework does not have, goes to
//! the dead-letter queue with its reason, even when it was published straight to the exchange.
//! A database failure keeps the deliveries (unacked) and retries them here with backoff, so a
//! quorum queue's delivery limit never counts an outage as a poison message.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cezone_bus::{Delivery, Envelope, Subscription};
use cezone_domain::checks;
use cezone_domain::org::OrgUnitId;
use cezone_proto::registry::v1::GetOrgUnitRequest;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::events::{self, EventError, Fact};
use crate::facts_db;
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
        handle(&state, batch, &shutdown).await;
    }
}

type Ready = (Delivery, Envelope, Vec<Fact>);

async fn handle(state: &State, deliveries: Vec<Delivery>, shutdown: &CancellationToken) {
    let mut ready: Vec<Ready> = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let decoded = d
            .envelope()
            .map_err(|e| EventError::Malformed(e.to_string()))
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
            Err(e) => dead_letter(d, &e.to_string()).await,
        }
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        if ready.is_empty() {
            return;
        }
        let attempt = async {
            let refused = refusals(state, &ready).await?;
            if !refused.is_empty() {
                return Ok::<_, EventError>(Err(refused));
            }
            let items: Vec<(&Envelope, Vec<Fact>)> =
                ready.iter().map(|(_, env, f)| (env, f.clone())).collect();
            Ok(Ok(events::apply_batch(&state.db, &items).await?))
        };
        match attempt.await {
            Ok(Ok(changed)) => {
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
                return;
            }
            Ok(Err(refused)) => {
                // Dead-letter those, then apply the rest.
                let mut keep = Vec::with_capacity(ready.len());
                for (i, item) in ready.into_iter().enumerate() {
                    match refused.iter().find(|(j, _)| *j == i) {
                        Some((_, reason)) => dead_letter(item.0, reason).await,
                        None => keep.push(item),
                    }
                }
                ready = keep;
            }
            Err(e) => {
                tracing::warn!(events = ready.len(), error = %e, retry_ms = backoff.as_millis() as u64, "events not applied yet; retrying");
                tokio::select! {
                    // Dropped unsettled: the broker gives them to this or another replica.
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn dead_letter(d: Delivery, reason: &str) {
    tracing::warn!(routing_key = %d.routing_key, reason, "dead-lettering an event");
    if let Err(e) = d.dead_letter(reason).await {
        tracing::error!(error = %e, "cannot dead-letter an event");
    }
}

/// The events whose facts the services would have refused (by index), each with its reason.
/// The framework checks use the scored model (when there is one); an org unit is looked up in
/// the model, then in the read model's table, then at the registry, which is authoritative
/// (its `org_unit.created` event may still be on its way).
async fn refusals(state: &State, ready: &[Ready]) -> Result<Vec<(usize, String)>, EventError> {
    let model = state.current.read().await.clone();
    let mut refused = Vec::new();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    for (i, (_, env, facts)) in ready.iter().enumerate() {
        let mut reason = None;
        for f in facts {
            let (org_unit, fits) = match (f, &model) {
                (Fact::Stat(s), Some(m)) => {
                    (Some(&s.org_unit), checks::statistic_fits(s, m.framework()))
                }
                (Fact::Tally(t), Some(m)) => {
                    (Some(&t.org_unit), checks::tally_fits(t, m.framework()))
                }
                (Fact::Evidence(e), Some(m)) => {
                    (Some(&e.org_unit), checks::evidence_fits(e, m.framework()))
                }
                (Fact::Stat(s), None) => (Some(&s.org_unit), Ok(())),
                (Fact::Tally(t), None) => (Some(&t.org_unit), Ok(())),
                (Fact::Evidence(e), None) => (Some(&e.org_unit), Ok(())),
                _ => (None, Ok(())),
            };
            if let Err(e) = fits {
                reason = Some(format!("{} event {}: {e}", env.r#type, env.event_id));
                break;
            }
            if let Some(id) = org_unit
                && model.as_ref().is_none_or(|m| m.tree().find(id).is_none())
            {
                unknown.insert(id.to_string());
            }
        }
        if let Some(r) = reason {
            refused.push((i, r));
        }
    }
    if unknown.is_empty() {
        return Ok(refused);
    }
    let ids: Vec<String> = unknown.into_iter().collect();
    let known = facts_db::known_org_units(&state.db, &ids).await?;
    let mut missing: HashSet<String> = HashSet::new();
    for id in ids.iter().filter(|id| !known.contains(*id)) {
        if !at_registry(state, id).await? {
            missing.insert(id.clone());
        }
    }
    if missing.is_empty() {
        return Ok(refused);
    }
    for (i, (_, env, facts)) in ready.iter().enumerate() {
        let gone = facts.iter().find_map(|f| {
            let id: &OrgUnitId = match f {
                Fact::Stat(s) => &s.org_unit,
                Fact::Tally(t) => &t.org_unit,
                Fact::Evidence(e) => &e.org_unit,
                _ => return None,
            };
            missing.contains(id.as_str()).then_some(id)
        });
        if let Some(id) = gone
            && !refused.iter().any(|(j, _)| *j == i)
        {
            refused.push((
                i,
                format!(
                    "{} event {}: org_unit: '{id}' is not an existing org unit",
                    env.r#type, env.event_id
                ),
            ));
        }
    }
    Ok(refused)
}

/// Whether the registry knows the org unit. Unreachable is a transient error.
async fn at_registry(state: &State, id: &str) -> Result<bool, EventError> {
    let mut client = state.upstream.registry.client();
    // Bounded: the consumer holds its batch meanwhile, and an answer that never comes would stop
    // it for good; unanswered is unavailable, and the batch is retried.
    let asked = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_org_unit(GetOrgUnitRequest { id: id.to_string() }),
    )
    .await
    .map_err(|_| {
        EventError::Unavailable(format!(
            "the registry did not answer about org unit {id} within 10 s"
        ))
    })?;
    match asked {
        Ok(_) => Ok(true),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            Ok(false)
        }
        Err(s) => Err(EventError::Unavailable(format!(
            "cannot ask the registry about org unit {id}: {} {}",
            s.code(),
            s.message()
        ))),
    }
}
