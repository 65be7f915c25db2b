//! Client-side helpers over the services' public gRPC APIs: connecting, importing and
//! publishing frameworks, creating org units, uploading evidence. The demo loader and the
//! tests use exactly these paths, as any integrating system would.

pub mod backpressure;
pub mod demo;
pub mod evidence;
pub mod files;
pub mod registry;
pub mod surveys;

use std::time::Duration;

use cezone_platform::access::auth::{AuthChannel, Bearer};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("{call} failed: {status}")]
    Call {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    pub fn call(call: &'static str, status: tonic::Status) -> ClientError {
        ClientError::Call {
            call,
            status: Box::new(status),
        }
    }

    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Call { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// Largest message the helpers send or accept (the services' default limit).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Connects to a service as `bearer`'s caller, retrying for a few seconds while it starts.
pub async fn connect(url: &str, bearer: &Bearer) -> Result<AuthChannel, ClientError> {
    let endpoint = bearer.endpoint(url).map_err(|e| ClientError::Connect {
        url: url.to_string(),
        source: e,
    })?;
    Ok(bearer.attach(dial(url, endpoint).await?))
}

/// Connects without credentials: health checks and reflection need none (unless the
/// deployment uses mutual TLS).
pub async fn connect_plain(url: &str) -> Result<Channel, ClientError> {
    let endpoint =
        cezone_platform::channel::endpoint(url, &None).map_err(|e| ClientError::Connect {
            url: url.to_string(),
            source: e,
        })?;
    dial(url, endpoint).await
}

async fn dial(url: &str, endpoint: Endpoint) -> Result<Channel, ClientError> {
    let mut last = None;
    for _ in 0..50 {
        match endpoint.connect().await {
            Ok(ch) => return Ok(ch),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(ClientError::Connect {
        url: url.to_string(),
        source: last.expect("at least one attempt"),
    })
}
