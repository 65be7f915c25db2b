//! The evidence service over real gRPC with a real registry, on SQLite and PostgreSQL.

use cezone_client::evidence::{self as ev, Evidence};
use cezone_client::registry::{self as reg, Registry};
use cezone_domain::org::{CommunityType, OrgLevel, OrgUnit, OrgUnitId, RegionClass};
use cezone_platform::error::violations;
use cezone_platform::testing::{Backend, TestEnv, test_env};
use cezone_proto::evidence::v1 as pe;
use sha2::{Digest, Sha256};
use tonic::Code;

struct Stack {
    registry: cezone_registry::Application,
    evidence: cezone_evidence::Application,
    ev: Evidence,
    env: TestEnv,
}

fn ou(id: &str, level: OrgLevel, parent: Option<&str>, ctype: Option<CommunityType>) -> OrgUnit {
    OrgUnit {
        id: OrgUnitId::parse(id).unwrap(),
        name: id.to_string(),
        level,
        parent: parent.map(|p| OrgUnitId::parse(p).unwrap()),
        community_type: ctype,
        region: (level == OrgLevel::District).then_some(RegionClass::PearlRiverDelta),
        population: [(2013, 5000)].into_iter().collect(),
    }
}

async fn spawn(backend: Backend, max_file_bytes: u64) -> Stack {
    let mut env = test_env(backend).await;
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    env.settings.evidence.max_file_bytes = max_file_bytes;
    let registry = cezone_registry::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    env.settings.services.registry_url = registry.url();
    let evidence = cezone_evidence::Application::build(&env.settings, bus.clone())
        .await
        .unwrap();
    let mut r: Registry = reg::client(
        cezone_client::connect(&registry.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    reg::import_and_publish(&mut r, reg::guangdong_source())
        .await
        .unwrap();
    reg::create_org_units(
        &mut r,
        &[
            ou("nanhai", OrgLevel::District, None, None),
            ou("nanhai.guicheng", OrgLevel::Town, Some("nanhai"), None),
            ou("nanhai.jiujiang", OrgLevel::Town, Some("nanhai"), None),
            ou(
                "nanhai.guicheng.c001",
                OrgLevel::Community,
                Some("nanhai.guicheng"),
                Some(CommunityType::Urban),
            ),
        ],
    )
    .await
    .unwrap();
    let ev = ev::client(
        cezone_client::connect(&evidence.url(), &cezone_platform::testing::office())
            .await
            .unwrap(),
    );
    Stack {
        registry,
        evidence,
        ev,
        env,
    }
}

impl Stack {
    async fn stop(self) {
        self.evidence.stop().await;
        self.registry.stop().await;
    }

    async fn count(&mut self) -> usize {
        self.ev
            .list_evidence(pe::ListEvidenceRequest::default())
            .await
            .unwrap()
            .into_inner()
            .evidence
            .len()
    }

    fn stored_files(&self) -> usize {
        fn walk(p: &std::path::Path) -> usize {
            std::fs::read_dir(p).map_or(0, |rd| {
                rd.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        walk(&self.env.settings.evidence.storage_root.join("sha256"))
    }

    fn temp_files(&self) -> usize {
        std::fs::read_dir(self.env.settings.evidence.storage_root.join("tmp"))
            .map_or(0, |d| d.count())
    }
}

fn meta(criterion: &str, unit: &str, org: &str) -> pe::UploadMetadata {
    pe::UploadMetadata {
        framework_id: "gd-community-education".into(),
        edition: String::new(),
        criterion: criterion.into(),
        org_unit: org.into(),
        responsible_unit: unit.into(),
        period: 2013,
        title: format!("{criterion} 材料"),
        material_type: String::new(),
        file_name: "会议记录.pdf".into(),
        content_type: "application/pdf".into(),
        replaces: String::new(),
        submitted_by: "区教育局 张三".into(),
    }
}

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn identical_content_is_stored_once_and_downloads_verify(backend: Backend) {
    let mut s = spawn(backend, 10 << 20).await;
    let data = content(700_000, 1);
    let a = ev::upload(
        &mut s.ev,
        meta("1.1.1", "education", "nanhai"),
        data.clone(),
    )
    .await
    .unwrap();
    let b = ev::upload(
        &mut s.ev,
        meta("1.2.1", "education", "nanhai"),
        data.clone(),
    )
    .await
    .unwrap();
    let hash = hex::encode(Sha256::digest(&data));
    assert_ne!(a.id, b.id);
    assert_eq!(a.current.as_ref().unwrap().sha256, hash);
    assert_eq!(b.current.as_ref().unwrap().sha256, hash);
    assert_eq!(a.current.as_ref().unwrap().size, 700_000);
    assert_eq!(
        a.current.as_ref().unwrap().state,
        pe::ReviewState::Submitted as i32
    );
    assert_eq!(s.stored_files(), 1, "identical content is stored once");
    let (record, bytes) = ev::download(&mut s.ev, &a.id, 0).await.unwrap();
    assert_eq!(record.id, a.id);
    assert_eq!(bytes, data);
    s.stop().await;
}

async fn a_file_changed_on_disk_is_reported_never_served(backend: Backend) {
    let mut s = spawn(backend, 10 << 20).await;
    let data = content(100_000, 2);
    let a = ev::upload(&mut s.ev, meta("1.1.1", "education", "nanhai"), data)
        .await
        .unwrap();
    let sha = a.current.unwrap().sha256;
    let path = s
        .env
        .settings
        .evidence
        .storage_root
        .join("sha256")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(&sha);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = ev::download(&mut s.ev, &a.id, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert!(err.message().contains(&sha), "{err:?}");
    std::fs::remove_file(&path).unwrap();
    let err = ev::download(&mut s.ev, &a.id, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    s.stop().await;
}

async fn review_workflow_keeps_history_and_enforces_states(backend: Backend) {
    let mut s = spawn(backend, 10 << 20).await;
    let a = ev::upload(
        &mut s.ev,
        meta("2.3.1", "finance", "nanhai"),
        content(1000, 3),
    )
    .await
    .unwrap();

    let err = ev::review(&mut s.ev, &a.id, pe::Decision::Return, 0, "  ")
        .await
        .unwrap_err();
    assert_eq!(violations(err.status().unwrap())[0].0, "comment");
    let err = ev::review(&mut s.ev, &a.id, pe::Decision::Accept, 101, "")
        .await
        .unwrap_err();
    assert_eq!(violations(err.status().unwrap())[0].0, "grade");
    let err = ev::review(&mut s.ev, "no-such-id", pe::Decision::Accept, 90, "")
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().code(), Code::NotFound);

    let returned = ev::review(
        &mut s.ev,
        &a.id,
        pe::Decision::Return,
        0,
        "账册缺少2013年度数据",
    )
    .await
    .unwrap();
    assert_eq!(
        returned.current.as_ref().unwrap().state,
        pe::ReviewState::Returned as i32
    );
    let err = ev::review(&mut s.ev, &a.id, pe::Decision::Accept, 90, "")
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().code(), Code::FailedPrecondition);

    let mut again = meta("2.3.1", "finance", "nanhai");
    again.replaces = a.id.clone();
    let v2 = ev::upload(&mut s.ev, again.clone(), content(1200, 4))
        .await
        .unwrap();
    assert_eq!(v2.id, a.id);
    assert_eq!(v2.history.len(), 2);
    assert_eq!(v2.history[0].state, pe::ReviewState::Returned as i32);
    assert_eq!(v2.history[0].comment, "账册缺少2013年度数据");
    assert_eq!(v2.current.as_ref().unwrap().version, 2);
    assert!(v2.revision > returned.revision);

    let accepted = ev::review(&mut s.ev, &a.id, pe::Decision::Accept, 90, "")
        .await
        .unwrap();
    assert_eq!(accepted.current.as_ref().unwrap().grade, 90);
    let err = ev::upload(&mut s.ev, again, content(10, 5))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "accepted evidence is not replaced"
    );
    // Version 1 is still downloadable.
    let (_, old) = ev::download(&mut s.ev, &a.id, 1).await.unwrap();
    assert_eq!(old, content(1000, 3));

    let mut wrong = meta("2.3.2", "finance", "nanhai");
    wrong.replaces = a.id.clone();
    let err = ev::upload(&mut s.ev, wrong, content(10, 6))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    s.stop().await;
}

async fn bad_uploads_are_refused_naming_the_field_and_store_nothing(backend: Backend) {
    let mut s = spawn(backend, 1 << 20).await;
    let cases: Vec<(pe::UploadMetadata, Vec<u8>, &str, &str)> = vec![
        (
            meta("9.9.9", "education", "nanhai"),
            content(10, 0),
            "criterion",
            "not a criterion",
        ),
        (
            meta("1.1", "education", "nanhai"),
            content(10, 0),
            "criterion",
            "group",
        ),
        (
            meta("x.y", "education", "nanhai"),
            content(10, 0),
            "criterion",
            "item code",
        ),
        (
            meta("1.1.1", "finance", "nanhai"),
            content(10, 0),
            "responsible_unit",
            "not responsible",
        ),
        (
            meta("1.1.1", "education", "nanhai.guicheng"),
            content(10, 0),
            "org_unit",
            "department",
        ),
        (
            meta("1.1.1", "towns", "nanhai"),
            content(10, 0),
            "org_unit",
            "once per town",
        ),
        (
            meta("1.1.1", "towns", "nanhai.nowhere"),
            content(10, 0),
            "org_unit",
            "not an existing",
        ),
        (
            pe::UploadMetadata {
                file_name: "../../etc/passwd".into(),
                ..meta("1.1.1", "education", "nanhai")
            },
            content(10, 0),
            "file_name",
            "path separator",
        ),
        (
            pe::UploadMetadata {
                file_name: "a\u{1b}[31m.pdf".into(),
                ..meta("1.1.1", "education", "nanhai")
            },
            content(10, 0),
            "file_name",
            "control character",
        ),
        (
            pe::UploadMetadata {
                title: String::new(),
                ..meta("1.1.1", "education", "nanhai")
            },
            content(10, 0),
            "title",
            "empty",
        ),
        (
            pe::UploadMetadata {
                period: 13,
                ..meta("1.1.1", "education", "nanhai")
            },
            content(10, 0),
            "period",
            "13",
        ),
        (
            pe::UploadMetadata {
                framework_id: "nope".into(),
                ..meta("1.1.1", "education", "nanhai")
            },
            content(10, 0),
            "framework_id",
            "nope",
        ),
        (
            meta("1.1.1", "education", "nanhai"),
            Vec::new(),
            "chunk",
            "empty",
        ),
        (
            meta("1.1.1", "education", "nanhai"),
            content((1 << 20) + 1, 0),
            "chunk",
            "limit",
        ),
    ];
    for (m, data, field, needle) in cases {
        let err = ev::upload(&mut s.ev, m.clone(), data).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{m:?}: {err:?}");
        let v = violations(&err);
        assert_eq!(v[0].0, field, "{m:?}: {v:?}");
        assert!(v[0].1.contains(needle), "{m:?}: {v:?}");
    }
    // Chunk before metadata.
    let err =
        s.ev.upload(tokio_stream::iter(vec![pe::UploadRequest {
            part: Some(pe::upload_request::Part::Chunk(vec![1])),
        }]))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "metadata");
    assert_eq!(s.count().await, 0, "nothing is stored");
    assert_eq!(s.stored_files(), 0);
    assert_eq!(s.temp_files(), 0, "no half-written files are left");
    s.stop().await;
}

async fn completeness_shows_missing_and_late_materials_per_unit(backend: Backend) {
    let mut s = spawn(backend, 10 << 20).await;
    let a = ev::upload(
        &mut s.ev,
        meta("2.3.1", "finance", "nanhai"),
        content(10, 7),
    )
    .await
    .unwrap();
    ev::review(&mut s.ev, &a.id, pe::Decision::Accept, 100, "")
        .await
        .unwrap();
    ev::upload(
        &mut s.ev,
        meta("2.3.2", "finance", "nanhai"),
        content(10, 8),
    )
    .await
    .unwrap();
    let req = |as_of: &str| pe::GetCompletenessRequest {
        framework_id: "gd-community-education".into(),
        responsible_unit: "finance".into(),
        as_of: as_of.into(),
        ..Default::default()
    };
    let c =
        s.ev.get_completeness(req("2014-01-15"))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(c.deadline, "2014-02-28");
    assert_eq!(c.units.len(), 1);
    let f = &c.units[0];
    // Both were filed today, long after the 2014-02-28 deadline: in, but late.
    assert_eq!(
        (f.required, f.accepted, f.submitted, f.missing, f.late),
        (2, 1, 1, 0, 2)
    );

    // Towns owe their share of many criteria; nothing is in, and after the deadline every
    // missing material is late.
    let c =
        s.ev.get_completeness(pe::GetCompletenessRequest {
            framework_id: "gd-community-education".into(),
            responsible_unit: "towns".into(),
            as_of: "2014-03-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.units.len(), 2, "one entry per town");
    assert!(
        c.units
            .iter()
            .all(|u| u.missing == u.required && u.late == u.required)
    );
    let before =
        s.ev.get_completeness(pe::GetCompletenessRequest {
            framework_id: "gd-community-education".into(),
            responsible_unit: "towns".into(),
            as_of: "2014-02-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        before
            .units
            .iter()
            .all(|u| u.missing == u.required && u.late == 0),
        "missing but not yet late"
    );

    let err =
        s.ev.get_completeness(pe::GetCompletenessRequest {
            checkpoint: "nope".into(),
            ..req("")
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "checkpoint");
    s.stop().await;
}

cezone_platform::contract_tests!(
    identical_content_is_stored_once_and_downloads_verify,
    a_file_changed_on_disk_is_reported_never_served,
    review_workflow_keeps_history_and_enforces_states,
    bad_uploads_are_refused_naming_the_field_and_store_nothing,
    completeness_shows_missing_and_late_materials_per_unit,
);
