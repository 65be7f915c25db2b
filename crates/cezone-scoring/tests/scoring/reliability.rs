//! What makes every fact reach the score exactly once: a rebuild replaces what the services
//! never said, the consumer refuses what the services would refuse, two replicas answer alike
//! and announce each change once, purged records change nothing, and a full outbox refuses
//! writes instead of lagging without bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cezone_bus::{Bus, BusConfig, InProcessBus, QueueType};
use cezone_domain::guangdong;
use cezone_platform::testing::{Backend, fresh_bus_prefix};
use cezone_proto::events::v1 as ev;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_proto::surveys::v1 as psv;
use prost::Message;
use tonic::Code;

use super::events::{
    all_cells, broker_accepts, converge, domain_total, flush, load_and_converge, rabbitmqctl,
    recompute_agrees,
};
use super::{Stack, spawn_tuned, spawn_with};

/// A stack on the in-process bus (signing and checking events as services do), and a bus on
/// the same exchange without the deployment's key: it publishes what an outsider could and
/// reads the dead-letter queues.
async fn in_process(backend: Backend) -> (Stack, InProcessBus) {
    let prefix = fresh_bus_prefix();
    let config = cezone_platform::testing::in_process_bus(&prefix);
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::connect(&config).unwrap());
    let outsider = InProcessBus::connect(&BusConfig::in_process(&prefix)).unwrap();
    (spawn_with(backend, bus).await, outsider)
}

fn first_town(s: &Stack) -> String {
    s.district
        .units
        .iter()
        .find(|u| u.parent.as_ref().is_some_and(|p| p.as_str() == "nanhai"))
        .unwrap()
        .id
        .to_string()
}

/// A `statistic.recorded` event as if the surveys service had sent it.
fn statistic_event(org_unit: &str, metric: &str, value: i64, version: u64) -> cezone_bus::Envelope {
    let payload = ev::StatisticRecorded {
        statistic: Some(psv::StatisticReturn {
            org_unit: org_unit.into(),
            metric: metric.into(),
            period: 2013,
            value,
            filed_by: "forged".into(),
            version,
            ..Default::default()
        }),
    };
    cezone_bus::envelope("statistic.recorded", "surveys", &payload, None)
}

/// The demo's facts with one statistic of one org unit set to `value`.
fn with_stat(s: &Stack, org_unit: &str, metric: &str, value: i64) -> cezone_domain::Facts {
    let (fw, _) = guangdong::framework();
    let mut facts = s.district.facts(&fw.catalog);
    let mut found = false;
    for f in &mut facts.statistics {
        if f.metric.as_str() == metric && f.period == 2013 && f.org_unit.as_str() == org_unit {
            f.value = value;
            found = true;
        }
    }
    assert!(found, "the demo files {metric} for {org_unit}");
    facts
}

/// A version the surveys service never gave, published straight to the exchange, wins by
/// version; `Recompute` replaces it with the services' own value, and a real filing after it
/// counts again.
async fn recompute_replaces_what_the_services_never_said(backend: Backend) {
    let (mut s, _) = in_process(backend).await;
    load_and_converge(&mut s).await;
    let town = first_town(&s);
    s.bus
        .publish(&statistic_event(&town, "staff_trained", 1, 1_000_000))
        .await
        .unwrap();
    let forged = domain_total(&s, &with_stat(&s, &town, "staff_trained", 1));
    assert_ne!(
        forged,
        s.expected_total(),
        "the forged value moves the total"
    );
    converge(&mut s, &forged, Duration::from_secs(30)).await;

    s.recompute().await;
    assert_eq!(
        all_cells(&mut s).await[0].total.as_ref().unwrap().confirmed,
        s.expected_total(),
        "Recompute rebuilds from the services' data alone"
    );

    let mut sv = cezone_client::surveys::client(s.channels.surveys.clone());
    sv.record_statistic(psv::StatisticReturn {
        org_unit: town.clone(),
        metric: "staff_trained".into(),
        period: 2013,
        value: 2,
        filed_by: "t".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    flush(&s).await;
    let want = domain_total(&s, &with_stat(&s, &town, "staff_trained", 2));
    converge(&mut s, &want, Duration::from_secs(30)).await;
    recompute_agrees(&mut s).await;
    s.stop().await;
}

/// Facts the surveys service would refuse — a negative value, an org unit nobody created, more
/// positive answers than answers — and a fact no service of the deployment signed go to the
/// dead-letter queue with the reason, and nothing of them reaches the read model.
async fn the_consumer_refuses_what_the_services_would(backend: Backend) {
    let (mut s, peek) = in_process(backend).await;
    load_and_converge(&mut s).await;
    let before = all_cells(&mut s).await;
    let town = first_town(&s);
    s.bus
        .publish(&statistic_event(&town, "staff_trained", -5, 1_000_000))
        .await
        .unwrap();
    s.bus
        .publish(&statistic_event(
            "nanhai.nowhere",
            "staff_trained",
            5,
            1_000_000,
        ))
        .await
        .unwrap();
    let tally = ev::SurveyBatchAggregated {
        tallies: vec![ev::SurveyTally {
            org_unit: town.clone(),
            question: "awareness".into(),
            period: 2013,
            responses: 3,
            positive: 4,
            survey_id: "forged".into(),
            version: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    s.bus
        .publish(&cezone_bus::envelope(
            "survey.batch_aggregated",
            "surveys",
            &tally,
            None,
        ))
        .await
        .unwrap();
    // Published by an outsider: a plausible value, but not signed by a service.
    peek.publish(&statistic_event(&town, "staff_trained", 3, 1_000_000))
        .await
        .unwrap();
    let mut reasons = Vec::new();
    for _ in 0..100 {
        while let Some(d) = peek.take_dead_letter("scoring").await.unwrap() {
            reasons.push(d.reason);
        }
        if reasons.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reasons.sort();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons.iter().any(
            |r| r.contains("was not published by this deployment's services: it is not signed")
        ),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("value: -5 is negative")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("org_unit: 'nanhai.nowhere' is not an existing org unit")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("positive: 4 positive answers out of 3 responses")),
        "{reasons:?}"
    );
    assert_eq!(all_cells(&mut s).await, before, "nothing was applied");
    recompute_agrees(&mut s).await;
    s.stop().await;
}

/// Change records and event ids past the retention are purged; the scorer keeps its place and
/// later facts still count.
async fn purged_records_change_nothing(backend: Backend) {
    let (mut s, _) = in_process(backend).await;
    load_and_converge(&mut s).await;
    let db = s.scoring.as_ref().unwrap().db.clone();
    let (changes, events) = cezone_scoring::purge(&db, Duration::ZERO).await.unwrap();
    assert!(
        changes > 0 && events > 0,
        "{changes} changes, {events} events"
    );
    let town = first_town(&s);
    let mut sv = cezone_client::surveys::client(s.channels.surveys.clone());
    sv.record_statistic(psv::StatisticReturn {
        org_unit: town.clone(),
        metric: "staff_trained".into(),
        period: 2013,
        value: 2,
        filed_by: "t".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    flush(&s).await;
    let want = domain_total(&s, &with_stat(&s, &town, "staff_trained", 2));
    converge(&mut s, &want, Duration::from_secs(30)).await;
    recompute_agrees(&mut s).await;
    s.stop().await;
}

cezone_platform::contract_tests!(
    recompute_replaces_what_the_services_never_said,
    the_consumer_refuses_what_the_services_would,
    purged_records_change_nothing
);

/// Two scoring replicas on one database and one queue: each answers every cell alike once the
/// burst is over, and each filing's change is announced (`scores.changed`) by one of them only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_answer_alike_and_announce_each_change_once() {
    let (mut s, _) = in_process(Backend::Postgres).await;
    let mut announcements = s
        .bus
        .subscribe("announcements", &["scores.changed"])
        .await
        .unwrap();
    let second = cezone_scoring::Application::build(&s.env.settings, s.bus.clone())
        .await
        .unwrap();
    load_and_converge(&mut s).await;

    let towns: Vec<String> = s
        .district
        .units
        .iter()
        .filter(|u| u.parent.as_ref().is_some_and(|p| p.as_str() == "nanhai"))
        .map(|u| u.id.to_string())
        .collect();
    let mut filed = Vec::new();
    let mut last = BTreeMap::new();
    let mut sv = cezone_client::surveys::client(s.channels.surveys.clone());
    for round in 0..30i64 {
        let statistics: Vec<psv::StatisticReturn> = towns
            .iter()
            .map(|t| psv::StatisticReturn {
                org_unit: t.clone(),
                metric: "staff_trained".into(),
                period: 2013,
                value: 1 + round % 9,
                filed_by: "t".into(),
                ..Default::default()
            })
            .collect();
        let r = sv
            .record_statistics(psv::RecordStatisticsRequest {
                statistics,
                dry_run: false,
            })
            .await
            .unwrap()
            .into_inner();
        filed.extend(r.event_ids);
        for t in &towns {
            last.insert(t.clone(), 1 + round % 9);
        }
    }
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
    converge(&mut s, &want, Duration::from_secs(60)).await;
    let first = all_cells(&mut s).await;
    let mut other = s.client.clone();
    s.client = ScoringServiceClient::new(
        cezone_client::connect(&second.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    converge(&mut s, &want, Duration::from_secs(60)).await;
    assert_eq!(first, all_cells(&mut s).await, "both replicas answer alike");
    std::mem::swap(&mut s.client, &mut other);

    // Every announcement so far: no filing's event is named twice.
    let mut named: BTreeMap<String, usize> = BTreeMap::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(2), announcements.next()).await
    {
        let env = d.envelope().unwrap();
        let p = ev::ScoresChanged::decode(env.payload.as_slice()).unwrap();
        for id in p.caused_by {
            *named.entry(id).or_default() += 1;
        }
        d.ack().await.unwrap();
    }
    let twice: Vec<(&String, &usize)> = named.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "announced more than once: {twice:?}");
    assert!(
        filed.iter().any(|id| named.contains_key(id)),
        "the filings were announced"
    );
    second.stop().await;
    s.stop().await;
}

/// With the broker down, a producer's outbox fills up to the limit and further writes are
/// refused with `RESOURCE_EXHAUSTED` and a retry hint; when the broker is back the backlog
/// drains, writes are taken again, and every accepted filing reaches the scores.
pub(crate) async fn rabbitmq_a_full_outbox_refuses_writes_until_the_broker_is_back(
    queue_type: QueueType,
) {
    // It stops the broker: no test that needs it still runs meanwhile.
    let _broker = cezone_platform::testing::BrokerLock::exclusive().await;
    let bus = Arc::new(
        cezone_bus::AmqpBus::connect(&BusConfig {
            amqp_url: cezone_platform::testing::amqp_url(),
            prefix: fresh_bus_prefix(),
            connection_name: "cezone-backpressure-test".into(),
            prefetch: 32,
            queue_type,
            delivery_limit: cezone_bus::DEFAULT_DELIVERY_LIMIT,
            event_key: Some(cezone_platform::testing::event_key()),
        })
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 is needed by this test"),
    );
    let dynbus: Arc<dyn Bus> = bus.clone();
    let mut s = spawn_tuned(Backend::Postgres, dynbus, |settings| {
        settings.bus.outbox_backlog_limit = 50;
    })
    .await;
    load_and_converge(&mut s).await;
    let town = first_town(&s);
    let mut sv = cezone_client::surveys::client(s.channels.surveys.clone());
    let file = |value: i64| psv::StatisticReturn {
        org_unit: town.clone(),
        metric: "staff_trained".into(),
        period: 2013,
        value,
        filed_by: "t".into(),
        ..Default::default()
    };

    rabbitmqctl(&["stop_app"]);
    let mut accepted = 0;
    let mut refused = None;
    for value in 1..2000i64 {
        match sv.record_statistic(file(1 + value % 9)).await {
            Ok(_) => accepted = 1 + value % 9,
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("filings are refused once the outbox is past its limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("waiting to be published (limit 50)"),
        "{}",
        refused.message()
    );
    let hint = cezone_platform::error::retry_after(&refused).expect("a retry hint");
    assert!(hint >= Duration::from_secs(1), "{hint:?}");

    rabbitmqctl(&["start_app"]);
    broker_accepts().await;
    let mut taken = None;
    for _ in 0..120 {
        match sv.record_statistic(file(7)).await {
            Ok(r) => {
                taken = Some(r);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    assert!(
        taken.is_some(),
        "writes are taken again once the backlog drained"
    );
    assert_ne!(accepted, 0);
    flush(&s).await;
    let want = domain_total(&s, &with_stat(&s, &town, "staff_trained", 7));
    converge(&mut s, &want, Duration::from_secs(90)).await;
    recompute_agrees(&mut s).await;
    s.stop().await;
    let _ = bus.delete_topology(&["scoring"]).await;
}

queue_type_tests!(rabbitmq_a_full_outbox_refuses_writes_until_the_broker_is_back);
