//! The contract both transports keep, run against RabbitMQ and the in-process bus alike.

use std::collections::BTreeSet;
use std::time::Duration;

use cezone_bus::{BusError, Envelope, Subscription};
use prost::Message;

use crate::support::{TestBus, Transport, assert_quiet, event, recv};

/// One `#[tokio::test]` per transport for each listed async fn taking a `Transport`.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod amqp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Transport::Amqp).await
                }
            )*
        }
        mod amqp_quorum {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Transport::AmqpQuorum).await
                }
            )*
        }
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Transport::InProcess).await
                }
            )*
        }
    };
}

both_transports!(
    publish_consume_ack,
    retry_redelivers,
    dead_letter_keeps_reason_and_consumer_goes_on,
    prefetch_bounds_unacked_deliveries,
    unroutable_publish_is_an_error,
    topic_patterns_route,
    close_ends_subscriptions,
    publish_many_confirms_a_window_in_order,
    a_keyed_bus_takes_only_signed_events,
);

async fn publish_consume_ack(transport: Transport) {
    let t = TestBus::new(transport, 10).await;
    let bus = t.bus();
    let mut sub = bus.subscribe("reader", &["evidence.*"]).await.unwrap();
    // Declaring again (another replica starting) changes nothing.
    let again = bus.subscribe("reader", &["evidence.*"]).await.unwrap();
    drop(again);

    let sent = cezone_bus::envelope(
        "evidence.reviewed",
        "evidence",
        &"accepted".to_string(),
        Some("req-7"),
    );
    bus.publish(&sent).await.unwrap();
    let d = recv(&mut sub).await;
    assert_eq!(d.routing_key, "evidence.reviewed");
    assert!(!d.redelivered);
    let got = d.envelope().unwrap();
    assert_eq!(got, sent);
    assert_eq!(String::decode(got.payload.as_slice()).unwrap(), "accepted");
    d.ack().await.unwrap();

    // Acked means gone: a new subscription to the same queue receives nothing.
    drop(sub);
    let mut sub = bus.subscribe("reader", &["evidence.*"]).await.unwrap();
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
    drop(sub);
    t.finish(&["reader"]).await;
}

async fn retry_redelivers(transport: Transport) {
    let t = TestBus::new(transport, 10).await;
    let bus = t.bus();
    let mut sub = bus.subscribe("retrier", &["surveys.#"]).await.unwrap();
    let sent = event("surveys.batch.aggregated", "batch 1");
    bus.publish(&sent).await.unwrap();

    let first = recv(&mut sub).await;
    assert!(!first.redelivered);
    first.retry().await.unwrap();
    let second = recv(&mut sub).await;
    assert!(second.redelivered);
    assert_eq!(second.envelope().unwrap().event_id, sent.event_id);
    second.ack().await.unwrap();
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
    drop(sub);
    t.finish(&["retrier"]).await;
}

async fn dead_letter_keeps_reason_and_consumer_goes_on(transport: Transport) {
    let t = TestBus::new(transport, 10).await;
    let bus = t.bus();
    let mut sub = bus.subscribe("strict", &["evidence.*"]).await.unwrap();

    // A poison message: the envelope is fine but its payload is not what the type promises.
    let poison = Envelope {
        payload: vec![0xff, 0xff, 0xff],
        ..event("evidence.reviewed", "")
    };
    let good = event("evidence.reviewed", "fine");
    bus.publish(&poison).await.unwrap();
    bus.publish(&good).await.unwrap();

    let d = recv(&mut sub).await;
    let env = d.envelope().unwrap();
    assert_eq!(env.event_id, poison.event_id);
    let reason = format!(
        "payload is not an EvidenceReviewed: {}",
        String::decode(env.payload.as_slice()).unwrap_err()
    );
    d.dead_letter(&reason).await.unwrap();

    // The consumer keeps receiving.
    let d = recv(&mut sub).await;
    assert_eq!(d.envelope().unwrap().event_id, good.event_id);
    d.ack().await.unwrap();

    let dead = t
        .take_dead_letter("strict")
        .await
        .expect("the poison message is in the dead-letter queue");
    assert_eq!(dead.reason, reason);
    assert_eq!(dead.routing_key, "evidence.reviewed");
    assert_eq!(cezone_bus::decode(&dead.body).unwrap(), poison);
    assert_eq!(t.take_dead_letter("strict").await, None);
    // Not delivered again either.
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
    drop(sub);
    t.finish(&["strict"]).await;
}

async fn prefetch_bounds_unacked_deliveries(transport: Transport) {
    let t = TestBus::new(transport, 2).await;
    let bus = t.bus();
    let mut sub = bus.subscribe("slow", &["stats.recorded"]).await.unwrap();
    let sent: Vec<Envelope> = (0..5)
        .map(|i| event("stats.recorded", &format!("stat {i}")))
        .collect();
    for e in &sent {
        bus.publish(e).await.unwrap();
    }

    let a = recv(&mut sub).await;
    let b = recv(&mut sub).await;
    // Two unacked: the third waits.
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
    a.ack().await.unwrap();
    let c = recv(&mut sub).await;
    assert_quiet(&mut sub, Duration::from_millis(300)).await;
    b.ack().await.unwrap();
    c.ack().await.unwrap();
    let d = recv(&mut sub).await;
    let e = recv(&mut sub).await;
    let mut ids = Vec::new();
    for x in [d, e] {
        ids.push(x.envelope().unwrap().event_id);
        x.ack().await.unwrap();
    }
    assert_eq!(ids, [sent[3].event_id.clone(), sent[4].event_id.clone()]);
    drop(sub);
    t.finish(&["slow"]).await;
}

async fn unroutable_publish_is_an_error(transport: Transport) {
    let t = TestBus::new(transport, 10).await;
    let bus = t.bus();
    // No queue at all.
    let err = bus
        .publish(&event("registry.published", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::Unroutable { ref routing_key, .. } if routing_key == "registry.published"),
        "{err}"
    );
    // A queue, but not bound for this key.
    let sub = bus.subscribe("partial", &["evidence.*"]).await.unwrap();
    let err = bus
        .publish(&event("registry.published", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unroutable { .. }), "{err}");
    // The bus still works afterwards.
    bus.publish(&event("evidence.submitted", "")).await.unwrap();
    // A malformed envelope never leaves.
    let err = bus.publish(&Envelope::default()).await.unwrap_err();
    assert!(matches!(err, BusError::Malformed(_)), "{err}");
    drop(sub);
    t.finish(&["partial"]).await;
}

async fn topic_patterns_route(transport: Transport) {
    let t = TestBus::new(transport, 50).await;
    let bus = t.bus();
    let mut one_word = bus.subscribe("one-word", &["evidence.*"]).await.unwrap();
    let mut any_depth = bus
        .subscribe("any-depth", &["evidence.#", "registry.published"])
        .await
        .unwrap();
    let mut suffix = bus.subscribe("suffix", &["*.frozen"]).await.unwrap();

    for ty in [
        "evidence.reviewed",
        "evidence.file.stored",
        "registry.published",
        "snapshot.frozen",
        "evidence",
    ] {
        bus.publish(&event(ty, "")).await.unwrap();
    }

    async fn types(sub: &mut Subscription, n: usize) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        for _ in 0..n {
            let d = recv(sub).await;
            got.insert(d.routing_key.clone());
            d.ack().await.unwrap();
        }
        assert_quiet(sub, Duration::from_millis(300)).await;
        got
    }
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(types(&mut one_word, 1).await, set(&["evidence.reviewed"]));
    assert_eq!(
        types(&mut any_depth, 4).await,
        set(&[
            "evidence",
            "evidence.file.stored",
            "evidence.reviewed",
            "registry.published"
        ])
    );
    assert_eq!(types(&mut suffix, 1).await, set(&["snapshot.frozen"]));
    drop((one_word, any_depth, suffix));
    t.finish(&["one-word", "any-depth", "suffix"]).await;
}

async fn close_ends_subscriptions(transport: Transport) {
    let t = TestBus::new(transport, 10).await;
    let bus = t.bus();
    let mut sub = bus.subscribe("closing", &["x.*"]).await.unwrap();
    bus.publish(&event("x.y", "")).await.unwrap();
    recv(&mut sub).await.ack().await.unwrap();
    bus.close().await;
    let end = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("subscription ends when the bus closes");
    assert!(end.is_none());
    let err = bus.publish(&event("x.y", "")).await.unwrap_err();
    assert!(matches!(err, BusError::Closed), "{err}");
    // Clean up with a second bus on the same prefix.
    if transport != Transport::InProcess {
        let cleaner = crate::support::connect_amqp(&t.config).await;
        cleaner.delete_topology(&["closing"]).await.unwrap();
        cezone_bus::Bus::close(&cleaner).await;
    }
}

/// A window of events published with their confirmations outstanding together arrives whole
/// and in order; the one the broker cannot route is reported, the others still count. (RabbitMQ's
/// return names no delivery tag: under an ack that covers several messages the report may land
/// on a neighbour of the unroutable one, which is why only the count is exact.)
async fn publish_many_confirms_a_window_in_order(transport: Transport) {
    let t = TestBus::new(transport, 300).await;
    let bus = t.bus();
    let mut sub = bus.subscribe("windowed", &["evidence.*"]).await.unwrap();
    let mut window: Vec<Envelope> = (0..200)
        .map(|i| event("evidence.submitted", &format!("file {i}")))
        .collect();
    window.insert(100, event("nobody.listens", "lost"));
    let results = bus.publish_many(&window).await;
    assert_eq!(results.len(), window.len());
    let unroutable = results
        .iter()
        .filter(|r| matches!(r, Err(BusError::Unroutable { .. })))
        .count();
    assert_eq!(unroutable, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(BusError::Unroutable { .. }))),
        "{results:?}"
    );
    let mut got = Vec::new();
    for _ in 0..200 {
        let d = recv(&mut sub).await;
        got.push(d.envelope().unwrap().event_id);
        d.ack().await.unwrap();
    }
    let want: Vec<String> = window
        .iter()
        .filter(|e| e.r#type != "nobody.listens")
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(got, want);
    drop(sub);
    t.finish(&["windowed"]).await;
}

/// A bus with the deployment's event key signs what it publishes and refuses, at delivery, an
/// event published without the key or signed with another.
async fn a_keyed_bus_takes_only_signed_events(transport: Transport) {
    let t = TestBus::new(transport, 10).await;
    let key = std::sync::Arc::new(cezone_bus::EventKey::derive(&[3u8; 32]));
    let ours = t.keyed(key.clone()).await;
    let theirs = t
        .keyed(std::sync::Arc::new(cezone_bus::EventKey::derive(
            &[4u8; 32],
        )))
        .await;
    let mut sub = ours.subscribe("signed", &["evidence.*"]).await.unwrap();
    let signed = event("evidence.reviewed", "ours");
    ours.publish(&signed).await.unwrap();
    t.bus()
        .publish(&event("evidence.reviewed", "unsigned"))
        .await
        .unwrap();
    theirs
        .publish(&event("evidence.reviewed", "another key"))
        .await
        .unwrap();
    let d = recv(&mut sub).await;
    let got = d.envelope().unwrap();
    assert_eq!(got.event_id, signed.event_id);
    assert!(!got.signature.is_empty());
    d.ack().await.unwrap();
    for why in [
        "it is not signed",
        "its signature does not match its content",
    ] {
        let d = recv(&mut sub).await;
        let err = d.envelope().unwrap_err();
        assert!(matches!(err, BusError::Forged(_)), "{err}");
        assert!(err.to_string().contains(why), "{err}");
        d.ack().await.unwrap();
    }
    drop(sub);
    ours.close().await;
    theirs.close().await;
    t.finish(&["signed"]).await;
}
