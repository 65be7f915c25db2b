//! The review of survey batches over real gRPC with scoring fed by events: a town's batch
//! counts in the projected score only until the responsible department or the office accepts
//! it; a returned batch leaves the tallies and its respondents may be filed again; who may
//! decide follows the matrix, and refusals change nothing.

use cezone_domain::rules::QuestionKind;
use cezone_platform::error::violations;
use cezone_proto::surveys::v1 as psv;

use super::review::cell_of;
use super::*;

/// Reads the awareness and acceptance rates (target 70 %) beside evidence.
const CRITERION: &str = "4.1.1";

fn pending_answers(x: &serde_json::Value) -> bool {
    x["projected_because"]
        .as_str()
        .is_some_and(|w| w.contains("待审核问卷答卷"))
}

async fn batches(s: &Stack, state: psv::BatchState) -> Vec<psv::SurveyBatch> {
    s.surveys(&p(Role::Inspector, None, None))
        .await
        .list_survey_batches(psv::ListSurveyBatchesRequest {
            survey_id: String::new(),
            state: state as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .batches
}

fn decision(batch: &str, accept: bool, comment: &str) -> psv::ReviewSurveyBatchRequest {
    psv::ReviewSurveyBatchRequest {
        batch_id: batch.into(),
        accept,
        comment: comment.into(),
    }
}

pub async fn survey_batches_are_reviewed_by_the_responsible_unit_and_count_once_accepted(
    backend: Backend,
) {
    let s = spawn(backend).await;
    let period = s.district.params.period;
    let t1 = &s.towns()[0];
    let c = s
        .district
        .units
        .iter()
        .find(|u| u.parent.as_ref() == Some(t1) && u.level == OrgLevel::Community)
        .map(|u| u.id.clone())
        .unwrap();
    let office = p(Role::EvaluationOffice, None, None);
    let town1 = p(Role::Town, Some("towns"), Some(t1));
    let education = p(Role::ResponsibleUnit, Some("education"), None);
    let survey = cezone_client::demo::survey_id(period);

    // The demo's batches were filed by the office: accepted, nothing pending.
    let (confirmed, projected, x) = cell_of(&s, &c, CRITERION, |x| !pending_answers(x)).await;
    assert!(batches(&s, psv::BatchState::Pending).await.is_empty());
    assert!(x["projected_because"].is_null(), "{x:#}");

    // The town files 300 residents of one community who know nothing of community education.
    let no = |n: usize| {
        let mut r = s
            .district
            .responses(&s.fw.catalog)
            .find(|r| r.org_unit == c)
            .unwrap();
        r.respondent = format!("pending-{n}");
        for (q, v) in r.answers.iter_mut() {
            let kind =
                s.fw.catalog
                    .questions
                    .iter()
                    .find(|d| &d.id == q)
                    .unwrap()
                    .kind;
            *v = match kind {
                QuestionKind::YesNo => 0,
                QuestionKind::Likert5 => 1,
            };
        }
        sv::response(&r)
    };
    let mut town = s.surveys(&town1).await;
    let filed = sv::ingest(&mut town, &survey, (0..300).map(no).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(filed.state, psv::BatchState::Pending as i32, "{filed:?}");
    let (p_conf, p_proj, x) = cell_of(&s, &c, CRITERION, pending_answers).await;
    assert_eq!(
        p_conf, confirmed,
        "the confirmed score ignores the pending batch"
    );
    assert!(
        p_proj < projected,
        "the projected score counts it: {p_proj} vs {projected}"
    );
    let why = x["projected_because"].as_str().unwrap();
    assert!(why.contains("300 份待审核问卷答卷"), "{why}");
    let pending = batches(&s, psv::BatchState::Pending).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, filed.batch_id);
    assert_eq!(pending[0].filed_by, town1.subject);
    assert_eq!(pending[0].responses, 300);

    // Who may not decide, and bad decisions: refused by name, nothing changes.
    let finance = p(Role::ResponsibleUnit, Some("finance"), None);
    for (who, code, says) in [
        (&town1, Code::PermissionDenied, "nobody reviews their own"),
        (&finance, Code::PermissionDenied, "feeds only criteria of"),
        (
            &p(Role::Inspector, None, None),
            Code::PermissionDenied,
            "may not",
        ),
        (
            &p(Role::DistrictAdmin, None, None),
            Code::PermissionDenied,
            "may not",
        ),
        (
            &p(Role::Service, None, None),
            Code::PermissionDenied,
            "may not",
        ),
    ] {
        let err = s
            .surveys(who)
            .await
            .review_survey_batch(decision(&filed.batch_id, true, ""))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{}: {err:?}", who.subject);
        assert!(
            err.message().contains(says),
            "{}: {}",
            who.subject,
            err.message()
        );
    }
    let mut edu = s.surveys(&education).await;
    let err = edu
        .review_survey_batch(decision(&filed.batch_id, false, "  "))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "comment", "{err:?}");
    let err = edu
        .review_survey_batch(decision("no-such-batch", true, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(batches(&s, psv::BatchState::Pending).await.len(), 1);

    // The department responsible for the criterion returns it: it counts nowhere.
    let audit_before = s.audit_entries("surveys").await;
    let returned = edu
        .review_survey_batch(decision(&filed.batch_id, false, "问卷对象不是本社区居民"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(returned.state, psv::BatchState::Returned as i32);
    assert_eq!(returned.reviewed_by, education.subject);
    assert_eq!(returned.review_comment, "问卷对象不是本社区居民");
    let (r_conf, r_proj, _) = cell_of(&s, &c, CRITERION, |x| !pending_answers(x)).await;
    assert_eq!((r_conf, r_proj), (confirmed, projected));
    let again = edu
        .review_survey_batch(decision(&filed.batch_id, true, ""))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    // Its respondents may be filed again; the office accepts the new batch, which then counts
    // in both scores.
    let refiled = sv::ingest(&mut town, &survey, (0..300).map(no).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(refiled.state, psv::BatchState::Pending as i32);
    cell_of(&s, &c, CRITERION, pending_answers).await;
    let accepted = s
        .surveys(&office)
        .await
        .review_survey_batch(decision(&refiled.batch_id, true, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.state, psv::BatchState::Accepted as i32);
    let (a_conf, a_proj, _) = cell_of(&s, &c, CRITERION, |x| !pending_answers(x)).await;
    assert_eq!(
        a_proj, p_proj,
        "the projected score counted them while pending"
    );
    assert!(
        a_conf < confirmed,
        "now the confirmed score counts them too: {a_conf} vs {confirmed}"
    );
    // By as much as the projected score moved (the evidence part is the same in both).
    assert!(
        ((confirmed - a_conf) - (projected - p_proj)).abs() < 0.002,
        "{confirmed} → {a_conf}, {projected} → {p_proj}"
    );
    assert!(batches(&s, psv::BatchState::Pending).await.is_empty());
    assert_eq!(
        s.audit_entries("surveys").await - audit_before,
        3,
        "a return, an ingest and an acceptance"
    );
    s.scheduler.stop().await;
    s.services.stop().await;
}
