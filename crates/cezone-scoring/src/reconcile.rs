//! Rebuilding the read model from the other services over gRPC: the framework and org units
//! from the registry, statistics and survey tallies from the survey service, evidence states
//! from the evidence service. No other service's tables are read.

use cezone_domain::code::ItemCode;
use cezone_domain::export;
use cezone_domain::facts::{EvidenceFact, EvidenceState, Facts, StatFact, SurveyTally};
use cezone_domain::org::OrgUnitId;
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_domain::units::UnitId;
use cezone_platform::ApiError;
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_platform::channel;
use cezone_platform::glue::registry_view::{RegistryView, fetch_org_units};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::evidence::v1::evidence_service_client::EvidenceServiceClient;
use cezone_proto::surveys::v1 as psv;
use cezone_proto::surveys::v1::survey_service_client::SurveyServiceClient;

use crate::model::Inputs;

#[derive(Debug, Clone)]
pub struct Upstream {
    pub registry: RegistryView,
    pub evidence: EvidenceServiceClient<AuthChannel>,
    pub surveys: SurveyServiceClient<AuthChannel>,
}

impl Upstream {
    pub fn new(
        registry_url: &str,
        evidence_url: &str,
        surveys_url: &str,
        max: usize,
        bearer: &Bearer,
    ) -> Result<Upstream, ApiError> {
        Ok(Upstream {
            registry: RegistryView::new(registry_url, max, bearer)?,
            evidence: EvidenceServiceClient::new(channel::lazy(evidence_url, bearer)?)
                .max_decoding_message_size(max),
            surveys: SurveyServiceClient::new(channel::lazy(surveys_url, bearer)?)
                .max_decoding_message_size(max),
        })
    }
}

fn unavailable(what: &str, s: tonic::Status) -> ApiError {
    ApiError::unavailable(format!(
        "cannot read {what} for the rebuild: {} {}",
        s.code(),
        s.message()
    ))
}

fn page(token: &str) -> Option<PageRequest> {
    Some(PageRequest {
        page_size: 1000,
        page_token: token.to_string(),
    })
}

/// Reads everything scores depend on. `edition` empty means the latest published one.
pub async fn pull(
    up: &Upstream,
    framework_id: &str,
    edition: &str,
    period: i32,
) -> Result<Inputs, ApiError> {
    let (fw, edition) = up.registry.framework(framework_id, edition).await?;
    let mut registry = up.registry.client();
    let org_units = fetch_org_units(&mut registry).await?;

    let mut facts = Facts::default();
    let mut surveys = up.surveys.clone();
    let mut token = String::new();
    loop {
        let resp = surveys
            .list_statistics(psv::ListStatisticsRequest {
                page: page(&token),
                ..Default::default()
            })
            .await
            .map_err(|s| unavailable("statistics", s))?
            .into_inner();
        for s in resp.statistics {
            let (Ok(org_unit), Ok(metric)) =
                (OrgUnitId::parse(&s.org_unit), MetricId::parse(&s.metric))
            else {
                continue;
            };
            facts.statistics.push(StatFact {
                org_unit,
                metric,
                period: s.period,
                value: s.value,
                version: s.version,
                state: crate::events::stat_state(s.state),
            });
        }
        token = resp.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    loop {
        let resp = surveys
            .list_tallies(psv::ListTalliesRequest {
                period: 0,
                page: page(&token),
            })
            .await
            .map_err(|s| unavailable("survey tallies", s))?
            .into_inner();
        for t in resp.tallies {
            let (Ok(org_unit), Ok(question)) = (
                OrgUnitId::parse(&t.org_unit),
                QuestionId::parse(&t.question),
            ) else {
                continue;
            };
            facts.surveys.push(SurveyTally {
                org_unit,
                question,
                period: t.period,
                responses: t.responses,
                positive: t.positive,
                source: t.survey_id,
                version: t.version,
                pending_responses: t.pending_responses,
                pending_positive: t.pending_positive,
            });
        }
        token = resp.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    let mut evidence = up.evidence.clone();
    loop {
        let resp = evidence
            .list_evidence(pe::ListEvidenceRequest {
                framework_id: fw.meta.id.to_string(),
                page: page(&token),
                ..Default::default()
            })
            .await
            .map_err(|s| unavailable("evidence", s))?
            .into_inner();
        for e in resp.evidence {
            if let Some(f) = evidence_fact(&e) {
                facts.evidence.push(f);
            }
        }
        token = resp.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(Inputs {
        framework_id: fw.meta.id.to_string(),
        edition,
        period,
        framework_json: export::to_json(&fw),
        org_units,
        facts,
    })
}

/// An evidence record as the fact scoring needs: its current state and revision.
pub fn evidence_fact(e: &pe::Evidence) -> Option<EvidenceFact> {
    let current = e.current.as_ref()?;
    let state = match pe::ReviewState::try_from(current.state).ok()? {
        pe::ReviewState::Accepted => EvidenceState::Accepted {
            grade: current.grade.min(100) as u8,
        },
        pe::ReviewState::Returned => EvidenceState::Returned,
        pe::ReviewState::Submitted => EvidenceState::Submitted,
        pe::ReviewState::Unspecified => return None,
    };
    Some(EvidenceFact {
        id: e.id.clone(),
        criterion: ItemCode::parse(&e.criterion).ok()?,
        unit: UnitId::parse(&e.responsible_unit).ok()?,
        org_unit: OrgUnitId::parse(&e.org_unit).ok()?,
        material: (!e.material_type.is_empty()).then(|| e.material_type.clone()),
        state,
        version: e.revision,
        title: e.title.clone(),
    })
}
