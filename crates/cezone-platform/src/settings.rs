//! One typed settings tree: embedded defaults, then an optional file, then `CEZONE__…`
//! environment variables. Invalid settings fail at start naming the key and the reason.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

mod checks;

pub const DEFAULTS: &str = include_str!("default.toml");

/// A secret setting (`auth.secret`): read as given, never shown — its `Debug` and its
/// serialization (what `cezone config show` prints) say `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { "***" }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?})", self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub grpc: GrpcSettings,
    pub registry: ServicePort,
    pub evidence: EvidenceSettings,
    pub surveys: SurveySettings,
    pub scoring: ScoringSettings,
    pub bus: BusSettings,
    pub services: ServiceUrls,
    pub web: WebSettings,
    pub scheduler: SchedulerSettings,
    pub notify: NotifySettings,
    pub auth: AuthSettings,
}

/// Reminders by e-mail (the scheduler sends them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifySettings {
    /// `smtp://[user:password@]host:port[?tls=required]` or `smtps://…`; empty: no e-mail.
    pub smtp_url: String,
    /// The sender, `Name <address>` or an address.
    pub from: String,
}

/// Bearer tokens: the registry's signing keys, where the other services find the public
/// keys, the service secret, and token lifetimes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthSettings {
    /// The registry's Ed25519 signing keys (created with one key if missing).
    pub signing_keys_file: PathBuf,
    /// A JSON Web Key Set of the public keys; empty: fetched from the registry.
    pub public_keys_file: PathBuf,
    /// How often the keys are re-read or re-fetched, in seconds.
    pub keys_refresh_seconds: u64,
    /// The service secret itself (at least 32 bytes). Empty: read `secret_file`, creating it
    /// if missing.
    pub secret: Secret,
    pub secret_file: PathBuf,
    /// The `iss` claim tokens carry and must carry.
    pub issuer: String,
    /// Lifetime of issued tokens, in minutes.
    pub token_minutes: u64,
    /// The longest lifetime (`exp` − `iat`) of any token accepted or issued, in minutes.
    pub max_token_minutes: u64,
    /// Clock difference tolerated between machines, in seconds.
    pub leeway_seconds: u64,
}

/// The scoreboard web page, served beside gRPC on `grpc.host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSettings {
    /// HTTP port; 0 picks a free one.
    pub port: u16,
    /// Seconds a client has to send a request's headers.
    pub header_read_seconds: u64,
    /// A workbench session unused this long ends; the person signs in again.
    pub session_idle_seconds: u64,
}

/// Recompute-and-freeze runs before each checkpoint of the calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerSettings {
    pub port: u16,
    /// Hours before each checkpoint, comma-separated: "72,24".
    pub lead_hours: LeadHours,
    /// Local time of day a checkpoint falls due, "HH:MM".
    pub checkpoint_time: TimeOfDay,
    pub utc_offset_hours: i32,
    /// Longest wait between two looks at the calendar, in seconds.
    pub poll_seconds: u64,
}

impl SchedulerSettings {
    /// When runs fall due. Only the offset can be wrong here (it is checked at load).
    pub fn policy(&self) -> Result<cezone_domain::schedule::SchedulePolicy, String> {
        Ok(cezone_domain::schedule::SchedulePolicy {
            lead_hours: self.lead_hours.hours().to_vec(),
            checkpoint_time: self.checkpoint_time.0,
            utc_offset: cezone_domain::schedule::SchedulePolicy::utc_offset(self.utc_offset_hours)?,
        })
    }
}

/// Hours before each checkpoint a run falls due, longest first, each once: written "72,24",
/// read (and refused, naming the key) when the settings load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LeadHours(Vec<u32>);

impl LeadHours {
    pub fn hours(&self) -> &[u32] {
        &self.0
    }
}

impl TryFrom<String> for LeadHours {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        cezone_domain::schedule::SchedulePolicy::lead_hours(&text)
            .map(LeadHours)
            .map_err(|reason| format!("scheduler.lead_hours = {text:?}: {reason}"))
    }
}

impl From<LeadHours> for String {
    fn from(v: LeadHours) -> String {
        v.0.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

/// A local time of day, written "HH:MM".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(pub chrono::NaiveTime);

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        cezone_domain::schedule::SchedulePolicy::checkpoint_time(&text)
            .map(TimeOfDay)
            .map_err(|reason| format!("scheduler.checkpoint_time = {text:?}: {reason}"))
    }
}

impl From<TimeOfDay> for String {
    fn from(v: TimeOfDay) -> String {
        v.0.format("%H:%M").to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusSettings {
    pub amqp_url: String,
    pub prefix: String,
    pub prefetch: u16,
    /// The queues consumers declare on RabbitMQ.
    pub queue_type: QueueType,
    /// Quorum queues: deliveries of one message before the broker dead-letters it.
    pub delivery_limit: u32,
    /// Events an outbox relay publishes per round trip (confirmations outstanding together).
    pub publish_window: u32,
    /// Unpublished events in a service's outbox past which it refuses writes
    /// (`RESOURCE_EXHAUSTED`, with a retry hint) until its relay catches up.
    pub outbox_backlog_limit: u64,
    /// How long published outbox rows, processed event ids and applied change records are kept.
    pub retention_hours: u32,
}

/// RabbitMQ queue kinds (see the README for which to use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueType {
    Classic,
    Quorum,
}

impl BusSettings {
    /// The bus configuration of a process whose broker connection is named `connection_name`.
    pub fn config(&self, connection_name: &str) -> cezone_bus::BusConfig {
        cezone_bus::BusConfig {
            amqp_url: self.amqp_url.clone(),
            prefix: self.prefix.clone(),
            connection_name: connection_name.to_string(),
            prefetch: self.prefetch,
            queue_type: match self.queue_type {
                QueueType::Classic => cezone_bus::QueueType::Classic,
                QueueType::Quorum => cezone_bus::QueueType::Quorum,
            },
            delivery_limit: self.delivery_limit,
            event_key: None,
        }
    }

    /// How a service's outbox relay publishes and what it keeps.
    pub fn relay(&self) -> cezone_bus::outbox::RelayConfig {
        cezone_bus::outbox::RelayConfig {
            window: self.publish_window,
            backlog_limit: self.outbox_backlog_limit,
            retention: self.retention(),
        }
    }

    pub fn retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.retention_hours) * 3600)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrpcSettings {
    /// The address every service (and the page) listens on: an IP address, 0.0.0.0 for all.
    pub host: std::net::IpAddr,
    pub max_message_bytes: usize,
    /// Mutual TLS between services and clients: this process's certificate and key (PEM) and
    /// the CA that signs every certificate of the deployment. All three or none.
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    pub tls_ca_file: PathBuf,
    /// A streaming call (an upload, a survey batch) that sends nothing for this long is
    /// abandoned and rolled back, in seconds.
    pub stream_idle_seconds: u64,
    /// The longest a streaming call may last in all, in seconds.
    pub stream_total_seconds: u64,
    /// Connections one process serves at once (gRPC and the web page each); more are closed
    /// as they arrive.
    pub max_connections: usize,
}

impl GrpcSettings {
    /// Whether calls go over mutual TLS.
    pub fn tls(&self) -> bool {
        !self.tls_cert_file.as_os_str().is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePort {
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceSettings {
    pub port: u16,
    pub storage_root: PathBuf,
    pub max_file_bytes: u64,
    pub chunk_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurveySettings {
    pub port: u16,
    pub write_batch_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoringSettings {
    pub port: u16,
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceUrls {
    pub registry_url: String,
    pub evidence_url: String,
    pub surveys_url: String,
    pub scoring_url: String,
    pub scheduler_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration cannot be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("setting {key} = {value:?} is invalid: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl Settings {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Settings::load_with_env(
            file,
            Environment::with_prefix("CEZONE")
                .prefix_separator("__")
                .separator("__"),
        )
    }

    /// The bus configuration of a process serving cezone services: signs and checks events
    /// with the deployment's service secret (see `cezone_bus::EventKey`).
    pub fn bus_config(
        &self,
        connection_name: &str,
    ) -> Result<cezone_bus::BusConfig, crate::access::auth::AuthError> {
        let event_key = crate::access::auth::event_key(&self.auth)?;
        Ok(self.bus.config(connection_name).signed_with(event_key))
    }

    /// Every service and the page on a port the system picks (port 0): how the tests and the
    /// benchmarks run several deployments on one machine.
    pub fn use_free_ports(&mut self) {
        for port in [
            &mut self.registry.port,
            &mut self.evidence.port,
            &mut self.surveys.port,
            &mut self.scoring.port,
            &mut self.scheduler.port,
            &mut self.web.port,
        ] {
            *port = 0;
        }
    }

    /// The embedded defaults alone, as tests start from.
    pub fn defaults() -> Settings {
        let s: Settings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("the embedded defaults deserialize");
        s.validate().expect("the embedded defaults are valid");
        s
    }

    fn load_with_env(file: Option<&Path>, env: Environment) -> Result<Settings, SettingsError> {
        let mut b = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(f) = file {
            b = b.add_source(File::from(f).required(true));
        }
        let s: Settings = b
            .add_source(env.try_parsing(true))
            .build()?
            .try_deserialize()?;
        s.validate()?;
        Ok(s)
    }

    /// The effective configuration with secrets (passwords in URLs) masked; `auth.secret`
    /// masks itself.
    pub fn masked(&self) -> Settings {
        let mut s = self.clone();
        s.database.url = mask_url_password(&s.database.url);
        s.bus.amqp_url = mask_url_password(&s.bus.amqp_url);
        s.notify.smtp_url = mask_url_password(&s.notify.smtp_url);
        s
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid() {
        let s = Settings::defaults();
        assert!(s.database.url.starts_with("sqlite:"));
        assert_eq!(s.registry.port, 50051);
    }

    #[test]
    fn environment_overrides_the_defaults() {
        let env = Environment::with_prefix("CEZONE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(
                [
                    (
                        "CEZONE__DATABASE__URL".to_string(),
                        "postgres://u:p@h/db".to_string(),
                    ),
                    ("CEZONE__SCORING__PERIOD".to_string(), "2014".to_string()),
                ]
                .into_iter()
                .collect(),
            ));
        let s = Settings::load_with_env(None, env).unwrap();
        assert_eq!(s.database.url, "postgres://u:p@h/db");
        assert_eq!(s.scoring.period, 2014);
        assert_eq!(s.masked().database.url, "postgres://u:***@h/db");
    }

    #[test]
    fn an_invalid_setting_names_its_key_and_reason() {
        let env = Environment::with_prefix("CEZONE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(
                [("CEZONE__DATABASE__URL".to_string(), "mysql://x".to_string())]
                    .into_iter()
                    .collect(),
            ));
        let err = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(
            err.contains("database.url") && err.contains("sqlite: or postgres://"),
            "{err}"
        );
    }

    #[test]
    fn a_host_that_is_not_an_ip_address_is_refused_naming_its_key() {
        let env = Environment::with_prefix("CEZONE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(
                [("CEZONE__GRPC__HOST".to_string(), "localhost".to_string())]
                    .into_iter()
                    .collect(),
            ));
        let err = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("grpc.host"), "{err}");
    }

    #[test]
    fn a_wrongly_typed_value_is_refused() {
        let env = Environment::with_prefix("CEZONE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(
                [("CEZONE__REGISTRY__PORT".to_string(), "many".to_string())]
                    .into_iter()
                    .collect(),
            ));
        let err = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env = Environment::with_prefix("CEZONE")
            .prefix_separator("__")
            .separator("__")
            .source(Some(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ));
        Settings::load_with_env(None, env)
    }

    #[test]
    fn schedule_lead_times_come_from_the_environment() {
        let s = load_env(&[("CEZONE__SCHEDULER__LEAD_HOURS", "48")]).unwrap();
        assert_eq!(s.scheduler.policy().unwrap().lead_hours, vec![48]);
        let s = load_env(&[("CEZONE__SCHEDULER__LEAD_HOURS", "24,168")]).unwrap();
        assert_eq!(s.scheduler.policy().unwrap().lead_hours, vec![168, 24]);
    }

    #[test]
    fn a_bad_schedule_names_its_key() {
        for (key, value, named) in [
            (
                "CEZONE__SCHEDULER__LEAD_HOURS",
                "soon",
                "scheduler.lead_hours",
            ),
            (
                "CEZONE__SCHEDULER__CHECKPOINT_TIME",
                "9 am",
                "scheduler.checkpoint_time",
            ),
            (
                "CEZONE__SCHEDULER__UTC_OFFSET_HOURS",
                "20",
                "scheduler.utc_offset_hours",
            ),
            (
                "CEZONE__SCHEDULER__POLL_SECONDS",
                "0",
                "scheduler.poll_seconds",
            ),
        ] {
            let err = load_env(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains(value), "{err}");
        }
    }
}
