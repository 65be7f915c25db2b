//! Test support: a fresh PostgreSQL database per test, on the server CI and developers run
//! (`CEZONE_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/test). Tests that
//! ask for one fail when PostgreSQL cannot be reached; they are never skipped.

pub use crate::scratch::{amqp_url, random_secret, unused_port};

/// The PostgreSQL server test databases are made on.
pub fn admin_url() -> String {
    crate::scratch::postgres_admin_url()
}

/// Creates an empty database and returns its URL. Databases left by runs more than an hour
/// old are dropped on the way.
pub async fn fresh_postgres_database() -> String {
    crate::scratch::drop_stale_databases("cezone_t", 3600).await;
    let admin = admin_url();
    crate::scratch::create_database("cezone_t")
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed by this test: {e}"))
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
    s.use_free_ports();
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

/// The service secret of every test deployment in this process.
pub fn test_secret() -> &'static str {
    crate::scratch::secret()
}

/// The event key of buses in tests: the one the services of a test environment derive.
pub fn event_key() -> std::sync::Arc<cezone_bus::EventKey> {
    std::sync::Arc::new(cezone_bus::EventKey::derive(test_secret().as_bytes()))
}

/// An in-process bus configuration on `prefix` that signs and checks events as services do.
pub fn in_process_bus(prefix: &str) -> cezone_bus::BusConfig {
    cezone_bus::BusConfig::in_process(prefix).signed_with(event_key())
}

/// The token keys of every test deployment on this machine.
pub fn test_key_files() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    crate::scratch::key_files()
}

/// Test auth settings: the machine's test signing keys, services verifying with their public
/// key file (no registry needed), and the process's test service secret.
pub fn use_test_keys(auth: &mut crate::settings::AuthSettings) {
    crate::scratch::use_keys(auth)
}

/// Calls as an unscoped caller of `role` under `settings`' key.
pub fn bearer_for(
    settings: &crate::settings::Settings,
    role: cezone_domain::access::Role,
) -> crate::access::auth::Bearer {
    crate::scratch::bearer_named(settings, role, "test")
}

/// A bus prefix no other test uses, so tests sharing one broker never see each other's events.
pub fn fresh_bus_prefix() -> String {
    crate::scratch::bus_prefix("t")
}

/// Calls as an unscoped caller of `role` to services started by `test_env`.
pub fn as_role(role: cezone_domain::access::Role) -> crate::access::auth::Bearer {
    let mut s = crate::settings::Settings::defaults();
    use_test_keys(&mut s.auth);
    bearer_for(&s, role)
}

/// Calls as the evaluation office, which may do everything the tests set up.
pub fn office() -> crate::access::auth::Bearer {
    as_role(cezone_domain::access::Role::EvaluationOffice)
}

impl TestEnv {
    /// The signing keys of this test's deployment.
    pub fn keys(&self) -> std::sync::Arc<crate::access::auth::Keys> {
        crate::access::auth::Keys::load(&self.settings.auth).expect("the test key is valid")
    }

    /// Calls made as a caller of `role`, unscoped (the evaluation office, an inspector …).
    pub fn bearer(&self, role: cezone_domain::access::Role) -> crate::access::auth::Bearer {
        bearer_for(&self.settings, role)
    }
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
