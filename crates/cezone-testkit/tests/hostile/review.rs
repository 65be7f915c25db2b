//! The review of statistics over real gRPC with scoring fed by events: a town's filing waits
//! for the level above, counts in the projected score only until accepted, counts nowhere once
//! returned; who may decide follows the hierarchy and the matrix, and refusals change nothing.

use cezone_platform::error::violations;
use cezone_proto::surveys::v1 as psv;

use super::*;

const METRIC: &str = "residents_served";
/// Reads residents_served over the population (half its points) beside evidence.
const CRITERION: &str = "3.1.1";

/// The criterion's two scores at `org` and its explanation, once `ready` holds (the events of
/// the last change have reached scoring), within 30 s.
async fn cell_when(
    s: &Stack,
    org: &OrgUnitId,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> (f64, f64, serde_json::Value) {
    cell_of(s, org, CRITERION, ready).await
}

/// As `cell_when`, for `criterion`.
pub(crate) async fn cell_of(
    s: &Stack,
    org: &OrgUnitId,
    criterion: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> (f64, f64, serde_json::Value) {
    let office = p(Role::EvaluationOffice, None, None);
    let mut scoring = s.scoring(&office).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        s.services.flush_events().await;
        let r = scoring
            .get_scores(ps::GetScoresRequest {
                org_unit: org.to_string(),
                items: vec![criterion.into()],
                explain: true,
            })
            .await
            .unwrap()
            .into_inner();
        let item = &r.items[0];
        let x: serde_json::Value = serde_json::from_str(&item.explanation_json).unwrap();
        if ready(&x) {
            let score = item.score.clone().unwrap();
            return (
                score.confirmed.parse().unwrap(),
                score.projected.parse().unwrap(),
                x,
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scoring did not reach the expected state: {x:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn unreviewed(x: &serde_json::Value) -> Vec<(String, String, String)> {
    x["unreviewed"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
                    (
                        u["metric"].as_str().unwrap().to_string(),
                        u["org_unit"].as_str().unwrap().to_string(),
                        u["state"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key(org: &OrgUnitId, period: i32) -> psv::StatisticKey {
    psv::StatisticKey {
        org_unit: org.to_string(),
        metric: METRIC.into(),
        period,
        version: 0,
    }
}

fn decide(
    keys: Vec<psv::StatisticKey>,
    accept: bool,
    comment: &str,
) -> psv::ReviewStatisticsRequest {
    psv::ReviewStatisticsRequest {
        statistics: keys,
        decision: if accept {
            psv::StatisticDecision::Accept
        } else {
            psv::StatisticDecision::Return
        } as i32,
        comment: comment.into(),
        ..Default::default()
    }
}

async fn latest(s: &Stack, org: &OrgUnitId) -> psv::StatisticReturn {
    let period = s.district.params.period;
    let office = p(Role::EvaluationOffice, None, None);
    let r = s
        .surveys(&office)
        .await
        .list_statistics(psv::ListStatisticsRequest {
            org_unit: org.to_string(),
            metric: METRIC.into(),
            period,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statistics.len(), 1, "one latest filing");
    r.statistics[0].clone()
}

pub async fn statistics_are_reviewed_one_level_up_and_count_once_accepted(backend: Backend) {
    let s = spawn(backend).await;
    let period = s.district.params.period;
    let towns = s.towns();
    let (t1, t2) = (&towns[0], &towns[1]);
    let communities: Vec<&cezone_domain::org::OrgUnit> = s
        .district
        .units
        .iter()
        .filter(|u| u.parent.as_ref() == Some(t1) && u.level == OrgLevel::Community)
        .collect();
    assert!(communities.len() >= 2, "two communities in the first town");
    let (c, c2) = (&communities[0].id, &communities[1].id);
    let population = communities[0].population[&period] as i64;
    let office = p(Role::EvaluationOffice, None, None);
    let town1 = p(Role::Town, Some("towns"), Some(t1));
    let town2 = Principal::new(
        "town-two",
        Role::Town,
        Some(UnitId::parse("towns").unwrap()),
        Some(t2.clone()),
    )
    .unwrap();
    let education = p(Role::ResponsibleUnit, Some("education"), None);
    let finance = p(Role::ResponsibleUnit, Some("finance"), None);
    let inspector = p(Role::Inspector, None, None);
    let admin = p(Role::DistrictAdmin, None, None);
    let service = p(Role::Service, None, None);
    let filing = |value: i64| psv::StatisticReturn {
        org_unit: c.to_string(),
        metric: METRIC.into(),
        period,
        value,
        ..Default::default()
    };

    // The office's own filings need nobody's approval (the demo was loaded by it).
    let loaded = latest(&s, c).await;
    assert_eq!(loaded.state, psv::StatisticState::Accepted as i32);
    let (before, _, x) = cell_when(&s, c, |x| unreviewed(x).is_empty()).await;
    assert!(x["projected_because"].is_null(), "{x:#}");

    // A town's filing waits: every resident served (100 %) counts in the projected score only.
    let filed = s
        .surveys(&town1)
        .await
        .record_statistic(filing(population))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        filed.state,
        psv::StatisticState::Pending as i32,
        "{filed:?}"
    );
    let (p_conf, p_proj, x) = cell_when(&s, c, |x| {
        unreviewed(x) == vec![(METRIC.into(), c.to_string(), "pending".into())]
    })
    .await;
    let why = x["projected_because"].as_str().unwrap();
    assert!(
        why.contains("待审核") && why.contains("pending review"),
        "{why}"
    );
    assert!(
        p_conf < p_proj,
        "pending counts in the projected score only: {p_conf} / {p_proj}"
    );
    assert!(
        p_conf <= before,
        "the pending correction takes the earlier figure out of the confirmed score"
    );

    // Who may not decide on it, each refused by name, nothing changed.
    let accept = || decide(vec![key(c, period)], true, "");
    let refusals: Vec<(&Principal, psv::ReviewStatisticsRequest, Code, &str)> = vec![
        (&town2, accept(), Code::PermissionDenied, "outside"),
        (&town1, accept(), Code::PermissionDenied, "own filing"),
        (
            &finance,
            accept(),
            Code::PermissionDenied,
            "feeds only criteria of",
        ),
        (
            &inspector,
            accept(),
            Code::PermissionDenied,
            "may not review a statistic",
        ),
        (
            &admin,
            accept(),
            Code::PermissionDenied,
            "may not review a statistic",
        ),
        (
            &service,
            accept(),
            Code::PermissionDenied,
            "may not review a statistic",
        ),
        (
            &education,
            decide(vec![key(c, period)], false, "  "),
            Code::InvalidArgument,
            "what is wrong",
        ),
        (
            &education,
            psv::ReviewStatisticsRequest {
                decision: 9,
                ..decide(vec![key(c, period)], true, "")
            },
            Code::InvalidArgument,
            "not a decision",
        ),
        (
            &education,
            decide(
                vec![psv::StatisticKey {
                    version: filed.version as u64 - 1,
                    ..key(c, period)
                }],
                true,
                "",
            ),
            Code::FailedPrecondition,
            "superseded by version",
        ),
        (
            &education,
            decide(vec![key(c, period), key(c2, period)], true, ""),
            Code::FailedPrecondition,
            "already accepted",
        ),
    ];
    for (who, req, code, says) in refusals {
        let err = s
            .surveys(who)
            .await
            .review_statistics(req)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{}: {err:?}", who.describe());
        assert!(
            err.message().contains(says),
            "{}: {}",
            who.describe(),
            err.message()
        );
    }
    assert_eq!(
        latest(&s, c).await.state,
        psv::StatisticState::Pending as i32,
        "refusals change nothing"
    );

    // The responsible department accepts: the figure is confirmed.
    let done = s
        .surveys(&education)
        .await
        .review_statistics(decide(vec![key(c, period)], true, "核实无误"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.statistics.len(), 1);
    assert_eq!(done.event_ids.len(), 1);
    let stored = latest(&s, c).await;
    assert_eq!(stored.state, psv::StatisticState::Accepted as i32);
    assert_eq!(
        (stored.reviewed_by.as_str(), stored.review_comment.as_str()),
        (education.subject.as_str(), "核实无误")
    );
    let (a_conf, a_proj, _) = cell_when(&s, c, |x| unreviewed(x).is_empty()).await;
    assert_eq!(a_proj, p_proj, "accepting changes no projection");
    assert!(
        a_conf > p_conf,
        "accepted, it counts in the confirmed score: {p_conf} → {a_conf}"
    );
    // Decided once: a second decision is refused.
    let err = s
        .surveys(&office)
        .await
        .review_statistics(decide(vec![key(c, period)], false, "no"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains(&format!("already accepted by {}", education.subject)),
        "{}",
        err.message()
    );

    // A correction returned with a comment counts nowhere until filed again.
    s.surveys(&town1)
        .await
        .record_statistic(filing(population / 2))
        .await
        .unwrap();
    let ret = s
        .surveys(&education)
        .await
        .review_statistics(decide(
            vec![key(c, period)],
            false,
            "与办班登记表不符，请核对后重报",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ret.statistics[0].state,
        psv::StatisticState::Returned as i32
    );
    let returned = s
        .surveys(&town1)
        .await
        .list_statistics(psv::ListStatisticsRequest {
            state: psv::StatisticState::Returned as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .statistics;
    assert_eq!(returned.len(), 1, "{returned:?}");
    assert_eq!(returned[0].review_comment, "与办班登记表不符，请核对后重报");
    let (r_conf, r_proj, x) = cell_when(&s, c, |x| {
        unreviewed(x) == vec![(METRIC.into(), c.to_string(), "returned".into())]
    })
    .await;
    assert!(
        x["projected_because"]
            .as_str()
            .unwrap()
            .contains("count in neither score"),
        "{x:#}"
    );
    assert_eq!(r_conf, p_conf, "returned: no figure in the confirmed score");
    assert!(
        r_proj < a_proj,
        "returned: no figure in the projected score either"
    );

    // A whole return: the department accepts everything pending under the town at once; a
    // town with nothing pending is told so.
    s.surveys(&town1)
        .await
        .record_statistic(filing(population))
        .await
        .unwrap();
    s.surveys(&town1)
        .await
        .record_statistic(psv::StatisticReturn {
            org_unit: c2.to_string(),
            ..filing(1)
        })
        .await
        .unwrap();
    let err = s
        .surveys(&education)
        .await
        .review_statistics(psv::ReviewStatisticsRequest {
            return_of: t2.to_string(),
            period,
            ..decide(vec![], true, "")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("nothing under"), "{}", err.message());
    let bulk = s
        .surveys(&education)
        .await
        .review_statistics(psv::ReviewStatisticsRequest {
            return_of: t1.to_string(),
            period,
            ..decide(vec![], true, "")
        })
        .await
        .unwrap()
        .into_inner();
    let mut decided: Vec<String> = bulk.statistics.iter().map(|s| s.org_unit.clone()).collect();
    decided.sort();
    let mut want = vec![c.to_string(), c2.to_string()];
    want.sort();
    assert_eq!(decided, want);
    assert!(
        bulk.statistics
            .iter()
            .all(|s| s.state == psv::StatisticState::Accepted as i32)
    );
    let (f_conf, f_proj, _) = cell_when(&s, c, |x| unreviewed(x).is_empty()).await;
    assert_eq!(
        (f_conf, f_proj),
        (a_conf, a_proj),
        "the same figure accepted scores the same"
    );

    // The history: each earlier filing superseded by the correction after it, its review kept.
    let history = s
        .surveys(&office)
        .await
        .list_statistics(psv::ListStatisticsRequest {
            org_unit: c.to_string(),
            metric: METRIC.into(),
            period,
            all_versions: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .statistics;
    let states: Vec<(u64, i32)> = history.iter().map(|s| (s.version, s.state)).collect();
    let n = history.len();
    assert!(n >= 4, "{states:?}");
    assert!(
        history[..n - 1]
            .iter()
            .all(|s| s.state == psv::StatisticState::Superseded as i32),
        "{states:?}"
    );
    assert_eq!(history[n - 1].state, psv::StatisticState::Accepted as i32);
    assert!(
        history
            .iter()
            .any(|s| s.review_comment == "与办班登记表不符，请核对后重报"),
        "the returned filing keeps its comment: {history:?}"
    );

    // Every decision is in the audit log.
    let audit = s
        .surveys(&office)
        .await
        .list_audit(cezone_proto::common::v1::ListAuditRequest {
            action: "statistic.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let count = |a: &str| audit.entries.iter().filter(|e| e.action == a).count();
    assert_eq!(
        (count("statistic.accepted"), count("statistic.returned")),
        (3, 1),
        "{:?}",
        audit.entries.iter().map(|e| &e.action).collect::<Vec<_>>()
    );
    s.scheduler.stop().await;
    s.services.stop().await;
}

/// A locked period takes no statistic and no survey batch from anyone, each refusal audited,
/// until the office unlocks one org unit for a correction; locking again ends the exception.
pub async fn a_locked_period_refuses_filings_until_the_office_unlocks_an_org_unit(
    backend: Backend,
) {
    let s = spawn(backend).await;
    let period = s.district.params.period;
    let towns = s.towns();
    let t1 = &towns[0];
    let communities: Vec<OrgUnitId> = s
        .district
        .units
        .iter()
        .filter(|u| u.parent.as_ref() == Some(t1) && u.level == OrgLevel::Community)
        .map(|u| u.id.clone())
        .collect();
    let (c, c2) = (&communities[0], &communities[1]);
    let office = p(Role::EvaluationOffice, None, None);
    let town1 = p(Role::Town, Some("towns"), Some(t1));
    let education = p(Role::ResponsibleUnit, Some("education"), None);
    let filing = |org: &OrgUnitId, value: i64| psv::StatisticReturn {
        org_unit: org.to_string(),
        metric: METRIC.into(),
        period,
        value,
        ..Default::default()
    };
    let lock = |reason: &str| psv::LockPeriodRequest {
        period,
        reason: reason.into(),
    };
    let unlock = |org: &str, reason: &str| psv::UnlockOrgUnitRequest {
        period,
        org_unit: org.into(),
        reason: reason.into(),
    };

    // Only the office locks and unlocks; a lock needs a year and a reason.
    let err = s
        .surveys(&education)
        .await
        .lock_period(lock("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = s
        .surveys(&town1)
        .await
        .unlock_org_unit(unlock(c.as_str(), "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = s
        .surveys(&office)
        .await
        .lock_period(lock(" "))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "reason");
    let err = s
        .surveys(&office)
        .await
        .lock_period(psv::LockPeriodRequest {
            period: 0,
            ..lock("x")
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "period");
    let err = s
        .surveys(&office)
        .await
        .unlock_org_unit(unlock(c.as_str(), "更正"))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "nothing locked yet: {err:?}"
    );

    // Freezing the snapshot that closes submissions locks the period.
    let mut scoring = s.scoring(&office).await;
    scoring
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap();
    scoring
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: "materials-submitted".into(),
            label: "资料报送截止".into(),
            frozen_by: "test".into(),
            close_submissions: true,
        })
        .await
        .unwrap();
    let frozen = lock_when(&s, |l| l.locked).await;
    assert!(
        frozen.reason.contains("materials-submitted") && frozen.locked_by == "scoring",
        "{frozen:?}"
    );
    evidence_sees(&s, frozen.revision).await;

    let locked = s
        .surveys(&office)
        .await
        .lock_period(lock("材料已报送 materials submitted"))
        .await
        .unwrap()
        .into_inner();
    assert!(locked.locked && locked.unlocked.is_empty(), "{locked:?}");
    assert!(locked.revision > frozen.revision);
    evidence_sees(&s, locked.revision).await;
    let (towns_criterion, _) = criteria_of(&s.fw, "towns");
    let t2 = &towns[1];
    let mut evidence = s.evidence(&office).await;
    let err = ev::upload(
        &mut evidence,
        upload_meta(&towns_criterion, t2, "towns"),
        b"ledger".to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(&format!("can unlock {t2}")),
        "{}",
        err.message()
    );

    // Nobody files into it, the office included; nothing is stored.
    let before = latest(&s, c).await;
    for who in [&town1, &office] {
        let err = s
            .surveys(who)
            .await
            .record_statistic(filing(c, 5))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message()
                .contains(&format!("period {period} is locked"))
                && err.message().contains("materials submitted")
                && err.message().contains(&format!("can unlock {c}")),
            "{}",
            err.message()
        );
    }
    assert_eq!(
        latest(&s, c).await.version,
        before.version,
        "nothing stored"
    );

    // The office unlocks one community for a correction: it may file, its neighbour may not,
    // and a call mixing both stores nothing.
    let err = s
        .surveys(&office)
        .await
        .unlock_org_unit(unlock(c.as_str(), ""))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "reason");
    let err = s
        .surveys(&office)
        .await
        .unlock_org_unit(unlock("nanhai.nowhere", "更正"))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "org_unit");
    let opened = s
        .surveys(&office)
        .await
        .unlock_org_unit(unlock(c.as_str(), "更正2013年服务人数"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.unlocked.len(), 1);
    assert_eq!(opened.unlocked[0].org_unit, c.to_string());
    // Evidence: an unlocked town uploads (past the closed submissions too), another may not.
    let opened = s
        .surveys(&office)
        .await
        .unlock_org_unit(unlock(t1.as_str(), "补交台帐"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.unlocked.len(), 2);
    evidence_sees(&s, opened.revision).await;
    ev::upload(
        &mut evidence,
        upload_meta(&towns_criterion, t1, "towns"),
        b"ledger".to_vec(),
    )
    .await
    .unwrap();
    let err = ev::upload(
        &mut evidence,
        upload_meta(&towns_criterion, t2, "towns"),
        b"ledger".to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = s
        .surveys(&town1)
        .await
        .record_statistics(psv::RecordStatisticsRequest {
            statistics: vec![filing(c, 6), filing(c2, 6)],
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("statistics[1]: period") && err.message().contains("1 of 2 refused"),
        "{}",
        err.message()
    );
    assert_eq!(
        latest(&s, c).await.version,
        before.version,
        "all or nothing"
    );
    let filed = s
        .surveys(&town1)
        .await
        .record_statistic(filing(c, 6))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filed.version, before.version + 1);
    let err = s
        .surveys(&town1)
        .await
        .record_statistic(filing(c2, 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // A survey batch from a locked org unit is refused too, the unlocked one's stored.
    let survey = cezone_client::demo::survey_id(period);
    let response = |org: &OrgUnitId, n: usize| {
        let mut r = s
            .district
            .responses(&s.fw.catalog)
            .find(|r| &r.org_unit == org)
            .unwrap();
        r.respondent = format!("locked-{n}");
        sv::response(&r)
    };
    let mut client = s.surveys(&town1).await;
    let err = sv::ingest(&mut client, &survey, vec![response(c, 1), response(c2, 2)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(&format!("org unit {c2}")),
        "{}",
        err.message()
    );
    sv::ingest(&mut client, &survey, vec![response(c, 3)])
        .await
        .unwrap();

    // Locking again ends the exception.
    let relocked = s
        .surveys(&office)
        .await
        .lock_period(lock("更正完毕"))
        .await
        .unwrap()
        .into_inner();
    assert!(relocked.unlocked.is_empty());
    evidence_sees(&s, relocked.revision).await;
    let err = ev::upload(
        &mut evidence,
        upload_meta(&towns_criterion, t1, "towns"),
        b"ledger".to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = s
        .surveys(&town1)
        .await
        .record_statistic(filing(c, 7))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = sv::ingest(&mut client, &survey, vec![response(c, 4)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let shown = s
        .surveys(&education)
        .await
        .get_period_lock(psv::GetPeriodLockRequest { period })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            shown.locked,
            shown.reason.as_str(),
            shown.locked_by.as_str()
        ),
        (true, "更正完毕", office.subject.as_str())
    );

    // Every lock, unlock and refusal is in the audit log.
    let audit = s
        .surveys(&office)
        .await
        .list_audit(cezone_proto::common::v1::ListAuditRequest {
            action: "period.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let count = |a: &str| audit.entries.iter().filter(|e| e.action == a).count();
    assert_eq!((count("period.locked"), count("period.unlocked")), (3, 2));
    assert_eq!(
        count("period.refused"),
        7,
        "{:?}",
        audit
            .entries
            .iter()
            .map(|e| (&e.action, &e.target))
            .collect::<Vec<_>>()
    );
    // The evidence service audits its refusals too (three uploads refused).
    let refused = s
        .evidence(&office)
        .await
        .list_audit(cezone_proto::common::v1::ListAuditRequest {
            action: "period.refused".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(refused.len(), 3, "{refused:?}");
    s.scheduler.stop().await;
    s.services.stop().await;
}

/// The survey service's lock of the period once `ready` holds, within 20 s.
pub(crate) async fn lock_when(
    s: &Stack,
    ready: impl Fn(&psv::PeriodLock) -> bool,
) -> psv::PeriodLock {
    let office = p(Role::EvaluationOffice, None, None);
    let period = s.district.params.period;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        s.services.flush_events().await;
        let l = s
            .surveys(&office)
            .await
            .get_period_lock(psv::GetPeriodLockRequest { period })
            .await
            .unwrap()
            .into_inner();
        if ready(&l) {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the period was not locked: {l:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (20 s at most) until the evidence service holds the period's lock at `revision`.
async fn evidence_sees(s: &Stack, revision: u64) {
    let db = &s.services.evidence.db;
    let period = s.district.params.period;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        s.services.flush_events().await;
        let held = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT revision FROM evidence_period_locks WHERE period = {period}"),
            ))
            .await
            .unwrap()
            .map_or(0, |r| r.try_get::<i64>("", "revision").unwrap() as u64);
        if held >= revision {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "evidence holds revision {held}, not {revision}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A town asks what its return owes: a new community's figures missing (late once the
/// deadline has passed), a filed one pending, a returned one with the reviewer's comment.
pub async fn a_town_sees_what_its_return_owes_and_by_when(backend: Backend) {
    let s = spawn(backend).await;
    let period = s.district.params.period;
    let t1 = &s.towns()[0];
    let office = p(Role::EvaluationOffice, None, None);
    let town1 = p(Role::Town, Some("towns"), Some(t1));
    let education = p(Role::ResponsibleUnit, Some("education"), None);
    let fresh = OrgUnitId::parse(&format!("{t1}.new01")).unwrap();
    s.registry(&office)
        .await
        .create_org_unit(pr::OrgUnit {
            id: fresh.to_string(),
            name: "新建社区".into(),
            level: cezone_proto::common::v1::OrgLevel::Community as i32,
            parent_id: t1.to_string(),
            community_type: cezone_proto::common::v1::CommunityType::Urban as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let ask = |as_of: &str| psv::ListObligationsRequest {
        period,
        as_of: as_of.into(),
        ..Default::default()
    };
    let of = |o: &psv::Obligations, org: &OrgUnitId, metric: &str| {
        o.items
            .iter()
            .find(|i| i.org_unit == org.to_string() && i.metric == metric)
            .cloned()
            .unwrap_or_else(|| panic!("{metric} at {org} is not owed: {o:?}"))
    };

    // Before the deadline: the new community's figures are missing, not late; the loaded
    // ones accepted. The token says which unit and town are asking.
    let early = s
        .surveys(&town1)
        .await
        .list_obligations(ask("2000-01-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (early.responsible_unit.as_str(), early.org_unit.as_str()),
        ("towns", t1.as_str())
    );
    let served = of(&early, &fresh, METRIC);
    assert_eq!(
        (served.standing, served.late),
        (psv::Standing::Missing as i32, false)
    );
    assert_eq!(served.metric_name, "全年接受社区教育服务的社区成员数");
    assert!(
        early.missing > 0 && early.accepted > 0 && early.late == 0,
        "{early:?}"
    );
    assert_eq!(
        (early.missing + early.returned + early.pending + early.accepted) as usize,
        early.items.len()
    );
    assert_eq!(
        early.items[0].standing,
        psv::Standing::Missing as i32,
        "outstanding first"
    );
    // A rural community's figure is not asked of an urban one.
    assert!(
        early
            .items
            .iter()
            .all(|i| !(i.org_unit == fresh.to_string() && i.metric == "rural_labour"))
    );

    // Filed: pending; returned: with the comment, and late once past the deadline.
    s.surveys(&town1)
        .await
        .record_statistic(psv::StatisticReturn {
            org_unit: fresh.to_string(),
            metric: METRIC.into(),
            period,
            value: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let now = s
        .surveys(&town1)
        .await
        .list_obligations(ask("2000-01-01"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        of(&now, &fresh, METRIC).standing,
        psv::Standing::Pending as i32
    );
    s.surveys(&education)
        .await
        .review_statistics(decide(vec![key(&fresh, period)], false, "人数有误"))
        .await
        .unwrap();
    let late = s
        .surveys(&town1)
        .await
        .list_obligations(ask("2099-01-01"))
        .await
        .unwrap()
        .into_inner();
    let served = of(&late, &fresh, METRIC);
    assert_eq!(
        (
            served.standing,
            served.late,
            served.review_comment.as_str(),
            served.value
        ),
        (psv::Standing::Returned as i32, true, "人数有误", Some(10))
    );
    assert!(late.late > late.missing, "{late:?}");

    // The office asks for any unit and scope; bad questions are refused by field.
    let district = s
        .surveys(&office)
        .await
        .list_obligations(psv::ListObligationsRequest {
            responsible_unit: "towns".into(),
            ..ask("2000-01-01")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(district.items.len() > late.items.len());
    for (req, field) in [
        (
            psv::ListObligationsRequest {
                period: 0,
                ..ask("")
            },
            "period",
        ),
        (
            psv::ListObligationsRequest {
                checkpoint: "nope".into(),
                ..ask("")
            },
            "checkpoint",
        ),
        (
            psv::ListObligationsRequest {
                as_of: "2013-02-30".into(),
                ..ask("")
            },
            "as_of",
        ),
        (
            psv::ListObligationsRequest {
                responsible_unit: "nobody".into(),
                ..ask("")
            },
            "responsible_unit",
        ),
    ] {
        let err = s
            .surveys(&town1)
            .await
            .list_obligations(req)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(violations(&err)[0].0, field);
    }
    let err = s
        .surveys(&office)
        .await
        .list_obligations(ask(""))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err)[0].0,
        "responsible_unit",
        "the office acts for no unit"
    );
    s.scheduler.stop().await;
    s.services.stop().await;
}
