//! Any bytes from the queue, decoded as an envelope and then as each event type scoring reads,
//! give facts or a reason for the dead-letter queue: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 8] = [
    "framework.published",
    "org_unit.created",
    "evidence.reviewed",
    "statistic.recorded",
    "statistic.imported",
    "survey.batch_aggregated",
    "scores.changed",
    "other.event",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = cezone_bus::decode(data) {
        let _ = cezone_scoring::decode_event(&env, "gd-community-education", "");
    }
    if let Some((&kind, payload)) = data.split_first() {
        let env = cezone_bus::Envelope {
            event_id: "fuzz".into(),
            r#type: TYPES[kind as usize % TYPES.len()].into(),
            payload: payload.to_vec(),
            ..Default::default()
        };
        let _ = cezone_scoring::decode_event(&env, "gd-community-education", "");
    }
});
