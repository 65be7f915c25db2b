//! Test support: a fresh PostgreSQL database per test, on the server CI and developers run
//! (`CEZONE_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/test). Tests that
//! ask for one fail when PostgreSQL cannot be reached; they are never skipped.

use sea_orm::{ConnectionTrait, Database};

pub fn admin_url() -> String {
    std::env::var("CEZONE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Creates an empty database and returns its URL. Databases left by runs more than an hour
/// old are dropped on the way.
pub async fn fresh_postgres_database() -> String {
    let admin = admin_url();
    let db = Database::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed by this test: {e}"));
    let now = chrono::Utc::now().timestamp();
    let name = format!("cezone_t_{now}_{}", uuid::Uuid::new_v4().simple());
    if let Ok(rows) = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'cezone_t_%'".to_string(),
        ))
        .await
    {
        for row in rows {
            let Ok(old) = row.try_get::<String>("", "datname") else {
                continue;
            };
            let ts: i64 = old
                .split('_')
                .nth(2)
                .and_then(|t| t.parse().ok())
                .unwrap_or(now);
            if now - ts > 3600 {
                let _ = db
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"))
                    .await;
            }
        }
    }
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// Which database a contract test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Settings for one test: every port 0, a private SQLite file or a fresh PostgreSQL database,
/// evidence files under a temporary directory (removed when this is dropped).
#[derive(Debug)]
pub struct TestEnv {
    pub settings: crate::settings::Settings,
    pub dir: tempfile::TempDir,
}

pub async fn test_env(backend: Backend) -> TestEnv {
    crate::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut s = crate::settings::Settings::defaults();
    s.registry.port = 0;
    s.evidence.port = 0;
    s.surveys.port = 0;
    s.scoring.port = 0;
    s.scheduler.port = 0;
    s.web.port = 0;
    s.database.max_connections = 4;
    s.database.url = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cezone.db").display()
        ),
        Backend::Postgres => fresh_postgres_database().await,
    };
    s.evidence.storage_root = dir.path().join("evidence");
    use_test_keys(&mut s.auth);
    TestEnv { settings: s, dir }
}

/// A signing key of 64 random hex digits, for a deployment that lives only as long as a test.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The signing key of every test deployment in this process.
/// The event key of buses in tests: the one the services of a test environment derive.
pub fn event_key() -> std::sync::Arc<cezone_bus::EventKey> {
    std::sync::Arc::new(cezone_bus::EventKey::derive(test_secret().as_bytes()))
}

/// An in-process bus configuration on `prefix` that signs and checks events as services do.
pub fn in_process_bus(prefix: &str) -> cezone_bus::BusConfig {
    cezone_bus::BusConfig::in_process(prefix).signed_with(event_key())
}

pub fn test_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(random_secret)
}

/// The token keys of every test deployment on this machine, made once: the registry's signing
/// keys and their public halves as a JSON Web Key Set (what services verify with when
/// `auth.public_keys_file` is set), in the temporary directory.
pub fn test_key_files() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static FILES: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join("cezone-test-keys");
        let signing = dir.join("signing.json");
        let public = dir.join("public.json");
        let set = crate::auth::keyset::KeySet::read_or_create(&signing)
            .expect("the test signing keys can be made");
        let jwks = crate::auth::keyset::to_jwks(&set.public().expect("public keys"));
        // Written aside and renamed: concurrent test processes write the same text.
        let tmp = dir.join(format!("public-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, jwks).expect("the test public keys can be written");
        std::fs::rename(&tmp, &public).expect("the test public keys can be written");
        (signing, public)
    })
}

/// Test auth settings: the machine's test signing keys, services verifying with their public
/// key file (no registry needed), and the process's test service secret.
pub fn use_test_keys(auth: &mut crate::settings::AuthSettings) {
    let (signing, public) = test_key_files();
    auth.signing_keys_file = signing.clone();
    auth.public_keys_file = public.clone();
    auth.secret = test_secret().to_string();
}

/// Calls as an unscoped caller of `role` to services started by `test_env`.
pub fn as_role(role: cezone_domain::access::Role) -> crate::auth::Bearer {
    let mut s = crate::settings::Settings::defaults();
    use_test_keys(&mut s.auth);
    bearer_for(&s, role)
}

/// Calls as the evaluation office, which may do everything the tests set up.
pub fn office() -> crate::auth::Bearer {
    as_role(cezone_domain::access::Role::EvaluationOffice)
}

impl TestEnv {
    /// The signing keys of this test's deployment.
    pub fn keys(&self) -> std::sync::Arc<crate::auth::Keys> {
        crate::auth::Keys::load(&self.settings.auth).expect("the test key is valid")
    }

    /// Calls made as a caller of `role`, unscoped (the evaluation office, an inspector …).
    pub fn bearer(&self, role: cezone_domain::access::Role) -> crate::auth::Bearer {
        bearer_for(&self.settings, role)
    }
}

/// Calls as an unscoped caller of `role` under `settings`' key.
pub fn bearer_for(
    settings: &crate::settings::Settings,
    role: cezone_domain::access::Role,
) -> crate::auth::Bearer {
    let keys = crate::auth::Keys::load(&settings.auth).expect("the key is valid");
    let who = cezone_domain::access::Principal::new(&format!("test-{role}"), role, None, None)
        .expect("unscoped roles need no scope");
    crate::auth::Bearer::minted(keys, who).with_tls(
        crate::tls::client_config(&settings.grpc).expect("the test's TLS files are readable"),
    )
}

/// Generates one `#[tokio::test]` per backend for each listed async fn taking a `Backend`.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A bus prefix no other test uses, so tests sharing one broker never see each other's events.
pub fn fresh_bus_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// The RabbitMQ the event tests use (`CEZONE_TEST_AMQP_URL`, default the local broker).
pub fn amqp_url() -> String {
    std::env::var("CEZONE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// One lock over the RabbitMQ broker the tests share, across test binaries and processes (a
/// file lock in the temp directory). A test that stops the broker or closes every connection
/// on it holds it exclusively; a test whose assertions need the broker to hold still (exact
/// delivery orders and counts) holds it shared. Tests that only need every fact to arrive
/// whatever the broker does take none.
#[derive(Debug)]
pub struct BrokerLock(#[allow(dead_code)] std::fs::File);

impl BrokerLock {
    pub async fn shared() -> BrokerLock {
        tokio::task::spawn_blocking(|| BrokerLock::take(false))
            .await
            .expect("broker lock task")
    }

    pub async fn exclusive() -> BrokerLock {
        tokio::task::spawn_blocking(|| BrokerLock::take(true))
            .await
            .expect("broker lock task")
    }

    /// Blocks the calling thread until the lock is held (for tests that are not async).
    pub fn take(exclusive: bool) -> BrokerLock {
        let path = std::env::temp_dir().join("cezone-tests-rabbitmq.lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("broker lock file");
        if exclusive {
            file.lock().expect("exclusive broker lock");
        } else {
            file.lock_shared().expect("shared broker lock");
        }
        BrokerLock(file)
    }
}

/// A port for a process about to be started with it (a test's or the chaos run's own
/// services): outside the kernel's ephemeral range, so no `127.0.0.1:0` bind of a test running
/// at the same time can take it between now and that process's bind; random, so two callers
/// rarely pick the same; free when chosen.
pub fn unused_port() -> std::io::Result<u16> {
    use rand::Rng;
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    // Below the ephemeral range when there is room there, else above it.
    let (from, to) = if low > 11_000 {
        (10_000, low - 1)
    } else {
        (high.saturating_add(1), u16::MAX)
    };
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port = rng.random_range(from..=to);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(format!(
        "no free port between {from} and {to}"
    )))
}
