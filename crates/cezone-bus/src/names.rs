//! Names of the broker objects, shared by the AMQP and in-process transports, and the checks
//! that keep them valid AMQP short strings.
//!
//! - `{prefix}.events`: the topic exchange every event is published to (routing key = type).
//! - `{prefix}.{consumer}`: a consumer's durable queue, bound to the events exchange.
//! - `{prefix}.dead`: the dead-letter exchange, a durable **topic** exchange. Dead letters are
//!   routed with the consumer's name as routing key, so each `{prefix}.{consumer}.dead` queue
//!   (bound with exactly that name) receives only its own consumer's dead letters, and an
//!   operator can bind a catch-all queue with `#` to watch all of them.

use crate::BusError;

/// The events exchange of a deployment (topic, durable).
pub fn exchange_name(prefix: &str) -> String {
    format!("{prefix}.events")
}

/// The dead-letter exchange of a deployment (topic, durable).
pub fn dead_exchange_name(prefix: &str) -> String {
    format!("{prefix}.dead")
}

/// A consumer's queue.
pub fn queue_name(prefix: &str, consumer: &str) -> String {
    format!("{prefix}.{consumer}")
}

/// A consumer's dead-letter queue.
pub fn dead_queue_name(prefix: &str, consumer: &str) -> String {
    format!("{prefix}.{consumer}.dead")
}

/// Prefixes and consumer names: letters, digits, `-`, `_` and `.`, short enough for every
/// derived name to fit in an AMQP short string. `*` and `#` are refused because consumer names
/// are also binding keys on the dead-letter exchange.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), BusError> {
    let bad = |reason| {
        Err(BusError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("must not be empty");
    }
    if value.len() > 100 {
        return bad("must be at most 100 bytes");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("may only contain ASCII letters, digits, '-', '_' and '.'");
    }
    if value.starts_with('.') || value.ends_with('.') || value.contains("..") {
        return bad("must not start or end with '.' or contain an empty word");
    }
    Ok(())
}

/// Consumer names: valid names that do not end in `.dead`, so a consumer's queue can never be
/// another consumer's dead-letter queue.
pub(crate) fn check_consumer(value: &str) -> Result<(), BusError> {
    check_name("consumer", value)?;
    if value == "dead" || value.ends_with(".dead") {
        return Err(BusError::InvalidName {
            what: "consumer",
            value: value.to_string(),
            reason: "must not end in \".dead\" (reserved for dead-letter queues)",
        });
    }
    Ok(())
}

/// Binding patterns and routing keys: non-empty AMQP short strings.
pub(crate) fn check_key(what: &'static str, value: &str) -> Result<(), BusError> {
    if value.is_empty() || value.len() > 255 {
        return Err(BusError::InvalidName {
            what,
            value: value.to_string(),
            reason: "must be 1 to 255 bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(exchange_name("cz"), "cz.events");
        assert_eq!(dead_exchange_name("cz"), "cz.dead");
        assert_eq!(queue_name("cz", "scoring"), "cz.scoring");
        assert_eq!(dead_queue_name("cz", "scoring"), "cz.scoring.dead");
        assert!(check_consumer("scoring-v2.read_model").is_ok());
        assert!(check_consumer("scoring.dead").is_err());
        for bad in ["", "a*", "#", "a..b", ".a", "a b", &"x".repeat(101)] {
            assert!(check_name("consumer", bad).is_err(), "{bad}");
        }
    }
}
