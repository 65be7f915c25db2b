//! People's accounts: created, listed, disabled and their passwords reset by the evaluation
//! office and district IT; signing in with a password (argon2id hashes, a lockout after
//! repeated failures), short-lived access tokens signed with the registry's own key, and opaque
//! refresh tokens kept only as their SHA-256 and rotated on every use. Every change and every
//! sign-in, successful or not, is audited in the same transaction; a password never is.

use std::sync::OnceLock;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use cezone_domain::access::{Action, Principal, Role};
use cezone_domain::org::{OrgLevel, OrgUnitId};
use cezone_domain::units::UnitId;
use cezone_platform::access::auth::{Keys, permit};
use cezone_platform::time::{now, rfc3339};
use cezone_platform::{ApiError, ErrorCode};
use cezone_proto::registry::v1 as pr;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::entities::{account, org_unit, refresh_token};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password accepted, in bytes (hashing stays cheap).
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_LOGIN_CHARS: usize = 64;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Failed sign-ins in a row that lock an account, and for how long.
pub const MAX_FAILURES: i32 = 5;
pub const LOCK_MINUTES: i64 = 15;
/// Lifetimes of the access token a sign-in returns and of its refresh token.
pub const ACCESS_MINUTES: i64 = 15;
pub const REFRESH_HOURS: i64 = 12;

const SERVICE: &str = "registry";

/// The one answer to an unknown login and to a wrong password.
const WRONG: &str = "the login or the password is wrong";

fn wrong() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, WRONG)
}

fn stale() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "the refresh token is not valid (unknown, already used, expired or signed out); sign in again",
    )
}

/// Who records what nobody signed in did: the registry itself.
fn registry_actor() -> Principal {
    Principal::new(SERVICE, Role::Service, None, None).expect("a valid service principal")
}

/// A login name as stored: trimmed, 1 to 64 characters, no control characters.
pub fn login_name(field: &str, text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(field, "is empty"));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{t:?} contains a control character"),
        ));
    }
    let n = t.chars().count();
    if n > MAX_LOGIN_CHARS {
        let head: String = t.chars().take(20).collect();
        return Err(ApiError::invalid(
            field,
            format!("'{head}…' has {n} characters; at most {MAX_LOGIN_CHARS}"),
        ));
    }
    Ok(t.to_string())
}

fn display_name(text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ApiError::invalid("display_name", "is empty"));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "display_name",
            format!("{t:?} contains a control character"),
        ));
    }
    let n = t.chars().count();
    if n > MAX_DISPLAY_NAME_CHARS {
        return Err(ApiError::invalid(
            "display_name",
            format!("has {n} characters; at most {MAX_DISPLAY_NAME_CHARS}"),
        ));
    }
    Ok(t.to_string())
}

/// A new password's length (never its value: it is not echoed anywhere).
pub fn check_password(field: &str, password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("has {n} characters; at least {MIN_PASSWORD_CHARS} are needed"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("has {} bytes; at most {MAX_PASSWORD_BYTES}", password.len()),
        ));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::internal_msg(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal_msg(format!("password hash: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches in practice, checked for unknown logins so they cost the same
/// time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let secret: [u8; 32] = rand::random();
        hash_password(&hex::encode(secret)).unwrap_or_default()
    })
}

/// Hashing is slow on purpose: off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal_msg(format!("password hashing task: {e}")))
}

async fn hashed(password: &str) -> Result<String, ApiError> {
    let password = password.to_string();
    blocking(move || hash_password(&password)).await?
}

async fn verified(password: &str, phc: &str) -> Result<bool, ApiError> {
    let (password, phc) = (password.to_string(), phc.to_string());
    blocking(move || verify_password(&password, &phc)).await
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Until when the account is locked, if it is at `at`.
fn locked_until(m: &account::Model, at: DateTime<Utc>) -> Option<String> {
    let until = m.locked_until.as_deref()?;
    (parse_time(until)? > at).then(|| until.to_string())
}

fn locked_error(until: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        format!(
            "the account is locked until {until} after {MAX_FAILURES} failed sign-ins in a row; \
             try again then, or ask the evaluation office to reset the password"
        ),
    )
}

fn disabled_error(login: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        format!("the account '{login}' is disabled; ask the evaluation office"),
    )
}

/// The caller an account's tokens stand for.
pub fn principal(m: &account::Model) -> Result<Principal, ApiError> {
    let bad = |what: &str, e: String| {
        ApiError::internal_msg(format!("stored account {} has a bad {what}: {e}", m.login))
    };
    let role = Role::parse(&m.role).map_err(|e| bad("role", e))?;
    let unit = m
        .unit
        .as_deref()
        .map(UnitId::parse)
        .transpose()
        .map_err(|e| bad("unit", e))?;
    let org_unit = m
        .org_unit
        .as_deref()
        .map(OrgUnitId::parse)
        .transpose()
        .map_err(|e| bad("org unit", e))?;
    Principal::new(&m.login, role, unit, org_unit).map_err(|e| bad("scope", e))
}

pub fn to_proto(m: &account::Model) -> pr::Account {
    pr::Account {
        login: m.login.clone(),
        display_name: m.display_name.clone(),
        role: m.role.clone(),
        unit: m.unit.clone().unwrap_or_default(),
        org_unit: m.org_unit.clone().unwrap_or_default(),
        active: m.active,
        failed_attempts: m.failed_attempts.max(0) as u32,
        locked_until: locked_until(m, now()).unwrap_or_default(),
        created_at: m.created_at.clone(),
        updated_at: m.updated_at.clone(),
        last_login_at: m.last_login_at.clone().unwrap_or_default(),
        email: m.email.clone().unwrap_or_default(),
    }
}

async fn audit(
    conn: &impl ConnectionTrait,
    who: &Principal,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    cezone_platform::access::audit::append(
        conn,
        SERVICE,
        cezone_platform::access::audit::Entry {
            actor: who,
            action,
            target,
            details,
        },
    )
    .await?;
    Ok(())
}

/// A refused sign-in, audited in a transaction of its own (the refusal changes nothing else).
async fn audit_refusal(
    db: &DatabaseConnection,
    action: &str,
    login: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let txn = db.begin().await?;
    audit(&txn, &registry_actor(), action, login, details).await?;
    txn.commit().await?;
    Ok(())
}

/// The longest e-mail address accepted (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;

/// An e-mail address as reminders are sent to it, or none for the empty string.
fn email_address(text: &str) -> Result<Option<String>, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let bad = |why: String| Err(ApiError::invalid("email", why));
    if t.chars().count() > MAX_EMAIL_CHARS {
        return bad(format!("is longer than {MAX_EMAIL_CHARS} characters"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "<>,;:\"()[]\\".contains(*c))
    {
        return bad(format!(
            "{t:?} contains {c:?}; give one address such as li.wei@nanhai.gov.cn"
        ));
    }
    match t.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && local.len() <= 64
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(Some(t.to_string()))
        }
        _ => bad(format!(
            "{t:?} is not an e-mail address such as li.wei@nanhai.gov.cn"
        )),
    }
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// The field a role's scope error belongs to.
fn scope_field(role: Role, unit: bool) -> &'static str {
    match role {
        Role::ResponsibleUnit | Role::Town if !unit => "unit",
        Role::ResponsibleUnit | Role::Town => "org_unit",
        _ if unit => "unit",
        _ => "org_unit",
    }
}

/// The account, its row locked for the rest of the transaction on PostgreSQL.
async fn locked(
    conn: &impl ConnectionTrait,
    login: &str,
) -> Result<Option<account::Model>, ApiError> {
    Ok(account::Entity::find_by_id(login.to_string())
        .lock_exclusive()
        .one(conn)
        .await?)
}

async fn find(conn: &impl ConnectionTrait, login: &str) -> Result<account::Model, ApiError> {
    locked(conn, login)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no account '{login}'")))
}

pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    r: &pr::CreateAccountRequest,
) -> Result<account::Model, ApiError> {
    permit(who, &Action::ManageAccounts, None)?;
    let login = login_name("login", &r.login)?;
    let name = display_name(&r.display_name)?;
    let role = Role::parse(r.role.trim()).map_err(|e| ApiError::invalid("role", e))?;
    if role == Role::Service {
        return Err(ApiError::invalid(
            "role",
            "'service' is for the services themselves; a person's account is district_admin, \
             evaluation_office, responsible_unit, town or inspector",
        ));
    }
    let unit = optional(&r.unit)
        .map(UnitId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("unit", e))?;
    let org = optional(&r.org_unit)
        .map(OrgUnitId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("org_unit", e))?;
    Principal::new("scope-check", role, unit.clone(), org.clone())
        .map_err(|e| ApiError::invalid(scope_field(role, unit.is_some()), e))?;
    Principal::new(&login, role, unit.clone(), org.clone())
        .map_err(|e| ApiError::invalid("login", e))?;
    check_password("password", &r.password)?;
    let email = email_address(&r.email)?;
    if let Some(o) = &org {
        let Some(u) = org_unit::Entity::find_by_id(o.to_string()).one(db).await? else {
            return Err(ApiError::invalid(
                "org_unit",
                format!("'{o}' is not an existing org unit"),
            ));
        };
        if OrgLevel::parse(&u.level) != Ok(OrgLevel::Town) {
            return Err(ApiError::invalid(
                "org_unit",
                format!("'{o}' is a {}; a town account acts for a town", u.level),
            ));
        }
    }
    let hash = hashed(&r.password).await?;
    let txn = db.begin().await?;
    if account::Entity::find_by_id(login.clone())
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::already_exists(format!(
            "an account '{login}' already exists"
        )));
    }
    let at = rfc3339(now());
    let m = account::ActiveModel {
        login: Set(login.clone()),
        display_name: Set(name),
        role: Set(role.as_str().to_string()),
        unit: Set(unit.map(|u| u.to_string())),
        org_unit: Set(org.map(|o| o.to_string())),
        active: Set(true),
        password_hash: Set(hash),
        failed_attempts: Set(0),
        locked_until: Set(None),
        created_at: Set(at.clone()),
        updated_at: Set(at),
        last_login_at: Set(None),
        email: Set(email),
    }
    .insert(&txn)
    .await?;
    audit(
        &txn,
        who,
        "account.create",
        &login,
        serde_json::json!({
            "display_name": m.display_name,
            "role": m.role,
            "unit": m.unit,
            "org_unit": m.org_unit,
            "email": m.email,
        }),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(login = %m.login, role = %m.role, "account created");
    Ok(m)
}

pub async fn list(
    db: &DatabaseConnection,
    who: &Principal,
) -> Result<Vec<account::Model>, ApiError> {
    permit(who, &Action::ManageAccounts, None)?;
    Ok(account::Entity::find()
        .order_by_asc(account::Column::Login)
        .all(db)
        .await?)
}

/// Changes the display name or e-mail address of an account (those given).
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    r: &pr::UpdateAccountRequest,
) -> Result<account::Model, ApiError> {
    permit(who, &Action::ManageAccounts, None)?;
    let login = login_name("login", &r.login)?;
    let name = r.display_name.as_deref().map(display_name).transpose()?;
    let email = r.email.as_deref().map(email_address).transpose()?;
    if name.is_none() && email.is_none() {
        return Err(ApiError::invalid(
            "display_name",
            "nothing to change: give display_name, email or both",
        ));
    }
    let txn = db.begin().await?;
    let m = find(&txn, &login).await?;
    let mut changed = serde_json::Map::new();
    let mut a: account::ActiveModel = m.clone().into();
    if let Some(name) = name
        && name != m.display_name
    {
        changed.insert("display_name".into(), name.clone().into());
        a.display_name = Set(name);
    }
    if let Some(email) = email
        && email != m.email
    {
        changed.insert("email".into(), email.clone().into());
        a.email = Set(email);
    }
    if changed.is_empty() {
        return Ok(m);
    }
    a.updated_at = Set(rfc3339(now()));
    let m = a.update(&txn).await?;
    audit(
        &txn,
        who,
        "account.update",
        &login,
        serde_json::Value::Object(changed),
    )
    .await?;
    txn.commit().await?;
    Ok(m)
}

/// The active accounts with an address that act for `unit` (and, for the towns, `org_unit`).
pub async fn recipients(
    db: &DatabaseConnection,
    who: &Principal,
    r: &pr::ListRecipientsRequest,
) -> Result<Vec<pr::Recipient>, ApiError> {
    permit(who, &Action::ReadRecipients, None)?;
    let unit = UnitId::parse(r.unit.trim()).map_err(|e| ApiError::invalid("unit", e))?;
    let org = optional(&r.org_unit)
        .map(OrgUnitId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("org_unit", e))?;
    let mut q = account::Entity::find()
        .filter(account::Column::Active.eq(true))
        .filter(account::Column::Email.is_not_null())
        .filter(account::Column::Unit.eq(unit.as_str()));
    q = match &org {
        Some(o) => q
            .filter(account::Column::Role.eq(Role::Town.as_str()))
            .filter(account::Column::OrgUnit.eq(o.as_str())),
        None => q.filter(account::Column::Role.eq(Role::ResponsibleUnit.as_str())),
    };
    Ok(q.order_by_asc(account::Column::Login)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|m| {
            Some(pr::Recipient {
                email: m.email?,
                login: m.login,
                display_name: m.display_name,
            })
        })
        .collect())
}

/// Ends every refresh token of `login`; how many there were.
async fn revoke_all(conn: &impl ConnectionTrait, login: &str) -> Result<u64, ApiError> {
    Ok(refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::Login.eq(login))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Disables an account: it can no longer sign in, and its refresh tokens end.
pub async fn disable(
    db: &DatabaseConnection,
    who: &Principal,
    login: &str,
) -> Result<account::Model, ApiError> {
    set_active(db, who, login, false).await
}

/// Enables a disabled account again, with a fresh count of failed sign-ins.
pub async fn enable(
    db: &DatabaseConnection,
    who: &Principal,
    login: &str,
) -> Result<account::Model, ApiError> {
    set_active(db, who, login, true).await
}

async fn set_active(
    db: &DatabaseConnection,
    who: &Principal,
    login: &str,
    active: bool,
) -> Result<account::Model, ApiError> {
    permit(who, &Action::ManageAccounts, None)?;
    let login = login_name("login", login)?;
    let txn = db.begin().await?;
    let m = find(&txn, &login).await?;
    if m.active == active {
        return Ok(m);
    }
    let mut a: account::ActiveModel = m.into();
    a.active = Set(active);
    a.updated_at = Set(rfc3339(now()));
    if active {
        // A fresh start: earlier failures do not count against the re-enabled account.
        a.failed_attempts = Set(0);
        a.locked_until = Set(None);
    }
    let m = a.update(&txn).await?;
    let (action, details) = if active {
        ("account.enable", serde_json::json!({}))
    } else {
        let revoked = revoke_all(&txn, &login).await?;
        (
            "account.disable",
            serde_json::json!({ "refresh_tokens_ended": revoked }),
        )
    };
    audit(&txn, who, action, &login, details).await?;
    txn.commit().await?;
    tracing::info!(login = %login, active, "account {}", if active { "enabled" } else { "disabled" });
    Ok(m)
}

pub async fn reset_password(
    db: &DatabaseConnection,
    who: &Principal,
    login: &str,
    password: &str,
) -> Result<account::Model, ApiError> {
    permit(who, &Action::ManageAccounts, None)?;
    let login = login_name("login", login)?;
    check_password("new_password", password)?;
    find(db, &login).await?;
    let hash = hashed(password).await?;
    let txn = db.begin().await?;
    let m = find(&txn, &login).await?;
    let was_locked = locked_until(&m, now()).is_some();
    let mut a: account::ActiveModel = m.into();
    a.password_hash = Set(hash);
    a.failed_attempts = Set(0);
    a.locked_until = Set(None);
    a.updated_at = Set(rfc3339(now()));
    let m = a.update(&txn).await?;
    let revoked = revoke_all(&txn, &login).await?;
    audit(
        &txn,
        who,
        "account.reset_password",
        &login,
        serde_json::json!({ "unlocked": was_locked, "refresh_tokens_ended": revoked }),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(login = %login, "password reset");
    Ok(m)
}

/// A signed-in account's tokens.
pub struct Issued {
    pub access_token: String,
    pub expires_at: String,
    pub refresh_token: String,
    pub refresh_expires_at: String,
    pub account: account::Model,
}

/// Without the tokens: they are the account's credentials.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("account", &self.account)
            .field("expires_at", &self.expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

impl Issued {
    pub fn to_proto(&self) -> pr::LoginResponse {
        pr::LoginResponse {
            access_token: self.access_token.clone(),
            expires_at: self.expires_at.clone(),
            refresh_token: self.refresh_token.clone(),
            refresh_expires_at: self.refresh_expires_at.clone(),
            account: Some(to_proto(&self.account)),
        }
    }
}

/// An access token and a new refresh token (stored by its hash) for `m`, in `txn`.
async fn issue(
    txn: &impl ConnectionTrait,
    keys: &Keys,
    m: account::Model,
    at: DateTime<Utc>,
) -> Result<Issued, ApiError> {
    let who = principal(&m)?;
    let ttl = (ACCESS_MINUTES * 60).min(keys.max_ttl);
    let access_token = keys.issue(&who, ttl)?;
    let secret: [u8; 32] = rand::random();
    let refresh = hex::encode(secret);
    let refresh_expires = at + Duration::hours(REFRESH_HOURS);
    // This account's expired tokens go on the way: the table stays small.
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::Login.eq(m.login.as_str()))
        .filter(refresh_token::Column::ExpiresAt.lt(rfc3339(at)))
        .exec(txn)
        .await?;
    refresh_token::ActiveModel {
        token_hash: Set(sha256_hex(&refresh)),
        login: Set(m.login.clone()),
        created_at: Set(rfc3339(at)),
        expires_at: Set(rfc3339(refresh_expires)),
    }
    .insert(txn)
    .await?;
    Ok(Issued {
        access_token,
        expires_at: rfc3339(at + Duration::seconds(ttl)),
        refresh_token: refresh,
        refresh_expires_at: rfc3339(refresh_expires),
        account: m,
    })
}

pub async fn login(
    db: &DatabaseConnection,
    keys: &Keys,
    login: &str,
    password: &str,
) -> Result<Issued, ApiError> {
    let login = login_name("login", login)?;
    if password.is_empty() {
        return Err(ApiError::invalid("password", "is empty"));
    }
    let Some(found) = account::Entity::find_by_id(login.clone()).one(db).await? else {
        // As long as a wrong password takes, and the same answer.
        verified(password, decoy_hash()).await?;
        audit_refusal(
            db,
            "account.login_failed",
            &login,
            serde_json::json!({ "reason": "unknown login" }),
        )
        .await?;
        return Err(wrong());
    };
    if let Some(until) = locked_until(&found, now()) {
        audit_refusal(
            db,
            "account.login_failed",
            &login,
            serde_json::json!({ "reason": "locked", "locked_until": until }),
        )
        .await?;
        return Err(locked_error(&until));
    }
    let right = verified(password, &found.password_hash).await?;
    let at = now();
    let txn = db.begin().await?;
    let Some(m) = locked(&txn, &login).await? else {
        return Err(wrong());
    };
    // Another attempt may have locked it while the password was checked.
    if let Some(until) = locked_until(&m, at) {
        audit(
            &txn,
            &registry_actor(),
            "account.login_failed",
            &login,
            serde_json::json!({ "reason": "locked", "locked_until": until }),
        )
        .await?;
        txn.commit().await?;
        return Err(locked_error(&until));
    }
    if !right {
        // A lock that has run out starts the count again.
        let before = if m.locked_until.is_some() {
            0
        } else {
            m.failed_attempts
        };
        let attempts = before + 1;
        let until =
            (attempts >= MAX_FAILURES).then(|| rfc3339(at + Duration::minutes(LOCK_MINUTES)));
        let mut a: account::ActiveModel = m.into();
        a.failed_attempts = Set(attempts);
        a.locked_until = Set(until.clone());
        a.update(&txn).await?;
        audit(
            &txn,
            &registry_actor(),
            "account.login_failed",
            &login,
            serde_json::json!({
                "reason": "wrong password",
                "failed_attempts": attempts,
                "locked_until": until,
            }),
        )
        .await?;
        txn.commit().await?;
        if until.is_some() {
            tracing::warn!(login = %login, "account locked after repeated failed sign-ins");
        }
        return Err(wrong());
    }
    if !m.active {
        audit(
            &txn,
            &registry_actor(),
            "account.login_failed",
            &login,
            serde_json::json!({ "reason": "disabled" }),
        )
        .await?;
        txn.commit().await?;
        return Err(disabled_error(&login));
    }
    let mut a: account::ActiveModel = m.into();
    a.failed_attempts = Set(0);
    a.locked_until = Set(None);
    a.last_login_at = Set(Some(rfc3339(at)));
    let m = a.update(&txn).await?;
    grant(txn, keys, m, at, "account.login").await
}

/// A new token pair for `m`, audited as `action`, committed with `txn`.
async fn grant(
    txn: sea_orm::DatabaseTransaction,
    keys: &Keys,
    m: account::Model,
    at: DateTime<Utc>,
    action: &str,
) -> Result<Issued, ApiError> {
    let who = principal(&m)?;
    let login = m.login.clone();
    let issued = issue(&txn, keys, m, at).await?;
    audit(
        &txn,
        &who,
        action,
        &login,
        serde_json::json!({ "refresh_expires_at": issued.refresh_expires_at }),
    )
    .await?;
    txn.commit().await?;
    Ok(issued)
}

pub async fn refresh(
    db: &DatabaseConnection,
    keys: &Keys,
    token: &str,
) -> Result<Issued, ApiError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid("refresh_token", "is empty"));
    }
    let hash = sha256_hex(token);
    let at = now();
    let txn = db.begin().await?;
    let Some(row) = refresh_token::Entity::find_by_id(hash.clone())
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Err(stale());
    };
    // Used once, whatever follows: two refreshes with one token, only one gets a new pair.
    let gone = refresh_token::Entity::delete_by_id(hash)
        .exec(&txn)
        .await?
        .rows_affected;
    if gone != 1 || parse_time(&row.expires_at).is_none_or(|t| t <= at) {
        txn.commit().await?;
        return Err(stale());
    }
    let Some(m) = locked(&txn, &row.login).await? else {
        txn.commit().await?;
        return Err(stale());
    };
    if !m.active {
        audit(
            &txn,
            &registry_actor(),
            "account.refresh_failed",
            &m.login,
            serde_json::json!({ "reason": "disabled" }),
        )
        .await?;
        txn.commit().await?;
        return Err(disabled_error(&m.login));
    }
    grant(txn, keys, m, at, "account.refresh").await
}

/// Ends a refresh token: its own account's, or anyone's for an account manager. Whether a
/// token was ended (false when unknown, used or expired).
pub async fn logout(
    db: &DatabaseConnection,
    who: &Principal,
    token: &str,
) -> Result<bool, ApiError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid("refresh_token", "is empty"));
    }
    let hash = sha256_hex(token);
    let txn = db.begin().await?;
    let Some(row) = refresh_token::Entity::find_by_id(hash.clone())
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Ok(false);
    };
    if row.login != who.subject {
        permit(who, &Action::ManageAccounts, None)?;
    }
    refresh_token::Entity::delete_by_id(hash).exec(&txn).await?;
    let current = parse_time(&row.expires_at).is_some_and(|t| t > now());
    audit(
        &txn,
        who,
        "account.logout",
        &row.login,
        serde_json::json!({ "ended": current }),
    )
    .await?;
    txn.commit().await?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("anything", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn logins_and_passwords_are_checked_by_field() {
        assert_eq!(login_name("login", "  li.wei ").unwrap(), "li.wei");
        assert_eq!(login_name("login", "评估办公室").unwrap(), "评估办公室");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
            let e = login_name("login", bad).unwrap_err();
            assert_eq!(e.violations[0].field, "login", "{bad:?}");
        }
        assert!(login_name("login", &"桂".repeat(64)).is_ok());
        let e = check_password("password", "short").unwrap_err();
        assert_eq!(e.violations[0].field, "password");
        assert!(e.message.contains("at least 10"), "{}", e.message);
        assert!(!e.message.contains("short"), "the value is never echoed");
        assert!(check_password("password", "ten chars!").is_ok());
        assert!(check_password("password", &"x".repeat(2000)).is_err());
    }

    #[test]
    fn scope_errors_name_the_missing_or_extra_field() {
        // A town without a unit lacks its unit; with one, it lacks (or, for a department,
        // has one too many) org unit; another role with a unit has one scope too many.
        assert_eq!(scope_field(Role::Town, false), "unit");
        assert_eq!(scope_field(Role::Town, true), "org_unit");
        assert_eq!(scope_field(Role::ResponsibleUnit, true), "org_unit");
        assert_eq!(scope_field(Role::Inspector, true), "unit");
        assert_eq!(scope_field(Role::Inspector, false), "org_unit");
    }
}
