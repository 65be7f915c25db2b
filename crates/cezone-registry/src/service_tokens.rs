//! The registry as the deployment's one token signer: the public keys every other service
//! verifies with, and the tokens services call each other with, issued for the service secret.

use cezone_domain::access::{Principal, Role};
use cezone_platform::ApiError;
use cezone_platform::access::auth::{Keys, SERVICES, ServiceSecret};
use cezone_platform::error::ErrorCode;
use cezone_platform::time::rfc3339;
use cezone_proto::registry::v1 as pr;

/// The public halves of the signing keys, oldest first.
pub fn signing_keys(keys: &Keys) -> Result<pr::SigningKeys, ApiError> {
    let keys = keys
        .published()?
        .into_iter()
        .map(|k| pr::SigningKey {
            kid: k.kid,
            algorithm: cezone_platform::access::auth::keyset::ALGORITHM.to_string(),
            public_key: k.x,
            active_from: rfc3339(
                chrono::DateTime::from_timestamp(k.active_from, 0).unwrap_or_default(),
            ),
        })
        .collect();
    Ok(pr::SigningKeys { keys })
}

/// A token for `service` if `offered` is the deployment's service secret.
pub fn issue(
    keys: &Keys,
    secret: &ServiceSecret,
    r: &pr::IssueServiceTokenRequest,
) -> Result<pr::ServiceToken, ApiError> {
    if !SERVICES.contains(&r.service.as_str()) {
        return Err(ApiError::invalid(
            "service",
            format!(
                "'{}' is not a cezone service; one of: {}",
                r.service.chars().take(40).collect::<String>(),
                SERVICES.join(", ")
            ),
        ));
    }
    if !secret.matches(&r.secret) {
        tracing::warn!(service = %r.service, "service token refused: wrong service secret");
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "the service secret does not match this deployment's (auth.secret)",
        ));
    }
    let who = Principal::new(&r.service, Role::Service, None, None)
        .map_err(|e| ApiError::invalid("service", e))?;
    let ttl = keys.default_ttl.max(60);
    let access_token = keys.issue(&who, ttl)?;
    Ok(pr::ServiceToken {
        access_token,
        expires_at: rfc3339(chrono::Utc::now() + chrono::Duration::seconds(ttl)),
    })
}
