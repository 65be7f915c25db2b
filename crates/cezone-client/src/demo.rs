//! Loads the demo district through the services' public APIs, exactly as a district's own
//! systems would: framework, org units, a resident survey, statistics, evidence and reviews.

use cezone_domain::demo::DemoDistrict;
use cezone_domain::facts::EvidenceState;
use cezone_domain::framework::Framework;
use cezone_platform::access::auth::AuthChannel;
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::surveys::v1 as psv;
use futures::{StreamExt, TryStreamExt};
use tonic::Code;

use crate::{ClientError, evidence, registry, surveys};

/// Calls in flight at once while loading.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub org_units: usize,
    pub responses: u64,
    pub statistics: usize,
    pub evidence: usize,
    /// True when the services already held demo data and nothing was loaded again.
    pub already_loaded: bool,
}

#[derive(Debug, Clone)]
pub struct Channels {
    pub registry: AuthChannel,
    pub evidence: AuthChannel,
    pub surveys: AuthChannel,
}

pub fn survey_id(period: i32) -> String {
    format!("resident-{period}")
}

/// The framework as an import request: the embedded Guangdong table as it is kept, any other
/// package as its framework document (items, units, rules, calendar), codes as written.
pub fn framework_source(fw: &Framework) -> cezone_proto::registry::v1::FrameworkSource {
    let (embedded, _) = cezone_domain::guangdong::framework();
    if fw.meta == embedded.meta {
        return registry::guangdong_source();
    }
    cezone_proto::registry::v1::FrameworkSource {
        source: Some(
            cezone_proto::registry::v1::framework_source::Source::DocumentJson(
                cezone_domain::export::to_json(fw),
            ),
        ),
        file_name: "framework.json".into(),
        framework_id: fw.meta.id.to_string(),
        edition: fw.meta.edition.clone(),
        ..Default::default()
    }
}

pub async fn load(
    ch: &Channels,
    fw: &Framework,
    district: &DemoDistrict,
) -> Result<LoadReport, ClientError> {
    let mut report = LoadReport::default();
    let mut reg = registry::client(ch.registry.clone());
    registry::import_and_publish(&mut reg, framework_source(fw)).await?;
    report.org_units =
        registry::create_org_units(&mut reg, &registry::parents_first(&district.units)).await?;

    let mut sv = surveys::client(ch.surveys.clone());
    let period = district.params.period;
    let id = survey_id(period);
    match sv
        .define_survey(surveys::survey_for(
            &fw.catalog,
            &id,
            &format!("{period}年社区教育居民调查"),
            period,
        ))
        .await
    {
        Ok(_) => {}
        Err(s) if s.code() == Code::AlreadyExists => {}
        Err(s) => return Err(ClientError::call("DefineSurvey", s)),
    }
    let existing = sv
        .get_survey(psv::GetSurveyRequest { id: id.clone() })
        .await
        .map_err(|s| ClientError::call("GetSurvey", s))?
        .into_inner()
        .responses;
    if existing == 0 {
        let responses: Vec<psv::Response> = district
            .responses(&fw.catalog)
            .map(|r| surveys::response(&r))
            .collect();
        report.responses = surveys::ingest(&mut sv, &id, responses)
            .await
            .map_err(|s| ClientError::call("IngestResponses", s))?
            .accepted;
    } else {
        report.already_loaded = true;
    }

    let filed = sv
        .list_statistics(psv::ListStatisticsRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .map_err(|s| ClientError::call("ListStatistics", s))?
        .into_inner()
        .statistics;
    if filed.is_empty() {
        // The district's returns in one streamed, all-or-nothing call, as an import sends them.
        report.statistics = surveys::import(&mut sv, &district.statistics, "示范数据")
            .await?
            .recorded as usize;
    }

    let ev = evidence::client(ch.evidence.clone());
    let any = ev
        .clone()
        .list_evidence(pe::ListEvidenceRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .map_err(|s| ClientError::call("ListEvidence", s))?
        .into_inner()
        .evidence;
    if any.is_empty() {
        report.evidence = futures::stream::iter(district.evidence.iter())
            .map(|f| {
                let mut c = ev.clone();
                let meta = pe::UploadMetadata {
                    framework_id: fw.meta.id.to_string(),
                    edition: fw.meta.edition.clone(),
                    criterion: f.criterion.to_string(),
                    org_unit: f.org_unit.to_string(),
                    responsible_unit: f.unit.to_string(),
                    period,
                    title: f.title.clone(),
                    material_type: f.material.clone().unwrap_or_default(),
                    file_name: format!("{}.txt", f.criterion),
                    content_type: "text/plain; charset=utf-8".into(),
                    replaces: String::new(),
                    submitted_by: fw.units.name_of(&f.unit),
                };
                let body = format!("{}\n{}\n{}\n{}\n", f.title, f.criterion, f.unit, f.org_unit)
                    .into_bytes();
                let state = f.state;
                async move {
                    let rec = evidence::upload(&mut c, meta, body)
                        .await
                        .map_err(|s| ClientError::call("Upload", s))?;
                    match state {
                        EvidenceState::Accepted { grade } => {
                            evidence::review(
                                &mut c,
                                &rec.id,
                                pe::Decision::Accept,
                                u32::from(grade),
                                "",
                            )
                            .await?;
                        }
                        EvidenceState::Returned => {
                            evidence::review(
                                &mut c,
                                &rec.id,
                                pe::Decision::Return,
                                0,
                                "材料不完整，请补充后重新提交",
                            )
                            .await?;
                        }
                        EvidenceState::Submitted => {}
                    }
                    Ok::<_, ClientError>(())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_fold(0usize, |n, _| async move { Ok(n + 1) })
            .await?;
    }
    Ok(report)
}

/// The password of every demo account: the demo is for trying the workbench, never for real
/// data.
pub const DEMO_PASSWORD: &str = "cezone-demo-2013";

/// A demo account: who signs in to the workbench as which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAccount {
    pub login: String,
    pub display_name: String,
    pub role: &'static str,
    pub unit: String,
    pub org_unit: String,
}

/// One account for each role a person can have: the evaluation office, district IT, a
/// department (the one responsible for the most criteria), the first town and an inspector. All share `DEMO_PASSWORD`.
pub fn demo_accounts(fw: &Framework, district: &DemoDistrict) -> Vec<DemoAccount> {
    use cezone_domain::units::UnitKind;
    let mut accounts = vec![
        DemoAccount {
            login: "office".into(),
            display_name: "评估办公室 王主任".into(),
            role: "evaluation_office",
            unit: String::new(),
            org_unit: String::new(),
        },
        DemoAccount {
            login: "admin".into(),
            display_name: "区信息中心 陈工".into(),
            role: "district_admin",
            unit: String::new(),
            org_unit: String::new(),
        },
        DemoAccount {
            login: "inspector".into(),
            display_name: "督导 李老师".into(),
            role: "inspector",
            unit: String::new(),
            org_unit: String::new(),
        },
    ];
    let criteria_of = |id: &cezone_domain::units::UnitId| {
        fw.items()
            .iter()
            .filter(|i| i.responsible.contains(id))
            .count()
    };
    let responsible = |id: &cezone_domain::units::UnitId| criteria_of(id) > 0;
    // The department answering for the most criteria: the busiest desk to try.
    if let Some(dept) = fw
        .units
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Department && responsible(&u.id))
        .max_by_key(|u| (criteria_of(&u.id), std::cmp::Reverse(u.id.to_string())))
    {
        accounts.push(DemoAccount {
            login: "department".into(),
            display_name: format!("{} 张科长", dept.name),
            role: "responsible_unit",
            unit: dept.id.to_string(),
            org_unit: String::new(),
        });
    }
    let towns =
        fw.units.units.iter().find(|u| {
            u.expands_to() == Some(cezone_domain::org::OrgLevel::Town) && responsible(&u.id)
        });
    let town = district
        .units
        .iter()
        .find(|u| u.level == cezone_domain::org::OrgLevel::Town);
    if let (Some(towns), Some(town)) = (towns, town) {
        accounts.push(DemoAccount {
            login: "town".into(),
            display_name: format!("{} 刘干事", town.name),
            role: "town",
            unit: towns.id.to_string(),
            org_unit: town.id.to_string(),
        });
    }
    accounts
}

/// Creates the demo accounts that do not exist yet; returns them all.
pub async fn create_accounts(
    registry: AuthChannel,
    fw: &Framework,
    district: &DemoDistrict,
) -> Result<Vec<DemoAccount>, ClientError> {
    use cezone_proto::registry::v1 as pr;
    let mut client = pr::registry_service_client::RegistryServiceClient::new(registry);
    let accounts = demo_accounts(fw, district);
    for a in &accounts {
        let created = client
            .create_account(pr::CreateAccountRequest {
                login: a.login.clone(),
                display_name: a.display_name.clone(),
                role: a.role.into(),
                unit: a.unit.clone(),
                org_unit: a.org_unit.clone(),
                password: DEMO_PASSWORD.into(),
                email: String::new(),
            })
            .await;
        match created {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(ClientError::call("CreateAccount", s)),
        }
    }
    Ok(accounts)
}
