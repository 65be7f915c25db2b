//! The services as separate `cezone serve` processes, as containers run them: one registry,
//! evidence and surveys, two scoring replicas, on one PostgreSQL database and one RabbitMQ
//! prefix of their own. Each process logs to a file of its own; signals are real signals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cezone_bus::QueueType;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The processes of a deployment, in start order.
pub const PROCESSES: [&str; 5] = ["registry", "evidence", "surveys", "scoring-a", "scoring-b"];

/// The service a process serves.
fn service(process: &str) -> &str {
    process.split('-').next().unwrap_or(process)
}

#[derive(Debug)]
pub struct Deployment {
    binary: PathBuf,
    env: Vec<(String, String)>,
    ports: BTreeMap<&'static str, u16>,
    children: BTreeMap<&'static str, Child>,
    pub logs: tempfile::TempDir,
    pub database_url: String,
    pub amqp_url: String,
    pub prefix: String,
    pub secret: String,
}

impl Deployment {
    /// The registry's signing keys (created by the registry on its first start): what the
    /// harness mints its own tokens with, as an operator on the registry's machine would.
    pub fn keys(&self) -> Result<std::sync::Arc<cezone_platform::access::auth::Keys>> {
        let mut auth = cezone_platform::settings::Settings::defaults().auth;
        auth.secret = cezone_platform::settings::Secret::new(self.secret.clone());
        auth.signing_keys_file = self.logs.path().join("token-signing-keys.json");
        Ok(cezone_platform::access::auth::Keys::load_existing(&auth)?)
    }
}

fn free_port() -> Result<u16> {
    Ok(cezone_platform::scratch::unused_port()?)
}

impl Deployment {
    /// Settings for every process; nothing is started yet.
    pub fn new(
        binary: &Path,
        database_url: &str,
        amqp_url: &str,
        queue_type: QueueType,
    ) -> Result<Deployment> {
        let logs = tempfile::Builder::new().prefix("cezone-chaos-").tempdir()?;
        let prefix = format!("chaos{}", uuid::Uuid::new_v4().simple());
        let secret = hex_secret();
        let mut ports = BTreeMap::new();
        for p in PROCESSES {
            ports.insert(p, free_port()?);
        }
        let mut env = vec![
            (
                "CEZONE__DATABASE__URL".to_string(),
                database_url.to_string(),
            ),
            ("CEZONE__BUS__AMQP_URL".to_string(), amqp_url.to_string()),
            ("CEZONE__BUS__PREFIX".to_string(), prefix.clone()),
            (
                "CEZONE__BUS__QUEUE_TYPE".to_string(),
                queue_type.name().to_string(),
            ),
            ("CEZONE__AUTH__SECRET".to_string(), secret.clone()),
            // The registry signs with these; the other processes fetch its public keys.
            (
                "CEZONE__AUTH__SIGNING_KEYS_FILE".to_string(),
                logs.path()
                    .join("token-signing-keys.json")
                    .display()
                    .to_string(),
            ),
            (
                "CEZONE__EVIDENCE__STORAGE_ROOT".to_string(),
                logs.path().join("evidence").display().to_string(),
            ),
            ("CEZONE__LOG__FORMAT".to_string(), "json".to_string()),
            (
                "CEZONE__LOG__FILTER".to_string(),
                "warn,cezone_bus=info,cezone_scoring=info".to_string(),
            ),
        ];
        for (name, key) in [
            ("registry", "REGISTRY"),
            ("evidence", "EVIDENCE"),
            ("surveys", "SURVEYS"),
            ("scoring-a", "SCORING"),
        ] {
            env.push((
                format!("CEZONE__SERVICES__{key}_URL"),
                format!("http://127.0.0.1:{}", ports[name]),
            ));
        }
        Ok(Deployment {
            binary: binary.to_path_buf(),
            env,
            ports,
            children: BTreeMap::new(),
            logs,
            database_url: database_url.to_string(),
            amqp_url: amqp_url.to_string(),
            prefix,
            secret,
        })
    }

    pub fn url(&self, process: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[process])
    }

    /// Starts a process (appending to its log).
    pub fn start(&mut self, process: &'static str) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(process))?;
        let service = service(process);
        let child = Command::new(&self.binary)
            .arg("serve")
            .envs(self.env.iter().cloned())
            .env_remove("RUST_LOG")
            .env("CEZONE_SERVICES", service)
            .env(
                format!("CEZONE__{}__PORT", service.to_uppercase()),
                self.ports[process].to_string(),
            )
            .current_dir(self.logs.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {process} ({})", self.binary.display()))?;
        self.children.insert(process, child);
        Ok(())
    }

    pub fn log_path(&self, process: &str) -> PathBuf {
        self.logs.path().join(format!("{process}.log"))
    }

    /// The last lines of a process's log, for a report of what went wrong.
    pub fn log_tail(&self, process: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(process)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends a signal to a running process ("KILL", "STOP", "CONT", "TERM").
    pub fn signal(&self, process: &str, signal: &str) -> Result<()> {
        let child = self
            .children
            .get(process)
            .with_context(|| format!("{process} is not running"))?;
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {process} failed");
        }
        Ok(())
    }

    /// Waits for a signalled process to exit (at most `within`; then it is killed).
    pub async fn reap(&mut self, process: &str, within: Duration) -> Result<()> {
        let Some(mut child) = self.children.remove(process) else {
            return Ok(());
        };
        let deadline = Instant::now() + within;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{process} did not exit within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the process answers gRPC health checks with SERVING.
    pub async fn wait_healthy(&mut self, process: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let url = self.url(process);
        loop {
            if let Some(child) = self.children.get_mut(process)
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{process} exited ({status}) while starting:\n{}",
                    self.log_tail(process, 30)
                );
            }
            if serving(&url).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{process} is not healthy after {within:?}:\n{}",
                    self.log_tail(process, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts every process in order, each healthy before the next.
    pub async fn start_all(&mut self) -> Result<()> {
        self.start_only(&PROCESSES).await
    }

    /// Starts these processes in order, each healthy before the next.
    pub async fn start_only(&mut self, processes: &[&'static str]) -> Result<()> {
        for p in processes {
            self.start(p)?;
            self.wait_healthy(p, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    /// Adds a setting (`CEZONE__…`) for processes started from now on.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn is_running(&self, process: &str) -> bool {
        self.children.contains_key(process)
    }

    /// Kills every process.
    pub fn stop_all(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.children) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop_all();
    }
}

async fn serving(url: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_string()) else {
        return false;
    };
    let Ok(channel) = endpoint
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
    else {
        return false;
    };
    matches!(
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status()),
        Ok(ServingStatus::Serving)
    )
}

/// A random key for the deployment's tokens and events.
fn hex_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
