//! Test support: buses on a fresh prefix per test, the broker lock, a cuttable TCP proxy and
//! small receive helpers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cezone_bus::{AmqpBus, Bus, BusConfig, DeadLetter, Delivery, Envelope, InProcessBus};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

pub fn amqp_url() -> String {
    std::env::var("CEZONE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

pub fn init() {
    cezone_platform::telemetry::init_for_tests();
}

/// A prefix no other test (or run) uses.
pub fn fresh_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

pub fn config(url: &str, prefix: &str, prefetch: u16) -> BusConfig {
    BusConfig {
        amqp_url: url.to_string(),
        prefix: prefix.to_string(),
        connection_name: format!("cezone-bus-tests-{prefix}"),
        prefetch,
        queue_type: cezone_bus::QueueType::Classic,
        delivery_limit: cezone_bus::DEFAULT_DELIVERY_LIMIT,
        event_key: None,
    }
}

/// Tests that use RabbitMQ hold the tests' broker lock shared; those that restart the broker
/// (here and in other crates, and the chaos runs) hold it exclusively, so none pulls the broker
/// from under a test that counts deliveries exactly.
pub use cezone_platform::testing::BrokerLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Amqp,
    /// RabbitMQ with quorum queues.
    AmqpQuorum,
    InProcess,
}

#[derive(Debug, Clone)]
pub enum Concrete {
    Amqp(Arc<AmqpBus>),
    InProcess(Arc<InProcessBus>),
}

/// A bus on a fresh prefix, with what tests need beyond the `Bus` trait.
#[derive(Debug)]
pub struct TestBus {
    pub concrete: Concrete,
    pub config: BusConfig,
    _lock: Option<BrokerLock>,
}

impl TestBus {
    pub async fn new(transport: Transport, prefetch: u16) -> Self {
        init();
        let prefix = fresh_prefix();
        match transport {
            Transport::Amqp | Transport::AmqpQuorum => {
                let lock = BrokerLock::shared().await;
                let mut config = config(&amqp_url(), &prefix, prefetch);
                if transport == Transport::AmqpQuorum {
                    config.queue_type = cezone_bus::QueueType::Quorum;
                }
                let bus = connect_amqp(&config).await;
                TestBus {
                    concrete: Concrete::Amqp(Arc::new(bus)),
                    config,
                    _lock: Some(lock),
                }
            }
            Transport::InProcess => {
                let config = config("", &prefix, prefetch);
                let bus = InProcessBus::connect(&config).expect("in-process bus");
                TestBus {
                    concrete: Concrete::InProcess(Arc::new(bus)),
                    config,
                    _lock: None,
                }
            }
        }
    }

    /// Another bus on the same broker and prefix, signing and checking with `key`.
    pub async fn keyed(&self, key: Arc<cezone_bus::EventKey>) -> Arc<dyn Bus> {
        let config = self.config.clone().signed_with(key);
        match &self.concrete {
            Concrete::Amqp(_) => Arc::new(connect_amqp(&config).await),
            Concrete::InProcess(_) => Arc::new(InProcessBus::connect(&config).unwrap()),
        }
    }

    pub fn bus(&self) -> Arc<dyn Bus> {
        match &self.concrete {
            Concrete::Amqp(b) => b.clone(),
            Concrete::InProcess(b) => b.clone(),
        }
    }

    pub async fn take_dead_letter(&self, consumer: &str) -> Option<DeadLetter> {
        match &self.concrete {
            Concrete::Amqp(b) => b.take_dead_letter(consumer).await,
            Concrete::InProcess(b) => b.take_dead_letter(consumer).await,
        }
        .expect("read the dead-letter queue")
    }

    /// Deletes the test's queues and exchanges (drop the subscriptions first) and closes.
    pub async fn finish(self, consumers: &[&str]) {
        if let Concrete::Amqp(b) = &self.concrete {
            b.delete_topology(consumers)
                .await
                .expect("delete the test's queues and exchanges");
        }
        self.bus().close().await;
    }
}

/// Connects to the test broker, failing loudly when it is not there (never skipping).
pub async fn connect_amqp(config: &BusConfig) -> AmqpBus {
    tokio::time::timeout(Duration::from_secs(40), AmqpBus::connect(config))
        .await
        .expect("connecting to RabbitMQ timed out")
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ at {} is needed by this test (start it with `rabbitmq-server -detached`): {e}",
                config.amqp_url.split('@').next_back().unwrap_or_default()
            )
        })
}

/// An event of `event_type` whose payload says `text`.
pub fn event(event_type: &str, text: &str) -> Envelope {
    cezone_bus::envelope(event_type, "tests", &text.to_string(), None)
}

/// The next delivery, or a panic after `RECV_TIMEOUT`.
pub async fn recv(sub: &mut cezone_bus::Subscription) -> Delivery {
    tokio::time::timeout(RECV_TIMEOUT, sub.next())
        .await
        .expect("no delivery within the timeout")
        .expect("the subscription ended")
}

/// Asserts nothing is delivered within `within`.
pub async fn assert_quiet(sub: &mut cezone_bus::Subscription, within: Duration) {
    if let Ok(Some(d)) = tokio::time::timeout(within, sub.next()).await {
        panic!("unexpected delivery: {d:?}");
    }
}

/// A TCP proxy in front of RabbitMQ that can be cut (every connection dropped, new ones
/// refused) and restored: a broker outage that only this test sees.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (up2, links2, stop2) = (up.clone(), links.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop2.cancelled() => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let cut = links2.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.cancelled() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            links,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut links = self.links.lock().unwrap();
        links.cancel();
        *links = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.links.lock().unwrap().cancel();
    }
}
