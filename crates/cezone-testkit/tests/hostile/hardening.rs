//! What an attack on the running system got through, each closed: token times and lifetimes,
//! a town token scoped to the whole district, names taken from the request, and refusals that
//! must say what is wrong without the parser's own words.

use cezone_platform::access::auth::Claims;

use super::*;

fn claims(who: &Principal, f: impl FnOnce(&mut Claims)) -> Claims {
    let now = chrono::Utc::now().timestamp();
    let mut c = Claims {
        sub: who.subject.clone(),
        role: who.role.as_str().into(),
        unit: who.unit.as_ref().map(|u| u.as_str().into()),
        org_unit: who.org_unit.as_ref().map(|o| o.as_str().into()),
        iss: cezone_platform::Settings::defaults().auth.issuer,
        iat: now,
        nbf: None,
        exp: now + 600,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    f(&mut c);
    c
}

/// Evidence records of the deployment (one page of up to 1,000).
async fn evidence_count(s: &Stack, who: &Principal) -> usize {
    let r = s
        .evidence(who)
        .await
        .list_evidence(pe::ListEvidenceRequest {
            page: Some(cezone_proto::common::v1::PageRequest {
                page_size: 1000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.page.is_none_or(|p| p.next_page_token.is_empty()),
        "one page"
    );
    r.evidence.len()
}

/// A metric the towns file (by the matrix).
fn towns_metric(s: &Stack) -> cezone_domain::rules::MetricId {
    s.fw.catalog
        .metrics
        .iter()
        .map(|m| m.id.clone())
        .find(|m| {
            cezone_surveys::responsible_for(&s.fw, m.as_str())
                .iter()
                .any(|u| u.as_str() == "towns")
        })
        .expect("a metric the towns file")
}

async fn statistics_of(
    s: &Stack,
    who: &Principal,
) -> Vec<cezone_proto::surveys::v1::StatisticReturn> {
    s.surveys(who)
        .await
        .list_statistics(cezone_proto::surveys::v1::ListStatisticsRequest {
            page: Some(cezone_proto::common::v1::PageRequest {
                page_size: 1000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .statistics
}

/// Tokens valid only later, issued in the future, or living for a hundred years are refused
/// whoever signed them, and a town token whose org unit is not a town files nothing.
pub async fn token_times_and_levels_are_enforced(backend: Backend) {
    let s = spawn(backend).await;
    let office = p(Role::EvaluationOffice, None, None);
    let now = chrono::Utc::now().timestamp();
    let stat = s.district.statistics[0].clone();
    let before = statistics_of(&s, &office).await;
    let cases = [
        (
            "valid from an hour on (nbf)",
            claims(&office, |c| c.nbf = Some(now + 3600)),
            "not valid yet",
        ),
        (
            "issued in an hour (iat)",
            claims(&office, |c| {
                c.iat = now + 3600;
                c.exp = now + 7200;
            }),
            "not valid yet",
        ),
        (
            "a hundred years",
            claims(&office, |c| c.exp = now + 100 * 365 * 86_400),
            "auth.max_token_minutes",
        ),
    ];
    for (what, c, says) in cases {
        let token = s.keys.sign(&c).unwrap();
        let channel = cezone_client::connect_plain(&s.services.surveys.url())
            .await
            .unwrap();
        let err = sv::client(Bearer::token(&token).unwrap().attach(channel))
            .record_statistic(sv::statistic(&stat, "test"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert!(err.message().contains(says), "{what}: {}", err.message());
    }

    // `cezone token issue --role town --org-unit <the district>`: refused at every scoped call.
    let root = s.district.units[0].id.clone();
    let community = s
        .district
        .units
        .iter()
        .find(|u| u.level == OrgLevel::Community)
        .unwrap();
    let whole = p(Role::Town, Some("towns"), Some(&root));
    let mut filed = stat.clone();
    filed.org_unit = community.id.clone();
    filed.metric = towns_metric(&s);
    let err = s
        .surveys(&whole)
        .await
        .record_statistic(sv::statistic(&filed, "test"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("must be a town") && err.message().contains("district"),
        "{}",
        err.message()
    );
    let survey = cezone_client::demo::survey_id(2013);
    let mut r = s
        .district
        .responses(&s.fw.catalog)
        .find(|r| r.org_unit == community.id)
        .unwrap();
    r.respondent = "whole-district".into();
    let err = sv::ingest(&mut s.surveys(&whole).await, &survey, [sv::response(&r)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(
        statistics_of(&s, &office).await,
        before,
        "nothing was filed"
    );
    s.scheduler.stop().await;
    s.services.stop().await;
}

/// A town files and uploads claiming to be the evaluation office, the office reviews naming
/// someone else: every stored name is the signed-in caller's.
pub async fn names_are_the_signed_in_callers(backend: Backend) {
    let s = spawn(backend).await;
    let towns = s.towns();
    let town = p(Role::Town, Some("towns"), Some(&towns[0]));
    let office = p(Role::EvaluationOffice, None, None);
    let community = s
        .district
        .units
        .iter()
        .find(|u| u.parent.as_ref() == Some(&towns[0]))
        .unwrap();

    // A statistic the towns file.
    let mut stat = s.district.statistics[0].clone();
    stat.org_unit = community.id.clone();
    stat.metric = towns_metric(&s);
    let filed = s
        .surveys(&town)
        .await
        .record_statistic(sv::statistic(&stat, "评估办公室"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filed.filed_by, town.subject);

    // Evidence uploaded as "评估办公室", reviewed by the office naming someone else.
    let (criterion, _) = criteria_of(&s.fw, "towns");
    // Towns file evidence once per town.
    let mut meta = upload_meta(&criterion, &towns[0], "towns");
    meta.submitted_by = "评估办公室".into();
    let rec = ev::upload(
        &mut s.evidence(&town).await,
        meta,
        b"%PDF-1.4 ledger".to_vec(),
    )
    .await
    .unwrap();
    let current = rec.current.clone().unwrap();
    assert_eq!(current.submitted_by, town.subject);
    let reviewed = s
        .evidence(&office)
        .await
        .review(pe::ReviewRequest {
            id: rec.id.clone(),
            decision: pe::Decision::Accept as i32,
            grade: 90,
            comment: String::new(),
            reviewer: "省评估组".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reviewed.current.unwrap().reviewed_by, office.subject);

    // A snapshot frozen naming someone else.
    let snap = s
        .scoring(&office)
        .await
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            checkpoint: String::new(),
            label: "自评".into(),
            frozen_by: "区委书记".into(),
            close_submissions: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.frozen_by, office.subject);
    s.scheduler.stop().await;
    s.services.stop().await;
}

/// An upload and a survey file that stop sending half-way are abandoned after
/// `grpc.stream_idle_seconds` with DEADLINE_EXCEEDED, and nothing of them is stored.
pub async fn stalled_streams_are_abandoned_and_store_nothing(backend: Backend) {
    use tokio_stream::StreamExt as _;
    let s = spawn_with(backend, |st| st.grpc.stream_idle_seconds = 1).await;
    let office = p(Role::EvaluationOffice, None, None);
    let community = s
        .district
        .units
        .iter()
        .find(|u| u.level == OrgLevel::Community)
        .unwrap();
    let (criterion, _) = criteria_of(&s.fw, "finance");
    // A department files evidence for the whole district.
    let root = s.district.units[0].id.clone();
    let before = evidence_count(&s, &office).await;

    // Metadata and one chunk, then silence with the stream left open.
    let msgs = vec![
        pe::UploadRequest {
            part: Some(pe::upload_request::Part::Metadata(upload_meta(
                &criterion, &root, "finance",
            ))),
        },
        pe::UploadRequest {
            part: Some(pe::upload_request::Part::Chunk(
                b"%PDF-1.4 half a file".to_vec(),
            )),
        },
    ];
    let started = std::time::Instant::now();
    let err = s
        .evidence(&office)
        .await
        .upload(tokio_stream::iter(msgs).chain(tokio_stream::pending()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("grpc.stream_idle_seconds"),
        "{}",
        err.message()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(evidence_count(&s, &office).await, before, "no record");
    let tmp = s.services.settings.evidence.storage_root.join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "no partial file left in {}",
        tmp.display()
    );

    // A survey file: the survey named and a batch sent, then silence.
    let survey = cezone_client::demo::survey_id(2013);
    let audit = s.audit_entries("surveys").await;
    let mut r = s
        .district
        .responses(&s.fw.catalog)
        .find(|r| r.org_unit == community.id)
        .unwrap();
    r.respondent = "stalled".into();
    let msgs = vec![
        cezone_proto::surveys::v1::IngestRequest {
            part: Some(cezone_proto::surveys::v1::ingest_request::Part::SurveyId(
                survey.clone(),
            )),
        },
        cezone_proto::surveys::v1::IngestRequest {
            part: Some(cezone_proto::surveys::v1::ingest_request::Part::Batch(
                cezone_proto::surveys::v1::ResponseBatch {
                    responses: vec![sv::response(&r)],
                },
            )),
        },
    ];
    let err = s
        .surveys(&office)
        .await
        .ingest_responses(tokio_stream::iter(msgs).chain(tokio_stream::pending()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(s.audit_entries("surveys").await, audit, "no batch recorded");
    // The respondent was not stored: the same answer goes in whole afterwards.
    sv::ingest(&mut s.surveys(&office).await, &survey, [sv::response(&r)])
        .await
        .unwrap();
    s.scheduler.stop().await;
    s.services.stop().await;
}

/// Files whose bytes contradict their name or declared type, and programs under any name, are
/// refused by field with nothing stored; a file declared generically is stored as what it is.
pub async fn files_are_what_their_bytes_say(backend: Backend) {
    let s = spawn(backend).await;
    let office = p(Role::EvaluationOffice, None, None);
    let (criterion, _) = criteria_of(&s.fw, "finance");
    // A department files evidence for the whole district.
    let root = s.district.units[0].id.clone();
    let meta = |name: &str, ty: &str| pe::UploadMetadata {
        file_name: name.into(),
        content_type: ty.into(),
        ..upload_meta(&criterion, &root, "finance")
    };
    let mut client = s.evidence(&office).await;
    let before = evidence_count(&s, &office).await;
    let pe_bytes =
        b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0 this program cannot be run in DOS mode".to_vec();
    let cases: [(&str, &str, Vec<u8>, &str); 4] = [
        (
            "notes.txt",
            "text/html",
            b"<script>alert(1)</script>".to_vec(),
            "content_type",
        ),
        ("通知.pdf", "application/pdf", pe_bytes.clone(), "file_name"),
        ("通知", "application/octet-stream", pe_bytes, "file_name"),
        (
            "照片.png",
            "image/png",
            b"%PDF-1.4\n1 0 obj".to_vec(),
            "file_name",
        ),
    ];
    for (name, ty, bytes, field) in cases {
        let err = ev::upload(&mut client, meta(name, ty), bytes)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        let v = cezone_platform::error::violations(&err);
        assert_eq!(v[0].0, field, "{name}: {v:?}");
    }
    assert_eq!(evidence_count(&s, &office).await, before, "nothing stored");
    let rec = ev::upload(
        &mut client,
        meta("会议纪要.pdf", "application/octet-stream"),
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(rec.current.unwrap().content_type, "application/pdf");
    s.scheduler.stop().await;
    s.services.stop().await;
}

/// A town sets a count of its staff to i64::MAX, or to more people than live there; a survey of
/// 201 questions; more respondents in a community than residents: each refused naming the bound,
/// and nothing changes.
pub async fn implausible_values_and_unbounded_definitions_are_refused(backend: Backend) {
    let s = spawn(backend).await;
    let towns = s.towns();
    let town = p(Role::Town, Some("towns"), Some(&towns[0]));
    let office = p(Role::EvaluationOffice, None, None);
    let community = s
        .district
        .units
        .iter()
        .find(|u| u.parent.as_ref() == Some(&towns[0]))
        .unwrap();
    let residents = *community.population.get(&2013).expect("a 2013 population");
    let mut stat = s.district.statistics[0].clone();
    stat.org_unit = community.id.clone();
    stat.metric = towns_metric(&s);
    // The year whose population is read.
    stat.period = 2013;
    let before = statistics_of(&s, &office).await;
    let person_metric =
        s.fw.catalog
            .metrics
            .iter()
            .find(|m| {
                m.unit == cezone_domain::rules::MetricUnit::Person
                    && cezone_surveys::responsible_for(&s.fw, m.id.as_str())
                        .iter()
                        .any(|u| u.as_str() == "towns")
            })
            .map(|m| m.id.clone());
    for (value, says) in [
        (i64::MAX, "catalog max".to_string()),
        (residents as i64 + 1, format!("{residents} residents")),
    ] {
        let mut bad = stat.clone();
        if let Some(m) = &person_metric {
            bad.metric = m.clone();
        }
        bad.value = value;
        let err = s
            .surveys(&town)
            .await
            .record_statistic(sv::statistic(&bad, ""))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{value}: {err:?}");
        let v = cezone_platform::error::violations(&err);
        assert_eq!(v[0].0, "value", "{v:?}");
        assert!(v[0].1.contains(&says), "{value}: {v:?}");
        if person_metric.is_none() {
            break;
        }
    }
    assert_eq!(
        statistics_of(&s, &office).await,
        before,
        "nothing was filed"
    );

    // A survey of 201 questions.
    let mut survey = sv::survey_for(&s.fw.catalog, "huge", "调查", 2013);
    let q = survey.questions[0].clone();
    survey.questions = (0..201)
        .map(|i| cezone_proto::surveys::v1::Question {
            id: format!("q{i}"),
            ..q.clone()
        })
        .collect();
    let err = s
        .surveys(&office)
        .await
        .define_survey(survey)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = cezone_platform::error::violations(&err);
    assert!(
        v[0].0 == "questions" && v[0].1.contains("at most 200"),
        "{v:?}"
    );

    // One more respondent in the community than it has residents, in one upload.
    let survey = cezone_client::demo::survey_id(2013);
    let template = s
        .district
        .responses(&s.fw.catalog)
        .find(|r| r.org_unit == community.id)
        .unwrap();
    let audit = s.audit_entries("surveys").await;
    let many: Vec<_> = (0..=residents)
        .map(|i| {
            let mut r = template.clone();
            r.respondent = format!("crowd-{i}");
            sv::response(&r)
        })
        .collect();
    let err = sv::ingest(&mut s.surveys(&office).await, &survey, many)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let v = cezone_platform::error::violations(&err);
    assert!(
        v[0].0 == "batch" && v[0].1.contains(&format!("{residents} residents")),
        "{v:?}"
    );
    assert_eq!(s.audit_entries("surveys").await, audit, "no batch recorded");
    s.scheduler.stop().await;
    s.services.stop().await;
}
