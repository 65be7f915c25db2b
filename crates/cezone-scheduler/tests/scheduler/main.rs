//! The scheduler against the four real services over gRPC, on SQLite and PostgreSQL, with a
//! manual clock: runs fall due, freeze once, survive restarts, cover missed runs, and several
//! replicas do each run once.

use std::sync::Arc;
use std::time::Duration;

mod email;

use cezone_platform::access::auth::AuthChannel as Channel;
use cezone_platform::error::violations;
use cezone_platform::testing::{Backend, TestEnv, test_env};
use cezone_proto::scheduler::v1 as psch;
use cezone_proto::scheduler::v1::scheduler_service_client::SchedulerServiceClient;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_scheduler::{Clock, ManualClock};
use chrono::{DateTime, Utc};
use tonic::Code;

/// The first checkpoint of the Guangdong calendar ("materials-complete", 2014-01-01 09:00
/// Beijing time) and its two runs.
const CHECKPOINT: &str = "materials-complete";
const T72: &str = "materials-complete@T-72h";
const T24: &str = "materials-complete@T-24h";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Stack {
    services: cezone_testkit::Services,
    scores: ScoringServiceClient<Channel>,
    env: TestEnv,
}

async fn spawn(backend: Backend) -> Stack {
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    let mut env = test_env(backend).await;
    env.settings.scheduler.port = 0;
    let services = cezone_testkit::Services::start(&env.settings, bus)
        .await
        .unwrap();
    env.settings = services.settings.clone();
    services
        .load(&cezone_testkit::district(2, 6, 20, 5))
        .await
        .unwrap();
    let scores = services.scores().await.unwrap();
    Stack {
        services,
        scores,
        env,
    }
}

impl Stack {
    async fn scheduler(
        &self,
        clock: &Arc<ManualClock>,
    ) -> (
        cezone_scheduler::Application,
        SchedulerServiceClient<Channel>,
    ) {
        let clock: Arc<dyn Clock> = clock.clone();
        let app = cezone_scheduler::Application::build(&self.env.settings, clock)
            .await
            .unwrap();
        let client = SchedulerServiceClient::new(
            cezone_client::connect(&app.url(), &cezone_platform::testing::office())
                .await
                .unwrap(),
        );
        (app, client)
    }

    async fn snapshots(&mut self) -> Vec<ps::Snapshot> {
        self.scores
            .list_snapshots(ps::ListSnapshotsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .snapshots
    }

    async fn stop(self) {
        self.services.stop().await;
    }
}

/// The reminders `who` may read on the scheduler at `url`.
async fn notifications(
    s: &Stack,
    url: &str,
    who: &cezone_domain::access::Principal,
) -> Vec<psch::Notification> {
    let bearer = cezone_platform::access::auth::Bearer::minted(s.env.keys(), who.clone());
    SchedulerServiceClient::new(cezone_client::connect(url, &bearer).await.unwrap())
        .list_notifications(psch::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notifications
}

async fn runs(client: &mut SchedulerServiceClient<Channel>) -> psch::ListRunsResponse {
    client
        .list_runs(psch::ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
}

fn state_of(list: &psch::ListRunsResponse, key: &str) -> psch::RunState {
    let run = list
        .runs
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("{key} is not planned"));
    psch::RunState::try_from(run.state).unwrap()
}

/// Waits (bounded) until the scheduler's loop has recorded `key`.
async fn wait_done(client: &mut SchedulerServiceClient<Channel>, key: &str) -> psch::PlannedRun {
    for _ in 0..300 {
        let list = runs(client).await;
        if state_of(&list, key) == psch::RunState::Done {
            return list.runs.into_iter().find(|r| r.key == key).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} was not done within 30 s");
}

async fn a_due_run_freezes_once_and_a_restart_does_not_repeat_it(backend: Backend) {
    let mut s = spawn(backend).await;
    let clock = Arc::new(ManualClock::new(at("2013-12-28T00:00:00Z")));
    let (app, mut client) = s.scheduler(&clock).await;
    let list = runs(&mut client).await;
    assert_eq!(state_of(&list, T72), psch::RunState::Upcoming);
    assert_eq!(state_of(&list, T24), psch::RunState::Upcoming);
    assert_eq!(
        list.runs.iter().find(|r| r.key == T72).unwrap().due_at,
        "2013-12-29T01:00:00.000Z",
        "72 h before 09:00 Beijing time on 2014-01-01"
    );
    assert!(s.snapshots().await.is_empty(), "nothing is due yet");

    clock.set(at("2013-12-29T01:00:05Z"));
    let done = wait_done(&mut client, T72).await;
    let record = done.record.unwrap();
    assert_eq!(record.trigger, "schedule");
    assert_eq!(
        runs(&mut client)
            .await
            .runs
            .iter()
            .filter(|r| r.state == psch::RunState::Done as i32)
            .count(),
        1
    );
    let snapshots = s.snapshots().await;
    assert_eq!(snapshots.len(), 1);
    let snap = &snapshots[0];
    assert_eq!(
        (
            snap.id.as_str(),
            snap.checkpoint.as_str(),
            snap.label.as_str()
        ),
        (record.snapshot_id.as_str(), CHECKPOINT, T72)
    );
    let readiness: serde_json::Value = serde_json::from_str(&snap.readiness_json).unwrap();
    assert!(
        readiness.get("key_short").is_some(),
        "the snapshot keeps its readiness report: {readiness}"
    );
    let current = s
        .scores
        .get_scores(ps::GetScoresRequest {
            items: vec!["1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.district_total, snap.district_total);
    assert!(current.total.is_some());
    assert!(
        record.slots_missing > 0,
        "the demo district owes evidence: {record:?}"
    );

    // The units that still owe something are reminded with the run; a town reads its own.
    use cezone_domain::access::{Principal, Role};
    let office = Principal::new("office", Role::EvaluationOffice, None, None).unwrap();
    let reminded = notifications(&s, &app.url(), &office).await;
    assert!(!reminded.is_empty(), "the demo district owes evidence");
    for n in &reminded {
        assert_eq!(
            (n.run_key.as_str(), n.checkpoint.as_str()),
            (T72, CHECKPOINT)
        );
        assert!(
            n.materials_missing + n.statistics_missing + n.statistics_returned > 0,
            "{n:?}"
        );
        assert!(
            n.materials_late <= n.materials_missing,
            "the late ones are among the missing: {n:?}"
        );
        assert!(
            n.text.starts_with("提醒：") && n.text.contains("Reminder: before materials-complete"),
            "{n:?}"
        );
    }
    let town = reminded
        .iter()
        .find(|n| n.responsible_unit == "towns")
        .expect("a town owes materials");
    let guicheng = Principal::new(
        "town",
        Role::Town,
        Some(cezone_domain::units::UnitId::parse("towns").unwrap()),
        Some(cezone_domain::org::OrgUnitId::parse(&town.org_unit).unwrap()),
    )
    .unwrap();
    let own = notifications(&s, &app.url(), &guicheng).await;
    assert!(!own.is_empty());
    assert!(
        own.iter()
            .all(|n| n.responsible_unit == "towns" && n.org_unit == town.org_unit)
    );

    // A restart (same database, same time) finds the run recorded and does not repeat it.
    app.stop().await;
    let (app, mut client) = s.scheduler(&clock).await;
    let look = app.scheduler.look().await.unwrap();
    assert!(look.ran.is_empty());
    assert_eq!(
        notifications(&s, &app.url(), &office).await.len(),
        reminded.len(),
        "reminded once, whatever the restarts"
    );
    assert_eq!(look.next_due, Some(at("2013-12-31T01:00:00Z")));
    assert_eq!(
        state_of(&runs(&mut client).await, T72),
        psch::RunState::Done
    );
    assert_eq!(s.snapshots().await.len(), 1);

    // The next lead time falls due while it runs.
    clock.set(at("2013-12-31T02:00:00Z"));
    wait_done(&mut client, T24).await;
    assert_eq!(s.snapshots().await.len(), 2);
    let again = notifications(&s, &app.url(), &office).await;
    assert_eq!(
        again.len(),
        2 * reminded.len(),
        "the next lead time reminds again"
    );
    assert_eq!(again[0].run_key, T24, "newest first");
    app.stop().await;
    s.stop().await;
}

async fn missed_runs_are_done_once_at_start(backend: Backend) {
    let mut s = spawn(backend).await;
    // Both lead times passed while no scheduler ran; the checkpoint has not.
    let clock = Arc::new(ManualClock::new(at("2013-12-31T12:00:00Z")));
    let (app, mut client) = s.scheduler(&clock).await;
    let late = wait_done(&mut client, T24).await;
    let list = runs(&mut client).await;
    assert_eq!(state_of(&list, T72), psch::RunState::Done);
    let early = list.runs.iter().find(|r| r.key == T72).unwrap();
    let (a, b) = (early.record.clone().unwrap(), late.record.unwrap());
    assert_eq!(a.snapshot_id, b.snapshot_id, "one run stands for both");
    assert_eq!(b.key, T24);
    assert_eq!(b.covers.len(), 2);
    assert_eq!(s.snapshots().await.len(), 1);
    // A checkpoint already passed is reported missed, not frozen after the fact.
    clock.set(at("2014-01-02T00:00:00Z"));
    let look = app.scheduler.look().await.unwrap();
    assert!(look.ran.is_empty());
    assert_eq!(s.snapshots().await.len(), 1);
    let pending = client
        .list_runs(psch::ListRunsRequest { pending_only: true })
        .await
        .unwrap()
        .into_inner();
    assert!(pending.runs.iter().all(|r| r.checkpoint != CHECKPOINT));
    app.stop().await;
    s.stop().await;
}

async fn run_now_freezes_and_refuses_an_unknown_checkpoint(backend: Backend) {
    let mut s = spawn(backend).await;
    let clock = Arc::new(ManualClock::new(at("2013-11-01T00:00:00Z")));
    let (app, mut client) = s.scheduler(&clock).await;
    let err = client
        .run_now(psch::RunNowRequest {
            checkpoint: "2014-02-30".into(),
            requested_by: "office".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = violations(&err);
    assert_eq!(v[0].0, "checkpoint");
    assert!(
        v[0].1.contains("'2014-02-30'") && v[0].1.contains("materials-submitted"),
        "{v:?}"
    );
    assert!(
        s.snapshots().await.is_empty(),
        "refused requests freeze nothing"
    );

    // The request names someone else; the snapshot names who is signed in.
    let record = client
        .run_now(psch::RunNowRequest {
            checkpoint: CHECKPOINT.into(),
            requested_by: "区委书记".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.trigger, "manual");
    let snapshots = s.snapshots().await;
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].frozen_by, "test-evaluation_office");
    assert_eq!(snapshots[0].id, record.snapshot_id);
    // A manual run is not a planned one: the plan still stands.
    assert_eq!(
        state_of(&runs(&mut client).await, T72),
        psch::RunState::Upcoming
    );
    app.stop().await;
    s.stop().await;
}

use email::reminders_are_emailed_once_to_the_accounts_of_each_unit;

cezone_platform::contract_tests!(
    reminders_are_emailed_once_to_the_accounts_of_each_unit,
    a_due_run_freezes_once_and_a_restart_does_not_repeat_it,
    missed_runs_are_done_once_at_start,
    run_now_freezes_and_refuses_an_unknown_checkpoint,
);

/// Several replicas on one PostgreSQL database look at the same moment: each run is done once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_do_each_run_once() {
    let mut s = spawn(Backend::Postgres).await;
    let clock = Arc::new(ManualClock::new(at("2013-12-29T06:00:00Z")));
    let dynclock: Arc<dyn Clock> = clock.clone();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let db = cezone_platform::db::connect(&s.env.settings.database, "scheduler")
            .await
            .unwrap();
        replicas.push(
            cezone_scheduler::Scheduler::new(
                &s.env.settings,
                db,
                dynclock.clone(),
                &cezone_platform::testing::as_role(cezone_domain::access::Role::Service),
            )
            .unwrap(),
        );
    }
    // The tables come from one scheduler application's migrations.
    let (app, _) = s
        .scheduler(&Arc::new(ManualClock::new(at("2013-01-01T00:00:00Z"))))
        .await;
    let looks = futures::future::join_all(replicas.iter().map(|r| r.look())).await;
    let ran: usize = looks.into_iter().map(|l| l.unwrap().ran.len()).sum();
    let snapshots = s.snapshots().await;
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(ran, 1, "exactly one replica ran it");
    // Whoever lost the race sees the run done at its next look.
    for r in &replicas {
        assert!(r.look().await.unwrap().ran.is_empty());
    }
    assert_eq!(s.snapshots().await.len(), 1);
    app.stop().await;
    s.stop().await;
}

/// A clock that reads `first` once, then `later`: time passing while a look works.
#[derive(Debug)]
struct SteppingClock {
    first: DateTime<Utc>,
    later: DateTime<Utc>,
    reads: std::sync::atomic::AtomicUsize,
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            self.first
        } else {
            self.later
        }
    }

    fn sleep_until(&self, _: DateTime<Utc>) -> cezone_scheduler::clock::Sleep<'_> {
        Box::pin(std::future::pending())
    }
}

/// Regression: the next wake-up was computed from the time after a look, so a run falling due
/// while the look worked was slept past (until the poll interval, or forever on a test clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_run_falling_due_during_a_look_is_not_slept_past() {
    let s = spawn(Backend::Sqlite).await;
    let clock: Arc<dyn Clock> = Arc::new(SteppingClock {
        first: at("2013-12-28T00:00:00Z"),
        later: at("2013-12-31T02:00:00Z"),
        reads: Default::default(),
    });
    // Migrations come from an application; the look under test is a bare scheduler's.
    let (app, _) = s
        .scheduler(&Arc::new(ManualClock::new(at("2013-01-01T00:00:00Z"))))
        .await;
    let db = cezone_platform::db::connect(&s.env.settings.database, "scheduler")
        .await
        .unwrap();
    let scheduler = cezone_scheduler::Scheduler::new(
        &s.env.settings,
        db,
        clock,
        &cezone_platform::testing::as_role(cezone_domain::access::Role::Service),
    )
    .unwrap();
    let look = scheduler.look().await.unwrap();
    assert_eq!(look.at, at("2013-12-28T00:00:00Z"));
    assert!(look.ran.is_empty());
    assert_eq!(
        look.next_due,
        Some(at("2013-12-29T01:00:00Z")),
        "the 72 h run is next, already past by the clock"
    );
    app.stop().await;
    s.stop().await;
}
