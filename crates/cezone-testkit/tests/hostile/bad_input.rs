//! Broken and hostile input across the services: each is refused with the field and the value
//! named, and nothing changes (the audit logs and the stored records stay as they were).
//! The per-service suites cover the rest of each service's input checks.

use cezone_platform::error::violations;
use cezone_proto::registry::v1::framework_source::Source;
use cezone_proto::surveys::v1 as psv;

use super::*;

/// Every service's audit log length: a refused request adds nothing to any of them.
async fn logs(s: &Stack) -> Vec<u64> {
    let mut out = Vec::new();
    for service in ["registry", "evidence", "surveys", "scoring", "scheduler"] {
        out.push(s.audit_entries(service).await);
    }
    out
}

fn says(err: &tonic::Status, code: Code, field: &str, text: &str) {
    assert_eq!(err.code(), code, "{err:?}");
    let v = violations(err);
    assert!(
        v.iter().any(|(f, d)| f.contains(field) && d.contains(text))
            || (v.is_empty() && err.message().contains(text)),
        "{field} / {text}: {err:?} {v:?}"
    );
}

pub(crate) async fn hostile_input_is_refused_by_name_and_changes_nothing(backend: Backend) {
    let s = spawn(backend).await;
    let office = p(Role::EvaluationOffice, None, None);
    let before = logs(&s).await;
    let mut registry = s.registry(&office).await;
    let frameworks = |r: pr::ListFrameworksResponse| r.versions.len();
    let versions_before = frameworks(
        registry
            .list_frameworks(pr::ListFrameworksRequest::default())
            .await
            .unwrap()
            .into_inner(),
    );

    // A calendar date that does not exist.
    let calendar = guangdong::CALENDAR.replacen("due = \"2014-02-28\"", "due = \"2014-02-30\"", 1);
    assert_ne!(calendar, guangdong::CALENDAR);
    let err = registry
        .import_framework(pr::FrameworkSource {
            source: Some(Source::Table(guangdong::TABLE.as_bytes().to_vec())),
            file_name: "indicators.csv".into(),
            calendar_toml: calendar,
            edition: "2013-bad-date".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    says(&err, Code::InvalidArgument, "calendar", "2014-02-30");

    // A table whose declared points disagree with its children: reported with both numbers
    // (a warning, as the seed itself has one), so an operator sees it before publishing.
    let broken = guangdong::TABLE.replacen("（16分）", "（17分）", 1);
    assert_ne!(
        broken,
        guangdong::TABLE,
        "the seed names its first area's points"
    );
    let checked = registry
        .validate_framework(pr::FrameworkSource {
            source: Some(Source::Table(broken.into_bytes())),
            file_name: "indicators.csv".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        checked
            .findings
            .iter()
            .any(|f| f.message.contains("17") && f.message.contains("16")),
        "{checked:#?}"
    );

    // A negative statistic.
    let mut surveys = s.surveys(&office).await;
    let mut stat = sv::statistic(&s.district.statistics[0], "test");
    stat.value = -5;
    let err = surveys.record_statistic(stat).await.unwrap_err();
    says(&err, Code::InvalidArgument, "value", "-5");

    // A survey batch answering for someone who already answered.
    let survey = cezone_client::demo::survey_id(2013);
    let mut again = s.district.responses(&s.fw.catalog).next().unwrap();
    let one = sv::response(&again);
    again.respondent = format!("{}-new", again.respondent);
    let err = sv::ingest(&mut surveys, &survey, [sv::response(&again), one])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("already answered"), "{err:?}");
    let stored = surveys
        .get_survey(psv::GetSurveyRequest { id: survey.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stored.responses,
        s.district.responses(&s.fw.catalog).count() as u64,
        "the good row of the refused batch is not kept either"
    );

    // File names that hide what they are.
    let mut evidence = s.evidence(&office).await;
    let (criterion, _) = criteria_of(&s.fw, "finance");
    let root = s.district.units[0].id.clone();
    for (name, why) in [
        ("invoice\u{202E}fdp.exe", "U+202E"),
        ("C:\\Windows\\x.pdf", "path separator"),
        ("report.pdf:hidden", "':'"),
        ("NUL.txt", "reserved device name"),
    ] {
        let meta = pe::UploadMetadata {
            file_name: name.into(),
            ..upload_meta(&criterion, &root, "finance")
        };
        let err = ev::upload(&mut evidence, meta, b"x".to_vec())
            .await
            .unwrap_err();
        says(&err, Code::InvalidArgument, "file_name", why);
    }

    // A message over grpc.max_message_bytes never reaches a handler.
    // (The client here would send it; the server's limit is what is tested.)
    let huge = "评".repeat(3 * 1024 * 1024);
    let err = evidence
        .clone()
        .max_encoding_message_size(64 << 20)
        .review(pe::ReviewRequest {
            id: "whatever".into(),
            decision: pe::Decision::Return as i32,
            comment: huge,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );

    assert_eq!(
        logs(&s).await,
        before,
        "a refused request changed something"
    );
    assert_eq!(
        frameworks(
            registry
                .list_frameworks(pr::ListFrameworksRequest::default())
                .await
                .unwrap()
                .into_inner()
        ),
        versions_before
    );

    // Uploads after the snapshot that closes submissions. Only the evaluation office closes.
    let closing = || ps::FreezeSnapshotRequest {
        checkpoint: "materials-submitted".into(),
        label: "资料报送截止".into(),
        frozen_by: "test".into(),
        close_submissions: true,
    };
    let admin = p(Role::DistrictAdmin, None, None);
    let err = s
        .scoring(&admin)
        .await
        .freeze_snapshot(closing())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let mut scoring = s.scoring(&office).await;
    scoring
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap();
    // A snapshot frozen for the same checkpoint without closing (the scheduler's runs before
    // it) leaves submissions open.
    scoring
        .freeze_snapshot(ps::FreezeSnapshotRequest {
            close_submissions: false,
            ..closing()
        })
        .await
        .unwrap();
    ev::upload(
        &mut evidence,
        upload_meta(&criterion, &root, "finance"),
        b"on time".to_vec(),
    )
    .await
    .unwrap();
    scoring.freeze_snapshot(closing()).await.unwrap();
    let started = std::time::Instant::now();
    let late = || upload_meta(&criterion, &root, "finance");
    let closed = loop {
        // Until the snapshot.frozen event reaches the evidence service, uploads still land.
        match ev::upload(&mut evidence, late(), b"late".to_vec()).await {
            Err(e)
                if e.code() == Code::FailedPrecondition
                    && e.message().contains("closed when checkpoint") =>
            {
                break e;
            }
            // The period lock the survey service sets on the same freeze may arrive first.
            Err(e) if e.code() == Code::FailedPrecondition && e.message().contains("is locked") => {
            }
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "submissions never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        closed
            .message()
            .contains("closed when checkpoint materials-submitted was frozen"),
        "{closed:?}"
    );
    // The survey service locks the period on the same freeze (its own audit entry).
    super::review::lock_when(&s, |l| l.locked).await;
    let after = logs(&s).await;
    // Naming another period changes nothing: scoring counts the edition's evidence.
    let other_period = pe::UploadMetadata {
        period: 2014,
        ..late()
    };
    let err = ev::upload(&mut evidence, other_period, b"later".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The refusal is audited, and nothing else changes.
    let mut want = after.clone();
    want[1] += 1;
    assert_eq!(
        logs(&s).await,
        want,
        "a refused late upload changed something"
    );
    s.scheduler.stop().await;
    s.services.stop().await;
}
