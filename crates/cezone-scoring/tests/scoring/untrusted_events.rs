//! The event decoder against arbitrary bytes: the stable-Rust twin of the `event_decode` fuzz
//! target (`fuzz/`). Whatever arrives on the queue, decoding gives facts or a reason for the
//! dead-letter queue, never a panic.

use cezone_scoring::{EventError, decode_event};
use proptest::prelude::*;

const TYPES: [&str; 10] = [
    "framework.published",
    "org_unit.created",
    "org_unit.moved",
    "evidence.submitted",
    "evidence.reviewed",
    "statistic.recorded",
    "statistic.imported",
    "survey.batch_aggregated",
    "scores.changed",
    "something.else",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_envelopes_never_panic_the_decoder(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(env) = cezone_bus::decode(&data) {
            let _ = decode_event(&env, "gd-community-education", "");
        }
    }

    #[test]
    fn arbitrary_payloads_give_facts_or_a_reason(
        kind in 0usize..TYPES.len(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let env = cezone_bus::Envelope {
            event_id: "e1".into(),
            r#type: TYPES[kind].into(),
            producer: "fuzz".into(),
            payload,
            ..Default::default()
        };
        match decode_event(&env, "gd-community-education", "") {
            Ok(_) => {}
            Err(EventError::Malformed(reason)) => prop_assert!(reason.contains(TYPES[kind]), "{}", reason),
            Err(e @ (EventError::Transient(_) | EventError::Unavailable(_))) => prop_assert!(false, "decoding touched a database or a service: {}", e),
        }
    }
}
