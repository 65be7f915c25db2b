//! Throwaway deployments, for the benchmarks and the fault-injection harness that ship with
//! cezone (and, through `testing`, for the tests): a PostgreSQL database of their own, dropped
//! when they are done; a bus prefix no one else uses; signing keys made for the machine's
//! throwaway deployments; a port no one is about to bind. Nothing here touches a deployment's
//! own data: every database it makes or drops is one it named.

use sea_orm::{ConnectionTrait, Database, DbErr};

use crate::access::auth::{Bearer, Keys};
use crate::settings::{AuthSettings, Settings};

/// The PostgreSQL server throwaway databases are made on (`CEZONE_TEST_POSTGRES_URL`, default
/// the local server's `test` database).
pub fn postgres_admin_url() -> String {
    std::env::var("CEZONE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// The RabbitMQ throwaway deployments use (`CEZONE_TEST_AMQP_URL`, default the local broker).
pub fn amqp_url() -> String {
    std::env::var("CEZONE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A bus prefix no other deployment uses (`tag` and 32 hex digits), so deployments sharing one
/// broker never see each other's events.
pub fn bus_prefix(tag: &str) -> String {
    format!("{tag}{}", uuid::Uuid::new_v4().simple())
}

/// Creates an empty database named `{prefix}_{unix time}_{32 hex digits}` and returns its URL.
pub async fn create_database(prefix: &str) -> Result<String, DbErr> {
    let admin = postgres_admin_url();
    let db = Database::connect(&admin).await?;
    let now = chrono::Utc::now().timestamp();
    let name = format!("{prefix}_{now}_{}", uuid::Uuid::new_v4().simple());
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let _ = db.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Ok(format!("{base}/{name}"))
}

/// Drops the database `url` names (one `create_database` made), once nothing uses it.
pub async fn drop_database(url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(db) = Database::connect(&postgres_admin_url()).await {
        let _ = db
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        let _ = db.close().await;
    }
}

/// Drops the databases `create_database(prefix)` made more than `seconds` ago: those of runs
/// that ended without dropping theirs.
pub async fn drop_stale_databases(prefix: &str, seconds: i64) {
    let Ok(db) = Database::connect(&postgres_admin_url()).await else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    let Ok(rows) = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}\\_%'"),
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(old) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let made: i64 = old
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('_').nth(1))
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if now - made > seconds {
            let _ = db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"))
                .await;
        }
    }
    let _ = db.close().await;
}

/// A service secret of 64 random hex digits, for a deployment that lives only as long as a run.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The service secret of every throwaway deployment in this process.
pub fn secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(random_secret)
}

/// The token keys of every throwaway deployment on this machine, made once: the registry's
/// signing keys and their public halves as a JSON Web Key Set (what services verify with when
/// `auth.public_keys_file` is set), in the temporary directory.
pub fn key_files() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static FILES: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join("cezone-test-keys");
        let signing = dir.join("signing.json");
        let public = dir.join("public.json");
        let set = crate::access::auth::keyset::KeySet::read_or_create(&signing)
            .expect("the throwaway signing keys can be made");
        let jwks = crate::access::auth::keyset::to_jwks(&set.public().expect("public keys"));
        // Written aside and renamed: concurrent processes write the same text.
        let tmp = dir.join(format!("public-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, jwks).expect("the throwaway public keys can be written");
        std::fs::rename(&tmp, &public).expect("the throwaway public keys can be written");
        (signing, public)
    })
}

/// Auth settings of a throwaway deployment: the machine's throwaway signing keys, services
/// verifying with their public key file (no registry needed), and the process's secret.
pub fn use_keys(auth: &mut AuthSettings) {
    let (signing, public) = key_files();
    auth.signing_keys_file = signing.clone();
    auth.public_keys_file = public.clone();
    auth.secret = crate::settings::Secret::new(secret());
}

/// Calls as an unscoped caller of `role` named `{name}-{role}`, under `settings`' key.
///
/// # Panics
/// When the settings' key or TLS files cannot be read (a throwaway deployment made them).
pub fn bearer_named(settings: &Settings, role: cezone_domain::access::Role, name: &str) -> Bearer {
    let keys = Keys::load(&settings.auth).expect("the key is valid");
    let who = cezone_domain::access::Principal::new(&format!("{name}-{role}"), role, None, None)
        .expect("unscoped roles need no scope");
    Bearer::minted(keys, who).with_tls(
        crate::tls::client_config(&settings.grpc).expect("the deployment's TLS files are readable"),
    )
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
