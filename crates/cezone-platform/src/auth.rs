//! Bearer tokens on every gRPC call: HS256 JWTs signed with the deployment's key, carrying the
//! caller's role and scope. Services check them on the way in (health and reflection stay
//! open for probes and tools), decide with `cezone_domain::access`, and attach a token of
//! their own when they call each other.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cezone_domain::access::{Action, Principal, Role, authorize};
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::units::UnitId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::error::{ApiError, ErrorCode};
use crate::settings::AuthSettings;

/// Shortest key accepted, in bytes: HS256 is only as strong as its key.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send the header `authorization: Bearer <token>`")]
    Missing,
    #[error("the authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature does not match this deployment's key")]
    BadSignature,
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
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Key(_) => ApiError::internal(e),
            other => ApiError::new(ErrorCode::Unauthenticated, other.to_string()),
        }
    }
}

/// A service's key and the credentials it calls other services with (its token and, with
/// mutual TLS, its certificate).
pub fn service_credentials(
    settings: &crate::settings::Settings,
    service: &str,
) -> Result<(Arc<Keys>, Bearer), ApiError> {
    let keys = Keys::load(&settings.auth)?;
    let bearer =
        Bearer::service(keys.clone(), service).with_tls(crate::tls::client_config(&settings.grpc)?);
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

/// The deployment's signing key with the rules tokens are checked by.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
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
    /// The key events are signed with, derived from the same secret.
    event_key: Arc<cezone_bus::EventKey>,
}

/// Verified tokens remembered at most; the memory is forgotten whole when full.
const VERIFIED_TOKENS: usize = 4096;

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("issuer", &self.issuer)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// The key from `auth.secret`, or else from `auth.secret_file`, which is created with a
    /// fresh random key (mode 0600) the first time, so a single-machine install works at once.
    pub fn load(s: &AuthSettings) -> Result<Arc<Keys>, AuthError> {
        let secret = if s.secret.is_empty() {
            read_or_create_secret(&s.secret_file)?
        } else {
            s.secret.clone().into_bytes()
        };
        Keys::from_secret(&secret, s).map(Arc::new)
    }

    /// As `load`, but a missing key file is an error rather than a new key: for commands, which
    /// must sign with the key the services use, not one of their own.
    pub fn load_existing(s: &AuthSettings) -> Result<Arc<Keys>, AuthError> {
        if s.secret.is_empty() && !s.secret_file.exists() {
            return Err(AuthError::Key(format!(
                "no key at {} (auth.secret_file): start the services first, run from their \
                 working directory, or give the key as CEZONE__AUTH__SECRET",
                s.secret_file.display()
            )));
        }
        Keys::load(s)
    }

    pub fn from_secret(secret: &[u8], s: &AuthSettings) -> Result<Keys, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Key(format!(
                "the key has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                secret.len()
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&s.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "iat"]);
        validation.leeway = s.leeway_seconds;
        validation.validate_aud = false;
        // `nbf` and `iat` are checked below, with the same leeway, against one clock reading.
        validation.validate_nbf = false;
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: s.issuer.clone(),
            default_ttl: (s.token_minutes * 60) as i64,
            max_ttl: (s.max_token_minutes * 60) as i64,
            leeway: s.leeway_seconds as i64,
            verified: Mutex::new(HashMap::new()),
            event_key: Arc::new(cezone_bus::EventKey::derive(secret)),
        })
    }

    /// The key the deployment's buses sign and check events with.
    pub fn event_key(&self) -> Arc<cezone_bus::EventKey> {
        self.event_key.clone()
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
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Key(e.to_string()))
    }

    /// Signs `claims` as they are, with the deployment's key: for systems that mint their own
    /// tokens with the shared key, and for tests of what the services accept. The services
    /// check every claim (times, lifetime, role, scope) whoever signed it.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Key(e.to_string()))
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

    fn verify_fully(&self, token: &str, now: i64) -> Result<(Principal, i64), AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
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

fn principal_of(c: &Claims) -> Result<Principal, String> {
    let role = Role::parse(&c.role)?;
    let unit = c.unit.as_deref().map(UnitId::parse).transpose()?;
    let org_unit = c.org_unit.as_deref().map(OrgUnitId::parse).transpose()?;
    Principal::new(&c.sub, role, unit, org_unit)
}

fn read_or_create_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let key_err =
        |what: &str, e: std::io::Error| AuthError::Key(format!("{what} {}: {e}", path.display()));
    match std::fs::read(path) {
        Ok(bytes) => return Ok(trim_ascii(bytes)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(key_err("cannot read", e));
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| key_err("cannot create the folder of", e))?;
    }
    let key: [u8; 32] = rand::random();
    let text = hex::encode(key);
    // Written whole under a private name, then linked into place: another process starting at
    // the same moment sees either no key or the whole key, never half of one.
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(key_err("cannot write", e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(file = %path.display(), "created a new token signing key");
            Ok(text.into_bytes())
        }
        // Another service of this install created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)
            .map(trim_ascii)
            .map_err(|e| key_err("cannot read", e)),
        Err(e) => Err(key_err("cannot create", e)),
    }
}

fn trim_ascii(bytes: Vec<u8>) -> Vec<u8> {
    bytes.trim_ascii().to_vec()
}

/// The gRPC methods callable without a bearer token: signing in with a password and renewing
/// with a refresh token, which is how a person gets a token in the first place. Nothing else.
pub const SIGN_IN_METHODS: [&str; 2] = [
    "/cezone.registry.v1.RegistryService/Login",
    "/cezone.registry.v1.RegistryService/Refresh",
];

/// The path of the gRPC call (`/package.Service/Method`), put beside the request by
/// [`crate::grpc::WithPath`] so the authenticator can tell the sign-in methods apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledPath(pub String);

/// The server side: every call of a service passes through this before its handler.
#[derive(Debug, Clone)]
pub struct Authenticate {
    keys: Arc<Keys>,
    /// Paths served without a token (see [`SIGN_IN_METHODS`]); empty for most services.
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
                Err(Status::unauthenticated(e.to_string()))
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
    authorize(who, action, tree).map_err(|denial| {
        tracing::warn!(
            subject = %who.subject,
            role = %who.role,
            action = action.name(),
            reason = %denial,
            "permission denied"
        );
        ApiError::new(ErrorCode::PermissionDenied, denial.to_string())
    })
}

/// The client side: where the bearer token of outgoing calls comes from.
#[derive(Debug)]
enum Source {
    Fixed(MetadataValue<Ascii>),
    /// Minted from the deployment's key and renewed at half its lifetime.
    Minted {
        keys: Arc<Keys>,
        who: Principal,
        cached: Mutex<Option<(MetadataValue<Ascii>, i64)>>,
    },
}

/// A caller's credentials: the bearer token attached to every call (`authorization: Bearer
/// …`) and, when the deployment uses mutual TLS, the client certificate its channels present.
#[derive(Debug, Clone)]
pub struct Bearer {
    source: Arc<Source>,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

pub type AuthChannel = InterceptedService<Channel, Bearer>;

impl Bearer {
    /// A token given by an operator or another system.
    pub fn token(token: &str) -> Result<Bearer, AuthError> {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| AuthError::Malformed("the token is not ASCII".into()))?;
        Ok(Bearer {
            source: Arc::new(Source::Fixed(value)),
            tls: None,
        })
    }

    /// Tokens for `who`, minted from the deployment's key as they are needed.
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

    /// A cezone service calling another one.
    pub fn service(keys: Arc<Keys>, name: &str) -> Bearer {
        let who = Principal::new(name, Role::Service, None, None).expect("service names are valid");
        Bearer::minted(keys, who)
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
        match &self.tls {
            Some(tls) => tonic::transport::Endpoint::from_shared(crate::tls::https(url))?
                .tls_config(tls.clone()),
            None => tonic::transport::Endpoint::from_shared(url.to_string()),
        }
    }

    pub fn attach(&self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, self.clone())
    }

    fn header(&self) -> Result<MetadataValue<Ascii>, Status> {
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
                let v: MetadataValue<Ascii> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Status::internal("a minted token is not ASCII"))?;
                *slot = Some((v.clone(), now + ttl / 2));
                Ok(v)
            }
        }
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let v = self.header()?;
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn keys() -> Keys {
        let s = Settings::defaults().auth;
        Keys::from_secret(b"0123456789abcdef0123456789abcdef", &s).unwrap()
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
        let other = Keys::from_secret(
            b"another key of thirty-two bytes!!",
            &Settings::defaults().auth,
        )
        .unwrap();
        let forged = other.issue(&office(), 600).unwrap();
        assert!(matches!(k.verify(&forged), Err(AuthError::BadSignature)));
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
        let claims = Claims {
            sub: "mallory".into(),
            role: "root".into(),
            unit: None,
            org_unit: None,
            iss: "cezone".into(),
            iat: chrono::Utc::now().timestamp(),
            nbf: None,
            exp: chrono::Utc::now().timestamp() + 600,
            jti: "x".into(),
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        match k.verify(&t) {
            Err(AuthError::Claims(m)) => assert!(m.contains("'root'"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// Signs `claims` as the deployment would (its key, HS256): what someone holding the key,
    /// or a careless integration, could send.
    fn signed(k: &Keys, f: impl FnOnce(&mut Claims)) -> String {
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
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap()
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
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &k.encoding).unwrap()
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
        let mut check = Authenticate::allowing(Arc::new(keys()), &SIGN_IN_METHODS);
        let call = |check: &mut Authenticate, path: Option<&str>| {
            let mut req = Request::new(());
            if let Some(p) = path {
                req.extensions_mut().insert(CalledPath(p.to_string()));
            }
            check.call(req)
        };
        for open in SIGN_IN_METHODS {
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
        let theirs = Keys::from_secret(b"0123456789abcdef0123456789abcdef", &other).unwrap();
        let t = theirs.issue(&office(), 600).unwrap();
        match keys().verify(&t) {
            Err(AuthError::Claims(m)) => assert!(m.contains("issuer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_keys_are_refused() {
        let e = Keys::from_secret(b"short", &Settings::defaults().auth).unwrap_err();
        assert!(e.to_string().contains("at least 32"), "{e}");
    }

    #[test]
    fn the_key_file_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::defaults().auth;
        s.secret = String::new();
        s.secret_file = dir.path().join("keys/cezone.key");
        assert!(
            Keys::load_existing(&s).is_err(),
            "a command never makes a key"
        );
        assert!(!s.secret_file.exists());
        let a = Keys::load(&s).unwrap();
        let b = Keys::load_existing(&s).unwrap();
        let t = a.issue(&office(), 60).unwrap();
        assert_eq!(b.verify(&t).unwrap(), office());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&s.secret_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
