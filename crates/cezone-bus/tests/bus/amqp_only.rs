//! RabbitMQ only: a broker restart in the middle of publishing and consuming loses nothing that
//! was confirmed, and raw bytes that are no envelope are dead-lettered like any poison message.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cezone_bus::{AmqpBus, Bus};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::support::{BrokerLock, amqp_url, config, connect_amqp, event, fresh_prefix, init, recv};

/// Runs `rabbitmqctl <args>`, panicking when it fails.
async fn rabbitmqctl<S: AsRef<str>>(args: &[S]) {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    let shown = args.join(" ");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("rabbitmqctl")
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .expect("rabbitmqctl must be installed for this test");
    assert!(
        output.status.success(),
        "rabbitmqctl {shown}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn wait_for_port(port: u16, within: Duration) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(start.elapsed() < within, "port {port} did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the broker app again if the test fails while it is stopped.
struct Restarter {
    stopped: bool,
}

impl Drop for Restarter {
    fn drop(&mut self) {
        if self.stopped {
            let _ = std::process::Command::new("rabbitmqctl")
                .arg("start_app")
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_no_confirmed_event() {
    init();
    let _lock = BrokerLock::exclusive().await;
    let prefix = fresh_prefix();
    let bus = Arc::new(connect_amqp(&config(&amqp_url(), &prefix, 20)).await);
    let mut sub = bus.subscribe("restart", &["restart.*"]).await.unwrap();

    // Consumer: records every event id it receives and acks it.
    let received = Arc::new(Mutex::new(HashSet::new()));
    let deliveries = Arc::new(AtomicUsize::new(0));
    let consumer = tokio::spawn({
        let (received, deliveries) = (received.clone(), deliveries.clone());
        async move {
            while let Some(d) = sub.next().await {
                let id = d.envelope().unwrap().event_id;
                received.lock().unwrap().insert(id);
                deliveries.fetch_add(1, Ordering::SeqCst);
                let _ = d.ack().await;
            }
        }
    });

    // Publisher: 200 events, one every 50 ms, through the restart.
    let published = Arc::new(AtomicUsize::new(0));
    let publisher = tokio::spawn({
        let (bus, published) = (bus.clone(), published.clone());
        async move {
            let mut results = Vec::new();
            for i in 0..200 {
                let e = event("restart.tick", &format!("tick {i}"));
                let result = bus.publish(&e).await;
                results.push((e.event_id, result.map_err(|e| e.to_string())));
                published.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            results
        }
    });

    while published.load(Ordering::SeqCst) < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut restarter = Restarter { stopped: true };
    rabbitmqctl(&["stop_app"]).await;
    let during = published.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl(&["start_app"]).await;
    restarter.stopped = false;
    wait_for_port(5672, Duration::from_secs(60)).await;

    let results = tokio::time::timeout(Duration::from_secs(90), publisher)
        .await
        .expect("the publisher finishes")
        .unwrap();
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "publishes failed across the restart: {failed:?}"
    );
    let confirmed: HashSet<String> = results.into_iter().map(|(id, _)| id).collect();
    assert_eq!(confirmed.len(), 200);

    let start = Instant::now();
    loop {
        let missing = confirmed.difference(&received.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{missing} confirmed events never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "broker restart: stopped after {during} publishes; {} deliveries for 200 events",
        deliveries.load(Ordering::SeqCst)
    );
    consumer.abort();
    bus.delete_topology(&["restart"]).await.unwrap();
    bus.close().await;
}

/// The broker cancels a consumer (it does when the queue fails over, is restarted or goes away)
/// while the subscription holds deliveries it has not settled: the subscription closes that
/// channel, so the broker gives what it held to the next consumer, and consumes again on a new
/// channel. Every event still arrives; none is stranded on the cancelled consumer's channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_consumer_strands_nothing() {
    init();
    let _lock = BrokerLock::shared().await;
    let prefix = fresh_prefix();
    let bus = connect_amqp(&config(&amqp_url(), &prefix, 5)).await;
    let mut sub = bus.subscribe("cancel", &["cancel.*"]).await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..20 {
        let e = event("cancel.tick", &format!("tick {i}"));
        ids.insert(e.event_id.clone());
        bus.publish(&e).await.unwrap();
    }
    // Three deliveries taken and held, unsettled, as a consumer busy with a batch holds them.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(recv(&mut sub).await);
    }

    // The broker cancels this queue's consumer (as the queue does when it goes away) and tells
    // the client so; the channel stays open, holding the deliveries it was sent.
    let queue = cezone_bus::queue_name(&prefix, "cancel");
    let expr = format!(
        "[{{Ch, Tag, QName}}|_] = [{{proplists:get_value(channel_pid, I), \
         proplists:get_value(consumer_tag, I), proplists:get_value(queue_name, I)}} \
         || I <- rabbit_amqqueue:consumers_all(<<\"/\">>), \
         element(4, proplists:get_value(queue_name, I)) =:= <<\"{queue}\">>], \
         {{ok, Q}} = rabbit_amqqueue:lookup(QName), \
         ok = gen_server2:call(amqqueue:get_pid(Q), {{basic_cancel, Ch, Tag, undefined, <<\"test\">>}}, infinity), \
         rabbit_channel:send_command(Ch, {{'basic.cancel', Tag, true}})."
    );
    rabbitmqctl(&["eval", expr.as_str()]).await;

    // The held deliveries can no longer be settled (their consumer is gone): each event,
    // those included, must be delivered again and acked. A delivery the subscription had
    // already taken from the cancelled consumer's channel may be handed out just as that
    // channel closes: its ack then says the channel is gone, and it comes again.
    let mut acked = HashSet::new();
    let start = Instant::now();
    while acked != ids {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of 20 events never arrived and were acked after the consumer was cancelled",
            ids.difference(&acked).count()
        );
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await else {
            continue;
        };
        let id = d.envelope().unwrap().event_id;
        match d.ack().await {
            Ok(()) => {
                acked.insert(id);
            }
            Err(e) if e.is_channel_gone() => {}
            Err(e) => panic!("acking {id}: {e}"),
        }
    }
    drop(held);
    drop(sub);
    bus.delete_topology(&["cancel"]).await.unwrap();
    bus.close().await;
}

/// The broker closes the subscriber's connection again and again (an operator's
/// `close_connection`, a node shutting down): each time the subscription reconnects, re-declares
/// and consumes again, and the event published after it still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_repeated_forced_closes() {
    init();
    let _lock = BrokerLock::shared().await;
    let prefix = fresh_prefix();
    let config = config(&amqp_url(), &prefix, 5);
    let name = config.connection_name.clone();
    let bus = connect_amqp(&config).await;
    let mut sub = bus.subscribe("closed", &["closed.*"]).await.unwrap();
    for round in 0..8 {
        let expr = format!(
            "[rabbit_networking:close_connection(P, \"closed by the test\") \
             || P <- rabbit_networking:connections(), \
             {{client_properties, Props}} <- rabbit_networking:connection_info(P, [client_properties]), \
             lists:member({{<<\"connection_name\">>, longstr, <<\"{name}\">>}}, Props)]."
        );
        rabbitmqctl(&["eval", expr.as_str()]).await;
        // Sometimes at once, sometimes after the subscription is back.
        tokio::time::sleep(Duration::from_millis(if round % 2 == 0 { 5 } else { 400 })).await;
        let e = event("closed.tick", &format!("after close {round}"));
        bus.publish(&e).await.unwrap();
        let start = Instant::now();
        loop {
            let d = tokio::time::timeout(Duration::from_secs(45), sub.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "round {round}: nothing arrived within 45 s of the connection being closed"
                    )
                })
                .expect("the subscription goes on");
            let got = d.envelope().unwrap().event_id;
            let _ = d.ack().await;
            if got == e.event_id {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(45));
        }
    }
    drop(sub);
    bus.delete_topology(&["closed"]).await.unwrap();
    bus.close().await;
}

/// Bytes that are not an envelope at all (another system publishing to the exchange) are
/// refused by `Delivery::envelope` and dead-lettered with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_garbage_is_dead_lettered() {
    init();
    let _lock = BrokerLock::shared().await;
    let prefix = fresh_prefix();
    let bus: AmqpBus = connect_amqp(&config(&amqp_url(), &prefix, 10)).await;
    let mut sub = bus.subscribe("raw", &["foreign.*"]).await.unwrap();

    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("RabbitMQ is needed by this test");
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirmation = channel
        .basic_publish(
            cezone_bus::exchange_name(&prefix).into(),
            "foreign.thing".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"\xff\xfe not protobuf",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirmation.is_ack());
    let _ = conn.close(200, "done".into()).await;

    let d = recv(&mut sub).await;
    let err = d.envelope().unwrap_err();
    let reason = format!("not an envelope: {err}");
    d.dead_letter(&reason).await.unwrap();
    let dead = bus.take_dead_letter("raw").await.unwrap().unwrap();
    assert_eq!(dead.body, b"\xff\xfe not protobuf");
    assert_eq!(dead.reason, reason);
    assert_eq!(dead.routing_key, "foreign.thing");
    drop(sub);
    bus.delete_topology(&["raw"]).await.unwrap();
    bus.close().await;
}
