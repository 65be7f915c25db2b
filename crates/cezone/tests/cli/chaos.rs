//! A bounded run of the fault-injection harness in each queue mode: every fault kind injected
//! into separate service processes on PostgreSQL and RabbitMQ, and nothing diverges, is lost
//! or is counted twice. (The long soak is in RELIABILITY.md.)

use std::process::Command;

fn chaos(queue_type: &str, seed: &str) {
    // It restarts the broker and closes every connection on it: no test that needs the broker
    // to hold still runs meanwhile.
    let _broker = cezone_platform::testing::BrokerLock::take(true);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("chaos.json");
    let out = Command::new(env!("CARGO_BIN_EXE_cezone"))
        .args([
            "chaos",
            "--rounds",
            "3",
            "--seed",
            seed,
            "--queue-type",
            queue_type,
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "cezone.chaos.v1");
    assert_eq!(report["rounds"], 3);
    for key in ["divergences", "lost", "doubled"] {
        assert_eq!(report[key], 0, "{key}: {text}");
    }
    // Three rounds of three faults each inject every kind.
    let faults = report["faults"].as_object().unwrap();
    for kind in [
        "kill_scoring",
        "pause_scoring",
        "term_producer",
        "recompute",
        "delayed_commit",
        "close_connections",
        "broker_restart",
        "poison",
    ] {
        assert!(faults.contains_key(kind), "{kind} was not injected: {text}");
    }
    assert!(report["facts"].as_u64().unwrap() > 1000, "{text}");
    assert!(
        report["dead_letters"].as_u64() >= report["poison_sent"].as_u64(),
        "{text}"
    );
    assert_eq!(report["unexpected_dead_letters"], 0, "{text}");
    assert!(report["poison_sent"].as_u64().unwrap() > 0, "{text}");
}

#[test]
fn rabbitmq_chaos_classic_queues() {
    chaos("classic", "11");
}

#[test]
fn rabbitmq_chaos_quorum_queues() {
    chaos("quorum", "12");
}
