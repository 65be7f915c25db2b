//! The transactional outbox on a fresh SQLite file and a fresh PostgreSQL database, relayed to
//! RabbitMQ.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cezone_bus::outbox::{self, Relay};
use cezone_bus::{Bus, Subscription};
use cezone_platform::testing::Backend;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use tokio_util::sync::CancellationToken;

use crate::support::{
    BrokerLock, Proxy, amqp_url, assert_quiet, config, connect_amqp, event, fresh_prefix, init,
    recv,
};

const TABLE: &str = "evidence_outbox";

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(cezone_platform::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(cezone_platform::testing::Backend::Postgres).await
                }
            )*
        }
    };
}

both_backends!(
    only_committed_events_are_published,
    pending_events_wait_for_the_broker
);

/// A fresh database with the outbox table (created twice: the DDL is idempotent).
async fn database(backend: Backend) -> (DatabaseConnection, Option<tempfile::TempDir>) {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("outbox.db").display()
            );
            (url, Some(dir))
        }
        Backend::Postgres => (
            cezone_platform::testing::fresh_postgres_database().await,
            None,
        ),
    };
    let db = Database::connect(&url)
        .await
        .expect("connect the test database");
    for _ in 0..2 {
        db.execute_unprepared(&outbox::create_table(db.get_database_backend(), TABLE))
            .await
            .expect("create the outbox table");
    }
    (db, dir)
}

/// Receives until `n` distinct event ids arrived (the outbox may publish twice).
async fn distinct_ids(sub: &mut Subscription, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    while ids.len() < n {
        let d = recv(sub).await;
        ids.insert(d.envelope().unwrap().event_id);
        d.ack().await.unwrap();
    }
    ids
}

async fn only_committed_events_are_published(backend: Backend) {
    init();
    let _lock = BrokerLock::shared().await;
    let (db, _dir) = database(backend).await;
    let prefix = fresh_prefix();
    let bus = Arc::new(connect_amqp(&config(&amqp_url(), &prefix, 300)).await);
    let mut sub = bus.subscribe("scoring", &["evidence.*"]).await.unwrap();
    let shutdown = CancellationToken::new();
    let relay = Relay::spawn(db.clone(), TABLE, bus.clone(), shutdown.clone());

    // Rolled back: never published.
    let txn = db.begin().await.unwrap();
    outbox::enqueue(&txn, TABLE, &event("evidence.reviewed", "rolled back"))
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    relay.notify();
    relay.flush().await;
    assert_eq!(outbox::pending(&db, TABLE).await.unwrap(), 0);
    assert_quiet(&mut sub, Duration::from_millis(300)).await;

    // Committed: published, confirmed, consumed. An event nobody is bound for does not hold
    // up the ones behind it.
    let committed = event("evidence.reviewed", "committed");
    let txn = db.begin().await.unwrap();
    outbox::enqueue(&txn, TABLE, &event("nobody.listens", ""))
        .await
        .unwrap();
    outbox::enqueue(&txn, TABLE, &committed).await.unwrap();
    txn.commit().await.unwrap();
    relay.notify();
    tokio::time::timeout(Duration::from_secs(20), relay.flush())
        .await
        .expect("flush");
    assert_eq!(outbox::pending(&db, TABLE).await.unwrap(), 0);
    let d = recv(&mut sub).await;
    assert_eq!(d.envelope().unwrap(), committed);
    d.ack().await.unwrap();

    // More than one batch in one transaction, all of it published in order.
    let many: Vec<_> = (0..250)
        .map(|i| event("evidence.submitted", &format!("file {i}")))
        .collect();
    let txn = db.begin().await.unwrap();
    for e in &many {
        outbox::enqueue(&txn, TABLE, e).await.unwrap();
    }
    txn.commit().await.unwrap();
    relay.notify();
    tokio::time::timeout(Duration::from_secs(30), relay.flush())
        .await
        .expect("flush");
    let mut order = Vec::new();
    for _ in 0..250 {
        let d = recv(&mut sub).await;
        order.push(d.envelope().unwrap().event_id);
        d.ack().await.unwrap();
    }
    let expected: Vec<_> = many.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(order, expected);

    // Published rows past the retention are deleted; unpublished ones never are.
    let pending = event("evidence.reviewed", "not yet");
    let txn = db.begin().await.unwrap();
    outbox::enqueue(&txn, TABLE, &pending).await.unwrap();
    let deleted = outbox::purge(&txn, TABLE, "9999-12-31T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        deleted, 252,
        "every published row, the unpublished one kept"
    );
    assert_eq!(outbox::pending(&txn, TABLE).await.unwrap(), 1);
    txn.rollback().await.unwrap();

    // Enqueueing the same event twice is refused (event ids are unique), and so is one that
    // could never be published.
    assert!(outbox::enqueue(&db, TABLE, &committed).await.is_err());
    let unpublishable = event(&"x".repeat(300), "");
    assert!(outbox::enqueue(&db, TABLE, &unpublishable).await.is_err());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), relay.stopped())
        .await
        .expect("the relay stops");
    drop(sub);
    bus.delete_topology(&["scoring"]).await.unwrap();
    bus.close().await;
}

async fn pending_events_wait_for_the_broker(backend: Backend) {
    init();
    let _lock = BrokerLock::shared().await;
    let (db, _dir) = database(backend).await;
    let prefix = fresh_prefix();
    // The relay reaches RabbitMQ through a proxy this test cuts; the consumer directly.
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let relay_bus = Arc::new(connect_amqp(&config(&proxy.url(), &prefix, 10)).await);
    let consumer_bus = connect_amqp(&config(&amqp_url(), &prefix, 10)).await;
    let mut sub = consumer_bus
        .subscribe("scoring", &["evidence.*"])
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let relay = Relay::spawn(db.clone(), TABLE, relay_bus.clone(), shutdown.clone());

    proxy.cut();
    let events: Vec<_> = (0..3)
        .map(|i| event("evidence.reviewed", &format!("during outage {i}")))
        .collect();
    let txn = db.begin().await.unwrap();
    for e in &events {
        outbox::enqueue(&txn, TABLE, e).await.unwrap();
    }
    txn.commit().await.unwrap();
    relay.notify();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(outbox::pending(&db, TABLE).await.unwrap(), 3);
    assert_quiet(&mut sub, Duration::from_millis(100)).await;

    proxy.restore();
    tokio::time::timeout(Duration::from_secs(45), relay.flush())
        .await
        .expect("published once the broker is back");
    assert_eq!(outbox::pending(&db, TABLE).await.unwrap(), 0);
    let expected: HashSet<_> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(distinct_ids(&mut sub, 3).await, expected);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), relay.stopped())
        .await
        .expect("the relay stops");
    relay_bus.close().await;
    drop(sub);
    consumer_bus.delete_topology(&["scoring"]).await.unwrap();
    consumer_bus.close().await;
}

/// Two replicas relaying the same PostgreSQL table never publish the same row (they take turns
/// under the table's advisory lock): every event arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_postgres_publish_each_event_once() {
    init();
    let _lock = BrokerLock::shared().await;
    let (db, _dir) = database(Backend::Postgres).await;
    let prefix = fresh_prefix();
    let bus = Arc::new(connect_amqp(&config(&amqp_url(), &prefix, 500)).await);
    let mut sub = bus.subscribe("scoring", &["evidence.*"]).await.unwrap();

    let events: Vec<_> = (0..300)
        .map(|i| event("evidence.submitted", &format!("file {i}")))
        .collect();
    let txn = db.begin().await.unwrap();
    for e in &events {
        outbox::enqueue(&txn, TABLE, e).await.unwrap();
    }
    txn.commit().await.unwrap();

    let shutdown = CancellationToken::new();
    let relays = [
        Relay::spawn(db.clone(), TABLE, bus.clone(), shutdown.clone()),
        Relay::spawn(db.clone(), TABLE, bus.clone(), shutdown.clone()),
    ];
    for relay in &relays {
        relay.notify();
    }
    for relay in &relays {
        tokio::time::timeout(Duration::from_secs(30), relay.flush())
            .await
            .expect("flush");
    }
    let mut ids = Vec::new();
    for _ in 0..300 {
        let d = recv(&mut sub).await;
        ids.push(d.envelope().unwrap().event_id);
        d.ack().await.unwrap();
    }
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
    let distinct: HashSet<_> = ids.iter().cloned().collect();
    assert_eq!(distinct.len(), 300, "an event was published twice");

    shutdown.cancel();
    for relay in relays {
        relay.stopped().await;
    }
    drop(sub);
    bus.delete_topology(&["scoring"]).await.unwrap();
    bus.close().await;
}
