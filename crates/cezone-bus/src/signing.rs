//! Events signed by the deployment's services: the bus of every cezone service signs each
//! event it publishes (HMAC-SHA256 with the deployment's event key, derived from the key its
//! services share) and checks the signature of each delivery. A message published straight to
//! the exchange by anyone else — a forged fact, a replayed event with its fields changed — is
//! refused by [`crate::Delivery::envelope`], and the consumer dead-letters it with the reason.
//!
//! The signature covers every field of the envelope but itself, each length-prefixed, so it
//! does not depend on how protobuf happens to encode them.

use std::fmt;

use cezone_proto::events::v1::Envelope;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::BusError;

type HmacSha256 = Hmac<Sha256>;

/// The key events are signed and checked with.
#[derive(Clone)]
pub struct EventKey {
    key: [u8; 32],
}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventKey(…)")
    }
}

impl EventKey {
    /// The event key of a deployment whose services share `secret` (at least 32 bytes): its own
    /// key, derived so that a token signature can never pass for an event signature.
    pub fn derive(secret: &[u8]) -> EventKey {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"cezone.events.v1 signing key");
        EventKey {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, envelope: &Envelope) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("a 32-byte key");
        let version = envelope.schema_version.to_string();
        for field in [
            envelope.event_id.as_bytes(),
            envelope.r#type.as_bytes(),
            envelope.occurred_at.as_bytes(),
            envelope.producer.as_bytes(),
            version.as_bytes(),
            envelope.correlation_id.as_bytes(),
            envelope.payload.as_slice(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac
    }

    /// The envelope with its signature.
    pub fn sign(&self, envelope: &Envelope) -> Envelope {
        let mut signed = envelope.clone();
        signed.signature = self.mac(envelope).finalize().into_bytes().to_vec();
        signed
    }

    /// Whether the envelope carries this deployment's signature.
    pub fn verify(&self, envelope: &Envelope) -> Result<(), BusError> {
        let why = if envelope.signature.is_empty() {
            "it is not signed"
        } else if self
            .mac(envelope)
            .verify_slice(&envelope.signature)
            .is_err()
        {
            "its signature does not match its content"
        } else {
            return Ok(());
        };
        Err(BusError::Forged(format!(
            "{} event {} from {:?} was not published by this deployment's services: {why}",
            envelope.r#type, envelope.event_id, envelope.producer
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_events_verify_and_changed_ones_do_not() {
        let key = EventKey::derive(&[7u8; 32]);
        let e = crate::envelope("statistic.recorded", "surveys", &"v1".to_string(), None);
        assert!(
            key.verify(&e)
                .unwrap_err()
                .to_string()
                .contains("not signed")
        );
        let signed = key.sign(&e);
        key.verify(&signed).unwrap();
        let mut changed = signed.clone();
        changed.payload.push(0);
        assert!(
            key.verify(&changed)
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let other = EventKey::derive(&[8u8; 32]);
        assert!(other.verify(&signed).is_err());
    }
}
