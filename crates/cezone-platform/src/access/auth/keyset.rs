//! The registry's token signing keys: Ed25519 key pairs kept in one file (mode 0600) that only
//! the registry (and an operator on its machine) reads. Every other service holds the public
//! halves only, so no service but the registry can mint a token.
//!
//! Rotation adds a key that becomes the signing key at a set time in the future, so every
//! service has fetched its public half before the first token it signs arrives; a key replaced
//! stays in the file (and so verifiable) until every token it can have signed has expired.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::AuthError;

/// The one algorithm tokens are signed with.
pub const ALGORITHM: &str = "EdDSA";

/// One signing key: its id, its private key (PKCS#8) and when it starts signing.
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 v2 document, base64.
    private_key: String,
    /// Seconds since the epoch.
    pub active_from: i64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("active_from", &self.active_from)
            .finish_non_exhaustive()
    }
}

/// The public half of a signing key, as services verify with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub kid: String,
    /// The raw 32-byte Ed25519 key, base64url without padding (a JWK's `x`).
    pub x: String,
    pub active_from: i64,
}

impl SigningKey {
    /// A fresh key pair that signs from `active_from` on.
    pub fn generate(active_from: i64) -> Result<SigningKey, AuthError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| AuthError::Key("cannot generate an Ed25519 key".into()))?;
        let suffix: [u8; 4] = rand::random();
        let kid = format!(
            "{}-{}",
            chrono::DateTime::from_timestamp(active_from, 0)
                .unwrap_or_default()
                .format("%Y%m%dT%H%MZ"),
            hex::encode(suffix)
        );
        Ok(SigningKey {
            kid,
            private_key: STANDARD.encode(doc.as_ref()),
            active_from,
        })
    }

    /// The PKCS#8 document, checked to be an Ed25519 key pair.
    pub fn pkcs8(&self) -> Result<Vec<u8>, AuthError> {
        let der = STANDARD.decode(&self.private_key).map_err(|_| {
            AuthError::Key(format!("key {}: the private key is not base64", self.kid))
        })?;
        Ed25519KeyPair::from_pkcs8(&der).map_err(|_| {
            AuthError::Key(format!("key {}: not an Ed25519 PKCS#8 key pair", self.kid))
        })?;
        Ok(der)
    }

    pub fn public(&self) -> Result<PublicKey, AuthError> {
        let der = self.pkcs8()?;
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|_| AuthError::Key(format!("key {}: not an Ed25519 key pair", self.kid)))?;
        Ok(PublicKey {
            kid: self.kid.clone(),
            x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            active_from: self.active_from,
        })
    }
}

/// Every key of the file, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeySet {
    pub keys: Vec<SigningKey>,
}

impl KeySet {
    /// A set of one key, signing at once.
    pub fn generate() -> Result<KeySet, AuthError> {
        Ok(KeySet {
            keys: vec![SigningKey::generate(chrono::Utc::now().timestamp())?],
        })
    }

    pub fn parse(text: &str, path: &Path) -> Result<KeySet, AuthError> {
        let mut set: KeySet = serde_json::from_str(text).map_err(|e| {
            AuthError::Key(format!("{} is not a signing key file: {e}", path.display()))
        })?;
        if set.keys.is_empty() {
            return Err(AuthError::Key(format!("{} holds no key", path.display())));
        }
        for k in &set.keys {
            k.pkcs8()?;
        }
        set.keys.sort_by_key(|k| k.active_from);
        Ok(set)
    }

    /// The file at `path`, which must exist.
    pub fn read(path: &Path) -> Result<KeySet, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Key(format!("cannot read {}: {e}", path.display())))?;
        KeySet::parse(&text, path)
    }

    /// The file at `path`, created with one fresh key the first time, so a single-machine
    /// install works at once.
    pub fn read_or_create(path: &Path) -> Result<KeySet, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return KeySet::parse(&text, path),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(AuthError::Key(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
            Err(_) => {}
        }
        let fresh = KeySet::generate()?;
        match create_private_file(path, fresh.to_json().as_bytes())? {
            true => {
                tracing::info!(file = %path.display(), "created the token signing keys");
                Ok(fresh)
            }
            // Another process of this install created it first.
            false => KeySet::read(path),
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a key set serializes")
    }

    /// Replaces the file at `path` with this set, whole (written aside, then renamed).
    pub fn write(&self, path: &Path) -> Result<(), AuthError> {
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        create_private_file(&tmp, self.to_json().as_bytes())?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            AuthError::Key(format!("cannot replace {}: {e}", path.display()))
        })
    }

    /// The key that signs at `now`: the newest one already active.
    pub fn current(&self, now: i64) -> Option<&SigningKey> {
        self.keys.iter().rev().find(|k| k.active_from <= now)
    }

    /// Adds a key that signs from `active_from` on, and drops every key that can have signed
    /// no token still current at `now`: one replaced more than `keep_seconds` (the longest
    /// token lifetime and the clock leeway) ago. Returns the new key and the ids dropped.
    pub fn rotate(
        &mut self,
        now: i64,
        active_from: i64,
        keep_seconds: i64,
    ) -> Result<(SigningKey, Vec<String>), AuthError> {
        let key = SigningKey::generate(active_from)?;
        self.keys.push(key.clone());
        self.keys.sort_by_key(|k| k.active_from);
        let mut dropped = Vec::new();
        let replaced_at: Vec<Option<i64>> = (0..self.keys.len())
            .map(|i| self.keys.get(i + 1).map(|next| next.active_from))
            .collect();
        let mut kept = Vec::new();
        for (k, replaced) in self.keys.drain(..).zip(replaced_at) {
            match replaced {
                Some(at) if at + keep_seconds < now => dropped.push(k.kid),
                _ => kept.push(k),
            }
        }
        self.keys = kept;
        Ok((key, dropped))
    }

    /// The public halves of every key, as the registry publishes them.
    pub fn public(&self) -> Result<Vec<PublicKey>, AuthError> {
        self.keys.iter().map(SigningKey::public).collect()
    }
}

/// One key of a JSON Web Key Set (RFC 7517, Ed25519 keys as RFC 8037 writes them).
#[derive(Debug, Serialize, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    x: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The public keys as a JSON Web Key Set, the form other systems (and `auth.public_keys_file`)
/// read.
pub fn to_jwks(public: &[PublicKey]) -> String {
    let set = Jwks {
        keys: public
            .iter()
            .map(|k| Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                alg: Some(ALGORITHM.into()),
                use_: Some("sig".into()),
                kid: k.kid.clone(),
                x: k.x.clone(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&set).expect("a key set serializes")
}

/// The Ed25519 keys of a JSON Web Key Set; a key of another type is an error, as is a set
/// with no key.
pub fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, String> {
    let set: Jwks =
        serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    if set.keys.is_empty() {
        return Err("the key set holds no key".into());
    }
    set.keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            if k.kty != "OKP" || k.crv != "Ed25519" {
                return Err(format!(
                    "keys[{i}]: kty {:?} crv {:?}; only Ed25519 keys (OKP) verify cezone tokens",
                    k.kty, k.crv
                ));
            }
            if k.kid.is_empty() {
                return Err(format!("keys[{i}]: no kid"));
            }
            match URL_SAFE_NO_PAD.decode(&k.x) {
                Ok(raw) if raw.len() == 32 => {}
                _ => return Err(format!("keys[{i}] ({}): x is not a 32-byte key", k.kid)),
            }
            Ok(PublicKey {
                kid: k.kid,
                x: k.x,
                active_from: 0,
            })
        })
        .collect()
}

/// Writes `bytes` to a new file at `path`, readable by its owner only, whole or not at all.
/// False when the file exists already.
fn create_private_file(path: &Path, bytes: &[u8]) -> Result<bool, AuthError> {
    let key_err =
        |what: &str, e: std::io::Error| AuthError::Key(format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| key_err("cannot create the folder of", e))?;
    }
    // Written whole under a private name, then linked into place: another process starting at
    // the same moment sees either no file or the whole file, never half of one.
    let tmp = path.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(key_err("cannot write", e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(key_err("cannot create", e)),
    }
}

/// The secret in `path`, created with 32 random bytes (hex) the first time.
pub(super) fn read_or_create_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    match std::fs::read(path) {
        Ok(bytes) => return Ok(bytes.trim_ascii().to_vec()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(AuthError::Key(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
        Err(_) => {}
    }
    let text = hex::encode(rand::random::<[u8; 32]>());
    if create_private_file(path, text.as_bytes())? {
        tracing::info!(file = %path.display(), "created the service secret");
        Ok(text.into_bytes())
    } else {
        std::fs::read(path)
            .map(|b| b.trim_ascii().to_vec())
            .map_err(|e| AuthError::Key(format!("cannot read {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_active_key_signs_and_replaced_keys_leave_once_their_tokens_expired() {
        let mut set = KeySet::generate().unwrap();
        let first = set.keys[0].kid.clone();
        let now = set.keys[0].active_from;
        let (next, dropped) = set.rotate(now, now + 300, 3600).unwrap();
        assert!(dropped.is_empty());
        assert_eq!(set.current(now).unwrap().kid, first, "not yet active");
        assert_eq!(set.current(now + 300).unwrap().kid, next.kid);
        // A third key a day later: the first was replaced at now + 300, over an hour ago.
        let later = now + 86_400;
        let (_, dropped) = set.rotate(later, later, 3600).unwrap();
        assert_eq!(dropped, vec![first]);
        assert_eq!(
            set.keys.len(),
            2,
            "the second key may still have live tokens"
        );
    }

    #[test]
    fn a_key_file_round_trips_and_publishes_only_public_halves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let set = KeySet::read_or_create(&path).unwrap();
        let again = KeySet::read_or_create(&path).unwrap();
        assert_eq!(set.keys[0].kid, again.keys[0].kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let public = set.public().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&public[0].x).unwrap().len(), 32);
        let text = serde_json::to_string(&public).unwrap();
        assert!(!text.contains(&set.keys[0].private_key));
        let jwks = to_jwks(&public);
        assert_eq!(parse_jwks(&jwks).unwrap()[0].kid, public[0].kid);
        assert!(parse_jwks(r#"{"keys":[{"kty":"RSA","kid":"a"}]}"#).is_err());
        std::fs::write(&path, "{\"keys\": []}").unwrap();
        let err = KeySet::read(&path).unwrap_err().to_string();
        assert!(err.contains("holds no key"), "{err}");
    }
}
