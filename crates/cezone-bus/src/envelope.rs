//! Building, encoding and decoding the envelope every event travels in
//! (`cezone.events.v1.Envelope`): id, type, time, producer, schema version, correlation id and
//! the protobuf payload.

use cezone_proto::events::v1::Envelope;
use prost::Message;

use crate::BusError;

/// The schema version of envelopes built here; consumers refuse versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// Wraps `payload` in a new envelope: a fresh UUID v7 id (time-ordered, so ids sort roughly by
/// creation), the current UTC time with milliseconds, schema version 1.
pub fn envelope(
    event_type: &str,
    producer: &str,
    payload: &impl Message,
    correlation_id: Option<&str>,
) -> Envelope {
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        r#type: event_type.to_string(),
        occurred_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        producer: producer.to_string(),
        schema_version: SCHEMA_VERSION,
        correlation_id: correlation_id.unwrap_or_default().to_string(),
        payload: payload.encode_to_vec(),
        signature: Vec::new(),
    }
}

/// The wire form of an envelope (protobuf).
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    envelope.encode_to_vec()
}

/// Parses the wire form. Protobuf accepts almost anything (an empty buffer is a valid empty
/// message), so an envelope without an id or a type is refused here as malformed.
pub fn decode(bytes: &[u8]) -> Result<Envelope, BusError> {
    let envelope = Envelope::decode(bytes).map_err(|e| BusError::Malformed(e.to_string()))?;
    check(&envelope)?;
    Ok(envelope)
}

/// The checks `decode` applies.
fn check(envelope: &Envelope) -> Result<(), BusError> {
    if envelope.event_id.is_empty() {
        return Err(BusError::Malformed("event_id is empty".into()));
    }
    if envelope.r#type.is_empty() {
        return Err(BusError::Malformed("type is empty".into()));
    }
    Ok(())
}

/// What every transport requires before publishing (and the outbox before enqueueing, so a
/// stored event can always be published): a well-formed envelope whose id, type, producer
/// and correlation id fit in AMQP short strings (they become message properties).
pub(crate) fn check_publishable(envelope: &Envelope) -> Result<(), BusError> {
    check(envelope)?;
    for (what, value) in [
        ("event_id", &envelope.event_id),
        ("type", &envelope.r#type),
        ("producer", &envelope.producer),
        ("correlation_id", &envelope.correlation_id),
    ] {
        if value.len() > 255 {
            return Err(BusError::InvalidName {
                what,
                value: value.clone(),
                reason: "must be at most 255 bytes",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let payload = Envelope {
            event_id: "inner".into(),
            ..Default::default()
        };
        let e = envelope("evidence.reviewed", "evidence", &payload, Some("req-1"));
        assert_eq!(e.schema_version, 1);
        assert_eq!(e.correlation_id, "req-1");
        assert!(uuid::Uuid::parse_str(&e.event_id).is_ok());
        assert!(chrono::DateTime::parse_from_rfc3339(&e.occurred_at).is_ok());
        assert!(e.occurred_at.ends_with('Z'));
        let back = decode(&encode(&e)).unwrap();
        assert_eq!(back, e);
        assert_eq!(Envelope::decode(back.payload.as_slice()).unwrap(), payload);
    }

    #[test]
    fn refuses_garbage_and_empty_envelopes() {
        assert!(matches!(decode(b""), Err(BusError::Malformed(_))));
        assert!(matches!(
            decode(b"\xff\xff\xff"),
            Err(BusError::Malformed(_))
        ));
        let no_type = Envelope {
            event_id: "x".into(),
            ..Default::default()
        };
        assert!(matches!(
            decode(&encode(&no_type)),
            Err(BusError::Malformed(_))
        ));
    }
}
