//! Surveys and statistics through the survey service's API.

use cezone_domain::demo::SurveyResponse;
use cezone_domain::facts::StatFact;
use cezone_domain::rules::{Catalog, QuestionKind};
use cezone_platform::access::auth::AuthChannel;
use cezone_proto::surveys::v1 as psv;
use cezone_proto::surveys::v1::survey_service_client::SurveyServiceClient;

use crate::{ClientError, MAX_MESSAGE_BYTES};

pub type Surveys = SurveyServiceClient<AuthChannel>;

/// Responses per streamed message.
pub const RESPONSES_PER_MESSAGE: usize = 2000;

pub fn client(channel: AuthChannel) -> Surveys {
    SurveyServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A survey asking every question of a framework's catalog.
pub fn survey_for(catalog: &Catalog, id: &str, title: &str, period: i32) -> psv::Survey {
    psv::Survey {
        id: id.to_string(),
        title: title.to_string(),
        period,
        questions: catalog
            .questions
            .iter()
            .map(|q| psv::Question {
                id: q.id.to_string(),
                text: q.text.clone(),
                kind: match q.kind {
                    QuestionKind::YesNo => psv::QuestionKind::YesNo,
                    QuestionKind::Likert5 => psv::QuestionKind::Likert5,
                } as i32,
                satisfied_from: u32::from(q.satisfied_from.unwrap_or(0)),
            })
            .collect(),
        created_at: String::new(),
        responses: 0,
    }
}

pub fn response(r: &SurveyResponse) -> psv::Response {
    psv::Response {
        respondent_id: r.respondent.clone(),
        org_unit: r.org_unit.to_string(),
        answers: r
            .answers
            .iter()
            .map(|(q, v)| psv::Answer {
                question: q.to_string(),
                value: *v,
            })
            .collect(),
    }
}

/// Streams responses in messages of `RESPONSES_PER_MESSAGE`; all or nothing on the server.
pub async fn ingest<I>(
    client: &mut Surveys,
    survey_id: &str,
    responses: I,
) -> Result<psv::IngestSummary, tonic::Status>
where
    I: IntoIterator<Item = psv::Response>,
    I::IntoIter: Send + 'static,
{
    let first = psv::IngestRequest {
        part: Some(psv::ingest_request::Part::SurveyId(survey_id.to_string())),
    };
    let mut it = responses.into_iter();
    let batches = std::iter::from_fn(move || {
        let chunk: Vec<psv::Response> = it.by_ref().take(RESPONSES_PER_MESSAGE).collect();
        (!chunk.is_empty()).then_some(psv::IngestRequest {
            part: Some(psv::ingest_request::Part::Batch(psv::ResponseBatch {
                responses: chunk,
            })),
        })
    });
    let stream = futures::stream::iter(std::iter::once(first).chain(batches));
    client
        .ingest_responses(stream)
        .await
        .map(|r| r.into_inner())
}

pub fn statistic(s: &StatFact, filed_by: &str) -> psv::StatisticReturn {
    psv::StatisticReturn {
        org_unit: s.org_unit.to_string(),
        metric: s.metric.to_string(),
        period: s.period,
        value: s.value,
        filed_by: filed_by.to_string(),
        ..Default::default()
    }
}

pub async fn record(
    client: &mut Surveys,
    s: &StatFact,
    filed_by: &str,
) -> Result<psv::StatisticReturn, ClientError> {
    client
        .record_statistic(statistic(s, filed_by))
        .await
        .map(|r| r.into_inner())
        .map_err(|st| ClientError::call("RecordStatistic", st))
}

/// Statistics per streamed part of an `ImportStatistics` call (the service takes at most
/// 10,000 per part).
pub const STATISTICS_PER_PART: usize = 5000;

/// Files a whole return in one streamed `ImportStatistics` call: every statistic is checked
/// before any is stored, and all are stored in one transaction or none is.
pub async fn import(
    client: &mut Surveys,
    facts: &[StatFact],
    filed_by: &str,
) -> Result<psv::ImportStatisticsResponse, ClientError> {
    if facts.is_empty() {
        return Ok(psv::ImportStatisticsResponse::default());
    }
    let parts: Vec<psv::RecordStatisticsRequest> = facts
        .chunks(STATISTICS_PER_PART)
        .map(|chunk| psv::RecordStatisticsRequest {
            statistics: chunk.iter().map(|f| statistic(f, filed_by)).collect(),
            dry_run: false,
        })
        .collect();
    client
        .import_statistics(futures::stream::iter(parts))
        .await
        .map(|r| r.into_inner())
        .map_err(|st| ClientError::call("ImportStatistics", st))
}
