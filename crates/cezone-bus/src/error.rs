//! The one error type of the bus. Callers mostly log it; the relay and the subscription
//! supervisors use [`BusError::is_transient`] to decide between retrying and giving up.

use lapin::ErrorKind;
use lapin::protocol::AMQPErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Bytes that are not an envelope, or an envelope without an id or a type.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// An envelope without this deployment's signature (published by someone else).
    #[error("{0}")]
    Forged(String),
    /// A name (prefix, consumer, pattern, routing key) the broker cannot take.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Mandatory publish with no queue bound for the routing key: nobody would ever see it.
    #[error("unroutable: no queue is bound for routing key {routing_key:?} on {exchange}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    /// The broker refused to take responsibility for the message (basic.nack).
    #[error("the broker refused (nack) the message for routing key {routing_key:?}")]
    Nacked { routing_key: String },
    /// The broker could not be reached, or stayed unreachable until the deadline.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Any other protocol or IO error from lapin.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// Bad configuration (e.g. an unparsable AMQP URL).
    #[error("invalid bus configuration: {0}")]
    Config(String),
    /// The bus was closed by this process.
    #[error("the bus is closed")]
    Closed,
}

impl BusError {
    /// A settle that could not reach the broker because the delivery's channel is gone (the
    /// subscription gave it up when its consumer was cancelled, or the connection dropped):
    /// nothing was settled, and the broker delivers the message again.
    pub fn is_channel_gone(&self) -> bool {
        matches!(
            self,
            BusError::Amqp(e) if matches!(
                e.kind(),
                ErrorKind::InvalidChannelState(..)
                    | ErrorKind::InvalidChannel(_)
                    | ErrorKind::InvalidConnectionState(_)
            )
        )
    }

    /// Whether waiting and trying again (on a fresh channel or connection) can succeed: a lost
    /// connection or channel, a broker shutting down. Soft protocol errors (403/404/406) are
    /// configuration bugs and are not retried.
    pub fn is_transient(&self) -> bool {
        match self {
            BusError::Unavailable(_) => true,
            BusError::Amqp(e) => match e.kind() {
                ErrorKind::IOError(_)
                | ErrorKind::MissingHeartbeatError
                | ErrorKind::InvalidConnectionState(_)
                | ErrorKind::InvalidChannelState(..)
                | ErrorKind::InvalidChannel(_)
                | ErrorKind::FutureCompleted => true,
                ErrorKind::ProtocolError(a) => matches!(a.kind(), AMQPErrorKind::Hard(_)),
                _ => false,
            },
            _ => false,
        }
    }
}
