//! Who is signed in to the workbench: a session per browser, kept in this process and named by
//! a random id in an HttpOnly, SameSite=Strict cookie. A session holds the person's account,
//! the access and refresh tokens the registry gave at sign-in (the browser never sees them) and
//! the form token every form must send back (CSRF). A session unused for
//! `web.session_idle_seconds` ends; so does one whose refresh token has expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use cezone_domain::access::{Principal, Role};
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_proto::registry::v1 as pr;
use chrono::{DateTime, Utc};
use rand::Rng;

/// The session cookie: scoped to the workbench's paths.
pub const COOKIE: &str = "cezone_session";
/// Before sign-in: the form token of the sign-in form (double-submitted).
pub const PRE_COOKIE: &str = "cezone_signin";

/// A random token, 256 bits, hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// The person a session is for, as the registry described their account at sign-in.
#[derive(Debug, Clone)]
pub struct Person {
    pub login: String,
    pub display_name: String,
    pub principal: Principal,
}

impl Person {
    /// Reads an account as the registry returned it; an account whose role or scope does not
    /// parse cannot sign in to the workbench.
    pub fn from_account(a: &pr::Account) -> Result<Person, String> {
        let role = Role::parse(&a.role)?;
        let unit = (!a.unit.is_empty())
            .then(|| UnitId::parse(&a.unit))
            .transpose()?;
        let org_unit = (!a.org_unit.is_empty())
            .then(|| OrgUnitId::parse(&a.org_unit))
            .transpose()?;
        let principal = Principal::new(&a.login, role, unit, org_unit)?;
        Ok(Person {
            login: a.login.clone(),
            display_name: a.display_name.clone(),
            principal,
        })
    }
}

/// The tokens a session calls the services with.
#[derive(Debug)]
pub struct Tokens {
    pub access: String,
    pub access_expires: DateTime<Utc>,
    pub refresh: String,
    pub refresh_expires: DateTime<Utc>,
}

impl Tokens {
    pub fn from_login(r: &pr::LoginResponse) -> Option<Tokens> {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        Some(Tokens {
            access: r.access_token.clone(),
            access_expires: at(&r.expires_at)?,
            refresh: r.refresh_token.clone(),
            refresh_expires: at(&r.refresh_expires_at)?,
        })
    }

    /// Whether the access token should be exchanged before it is used (a minute's margin).
    pub fn stale(&self, now: DateTime<Utc>) -> bool {
        self.access_expires - chrono::Duration::seconds(60) <= now
    }
}

/// One signed-in browser.
#[derive(Debug)]
pub struct Session {
    pub person: Person,
    /// The form token: every form of this session carries it.
    pub csrf: String,
    /// Held while a request refreshes the tokens, so two requests never both spend the same
    /// refresh token (the registry rotates it on every use).
    pub tokens: tokio::sync::Mutex<Tokens>,
    last_seen: Mutex<Instant>,
}

/// Every session of this process.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::default(),
        }
    }

    /// Starts a session; returns its id (the cookie's value).
    pub fn start(&self, person: Person, tokens: Tokens) -> (String, Arc<Session>) {
        let id = random_token();
        let session = Arc::new(Session {
            person,
            csrf: random_token(),
            tokens: tokio::sync::Mutex::new(tokens),
            last_seen: Mutex::new(Instant::now()),
        });
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Ended sessions go when new ones come, so the map never holds more than the live ones
        // and those that ended since the last sign-in.
        let idle = self.idle;
        map.retain(|_, s| !s.idle_for(idle));
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session named by the request's cookie, marked as used now.
    pub fn find(&self, headers: &HeaderMap) -> Option<(String, Arc<Session>)> {
        let id = cookie(headers, COOKIE)?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get(&id)?.clone();
        if session.idle_for(self.idle) {
            map.remove(&id);
            return None;
        }
        *session.last_seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Some((id, session))
    }

    pub fn end(&self, id: &str) -> Option<Arc<Session>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }
}

impl Session {
    fn idle_for(&self, idle: Duration) -> bool {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            >= idle
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so): then
/// cookies are marked Secure.
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, on the workbench's paths; `max_age` None
/// for a cookie that lasts the browser session, Some(0) to delete it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/work; HttpOnly; SameSite=Strict");
    if secure {
        s.push_str("; Secure");
    }
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&s).expect("cookie names and hex values are valid header text")
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name_and_only_as_hex() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cezone_session=abc123; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc123"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("cezone_session=<script>"),
        );
        assert_eq!(cookie(&h, COOKIE), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abc", "abcd"));
    }

    #[test]
    fn idle_sessions_end() {
        let sessions = Sessions::new(Duration::from_millis(30));
        let person = Person {
            login: "li.wei".into(),
            display_name: "李伟".into(),
            principal: Principal::new("li.wei", Role::Inspector, None, None).unwrap(),
        };
        let now = Utc::now();
        let tokens = Tokens {
            access: "x".into(),
            access_expires: now,
            refresh: "y".into(),
            refresh_expires: now,
        };
        let (id, _) = sessions.start(person, tokens);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={id}")).unwrap(),
        );
        assert!(sessions.find(&h).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(sessions.find(&h).is_none());
    }
}
