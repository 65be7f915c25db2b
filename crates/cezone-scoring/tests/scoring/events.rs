//! Event-driven recomputation: facts flow from the services' outboxes over the bus (in-process
//! or RabbitMQ) into the scoring read model, and scores follow — live, exactly once in effect,
//! and equal to a from-scratch recompute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cezone_bus::{AmqpBus, Bus, BusConfig, QueueType};
use cezone_domain::engine::Engine;
use cezone_domain::facts::{EvidenceState, Facts};
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;
use cezone_platform::testing::{Backend, amqp_url, fresh_bus_prefix};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::surveys::v1 as psv;

use super::{Stack, spawn, spawn_with};

/// The district total the domain computes from these facts.
pub(crate) fn domain_total(s: &Stack, facts: &Facts) -> String {
    let (fw, _) = guangdong::framework();
    let tree = OrgTree::build(s.district.units.clone()).unwrap();
    let engine = Engine::new(Arc::new(fw), Arc::new(tree), facts, 2013);
    engine
        .scoreboard()
        .total(&engine.fw, 0)
        .confirmed
        .to_string()
}

pub(crate) async fn flush(s: &Stack) {
    s.registry.flush_events().await;
    s.evidence.flush_events().await;
    s.surveys.flush_events().await;
}

/// Waits until the event-fed district total is `want`; panics with the last value seen.
pub(crate) async fn converge(s: &mut Stack, want: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::from("(no scores yet)");
    loop {
        if let Ok(r) = s
            .client
            .get_scores(ps::GetScoresRequest {
                items: vec!["1".into()],
                ..Default::default()
            })
            .await
        {
            last = r.into_inner().total.unwrap().confirmed;
            if last == want {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "scores did not converge to {want}; last seen {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every cell of every org unit, as the scoring API reports it.
pub(crate) async fn all_cells(s: &mut Stack) -> Vec<ps::OrgUnitScores> {
    let mut out = Vec::new();
    for u in s.district.units.clone() {
        let mut r = s
            .client
            .get_scores(ps::GetScoresRequest {
                org_unit: u.id.to_string(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        r.computed_at.clear();
        out.push(r);
    }
    out
}

/// The event-fed scores equal, cell for cell, a from-scratch recompute from the services. On a
/// difference it names each differing cell with both explanations (the facts each side used).
pub(crate) async fn recompute_agrees(s: &mut Stack) {
    // The district total has converged, but an event that moves only a community's cells may
    // still be on its way: the event-fed cells are taken once they hold still.
    let mut fed = all_cells(s).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = all_cells(s).await;
        if again == fed || tokio::time::Instant::now() >= deadline {
            break;
        }
        fed = again;
    }
    let fed_explained = explained(s).await;
    s.client
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap();
    let rebuilt = all_cells(s).await;
    if fed != rebuilt {
        let rebuilt_explained = explained(s).await;
        let mut differences = Vec::new();
        for (a, b) in fed.iter().zip(&rebuilt) {
            if (
                &a.org_unit,
                &a.name,
                &a.edition,
                a.period,
                &a.max_points,
                &a.total,
            ) != (
                &b.org_unit,
                &b.name,
                &b.edition,
                b.period,
                &b.max_points,
                &b.total,
            ) {
                differences.push(format!(
                    "{}: fed {} {} {} {} {:?}, recomputed {} {} {} {} {:?}",
                    a.org_unit,
                    a.name,
                    a.edition,
                    a.period,
                    a.max_points,
                    a.total,
                    b.name,
                    b.edition,
                    b.period,
                    b.max_points,
                    b.total
                ));
            }
            if a.items.len() != b.items.len() {
                differences.push(format!(
                    "{}: {} items fed, {} recomputed",
                    a.org_unit,
                    a.items.len(),
                    b.items.len()
                ));
            }
        }
        for (a, b) in fed_explained.iter().zip(&rebuilt_explained) {
            for (x, y) in a.items.iter().zip(&b.items) {
                let (mut x0, mut y0) = (x.clone(), y.clone());
                x0.explanation_json.clear();
                y0.explanation_json.clear();
                if x0 != y0 {
                    differences.push(format!(
                        "{} {} (leaf {}): fed {:?} lost {}, recomputed {:?} lost {}\n  fed:        {}\n  recomputed: {}",
                        a.org_unit, x.code, x.leaf, x.score, x.lost, y.score, y.lost,
                        x.explanation_json, y.explanation_json
                    ));
                }
            }
        }
        panic!(
            "event-fed scores differ from a from-scratch recompute in {} places:\n{}",
            differences.len(),
            differences
                .into_iter()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Every org unit's scores with their explanations.
async fn explained(s: &mut Stack) -> Vec<ps::OrgUnitScores> {
    let mut out = Vec::new();
    for u in s.district.units.clone() {
        out.push(
            s.client
                .get_scores(ps::GetScoresRequest {
                    org_unit: u.id.to_string(),
                    explain: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    out
}

pub(crate) async fn pending_evidence(s: &Stack) -> Vec<pe::Evidence> {
    let mut ev = cezone_client::evidence::client(s.channels.evidence.clone());
    ev.list_evidence(pe::ListEvidenceRequest {
        state: pe::ReviewState::Submitted as i32,
        page: Some(PageRequest {
            page_size: 1000,
            page_token: String::new(),
        }),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .evidence
}

/// The demo facts with these evidence ids accepted at grade 100.
pub(crate) fn accepted(s: &Stack, ids: &[String]) -> Facts {
    let (fw, _) = guangdong::framework();
    let mut facts = s.district.facts(&fw.catalog);
    for e in &mut facts.evidence {
        if ids.iter().any(|id| id == &e.id) {
            e.state = EvidenceState::Accepted { grade: 100 };
        }
    }
    facts
}

/// Loads the district without ever calling Recompute: the read model is fed by events alone.
pub(crate) async fn load_and_converge(s: &mut Stack) {
    s.load().await;
    flush(s).await;
    let want = s.expected_total();
    converge(s, &want, Duration::from_secs(60)).await;
}

/// Upload → review → the district score changes, seen through WatchScores and a query, and a
/// full recompute agrees with the incremental result cell for cell.
async fn live_scores(mut s: Stack) {
    load_and_converge(&mut s).await;
    let before = all_cells(&mut s).await;
    let mut watch = s
        .client
        .watch_scores(ps::WatchScoresRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(
        first
            .unit
            .as_ref()
            .unwrap()
            .total
            .as_ref()
            .unwrap()
            .confirmed,
        s.expected_total()
    );
    assert_eq!(
        first.changed.len(),
        2,
        "the first message carries every child's total"
    );

    let pending = pending_evidence(&s).await;
    let target = pending
        .iter()
        .find(|e| e.org_unit == "nanhai")
        .or(pending.first())
        .unwrap()
        .clone();
    let mut ev = cezone_client::evidence::client(s.channels.evidence.clone());
    cezone_client::evidence::review(&mut ev, &target.id, pe::Decision::Accept, 100, "")
        .await
        .unwrap();
    let update = tokio::time::timeout(Duration::from_secs(20), watch.message())
        .await
        .expect("an update within 20 s")
        .unwrap()
        .unwrap();
    let new_total = update
        .unit
        .as_ref()
        .unwrap()
        .total
        .as_ref()
        .unwrap()
        .confirmed
        .clone();
    let old_total: f64 = s.expected_total().parse().unwrap();
    assert!(
        new_total.parse::<f64>().unwrap() > old_total,
        "{new_total} after accepting {}",
        target.id
    );
    assert!(!update.caused_by.is_empty());
    assert!(update.cells_recomputed > 0);

    // A query shows the same total.
    let q = s
        .client
        .get_scores(ps::GetScoresRequest {
            items: vec!["1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.total.unwrap().confirmed, new_total);

    // Full recompute from the services agrees with the incremental result, cell for cell.
    // (`before` asked every unit the plain question, so its answers were kept: an update that
    // left them standing would fail here.)
    assert_ne!(all_cells(&mut s).await, before);
    recompute_agrees(&mut s).await;
    s.stop().await;
}

async fn scores_follow_the_events_live(backend: Backend) {
    live_scores(spawn(backend).await).await;
}

queue_type_tests!(
    rabbitmq_scores_follow_the_events_live,
    rabbitmq_broker_restart_loses_nothing,
    rabbitmq_scoring_restart_mid_stream_catches_up,
    rabbitmq_duplicates_and_poison_messages
);

cezone_platform::contract_tests!(
    scores_follow_the_events_live,
    a_burst_keeps_the_newest_version_of_a_statistic
);

async fn amqp_stack(queue_type: QueueType) -> (Stack, Arc<AmqpBus>) {
    let bus = Arc::new(
        AmqpBus::connect(&BusConfig {
            amqp_url: amqp_url(),
            prefix: fresh_bus_prefix(),
            connection_name: "cezone-scoring-test".into(),
            prefetch: 32,
            queue_type,
            delivery_limit: cezone_bus::DEFAULT_DELIVERY_LIMIT,
            event_key: Some(cezone_platform::testing::event_key()),
        })
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 is needed by this test"),
    );
    let dynbus: Arc<dyn Bus> = bus.clone();
    (spawn_with(Backend::Postgres, dynbus).await, bus)
}

async fn rabbitmq_scores_follow_the_events_live(queue_type: QueueType) {
    let (s, bus) = amqp_stack(queue_type).await;
    live_scores(s).await;
    let _ = bus.delete_topology(&["scoring"]).await;
}

pub(crate) fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

pub(crate) async fn broker_accepts() {
    for _ in 0..120 {
        if tokio::net::TcpStream::connect("127.0.0.1:5672")
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("RabbitMQ did not come back");
}

/// Statistics filed while the broker restarts: afterwards every filing's effect is present once
/// and the event-fed scores equal a from-scratch recompute.
async fn rabbitmq_broker_restart_loses_nothing(queue_type: QueueType) {
    // It stops the broker: no test that needs it still runs meanwhile.
    let _broker = cezone_platform::testing::BrokerLock::exclusive().await;
    let (mut s, bus) = amqp_stack(queue_type).await;
    load_and_converge(&mut s).await;
    let towns: Vec<String> = s
        .district
        .units
        .iter()
        .filter(|u| u.parent.as_ref().is_some_and(|p| p.as_str() == "nanhai"))
        .map(|u| u.id.to_string())
        .collect();
    let mut sv = cezone_client::surveys::client(s.channels.surveys.clone());
    let filer = tokio::spawn(async move {
        let mut last = BTreeMap::new();
        for i in 0..120i64 {
            let town = towns[(i as usize) % towns.len()].clone();
            let value = 5 + i % 17;
            sv.record_statistic(psv::StatisticReturn {
                org_unit: town.clone(),
                metric: "staff_trained".into(),
                period: 2013,
                value,
                filed_by: "t".into(),
                ..Default::default()
            })
            .await
            .expect("filing works without the broker: the outbox keeps the event");
            last.insert(town, value);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        last
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    broker_accepts().await;
    let last = filer.await.unwrap();
    flush(&s).await;

    let (fw, _) = guangdong::framework();
    let mut facts = s.district.facts(&fw.catalog);
    for f in &mut facts.statistics {
        if f.metric.as_str() == "staff_trained"
            && f.period == 2013
            && let Some(v) = last.get(f.org_unit.as_str())
        {
            f.value = *v;
        }
    }
    let want = domain_total(&s, &facts);
    converge(&mut s, &want, Duration::from_secs(90)).await;
    recompute_agrees(&mut s).await;
    s.stop().await;
    let _ = bus.delete_topology(&["scoring"]).await;
}

/// The scoring service stops while reviews keep coming, and starts again: the queue kept the
/// events and the scores catch up exactly.
async fn rabbitmq_scoring_restart_mid_stream_catches_up(queue_type: QueueType) {
    let (mut s, bus) = amqp_stack(queue_type).await;
    load_and_converge(&mut s).await;
    let pending = pending_evidence(&s).await;
    assert!(pending.len() >= 4);
    let ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
    let mut ev = cezone_client::evidence::client(s.channels.evidence.clone());
    let half = ids.len() / 2;
    for id in &ids[..half] {
        cezone_client::evidence::review(&mut ev, id, pe::Decision::Accept, 100, "")
            .await
            .unwrap();
    }
    s.scoring.take().unwrap().stop().await;
    for id in &ids[half..] {
        cezone_client::evidence::review(&mut ev, id, pe::Decision::Accept, 100, "")
            .await
            .unwrap();
    }
    flush(&s).await;
    let scoring = cezone_scoring::Application::build(&s.env.settings, s.bus.clone())
        .await
        .unwrap();
    s.client = cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient::new(
        cezone_client::connect(&scoring.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    s.scoring = Some(scoring);
    // The demo's evidence ids are not the services' record ids: map by (criterion, unit, org).
    let by_slot: Vec<(String, String, String)> = pending
        .iter()
        .map(|e| {
            (
                e.criterion.clone(),
                e.responsible_unit.clone(),
                e.org_unit.clone(),
            )
        })
        .collect();
    let demo_ids: Vec<String> = s
        .district
        .evidence
        .iter()
        .filter(|f| {
            by_slot.contains(&(
                f.criterion.to_string(),
                f.unit.to_string(),
                f.org_unit.to_string(),
            ))
        })
        .map(|f| f.id.clone())
        .collect();
    let want = domain_total(&s, &accepted(&s, &demo_ids));
    converge(&mut s, &want, Duration::from_secs(60)).await;
    recompute_agrees(&mut s).await;
    s.stop().await;
    let _ = bus.delete_topology(&["scoring"]).await;
}

/// Duplicated deliveries change nothing, and a malformed message lands in the dead-letter queue
/// with its reason while the consumer keeps going.
async fn rabbitmq_duplicates_and_poison_messages(queue_type: QueueType) {
    // It counts dead letters exactly: no broker restart meanwhile.
    let _broker = cezone_platform::testing::BrokerLock::shared().await;
    let (mut s, bus) = amqp_stack(queue_type).await;
    load_and_converge(&mut s).await;
    let town = s
        .district
        .units
        .iter()
        .find(|u| u.parent.as_ref().is_some_and(|p| p.as_str() == "nanhai"))
        .unwrap()
        .id
        .to_string();

    // A filing's event, published twice more by hand with the same event id.
    let mut sv = cezone_client::surveys::client(s.channels.surveys.clone());
    let filed = sv
        .record_statistic(psv::StatisticReturn {
            org_unit: town.clone(),
            metric: "staff_trained".into(),
            period: 2013,
            value: 0,
            filed_by: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    flush(&s).await;
    let payload = cezone_proto::events::v1::StatisticRecorded {
        statistic: Some(filed.clone()),
    };
    let env = cezone_bus::envelope("statistic.recorded", "surveys", &payload, None);
    bus.publish(&env).await.unwrap();
    bus.publish(&env).await.unwrap();

    // Poison: a statistic event whose payload is not a statistic.
    let mut poison = cezone_bus::envelope("statistic.recorded", "surveys", &payload, None);
    poison.payload = vec![0xff, 0xfe, 0x01, 0x02];
    bus.publish(&poison).await.unwrap();

    // A later, valid filing is still applied.
    let later = sv
        .record_statistic(psv::StatisticReturn {
            org_unit: town.clone(),
            metric: "staff_trained".into(),
            period: 2013,
            value: 1,
            filed_by: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.version, filed.version + 1);
    flush(&s).await;
    let (fw, _) = guangdong::framework();
    let mut facts = s.district.facts(&fw.catalog);
    for f in &mut facts.statistics {
        if f.metric.as_str() == "staff_trained" && f.period == 2013 && f.org_unit.as_str() == town {
            f.value = 1;
        }
    }
    let want = domain_total(&s, &facts);
    converge(&mut s, &want, Duration::from_secs(30)).await;

    let mut dead = None;
    for _ in 0..50 {
        dead = bus.take_dead_letter("scoring").await.unwrap();
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dead.expect("the poison message is in the dead-letter queue");
    assert!(dead.reason.contains("cannot be decoded"), "{dead:?}");
    recompute_agrees(&mut s).await;
    s.stop().await;
    let _ = bus.delete_topology(&["scoring"]).await;
}

/// Statistics of one burst are applied together: of several versions of one statistic the
/// newest is kept whatever order they arrive in (a later delivery of an older version changes
/// nothing), and a duplicate delivery in the same burst is applied once.
async fn a_burst_keeps_the_newest_version_of_a_statistic(backend: Backend) {
    let mut s = spawn(backend).await;
    load_and_converge(&mut s).await;
    let community = s
        .district
        .units
        .iter()
        .find(|u| u.level == cezone_domain::org::OrgLevel::Community)
        .unwrap()
        .id
        .to_string();
    let (fw, _) = guangdong::framework();
    let total_with = |value: i64| {
        let mut facts = s.district.facts(&fw.catalog);
        for f in &mut facts.statistics {
            if f.metric.as_str() == "residents_served"
                && f.period == 2013
                && f.org_unit.as_str() == community
            {
                f.value = value;
            }
        }
        domain_total(&s, &facts)
    };
    let (newest, older) = (100_000, 1);
    let want = total_with(newest);
    let back = total_with(older);
    assert_ne!(want, back, "the two values must score apart");

    let stat = |value: i64, version: u64| {
        let payload = cezone_proto::events::v1::StatisticRecorded {
            statistic: Some(psv::StatisticReturn {
                org_unit: community.clone(),
                metric: "residents_served".into(),
                period: 2013,
                value,
                version,
                filed_by: "t".into(),
                ..Default::default()
            }),
        };
        cezone_bus::envelope("statistic.recorded", "surveys", &payload, None)
    };
    let top = stat(newest, 1_000_003);
    for env in [
        stat(older, 1_000_002),
        top.clone(),
        top,
        stat(older, 1_000_001),
    ] {
        s.bus.publish(&env).await.unwrap();
    }
    converge(&mut s, &want, Duration::from_secs(30)).await;
    // An older version arriving alone later changes nothing either.
    s.bus.publish(&stat(older, 1_000_000)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    converge(&mut s, &want, Duration::from_secs(5)).await;

    // Regression (incremental_update_copied_the_whole_model): with nobody reading the model,
    // an incremental update changes it in place. The scorer used to keep its own reference
    // across the update, so every batch of events copied the whole read model (at province
    // scale, hundreds of MiB per batch).
    let state = s.scoring.as_ref().unwrap().state.clone();
    let before = Arc::as_ptr(&state.current().await.unwrap()) as usize;
    let mut updates = state.updates.subscribe();
    s.bus.publish(&stat(older, 1_000_004)).await.unwrap();
    let update = tokio::time::timeout(Duration::from_secs(30), updates.recv())
        .await
        .expect("the newer statistic is scored")
        .unwrap();
    assert_eq!(
        Arc::as_ptr(&update.model) as usize,
        before,
        "the incremental update copied the model instead of changing it in place"
    );
    drop(update);
    converge(&mut s, &back, Duration::from_secs(30)).await;
    s.stop().await;
}
