//! The process's one AMQP connection, replaced by a fresh one whenever it is found dead.
//!
//! Reconnection is our own, not lapin's `enable_auto_recover`: every user of the connection
//! (the publisher channel, each subscription) notices a failure on its own channel, asks for
//! [`Connector::connection`] again, and rebuilds what it needs (confirm mode, declarations,
//! consumer) on the new connection. That keeps the failure modes explicit: an error is either
//! retried here with our backoff and deadline, or returned; nothing waits on a recovery
//! notifier that may never fire.

use std::sync::Arc;
use std::time::Duration;

use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::BusError;

/// The async connector ignores `connection_timeout`, so connecting is bounded here.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Used when the URL sets no heartbeat: a silently dead peer is noticed within ~20 s instead of
/// the broker's default 60 s × 2.
const DEFAULT_HEARTBEAT_SECS: u16 = 10;

pub(crate) struct Connector {
    uri: AMQPUri,
    properties: ConnectionProperties,
    name: String,
    current: Mutex<Option<Arc<Connection>>>,
    closed: CancellationToken,
}

impl Connector {
    pub(crate) fn new(url: &str, name: &str, closed: CancellationToken) -> Result<Self, BusError> {
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e| BusError::Config(format!("amqp_url: {e}")))?;
        // Built without a TLS feature, lapin would silently speak plaintext to an amqps:// URL.
        if uri.scheme == AMQPScheme::AMQPS {
            return Err(BusError::Config(
                "amqps:// is not supported by this build (no TLS); use amqp://".into(),
            ));
        }
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        Ok(Connector {
            uri,
            properties,
            name: name.to_string(),
            current: Mutex::new(None),
            closed,
        })
    }

    /// Where the broker is, for logs (never the credentials).
    pub(crate) fn endpoint(&self) -> String {
        format!("{}:{}", self.uri.authority.host, self.uri.authority.port)
    }

    /// The live connection, connecting (once, bounded by a timeout) if there is none or the
    /// last one died. Callers retry transient errors with their own backoff.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, BusError> {
        let mut current = self.current.lock().await;
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        if let Some(conn) = current.as_ref() {
            if conn.status().connected() {
                return Ok(conn.clone());
            }
            tracing::info!(endpoint = %self.endpoint(), "amqp connection lost; reconnecting");
        }
        *current = None;
        let connect = Connection::connect_uri(self.uri.clone(), self.properties.clone());
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(BusError::Unavailable(format!(
                    "no connection to {} within {CONNECT_TIMEOUT:?}",
                    self.endpoint()
                )));
            }
        };
        tracing::info!(endpoint = %self.endpoint(), connection = %self.name, "amqp connected");
        let conn = Arc::new(conn);
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Drops `conn` if it is still the current connection (closing it, bounded), so the next
    /// [`Connector::connection`] connects anew. For a connection on which the broker stopped
    /// answering: its heartbeats may still flow, so it would otherwise look alive.
    pub(crate) async fn discard(&self, conn: &Arc<Connection>) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *current = None;
        }
        drop(current);
        if conn.status().connected() {
            tracing::warn!(endpoint = %self.endpoint(), "dropping an amqp connection the broker stopped answering on");
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                conn.close(320, "unresponsive".into()),
            )
            .await;
        }
    }

    /// [`Connector::discard`] of whatever connection is current.
    pub(crate) async fn discard_current(&self) {
        let conn = self.current.lock().await.clone();
        if let Some(conn) = conn {
            self.discard(&conn).await;
        }
    }

    /// Closes the connection (if any) and refuses to open another.
    pub(crate) async fn close(&self) {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.take()
            && conn.status().connected()
        {
            let closing = conn.close(200, "closing".into());
            match tokio::time::timeout(Duration::from_secs(5), closing).await {
                Ok(Ok(())) => tracing::info!(endpoint = %self.endpoint(), "amqp connection closed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "amqp connection close failed"),
                Err(_) => tracing::warn!("amqp connection close timed out"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_urls_and_sets_a_heartbeat() {
        let closed = CancellationToken::new();
        assert!(Connector::new("amqps://h/%2f", "t", closed.clone()).is_err());
        assert!(Connector::new("http://h", "t", closed.clone()).is_err());
        let c = Connector::new("amqp://u:secret@broker:5673/%2f", "t", closed).unwrap();
        assert_eq!(c.uri.query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(c.endpoint(), "broker:5673");
    }
}
