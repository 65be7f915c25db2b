//! Bearer tokens on every gRPC call: JWTs signed by the registry alone (EdDSA, Ed25519, with a
//! `kid` naming the key), carrying the caller's role and scope. The registry holds the private
//! keys ([`keyset`]); every other service verifies with their public halves, fetched from the
//! registry (or read from a file) and refreshed, so no service but the registry can mint a
//! token. Services check tokens on the way in (health and reflection stay open for probes and
//! tools), decide with `cezone_domain::access`, and call each other with a service token the
//! registry issues for the deployment's service secret.

pub mod channel;
pub mod keyset;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use cezone_domain::access::{Action, Principal, Role, authorize};
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::units::UnitId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::service::Interceptor;
use tonic::{Request, Status};

pub use channel::AuthChannel;
use keyset::{KeySet, PublicKey};

use crate::error::{ApiError, ErrorCode};
use crate::settings::{AuthSettings, Settings};

/// Shortest service secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The services that may ask the registry for a service token.
pub const SERVICES: [&str; 5] = ["evidence", "surveys", "scoring", "scheduler", "web"];
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send the header `authorization: Bearer <token>`")]
    Missing,
    #[error("the authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature does not match the registry's key")]
    BadSignature,
    #[error("the token is signed with a key this deployment does not know (kid {0})")]
    UnknownKey(String),
    /// The service has not yet had the registry's public keys: try again shortly.
    #[error("this service has not yet received the registry's public keys; try again shortly")]
    NoKeysYet,
    /// What the caller is told; the parser's own words are logged, never returned.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token is not valid yet: {0}")]
    NotYetValid(String),
    #[error("the token's lifetime is too long: {0}")]
    Lifetime(String),
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    #[error("auth key: {0}")]
    Key(String),
    /// This process holds no signing key: only the registry mints tokens.
    #[error("only the registry signs tokens; this process holds its public keys only")]
    CannotSign,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Key(_) | AuthError::CannotSign => ApiError::internal(e),
            AuthError::NoKeysYet => ApiError::new(ErrorCode::Unavailable, e.to_string()),
            other => ApiError::new(ErrorCode::Unauthenticated, other.to_string()),
        }
    }
}

/// The deployment's service secret (`auth.secret`, or else `auth.secret_file`, created with a
/// random secret the first time). It signs the events services exchange and lets a service ask
/// the registry for its token; it cannot sign a token.
#[derive(Clone)]
pub struct ServiceSecret(Arc<Vec<u8>>);

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceSecret(…)")
    }
}

impl ServiceSecret {
    pub fn load(s: &AuthSettings) -> Result<ServiceSecret, AuthError> {
        let bytes = if s.secret.is_empty() {
            keyset::read_or_create_secret(&s.secret_file)?
        } else {
            s.secret.expose().as_bytes().to_vec()
        };
        ServiceSecret::new(bytes)
    }

    pub fn new(bytes: Vec<u8>) -> Result<ServiceSecret, AuthError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Key(format!(
                "the service secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                bytes.len()
            )));
        }
        Ok(ServiceSecret(Arc::new(bytes)))
    }

    /// The key the deployment's buses sign and check events with.
    pub fn event_key(&self) -> Arc<cezone_bus::EventKey> {
        Arc::new(cezone_bus::EventKey::derive(&self.0))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// Compared in time independent of where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        use sha2::{Digest, Sha256};
        let a = Sha256::digest(self.0.as_slice());
        let b = Sha256::digest(offered.as_bytes());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// The key events are signed with under `s`.
pub fn event_key(s: &AuthSettings) -> Result<Arc<cezone_bus::EventKey>, AuthError> {
    Ok(ServiceSecret::load(s)?.event_key())
}

/// What a service other than the registry verifies tokens with (the registry's public keys,
/// fetched and kept fresh) and calls other services with (a token the registry issues it, and
/// with mutual TLS its certificate).
pub async fn service_credentials(
    settings: &Settings,
    service: &str,
) -> Result<(Arc<Keys>, Bearer), ApiError> {
    let tls = crate::tls::client_config(&settings.grpc)?;
    let keys = Keys::verifier(settings).await?;
    let bearer = Bearer::service(settings, service)?.with_tls(tls);
    Ok((keys, bearer))
}
/// What a cezone token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_unit: Option<String>,
    pub iss: String,
    pub iat: i64,
    /// Not before: absent in the tokens cezone issues, checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    pub jti: String,
}

/// Where a process's verification keys come from, and so how they are kept fresh.
#[derive(Debug, Clone)]
enum KeySource {
    /// The registry's own signing key file, re-read (`cezone keys rotate` changes it).
    Signing(PathBuf),
    /// A file of public keys (a JSON Web Key Set), as an operator may mount it.
    PublicFile(PathBuf),
    /// The registry's `GetSigningKeys`.
    Registry {
        url: String,
        tls: Option<tonic::transport::ClientTlsConfig>,
    },
}

/// The registry's private keys, ready to sign with.
struct Signing {
    set: KeySet,
    /// (kid, active from, key), oldest first.
    encoding: Vec<(String, i64, EncodingKey)>,
}

/// The keys a process verifies tokens with (and, in the registry, signs them with), with the
/// rules tokens are checked by.
pub struct Keys {
    /// Only in the registry (and a command run beside it).
    signing: Option<RwLock<Signing>>,
    /// kid → the public key it names.
    public: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    issuer: String,
    /// Lifetime of tokens issued without an explicit one, in seconds.
    pub default_ttl: i64,
    /// The longest lifetime (`exp` − `iat`) accepted, whoever signed the token, in seconds.
    pub max_ttl: i64,
    /// Clock difference tolerated, in seconds.
    leeway: i64,
    /// Tokens verified lately, with their caller and expiry: a client sends the same token
    /// with every call, and its signature and claims cannot change, so they are checked once.
    /// Only the expiry is checked again on each call.
    verified: Mutex<HashMap<String, (Principal, i64)>>,
    /// Wakes the refresher early when a token names a key not held yet.
    nudge: Arc<tokio::sync::Notify>,
}

/// Verified tokens remembered at most; the memory is forgotten whole when full.
const VERIFIED_TOKENS: usize = 4096;

/// How long a service starting beside the registry waits for its public keys before it
/// serves anyway (answering UNAVAILABLE until they arrive).
const FIRST_KEYS_WAIT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("issuer", &self.issuer)
            .field("signs", &self.signing.is_some())
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

impl Keys {
    fn empty(s: &AuthSettings) -> Keys {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&s.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "iat"]);
        validation.leeway = s.leeway_seconds;
        validation.validate_aud = false;
        // `nbf` and `iat` are checked below, with the same leeway, against one clock reading.
        validation.validate_nbf = false;
        Keys {
            signing: None,
            public: RwLock::new(HashMap::new()),
            validation,
            issuer: s.issuer.clone(),
            default_ttl: (s.token_minutes * 60) as i64,
            max_ttl: (s.max_token_minutes * 60) as i64,
            leeway: s.leeway_seconds as i64,
            verified: Mutex::new(HashMap::new()),
            nudge: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Keys that sign with `set` (the registry's) and verify with its public halves.
    pub fn from_keyset(set: KeySet, s: &AuthSettings) -> Result<Keys, AuthError> {
        let mut keys = Keys::empty(s);
        keys.signing = Some(RwLock::new(Signing {
            set: KeySet::default(),
            encoding: Vec::new(),
        }));
        keys.install_signing(set)?;
        Ok(keys)
    }

    /// Keys that verify with `public` only.
    pub fn from_public(public: &[PublicKey], s: &AuthSettings) -> Keys {
        let keys = Keys::empty(s);
        keys.install_public(public);
        keys
    }

    /// The registry's keys, from `auth.signing_keys_file`, created with a fresh key the first
    /// time so a single-machine install works at once; re-read every
    /// `auth.keys_refresh_seconds`, so a rotation needs no restart.
    pub fn load(s: &AuthSettings) -> Result<Arc<Keys>, AuthError> {
        let set = KeySet::read_or_create(&s.signing_keys_file)?;
        let keys = Arc::new(Keys::from_keyset(set, s)?);
        spawn_refresh(
            &keys,
            KeySource::Signing(s.signing_keys_file.clone()),
            refresh_every(s),
        );
        Ok(keys)
    }

    /// As `load`, but a missing key file is an error rather than a new key: for commands, which
    /// must sign with the registry's keys, not keys of their own.
    pub fn load_existing(s: &AuthSettings) -> Result<Arc<Keys>, AuthError> {
        if !s.signing_keys_file.exists() {
            return Err(AuthError::Key(format!(
                "no signing keys at {} (auth.signing_keys_file): only the registry's machine \
                 holds them; run there (from the registry's working directory), or sign in \
                 and pass a token as CEZONE_TOKEN",
                s.signing_keys_file.display()
            )));
        }
        Keys::load(s)
    }

    /// What a service other than the registry verifies with: the public keys in
    /// `auth.public_keys_file` when it is set, else the registry's (`GetSigningKeys` at
    /// `services.registry_url`); kept fresh every `auth.keys_refresh_seconds`, and at once
    /// when a token names a key not held yet.
    pub async fn verifier(settings: &Settings) -> Result<Arc<Keys>, ApiError> {
        let s = &settings.auth;
        let source = if s.public_keys_file.as_os_str().is_empty() {
            KeySource::Registry {
                url: settings.services.registry_url.clone(),
                tls: crate::tls::client_config(&settings.grpc)?,
            }
        } else {
            KeySource::PublicFile(s.public_keys_file.clone())
        };
        let keys = Arc::new(Keys::empty(s));
        match &source {
            // A file is there or the deployment is misconfigured: say so at start.
            KeySource::PublicFile(_) => {
                keys.install_public(&source.fetch().await.map_err(AuthError::Key)?);
            }
            _ => {
                let first = tokio::time::timeout(FIRST_KEYS_WAIT, async {
                    loop {
                        match source.fetch().await {
                            Ok(public) => return public,
                            Err(e) => {
                                tracing::debug!(reason = %e, "waiting for the registry's keys");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                })
                .await;
                match first {
                    Ok(public) => keys.install_public(&public),
                    Err(_) => tracing::warn!(
                        "the registry's public keys could not be fetched within {} s; serving \
                         anyway, every call is refused as unavailable until they arrive",
                        FIRST_KEYS_WAIT.as_secs()
                    ),
                }
            }
        }
        spawn_refresh(&keys, source, refresh_every(s));
        Ok(keys)
    }

    fn install_signing(&self, set: KeySet) -> Result<(), AuthError> {
        let mut encoding = Vec::with_capacity(set.keys.len());
        for k in &set.keys {
            let key = EncodingKey::from_ed_der(&k.pkcs8()?);
            encoding.push((k.kid.clone(), k.active_from, key));
        }
        self.install_public(&set.public()?);
        if let Some(signing) = &self.signing {
            *signing.write().unwrap_or_else(|e| e.into_inner()) = Signing { set, encoding };
        }
        Ok(())
    }

    fn install_public(&self, public: &[PublicKey]) {
        let mut map = HashMap::with_capacity(public.len());
        for k in public {
            match DecodingKey::from_ed_components(&k.x) {
                Ok(key) => {
                    map.insert(k.kid.clone(), key);
                }
                Err(e) => tracing::warn!(kid = %k.kid, reason = %e, "public key skipped"),
            }
        }
        *self.public.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// The ids of the public keys held now.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .public
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// The public halves of the signing keys (in the registry; empty elsewhere).
    pub fn published(&self) -> Result<Vec<PublicKey>, AuthError> {
        match &self.signing {
            Some(s) => s.read().unwrap_or_else(|e| e.into_inner()).set.public(),
            None => Err(AuthError::CannotSign),
        }
    }

    /// A signed token for `who`, valid for `ttl_seconds` from now (at most `max_ttl`).
    pub fn issue(&self, who: &Principal, ttl_seconds: i64) -> Result<String, AuthError> {
        if ttl_seconds > self.max_ttl {
            return Err(AuthError::Lifetime(format!(
                "{} minutes asked, at most {} (auth.max_token_minutes)",
                ttl_seconds / 60,
                self.max_ttl / 60
            )));
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: who.subject.clone(),
            role: who.role.as_str().to_string(),
            unit: who.unit.as_ref().map(|u| u.as_str().to_string()),
            org_unit: who.org_unit.as_ref().map(|o| o.as_str().to_string()),
            iss: self.issuer.clone(),
            iat: now,
            nbf: None,
            exp: now + ttl_seconds,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.sign(&claims)
    }

    /// Signs `claims` as they are, with the registry's current key: for the registry, for an
    /// operator's command beside it, and for tests of what the services accept. The services
    /// check every claim (times, lifetime, role, scope) whoever signed it.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, AuthError> {
        let signing = self.signing.as_ref().ok_or(AuthError::CannotSign)?;
        let signing = signing.read().unwrap_or_else(|e| e.into_inner());
        let now = chrono::Utc::now().timestamp();
        let (kid, _, key) = signing
            .encoding
            .iter()
            .rev()
            .find(|(_, from, _)| *from <= now)
            .ok_or_else(|| AuthError::Key("no signing key is active yet".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| AuthError::Key(e.to_string()))
    }

    /// The caller a token stands for, if it is genuine, current and well formed.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    /// `verify` at the time `now` (seconds since the epoch) for a token verified before; a new
    /// token is checked in full against the clock.
    fn verify_at(&self, token: &str, now: i64) -> Result<Principal, AuthError> {
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some((who, exp)) = remembered {
            // The same rule as the full check: expired once `exp` is more than the leeway ago.
            return if exp < now - self.validation.leeway as i64 {
                Err(AuthError::Expired)
            } else {
                Ok(who)
            };
        }
        let (who, exp) = self.verify_fully(token, now)?;
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_string(), (who.clone(), exp));
        Ok(who)
    }

    /// The public key a token's header names.
    fn key_for(&self, token: &str) -> Result<DecodingKey, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            tracing::debug!(detail = %e, "token refused");
            AuthError::Malformed("it is not a signed JSON web token".into())
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Malformed(
                "it is not signed the way this deployment signs tokens".into(),
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("it does not name its signing key (kid)".into()))?;
        let public = self.public.read().unwrap_or_else(|e| e.into_inner());
        if public.is_empty() {
            return Err(AuthError::NoKeysYet);
        }
        match public.get(&kid) {
            Some(key) => Ok(key.clone()),
            None => {
                drop(public);
                self.nudge.notify_one();
                // The id is the caller's text: named only when it looks like an id.
                let shown = if kid.len() <= 64
                    && kid
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    kid
                } else {
                    "not shown".to_string()
                };
                Err(AuthError::UnknownKey(shown))
            }
        }
    }

    fn verify_fully(&self, token: &str, now: i64) -> Result<(Principal, i64), AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let key = self.key_for(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            // The parser's words (its algorithms, JSON positions) stay in the log.
            tracing::debug!(detail = %e, "token refused");
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidIssuer => {
                    AuthError::Claims("the issuer is not this deployment's".into())
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    AuthError::Claims(format!("the claim `{claim}` is missing"))
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Malformed(
                        "it is not signed the way this deployment signs tokens".into(),
                    )
                }
                ErrorKind::Json(j) => match j
                    .to_string()
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split_once('`'))
                {
                    // A claim cezone needs (iat, role, jti …) is absent: say which.
                    Some((claim, _)) if claim.len() <= 16 => {
                        AuthError::Claims(format!("the claim `{claim}` is missing"))
                    }
                    _ => AuthError::Malformed(
                        "its claims are not the claims of a cezone token".into(),
                    ),
                },
                _ => AuthError::Malformed("it is not a signed JSON web token".into()),
            }
        })?;
        let c = &data.claims;
        if c.iat > now + self.leeway {
            return Err(AuthError::NotYetValid(format!(
                "issued {} s in the future (iat)",
                c.iat - now
            )));
        }
        if let Some(nbf) = c.nbf
            && nbf > now + self.leeway
        {
            return Err(AuthError::NotYetValid(format!(
                "valid only from {} s from now (nbf)",
                nbf - now
            )));
        }
        if c.exp - c.iat > self.max_ttl {
            return Err(AuthError::Lifetime(format!(
                "{} minutes from iat to exp, at most {} accepted (auth.max_token_minutes)",
                (c.exp - c.iat) / 60,
                self.max_ttl / 60
            )));
        }
        let who = principal_of(c).map_err(AuthError::Claims)?;
        Ok((who, c.exp))
    }

    /// The caller of a request, from its `authorization` metadata.
    pub fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, AuthError> {
        let header = metadata.get("authorization").ok_or(AuthError::Missing)?;
        let text = header.to_str().map_err(|_| AuthError::NotBearer)?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or(AuthError::NotBearer)?;
        self.verify(token.trim())
    }
}

fn refresh_every(s: &AuthSettings) -> Duration {
    Duration::from_secs(s.keys_refresh_seconds.max(1))
}

impl KeySource {
    async fn fetch(&self) -> Result<Vec<PublicKey>, String> {
        match self {
            KeySource::Signing(path) => KeySet::read(path)
                .and_then(|set| set.public())
                .map_err(|e| e.to_string()),
            KeySource::PublicFile(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                keyset::parse_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            KeySource::Registry { url, tls } => {
                use cezone_proto::registry::v1 as pr;
                let answer = registry_client(url, tls)
                    .await
                    .map_err(|s| s.message().to_string())?
                    .get_signing_keys(pr::GetSigningKeysRequest {})
                    .await
                    .map_err(|s| format!("the registry at {url} refused: {}", s.message()))?
                    .into_inner();
                answer
                    .keys
                    .into_iter()
                    .map(|k| {
                        let active_from = chrono::DateTime::parse_from_rfc3339(&k.active_from)
                            .map_err(|_| format!("key {}: bad active_from", k.kid))?
                            .timestamp();
                        Ok(PublicKey {
                            kid: k.kid,
                            x: k.public_key,
                            active_from,
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Keeps `keys` fresh from `source` while they are in use (the task ends with them).
fn spawn_refresh(keys: &Arc<Keys>, source: KeySource, every: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Keys> = Arc::downgrade(keys);
    let nudge = keys.nudge.clone();
    runtime.spawn(async move {
        loop {
            let waiting = match weak.upgrade() {
                Some(k) => k.public.read().map(|p| p.is_empty()).unwrap_or(true),
                None => return,
            };
            let wait = if waiting {
                Duration::from_millis(500)
            } else {
                every
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // A token named a key not held: look again, but not more than once a second.
                _ = nudge.notified() => tokio::time::sleep(Duration::from_secs(1)).await,
            }
            let Some(k) = weak.upgrade() else { return };
            let before = k.key_ids();
            let outcome = match &source {
                KeySource::Signing(path) => KeySet::read(path)
                    .and_then(|set| k.install_signing(set))
                    .map_err(|e| e.to_string()),
                other => other.fetch().await.map(|public| k.install_public(&public)),
            };
            if outcome.is_ok() && before != k.key_ids() {
                tracing::info!(keys = ?k.key_ids(), "token verification keys updated");
            }
            if let Err(e) = outcome {
                tracing::warn!(reason = %e, "token keys not refreshed; the keys held stay in use");
            }
        }
    });
}

/// The registry at `url` without a token, for the calls that need none (its keys, a service's
/// token); bounded in time, UNAVAILABLE when it cannot be reached.
async fn registry_client(
    url: &str,
    tls: &Option<tonic::transport::ClientTlsConfig>,
) -> Result<
    cezone_proto::registry::v1::registry_service_client::RegistryServiceClient<
        tonic::transport::Channel,
    >,
    Status,
> {
    let channel = crate::channel::endpoint(url, tls)
        .map_err(|e| Status::internal(format!("registry address {url}: {e}")))?
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach the registry at {url}: {e}")))?;
    Ok(cezone_proto::registry::v1::registry_service_client::RegistryServiceClient::new(channel))
}

fn principal_of(c: &Claims) -> Result<Principal, String> {
    let role = Role::parse(&c.role)?;
    let unit = c.unit.as_deref().map(UnitId::parse).transpose()?;
    let org_unit = c.org_unit.as_deref().map(OrgUnitId::parse).transpose()?;
    Principal::new(&c.sub, role, unit, org_unit)
}
/// The registry's gRPC methods callable without a bearer token: signing in with a password
/// and renewing with a refresh token (how a person gets a token in the first place), a
/// service's token for the service secret, and the public keys tokens are verified with.
/// Nothing else.
pub const OPEN_METHODS: [&str; 4] = [
    "/cezone.registry.v1.RegistryService/Login",
    "/cezone.registry.v1.RegistryService/Refresh",
    "/cezone.registry.v1.RegistryService/IssueServiceToken",
    "/cezone.registry.v1.RegistryService/GetSigningKeys",
];

/// The path of the gRPC call (`/package.Service/Method`), put beside the request by
/// [`crate::grpc::WithPath`] so the authenticator can tell the sign-in methods apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledPath(pub String);

/// The server side: every call of a service passes through this before its handler.
#[derive(Debug, Clone)]
pub struct Authenticate {
    keys: Arc<Keys>,
    /// Paths served without a token (see [`OPEN_METHODS`]); empty for most services.
    open: &'static [&'static str],
}

impl Authenticate {
    pub fn new(keys: Arc<Keys>) -> Authenticate {
        Authenticate { keys, open: &[] }
    }

    /// As `new`, but the calls to `open` (full gRPC paths) pass without a token; a token they
    /// carry anyway is not looked at.
    pub fn allowing(keys: Arc<Keys>, open: &'static [&'static str]) -> Authenticate {
        Authenticate { keys, open }
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(CalledPath(path)) = req.extensions().get::<CalledPath>()
            && self.open.contains(&path.as_str())
        {
            return Ok(req);
        }
        match self.keys.authenticate(req.metadata()) {
            Ok(p) => {
                req.extensions_mut().insert(p);
                Ok(req)
            }
            Err(e) => {
                // At warn, with the caller's address, as permission denials are: repeated
                // attempts with forged or stale tokens must stand out.
                tracing::warn!(
                    reason = %e,
                    remote = %req
                        .remote_addr()
                        .map_or_else(|| "unknown".to_string(), |a| a.to_string()),
                    "unauthenticated call refused"
                );
                Err(match e {
                    AuthError::NoKeysYet => Status::unavailable(e.to_string()),
                    e => Status::unauthenticated(e.to_string()),
                })
            }
        }
    }
}

/// The authenticated caller of a request.
pub fn caller<T>(req: &Request<T>) -> Result<Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no authenticated caller"))
}

/// Allows `action` to `who` or refuses it with the reason, logged.
pub fn permit(who: &Principal, action: &Action, tree: Option<&OrgTree>) -> Result<(), ApiError> {
    authorize(who, action, tree).map_err(|denial| denied(who, action.name(), denial))
}

/// Refuses a role that may never do `kind`, whatever it is about, before anything the request
/// is about has been read or looked up; each subject is then asked about with [`permit`].
pub fn permit_ever(who: &Principal, kind: cezone_domain::access::Scoped) -> Result<(), ApiError> {
    cezone_domain::access::may_ever(who, kind).map_err(|denial| denied(who, kind.name(), denial))
}

/// PERMISSION_DENIED in the access rules' words, logged with who asked.
fn denied(who: &Principal, action: &str, denial: cezone_domain::access::Denial) -> ApiError {
    tracing::warn!(
        subject = %who.subject,
        role = %who.role,
        action,
        reason = %denial,
        "permission denied"
    );
    ApiError::new(ErrorCode::PermissionDenied, denial.to_string())
}

/// The client side: where the bearer token of outgoing calls comes from.
enum Source {
    Fixed(http::HeaderValue),
    /// Minted from the registry's key (in the registry, or a command beside it) and renewed
    /// at half its lifetime.
    Minted {
        keys: Arc<Keys>,
        who: Principal,
        cached: Mutex<Option<(http::HeaderValue, i64)>>,
    },
    /// Issued by the registry for the service secret, renewed at half its lifetime.
    Issued {
        registry: String,
        service: String,
        secret: ServiceSecret,
        /// (header, renew at, expires at)
        cached: tokio::sync::Mutex<Option<(http::HeaderValue, i64, i64)>>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Fixed(_) => f.write_str("Fixed"),
            Source::Minted { who, .. } => write!(f, "Minted({})", who.subject),
            Source::Issued { service, .. } => write!(f, "Issued({service})"),
        }
    }
}

/// A caller's credentials: the bearer token attached to every call (`authorization: Bearer
/// …`) and, when the deployment uses mutual TLS, the client certificate its channels present.
#[derive(Debug, Clone)]
pub struct Bearer {
    source: Arc<Source>,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

fn bearer_header(token: &str) -> Result<http::HeaderValue, AuthError> {
    http::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| AuthError::Malformed("the token is not ASCII".into()))
}

impl Bearer {
    /// A token given by an operator or another system.
    pub fn token(token: &str) -> Result<Bearer, AuthError> {
        Ok(Bearer {
            source: Arc::new(Source::Fixed(bearer_header(token)?)),
            tls: None,
        })
    }

    /// Tokens for `who`, minted from the registry's key as they are needed.
    pub fn minted(keys: Arc<Keys>, who: Principal) -> Bearer {
        Bearer {
            source: Arc::new(Source::Minted {
                keys,
                who,
                cached: Mutex::new(None),
            }),
            tls: None,
        }
    }

    /// A cezone service (`name`, one of [`SERVICES`]) calling another one with a token the
    /// registry at `services.registry_url` issues it for the service secret.
    pub fn service(settings: &Settings, name: &str) -> Result<Bearer, AuthError> {
        Ok(Bearer {
            source: Arc::new(Source::Issued {
                registry: settings.services.registry_url.clone(),
                service: name.to_string(),
                secret: ServiceSecret::load(&settings.auth)?,
                cached: tokio::sync::Mutex::new(None),
            }),
            tls: None,
        })
    }

    /// Channels made with `endpoint` present this client certificate (None: plain HTTP/2).
    pub fn with_tls(mut self, tls: Option<tonic::transport::ClientTlsConfig>) -> Bearer {
        self.tls = tls;
        self
    }

    /// Where to dial `url`: over mutual TLS (as https) when these credentials carry a
    /// certificate.
    pub fn endpoint(
        &self,
        url: &str,
    ) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
        crate::channel::endpoint(url, &self.tls)
    }

    pub fn attach(&self, channel: tonic::transport::Channel) -> AuthChannel {
        AuthChannel::new(channel, self.clone())
    }

    /// The `authorization` header value of the next call.
    pub async fn header(&self) -> Result<http::HeaderValue, Status> {
        match &*self.source {
            Source::Fixed(v) => Ok(v.clone()),
            Source::Minted { keys, who, cached } => {
                let now = chrono::Utc::now().timestamp();
                let mut slot = cached.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((v, renew_at)) = &*slot
                    && now < *renew_at
                {
                    return Ok(v.clone());
                }
                let ttl = keys.default_ttl.max(60);
                let token = keys
                    .issue(who, ttl)
                    .map_err(|e| Status::internal(e.to_string()))?;
                let v = bearer_header(&token).map_err(|e| Status::internal(e.to_string()))?;
                *slot = Some((v.clone(), now + ttl / 2));
                Ok(v)
            }
            Source::Issued {
                registry,
                service,
                secret,
                cached,
            } => {
                let mut slot = cached.lock().await;
                let now = chrono::Utc::now().timestamp();
                if let Some((v, renew_at, _)) = &*slot
                    && now < *renew_at
                {
                    return Ok(v.clone());
                }
                match self.ask_registry(registry, service, secret).await {
                    Ok((v, exp)) => {
                        *slot = Some((v.clone(), now + (exp - now) / 2, exp));
                        Ok(v)
                    }
                    // The registry is away at renewal: the token held serves while it lasts.
                    Err(e) => match &*slot {
                        Some((v, _, exp)) if now + 30 < *exp => {
                            tracing::warn!(reason = %e.message(), "service token not renewed yet");
                            Ok(v.clone())
                        }
                        _ => Err(e),
                    },
                }
            }
        }
    }

    async fn ask_registry(
        &self,
        registry: &str,
        service: &str,
        secret: &ServiceSecret,
    ) -> Result<(http::HeaderValue, i64), Status> {
        use cezone_proto::registry::v1 as pr;
        let answer = registry_client(registry, &self.tls)
            .await?
            .issue_service_token(pr::IssueServiceTokenRequest {
                service: service.to_string(),
                secret: secret.text(),
            })
            .await?
            .into_inner();
        let exp = chrono::DateTime::parse_from_rfc3339(&answer.expires_at)
            .map_err(|_| Status::internal("the registry's service token has no expiry"))?
            .timestamp();
        let v = bearer_header(&answer.access_token).map_err(|e| Status::internal(e.to_string()))?;
        Ok((v, exp))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn keys() -> Keys {
        keys_of(KeySet::generate().unwrap())
    }

    fn keys_of(set: KeySet) -> Keys {
        Keys::from_keyset(set, &Settings::defaults().auth).unwrap()
    }

    fn office() -> Principal {
        Principal::new("alice", Role::EvaluationOffice, None, None).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_to_the_same_caller() {
        let k = keys();
        let town = Principal::new(
            "guicheng-office",
            Role::Town,
            Some(UnitId::parse("towns").unwrap()),
            Some(OrgUnitId::parse("nanhai.guicheng").unwrap()),
        )
        .unwrap();
        for who in [office(), town] {
            let t = k.issue(&who, 600).unwrap();
            assert_eq!(k.verify(&t).unwrap(), who);
        }
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_refused() {
        let k = keys();
        let expired = k.issue(&office(), -3600).unwrap();
        assert!(matches!(k.verify(&expired), Err(AuthError::Expired)));
        // Another key under the same id: the signature does not match.
        let mut other = KeySet::generate().unwrap();
        other.keys[0].kid = k.key_ids()[0].clone();
        let forged = keys_of(other).issue(&office(), 600).unwrap();
        assert!(matches!(k.verify(&forged), Err(AuthError::BadSignature)));
        // A key the deployment never had.
        let stranger = keys().issue(&office(), 600).unwrap();
        assert!(matches!(k.verify(&stranger), Err(AuthError::UnknownKey(_))));
        for junk in ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
            assert!(
                matches!(k.verify(junk), Err(AuthError::Malformed(_))),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let k = keys();
        let t = k.issue(&office(), 600).unwrap();
        assert_eq!(k.verify(&t).unwrap(), office());
        assert_eq!(
            k.verified.lock().unwrap().len(),
            1,
            "remembered once verified"
        );
        let leeway = Settings::defaults().auth.leeway_seconds as i64;
        let exp = chrono::Utc::now().timestamp() + 600;
        assert_eq!(k.verify_at(&t, exp - 5).unwrap(), office());
        assert!(matches!(
            k.verify_at(&t, exp + leeway + 5),
            Err(AuthError::Expired)
        ));
        // Refused tokens are not remembered.
        let expired = k.issue(&office(), -3600).unwrap();
        assert!(matches!(k.verify(&expired), Err(AuthError::Expired)));
        assert!(matches!(k.verify(&expired), Err(AuthError::Expired)));
        assert_eq!(k.verified.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_token_with_an_unknown_role_names_it() {
        let k = keys();
        let t = signed(&k, |c| c.role = "root".into());
        match k.verify(&t) {
            Err(AuthError::Claims(m)) => assert!(m.contains("'root'"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// The office's claims for ten minutes from now, changed by `f`.
    fn claims(f: impl FnOnce(&mut Claims)) -> Claims {
        let now = chrono::Utc::now().timestamp();
        let mut claims = Claims {
            sub: "alice".into(),
            role: "evaluation_office".into(),
            unit: None,
            org_unit: None,
            iss: "cezone".into(),
            iat: now,
            nbf: None,
            exp: now + 600,
            jti: "x".into(),
        };
        f(&mut claims);
        claims
    }

    /// Signs `claims` as the registry would (its key): what someone holding the key, or a
    /// careless integration, could send.
    fn signed(k: &Keys, f: impl FnOnce(&mut Claims)) -> String {
        k.sign(&claims(f)).unwrap()
    }

    #[test]
    fn token_times_are_checked_with_the_leeway() {
        let k = keys();
        let now = chrono::Utc::now().timestamp();
        let leeway = Settings::defaults().auth.leeway_seconds as i64;
        // Valid from an hour in the future: refused, by nbf and by iat.
        let later = signed(&k, |c| c.nbf = Some(now + 3600));
        assert!(matches!(k.verify(&later), Err(AuthError::NotYetValid(m)) if m.contains("nbf")));
        let future = signed(&k, |c| {
            c.iat = now + 3600;
            c.exp = now + 3600 + 600;
        });
        assert!(matches!(k.verify(&future), Err(AuthError::NotYetValid(m)) if m.contains("iat")));
        // Within the leeway: accepted (clocks differ a little).
        let skewed = signed(&k, |c| {
            c.iat = now + leeway / 2;
            c.nbf = Some(now + leeway / 2);
        });
        assert_eq!(k.verify(&skewed).unwrap(), office());
        // A hundred years: refused whoever signed it, and so is one issued long ago.
        let century = signed(&k, |c| c.exp = now + 100 * 365 * 86_400);
        match k.verify(&century) {
            Err(AuthError::Lifetime(m)) => assert!(m.contains("auth.max_token_minutes"), "{m}"),
            other => panic!("{other:?}"),
        }
        let old = signed(&k, |c| c.iat = now - 365 * 86_400);
        assert!(matches!(k.verify(&old), Err(AuthError::Lifetime(_))));
        // Without iat: refused, naming the claim.
        let no_iat = {
            #[derive(Serialize)]
            struct NoIat<'a> {
                sub: &'a str,
                role: &'a str,
                iss: &'a str,
                exp: i64,
            }
            let c = NoIat {
                sub: "alice",
                role: "evaluation_office",
                iss: "cezone",
                exp: now + 600,
            };
            k.sign(&c).unwrap()
        };
        assert!(matches!(k.verify(&no_iat), Err(AuthError::Claims(m)) if m.contains("iat")));
        // Nothing refused was remembered.
        assert_eq!(k.verified.lock().unwrap().len(), 1);
        // And the deployment never issues what it would refuse.
        let max = Settings::defaults().auth.max_token_minutes as i64 * 60;
        assert!(matches!(
            k.issue(&office(), max + 60),
            Err(AuthError::Lifetime(_))
        ));
        assert!(k.issue(&office(), max).is_ok());
    }

    #[test]
    fn refusals_do_not_reveal_the_parser() {
        let k = keys();
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        let rs256 = {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.c2ln",
                b.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
                b.encode(br#"{"sub":"x"}"#)
            )
        };
        let bad_json = signed(&k, |c| c.role = "x".repeat(3));
        for t in [none, rs256.as_str(), "a.b.c", "%%%"] {
            let e = k.verify(t).unwrap_err().to_string();
            for internal in ["HS256", "RS256", "line", "column", "Base64", "Json", "["] {
                assert!(!e.contains(internal), "{t}: {e}");
            }
        }
        assert!(k.verify(&bad_json).is_err());
    }

    /// Held by every test that reaches the refusal's log line. tracing decides once, when a
    /// callsite is first reached, whether any subscriber listens to it; a test reaching it on
    /// another thread while the logging test installs its own subscriber can have the line
    /// cached as unheard, and the logging test then sees nothing.
    static REFUSAL_LOG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn refused_tokens_are_logged_at_warn_with_the_address() {
        let _one = REFUSAL_LOG.lock().unwrap_or_else(|e| e.into_inner());
        use std::io::Write;
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut check = Authenticate::new(Arc::new(keys()));
            for token in ["not-a-jwt", "a.b.c"] {
                let mut req = Request::new(());
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                assert!(check.call(req).is_err());
            }
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out.matches("unauthenticated call refused").count(),
            2,
            "{out}"
        );
        assert!(out.contains("WARN") && out.contains("remote="), "{out}");
    }

    #[test]
    fn only_the_sign_in_methods_pass_without_a_token() {
        let _one = REFUSAL_LOG.lock().unwrap_or_else(|e| e.into_inner());
        let mut check = Authenticate::allowing(Arc::new(keys()), &OPEN_METHODS);
        let call = |check: &mut Authenticate, path: Option<&str>| {
            let mut req = Request::new(());
            if let Some(p) = path {
                req.extensions_mut().insert(CalledPath(p.to_string()));
            }
            check.call(req)
        };
        for open in OPEN_METHODS {
            assert!(call(&mut check, Some(open)).is_ok(), "{open}");
            // Every other service refuses them without a token.
            assert!(call(&mut Authenticate::new(Arc::new(keys())), Some(open)).is_err());
        }
        for closed in [
            "/cezone.registry.v1.RegistryService/CreateAccount",
            "/cezone.registry.v1.RegistryService/Logout",
            "/cezone.registry.v1.RegistryService/LoginX",
            "/cezone.evidence.v1.EvidenceService/Login",
        ] {
            assert!(call(&mut check, Some(closed)).is_err(), "{closed}");
        }
        assert!(call(&mut check, None).is_err());
    }

    #[test]
    fn a_token_of_another_issuer_is_refused() {
        let mut other = Settings::defaults().auth;
        other.issuer = "another-system".into();
        let set = KeySet::generate().unwrap();
        let theirs = Keys::from_keyset(set.clone(), &other).unwrap();
        let t = theirs.issue(&office(), 600).unwrap();
        match keys_of(set).verify(&t) {
            Err(AuthError::Claims(m)) => assert!(m.contains("issuer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_service_secrets_are_refused() {
        let e = ServiceSecret::new(b"short".to_vec()).unwrap_err();
        assert!(e.to_string().contains("at least 32"), "{e}");
    }

    #[test]
    fn the_service_secret_cannot_sign_a_token() {
        let k = keys();
        let secret = b"0123456789abcdef0123456789abcdef";
        let claims = claims(|c| c.sub = "mallory".into());
        // As tokens were signed before the registry alone signed them: HS256 with a shared key.
        for kid in [None, Some(k.key_ids()[0].clone())] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid;
            let t =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
            match k.verify(&t) {
                Err(AuthError::Malformed(m)) => assert!(m.contains("not signed the way"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        // And a process holding public keys only cannot mint one.
        let verifier = Keys::from_public(&k.published().unwrap(), &Settings::defaults().auth);
        assert!(matches!(
            verifier.issue(&office(), 60),
            Err(AuthError::CannotSign)
        ));
        let t = k.issue(&office(), 60).unwrap();
        assert_eq!(verifier.verify(&t).unwrap(), office());
    }

    #[test]
    fn after_a_rotation_old_and_new_tokens_verify_and_the_new_key_signs() {
        let mut set = KeySet::generate().unwrap();
        let old = keys_of(set.clone());
        let before = old.issue(&office(), 600).unwrap();
        let now = chrono::Utc::now().timestamp();
        let (new, dropped) = set.rotate(now, now, 86_400).unwrap();
        assert!(dropped.is_empty());
        let rotated = keys_of(set.clone());
        let after = rotated.issue(&office(), 600).unwrap();
        let kid = jsonwebtoken::decode_header(&after).unwrap().kid.unwrap();
        assert_eq!(kid, new.kid);
        let verifier = Keys::from_public(&set.public().unwrap(), &Settings::defaults().auth);
        for t in [&before, &after] {
            assert_eq!(verifier.verify(t).unwrap(), office());
        }
        // A service that has not seen the new key yet refuses its tokens, naming the key.
        match old.verify(&after) {
            Err(AuthError::UnknownKey(k)) => assert_eq!(k, new.kid),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_key_file_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::defaults().auth;
        s.signing_keys_file = dir.path().join("keys/signing.json");
        assert!(
            Keys::load_existing(&s).is_err(),
            "a command never makes a key"
        );
        assert!(!s.signing_keys_file.exists());
        let a = Keys::load(&s).unwrap();
        let b = Keys::load_existing(&s).unwrap();
        let t = a.issue(&office(), 60).unwrap();
        assert_eq!(b.verify(&t).unwrap(), office());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&s.signing_keys_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
