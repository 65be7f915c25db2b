//! Dialing a service: the one place a service URL becomes a gRPC channel — over mutual TLS
//! (as https) when the deployment has it, with a bounded connect and without Nagle's delay —
//! either lazily (services start in any order, the first call connects) or carrying no token
//! of its own (the HTTP gateway forwards each caller's).

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::access::auth::{AuthChannel, Bearer};
use crate::error::ApiError;

/// How long a connection attempt may take before the call fails as UNAVAILABLE.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to dial `url`: over mutual TLS (as https) when `tls` is given.
pub fn endpoint(
    url: &str,
    tls: &Option<ClientTlsConfig>,
) -> Result<Endpoint, tonic::transport::Error> {
    let endpoint = match tls {
        Some(tls) => Endpoint::from_shared(crate::tls::https(url))?.tls_config(tls.clone())?,
        None => Endpoint::from_shared(url.to_string())?,
    };
    Ok(endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
}

/// A lazily connecting channel to `url` whose calls carry `bearer`'s token.
pub fn lazy(url: &str, bearer: &Bearer) -> Result<AuthChannel, ApiError> {
    Ok(bearer.attach(lazy_bare(url, bearer)?))
}

/// A lazily connecting channel to `url` over `bearer`'s TLS, carrying no token: each call
/// brings its caller's.
pub fn lazy_bare(url: &str, bearer: &Bearer) -> Result<Channel, ApiError> {
    Ok(bearer
        .endpoint(url)
        .map_err(|e| ApiError::internal_msg(format!("service address {url}: {e}")))?
        .connect_lazy())
}
