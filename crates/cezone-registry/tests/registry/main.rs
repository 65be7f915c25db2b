//! The registry over real gRPC on 127.0.0.1, against SQLite and PostgreSQL alike.

mod accounts;

use cezone_domain::guangdong;
use cezone_platform::access::auth::AuthChannel as Channel;
use cezone_platform::error::violations;
use cezone_platform::testing::{Backend, TestEnv, test_env};
use cezone_proto::common::v1::{CommunityType, OrgLevel, PageRequest, RegionClass};
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::framework_source::Source;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use cezone_registry::Application;
use tonic::Code;

struct TestApp {
    app: Application,
    client: RegistryServiceClient<Channel>,
    _env: TestEnv,
}

async fn spawn_app(backend: Backend) -> TestApp {
    let env = test_env(backend).await;
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    let app = Application::build(&env.settings, bus.clone())
        .await
        .expect("registry starts");
    let client = RegistryServiceClient::new(
        cezone_client::connect(&app.url(), &cezone_platform::testing::office())
            .await
            .expect("connects"),
    );
    TestApp {
        app,
        client,
        _env: env,
    }
}

fn seed_table() -> pr::FrameworkSource {
    pr::FrameworkSource {
        source: Some(Source::Table(guangdong::TABLE.as_bytes().to_vec())),
        file_name: "indicators.csv".into(),
        ..Default::default()
    }
}

fn fref(edition: &str) -> pr::FrameworkRef {
    pr::FrameworkRef {
        framework_id: "gd-community-education".into(),
        edition: edition.into(),
    }
}

async fn frameworks_import_publish_and_stay_immutable(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let v = t
        .client
        .import_framework(seed_table())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.state, pr::FrameworkState::Draft as i32);
    assert_eq!(v.criteria, 40);
    assert_eq!(v.total_points, "100");
    assert_eq!(
        v.findings
            .iter()
            .filter(|f| f.severity == "warning")
            .count(),
        13
    );
    // The framework total against the criteria's sum, on the manifest.
    assert!(v.findings.iter().any(|f| f.kind == "total_mismatch"
        && f.message.contains("add up to 101")
        && f.file.ends_with("framework.toml")));
    assert!(
        v.findings
            .iter()
            .any(|f| f.kind == "points_mismatch" && f.item == "3.2" && f.row == 27)
    );

    // No published edition yet.
    let err = t.client.get_framework(fref("")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let p = t
        .client
        .publish_framework(fref("2013-nanhai"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.state, pr::FrameworkState::Published as i32);
    let err = t
        .client
        .publish_framework(fref("2013-nanhai"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = t.client.import_framework(seed_table()).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    let fw = t.client.get_framework(fref("")).await.unwrap().into_inner();
    assert_eq!(fw.items.len(), 5 + 16 + 40);
    assert_eq!(fw.version.as_ref().unwrap().content_hash, p.content_hash);
    let c = fw.items.iter().find(|i| i.code == "2.3.1").unwrap();
    assert!(c.key && c.leaf);
    assert_eq!(c.rule_kind, "weighted");
    assert_eq!(c.responsible_units, ["finance", "education", "towns"]);

    // A new edition is a new version; the published one is untouched.
    let mut next = seed_table();
    next.edition = "2014-nanhai".into();
    let v2 = t.client.import_framework(next).await.unwrap().into_inner();
    assert_eq!(v2.edition, "2014-nanhai");
    let list = t
        .client
        .list_frameworks(pr::ListFrameworksRequest { page: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.versions.len(), 2);
    t.app.stop().await;
}

async fn a_broken_table_is_refused_with_its_rows_and_nothing_is_stored(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let table = "一级指标,二级指标,三级指标,分值,提供材料,负责单位\n\
1.甲（2分）,1.1乙（2分）,1.1.1丙,2分,材料,区体育局\n\
,,1.1.1丁,两分,材料,区教育局\n";
    let src = pr::FrameworkSource {
        source: Some(Source::Table(table.as_bytes().to_vec())),
        file_name: "bad.csv".into(),
        rules_toml: "# none".into(),
        ..Default::default()
    };
    let checked = t
        .client
        .validate_framework(src.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(checked.errors >= 3, "{checked:#?}");
    let err = t.client.import_framework(src).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = violations(&err);
    assert!(
        v.iter()
            .any(|(field, d)| field.contains("row 2") && d.contains("区体育局")),
        "{v:#?}"
    );
    assert!(
        v.iter()
            .any(|(field, d)| field.contains("row 3") && d.contains("duplicate_code")),
        "{v:#?}"
    );
    let list = t
        .client
        .list_frameworks(pr::ListFrameworksRequest { page: None })
        .await
        .unwrap()
        .into_inner();
    assert!(list.versions.is_empty());

    let err = t
        .client
        .import_framework(pr::FrameworkSource {
            source: Some(Source::Table(b"x".to_vec())),
            file_name: "x.pdf".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "table");
    let err = t
        .client
        .import_framework(pr::FrameworkSource::default())
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "source");
    t.app.stop().await;
}

async fn criteria_matrix_and_calendar_follow_the_published_framework(backend: Backend) {
    let mut t = spawn_app(backend).await;
    t.client.import_framework(seed_table()).await.unwrap();
    t.client
        .publish_framework(fref("2013-nanhai"))
        .await
        .unwrap();
    let finance = t
        .client
        .list_criteria(pr::ListCriteriaRequest {
            framework: Some(fref("")),
            responsible_unit: "finance".into(),
            key_only: false,
            page: None,
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<&str> = finance.criteria.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["2.3.1", "2.3.2"]);
    let key = t
        .client
        .list_criteria(pr::ListCriteriaRequest {
            framework: Some(fref("")),
            responsible_unit: String::new(),
            key_only: true,
            page: Some(PageRequest {
                page_size: 5,
                page_token: String::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.criteria.len(), 5);
    let next = key.page.unwrap().next_page_token;
    let rest = t
        .client
        .list_criteria(pr::ListCriteriaRequest {
            framework: Some(fref("")),
            responsible_unit: String::new(),
            key_only: true,
            page: Some(PageRequest {
                page_size: 5,
                page_token: next,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.criteria.len(), 4);
    assert!(rest.page.unwrap().next_page_token.is_empty());
    let err = t
        .client
        .list_criteria(pr::ListCriteriaRequest {
            framework: Some(fref("")),
            responsible_unit: "nobody".into(),
            key_only: false,
            page: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "responsible_unit");

    let m = t
        .client
        .get_responsibility_matrix(fref(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.rows.len(), 40);
    let towns = m.units.iter().find(|u| u.id == "towns").unwrap();
    assert_eq!(towns.kind, "each_org_level");
    assert_eq!(towns.level, OrgLevel::Town as i32);
    let police = m.rows.iter().find(|r| r.criterion == "4.3.2").unwrap();
    assert_eq!(police.unit_ids, ["public-security"]);

    let cal = t.client.get_calendar(fref("")).await.unwrap().into_inner();
    assert_eq!(cal.phases.len(), 4);
    let submitted = cal
        .checkpoints
        .iter()
        .find(|c| c.id == "materials-submitted")
        .unwrap();
    assert_eq!(submitted.due, "2014-02-28");
    assert!(submitted.original.contains("2014年2月30日"));
    assert!(!submitted.correction.is_empty());
    t.app.stop().await;
}

fn unit(id: &str, level: OrgLevel, parent: &str, ctype: CommunityType) -> pr::OrgUnit {
    pr::OrgUnit {
        id: id.into(),
        name: format!("{id} 名"),
        level: level as i32,
        parent_id: parent.into(),
        community_type: ctype as i32,
        region: RegionClass::Unspecified as i32,
        populations: vec![pr::Population {
            year: 2013,
            residents: 1000,
        }],
        revision: 0,
    }
}

async fn org_units_keep_the_tree_valid(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let c = &mut t.client;
    let mut d = unit("nanhai", OrgLevel::District, "", CommunityType::Unspecified);
    d.region = RegionClass::PearlRiverDelta as i32;
    c.create_org_unit(d.clone()).await.unwrap();
    c.create_org_unit(unit(
        "nanhai.guicheng",
        OrgLevel::Town,
        "nanhai",
        CommunityType::Unspecified,
    ))
    .await
    .unwrap();
    c.create_org_unit(unit(
        "nanhai.jiujiang",
        OrgLevel::Town,
        "nanhai",
        CommunityType::Unspecified,
    ))
    .await
    .unwrap();
    let created = c
        .create_org_unit(unit(
            "nanhai.guicheng.c001",
            OrgLevel::Community,
            "nanhai.guicheng",
            CommunityType::Urban,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.revision, 1);

    let err = c.create_org_unit(d.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = c
        .create_org_unit(unit(
            "other",
            OrgLevel::District,
            "",
            CommunityType::Unspecified,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err)[0].0,
        "parent_id",
        "a second root is refused"
    );
    let err = c
        .create_org_unit(unit(
            "x.c",
            OrgLevel::Community,
            "nanhai.guicheng",
            CommunityType::Unspecified,
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "community_type");
    let err = c
        .create_org_unit(unit(
            "x.c",
            OrgLevel::Community,
            "nowhere",
            CommunityType::Rural,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&err)[0],
        (
            "parent_id".to_string(),
            "'nowhere' is not an existing org unit".to_string()
        )
    );
    let err = c
        .create_org_unit(unit(
            "bad id!",
            OrgLevel::Town,
            "nanhai",
            CommunityType::Unspecified,
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "id");
    let err = c
        .create_org_unit(unit(
            "t2",
            OrgLevel::District,
            "nanhai",
            CommunityType::Unspecified,
        ))
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "level");

    let u = c
        .update_population(pr::UpdatePopulationRequest {
            id: "nanhai.guicheng.c001".into(),
            year: 2014,
            residents: 1200,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.revision, 2);
    assert_eq!(u.populations.len(), 2);
    let err = c
        .update_population(pr::UpdatePopulationRequest {
            id: "nanhai.guicheng.c001".into(),
            year: 14,
            residents: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&err)[0].0, "year");
    let err = c
        .update_population(pr::UpdatePopulationRequest {
            id: "nope".into(),
            year: 2014,
            residents: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let moved = c
        .move_org_unit(pr::MoveOrgUnitRequest {
            id: "nanhai.guicheng.c001".into(),
            new_parent_id: "nanhai.jiujiang".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.parent_id, "nanhai.jiujiang");
    assert_eq!(moved.revision, 3);
    let err = c
        .move_org_unit(pr::MoveOrgUnitRequest {
            id: "nanhai.jiujiang".into(),
            new_parent_id: "nanhai.guicheng.c001".into(),
        })
        .await
        .unwrap_err();
    assert!(violations(&err)[0].1.contains("subtree"), "{err:?}");
    let err = c
        .move_org_unit(pr::MoveOrgUnitRequest {
            id: "nanhai.jiujiang".into(),
            new_parent_id: "nanhai.guicheng".into(),
        })
        .await
        .unwrap_err();
    assert!(
        violations(&err)[0].1.contains("cannot sit under"),
        "{err:?}"
    );

    let all = c
        .list_org_units(pr::ListOrgUnitsRequest {
            root_id: String::new(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = all.units.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "nanhai",
            "nanhai.guicheng",
            "nanhai.jiujiang",
            "nanhai.guicheng.c001"
        ]
    );
    let sub = c
        .list_org_units(pr::ListOrgUnitsRequest {
            root_id: "nanhai.jiujiang".into(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sub.units.len(), 2);
    t.app.stop().await;
}

async fn count(c: &mut RegistryServiceClient<Channel>) -> usize {
    c.list_org_units(pr::ListOrgUnitsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .units
        .len()
}

/// An org list goes in all or nothing: a bad unit or a tree that does not hold refuses the
/// whole list, naming `units[i]`; a good one creates, updates and moves in one go, with an
/// event per change, and the same list again changes nothing.
async fn an_org_list_is_imported_all_or_nothing(backend: Backend) {
    let mut t = spawn_app(backend).await;
    let c = &mut t.client;
    let mut d = unit("nanhai", OrgLevel::District, "", CommunityType::Unspecified);
    d.region = RegionClass::PearlRiverDelta as i32;
    let list = vec![
        // Children before parents: the file's order does not matter.
        unit(
            "nanhai.a.c1",
            OrgLevel::Community,
            "nanhai.a",
            CommunityType::Urban,
        ),
        d.clone(),
        unit(
            "nanhai.a",
            OrgLevel::Town,
            "nanhai",
            CommunityType::Unspecified,
        ),
        unit(
            "nanhai.b",
            OrgLevel::Town,
            "nanhai",
            CommunityType::Unspecified,
        ),
    ];

    // A community under a community: the whole list is refused and nothing is stored.
    let mut broken = list.clone();
    broken.push(unit(
        "nanhai.a.c1.x",
        OrgLevel::Community,
        "nanhai.a.c1",
        CommunityType::Rural,
    ));
    let err = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: broken,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = cezone_platform::error::violations(&err);
    assert_eq!(v[0].0, "units[4].parent_id", "{v:?}");
    // A field that cannot be read names the unit's index too.
    let mut bad = list.clone();
    bad[2].name = " ".into();
    let err = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: bad,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        cezone_platform::error::violations(&err)[0].0,
        "units[2].name"
    );
    assert_eq!(count(c).await, 0);

    let dry = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: list.clone(),
            dry_run: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.created, 4);
    assert_eq!(count(c).await, 0, "a dry run stores nothing");
    let done = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: list.clone(),
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (done.created, done.updated, done.moved, done.unchanged),
        (4, 0, 0, 0)
    );
    assert_eq!(count(c).await, 4);

    // The community moves to town b and its population changes; the rest stays.
    let mut next = list.clone();
    next[0].parent_id = "nanhai.b".into();
    next[0].populations[0].residents = 1200;
    let done = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: next.clone(),
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (done.created, done.updated, done.moved, done.unchanged),
        (0, 0, 1, 3)
    );
    assert_eq!(done.changes[0].fields, vec!["population:2013", "parent"]);
    let moved = c
        .get_org_unit(pr::GetOrgUnitRequest {
            id: "nanhai.a.c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.parent_id, "nanhai.b");
    assert_eq!(moved.revision, 2);
    // A level never changes.
    let mut relevel = next.clone();
    relevel[3].level = OrgLevel::Community as i32;
    relevel[3].community_type = CommunityType::Urban as i32;
    let err = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: relevel,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        cezone_platform::error::violations(&err)[0].0,
        "units[3].level"
    );
    let again = c
        .import_org_units(pr::ImportOrgUnitsRequest {
            units: next,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.unchanged, 4);
    assert!(again.changes.is_empty());
    t.app.stop().await;
}

async fn health_and_reflection_are_served(backend: Backend) {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let t = spawn_app(backend).await;
    let channel = tonic::transport::Endpoint::from_shared(t.app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cezone.registry.v1.RegistryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Each port lists its own service, health checking and reflection, in both reflection
    // versions: a tool that lists this port can call everything it sees here.
    let expected: std::collections::BTreeSet<String> = [
        "cezone.registry.v1.RegistryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .into_iter()
    .map(String::from)
    .collect();

    let mut refl = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let first = resp.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("{first:?}")
    };
    let names: std::collections::BTreeSet<String> =
        list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(names, expected, "v1 lists this port's services only");

    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaMessage;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
        let mut alpha = AlphaClient::new(channel);
        let reqs = vec![
            AlphaRequest {
                host: String::new(),
                message_request: Some(AlphaMessage::ListServices(String::new())),
            },
            AlphaRequest {
                host: String::new(),
                message_request: Some(AlphaMessage::FileContainingSymbol(
                    "cezone.registry.v1.RegistryService".into(),
                )),
            },
        ];
        let mut resp = alpha
            .server_reflection_info(tokio_stream::iter(reqs))
            .await
            .unwrap()
            .into_inner();
        let first = resp.next().await.unwrap().unwrap();
        let Some(AlphaResponse::ListServicesResponse(list)) = first.message_response else {
            panic!("{first:?}")
        };
        let names: std::collections::BTreeSet<String> =
            list.service.into_iter().map(|s| s.name).collect();
        assert_eq!(names, expected, "v1alpha lists the same");
        let second = resp.next().await.unwrap().unwrap();
        let Some(AlphaResponse::FileDescriptorResponse(files)) = second.message_response else {
            panic!("v1alpha describes the registry's contract: {second:?}")
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
    t.app.stop().await;
}

/// The audit log as the office and inspectors read it: newest first, filtered by action (exact
/// or by prefix), actor, target and time, in pages that neither skip nor repeat; bad filters
/// named; callers outside the office, inspectors and district IT refused.
async fn the_audit_log_is_read_newest_first_filtered_and_paged(backend: Backend) {
    use cezone_proto::common::v1::{ListAuditRequest, ListAuditResponse};
    let mut t = spawn_app(backend).await;
    let c = &mut t.client;
    let mut d = unit("nanhai", OrgLevel::District, "", CommunityType::Unspecified);
    d.region = RegionClass::PearlRiverDelta as i32;
    c.create_org_unit(d).await.unwrap();
    for town in ["nanhai.guicheng", "nanhai.jiujiang"] {
        c.create_org_unit(unit(
            town,
            OrgLevel::Town,
            "nanhai",
            CommunityType::Unspecified,
        ))
        .await
        .unwrap();
    }
    c.create_org_unit(unit(
        "nanhai.guicheng.c001",
        OrgLevel::Community,
        "nanhai.guicheng",
        CommunityType::Urban,
    ))
    .await
    .unwrap();
    c.update_population(pr::UpdatePopulationRequest {
        id: "nanhai.guicheng.c001".into(),
        year: 2014,
        residents: 1200,
    })
    .await
    .unwrap();

    async fn list(
        c: &mut RegistryServiceClient<Channel>,
        f: impl FnOnce(&mut ListAuditRequest),
    ) -> Result<ListAuditResponse, tonic::Status> {
        let mut r = ListAuditRequest::default();
        f(&mut r);
        c.list_audit(r).await.map(|r| r.into_inner())
    }
    let targets = |r: &ListAuditResponse| -> Vec<String> {
        r.entries
            .iter()
            .map(|e| format!("{} {}", e.action, e.target))
            .collect()
    };

    let all = list(c, |_| {}).await.unwrap();
    assert_eq!(all.entries.len(), 5, "{:?}", targets(&all));
    assert!(all.entries.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(
        targets(&all)[0],
        "org_unit.population_updated nanhai.guicheng.c001"
    );
    assert!(
        all.entries
            .iter()
            .all(|e| e.actor.contains("evaluation_office"))
    );
    let details: serde_json::Value = serde_json::from_str(&all.entries[0].details_json).unwrap();
    assert!(details.is_object(), "{details}");
    assert!(all.page.unwrap().next_page_token.is_empty());

    let created = list(c, |r| r.action = "org_unit.created".into())
        .await
        .unwrap();
    assert_eq!(created.entries.len(), 4);
    let any = list(c, |r| r.action = "org_unit.".into()).await.unwrap();
    assert_eq!(any.entries.len(), 5);
    let guicheng = list(c, |r| r.target = "guicheng".into()).await.unwrap();
    assert_eq!(
        targets(&guicheng),
        [
            "org_unit.population_updated nanhai.guicheng.c001",
            "org_unit.created nanhai.guicheng.c001",
            "org_unit.created nanhai.guicheng",
        ]
    );
    let nobody = list(c, |r| r.actor = "somebody else".into()).await.unwrap();
    assert!(nobody.entries.is_empty());
    // A target with LIKE's wildcards is looked for as written.
    let wild = list(c, |r| r.target = "%".into()).await.unwrap();
    assert!(wild.entries.is_empty());
    let later = list(c, |r| r.since = "2999-01-01T00:00:00+08:00".into())
        .await
        .unwrap();
    assert!(later.entries.is_empty());
    let earlier = list(c, |r| r.until = "2000-01-01T00:00:00Z".into())
        .await
        .unwrap();
    assert!(earlier.entries.is_empty());
    let today = list(c, |r| r.since = "2000-01-01T00:00:00Z".into())
        .await
        .unwrap();
    assert_eq!(today.entries.len(), 5);

    // Pages of two: 2 + 2 + 1, newest first, no entry twice.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(c, |r| {
            r.page = Some(PageRequest {
                page_size: 2,
                page_token: token.clone(),
            })
        })
        .await
        .unwrap();
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.iter().map(|e| e.seq));
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, all.entries.iter().map(|e| e.seq).collect::<Vec<_>>());

    let err = list(c, |r| r.since = "yesterday".into()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err)[0].0, "since");
    assert!(err.message().contains("'yesterday'"), "{}", err.message());
    let err = list(c, |r| {
        r.page = Some(PageRequest {
            page_size: 2,
            page_token: "not-a-token".into(),
        })
    })
    .await
    .unwrap_err();
    assert_eq!(violations(&err)[0].0, "page.page_token");

    // Inspectors read it; a town and a service may not.
    use cezone_domain::access::{Principal, Role};
    async fn as_who(
        url: &str,
        bearer: cezone_platform::access::auth::Bearer,
    ) -> Result<tonic::Response<ListAuditResponse>, tonic::Status> {
        let mut client =
            RegistryServiceClient::new(cezone_client::connect(url, &bearer).await.unwrap());
        client.list_audit(ListAuditRequest::default()).await
    }
    let url = t.app.url();
    let inspector = as_who(&url, t._env.bearer(Role::Inspector)).await.unwrap();
    assert_eq!(inspector.into_inner().entries.len(), 5);
    let town = Principal::new(
        "桂城街道",
        Role::Town,
        Some(cezone_domain::units::UnitId::parse("towns").unwrap()),
        Some(cezone_domain::org::OrgUnitId::parse("nanhai.guicheng").unwrap()),
    )
    .unwrap();
    let err = as_who(
        &url,
        cezone_platform::access::auth::Bearer::minted(t._env.keys(), town),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("read the audit log"),
        "{}",
        err.message()
    );
    let err = as_who(&url, t._env.bearer(Role::Service))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

cezone_platform::contract_tests!(
    frameworks_import_publish_and_stay_immutable,
    a_broken_table_is_refused_with_its_rows_and_nothing_is_stored,
    criteria_matrix_and_calendar_follow_the_published_framework,
    org_units_keep_the_tree_valid,
    health_and_reflection_are_served,
    an_org_list_is_imported_all_or_nothing,
    the_audit_log_is_read_newest_first_filtered_and_paged,
);
