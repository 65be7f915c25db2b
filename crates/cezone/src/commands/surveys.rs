//! `cezone surveys import`: a survey platform's export loaded into a defined survey; `cezone
//! surveys batches|review`: the batches filed and their review.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cezone_client::files::survey_export::{self, Mapping};
use cezone_client::surveys::RESPONSES_PER_MESSAGE;
use cezone_proto::surveys::v1 as psv;
use futures::StreamExt;

use super::connect::{Services, file_refused, indexed, progress, refused};
use crate::cli::SurveysCommand;

pub async fn run(cmd: SurveysCommand) -> Result<ExitCode> {
    let (file, survey, mapping, dry_run, config) = match cmd {
        SurveysCommand::Define {
            id,
            period,
            title,
            dry_run,
            config,
        } => return define(id, period, title, dry_run, config).await,
        SurveysCommand::Import {
            file,
            survey,
            mapping,
            dry_run,
            config,
        } => (file, survey, mapping, dry_run, config),
        SurveysCommand::Batches {
            survey,
            state,
            config,
        } => return batches(survey, state, config).await,
        SurveysCommand::Review {
            batch,
            accept,
            return_with,
            config,
        } => return review(batch, accept, return_with, config).await,
    };
    let name = file.display().to_string();
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
    let mapping = match &mapping {
        Some(m) => {
            let text = std::fs::read_to_string(m)
                .with_context(|| format!("cannot read {}", m.display()))?;
            Mapping::parse(&text).map_err(|e| anyhow!("{}: {e}", m.display()))?
        }
        None => Mapping::default(),
    };
    let svc = Services::load(config.as_deref())?;
    let mut client = svc.surveys().await?;
    let def = client
        .get_survey(psv::GetSurveyRequest { id: survey.clone() })
        .await
        .map_err(|s| refused("GetSurvey", s))?
        .into_inner();
    let read = match survey_export::read(&name, &bytes, &def, &mapping) {
        Ok(r) => r,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let answers: usize = read.rows.iter().map(|(_, r)| r.answers.len()).sum();
    if dry_run {
        println!(
            "dry run, nothing stored — {name}: {} response(s), {answers} answer(s) to survey {} read; the service checks communities and respondents when they are sent",
            read.rows.len(),
            def.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    let row_of: Vec<String> = read.rows.iter().map(|(r, _)| read.at(*r)).collect();
    let responses: Vec<psv::Response> = read.rows.into_iter().map(|(_, r)| r).collect();
    let bar = progress(responses.len() as u64, "sending");
    let counted = bar.clone();
    let first = psv::IngestRequest {
        part: Some(psv::ingest_request::Part::SurveyId(survey.clone())),
    };
    let batches: Vec<psv::IngestRequest> = responses
        .chunks(RESPONSES_PER_MESSAGE)
        .map(|c| psv::IngestRequest {
            part: Some(psv::ingest_request::Part::Batch(psv::ResponseBatch {
                responses: c.to_vec(),
            })),
        })
        .collect();
    let stream = futures::stream::iter(std::iter::once(first).chain(batches)).map(move |m| {
        if let Some(psv::ingest_request::Part::Batch(b)) = &m.part {
            counted.inc(b.responses.len() as u64);
        }
        m
    });
    let result = client.ingest_responses(stream).await;
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            let s = r.into_inner();
            println!(
                "{name}: {} response(s) to survey {} stored (batch {}), {answers} answer(s), {} org unit(s)",
                s.accepted, def.id, s.batch_id, s.org_units
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => file_refused(&name, "IngestResponses", status, |f| place(f, &row_of)),
    }
}

/// `responses[12].org_unit` → `row 13, org_unit` (`sheet …, row 13, org_unit` in XLSX): the
/// service numbers the call's responses from 1; the file's rows are what a person finds.
fn place(field: &str, rows: &[String]) -> String {
    match indexed(field, "responses") {
        Some((i, rest)) if (1..=rows.len()).contains(&i) => format!("{}, {rest}", rows[i - 1]),
        _ => field.to_string(),
    }
}

async fn define(
    id: String,
    period: Option<i32>,
    title: Option<String>,
    dry_run: bool,
    config: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let svc = Services::load(config.as_deref())?;
    let period = period.unwrap_or(svc.settings.scoring.period);
    let mut reg = svc.registry().await?;
    let s = &svc.settings.scoring;
    let (fw, _) = cezone_platform::glue::registry_view::fetch_framework(
        &mut reg,
        &s.framework_id,
        &s.edition,
    )
    .await
    .map_err(|e| anyhow!("framework {}: {}", s.framework_id, e.message))?;
    let title = title.unwrap_or_else(|| format!("{period}年社区教育居民调查"));
    let def = cezone_client::surveys::survey_for(&fw.catalog, &id, &title, period);
    let mut client = svc.surveys().await?;
    if dry_run {
        // The service's own checks of a definition, then a read: is the id still free?
        cezone_surveys::check_definition(&def).map_err(|e| {
            let field = e.violations.first().map_or("survey", |v| v.field.as_str());
            let field = match field {
                "id" => "--id",
                "title" => "--title",
                "period" => "--period",
                other => other,
            };
            let why = e
                .violations
                .first()
                .map_or(e.message.as_str(), |v| v.description.as_str());
            anyhow!("{field}: {why} (nothing was defined)")
        })?;
        match client
            .get_survey(psv::GetSurveyRequest { id: def.id.clone() })
            .await
        {
            Ok(_) => bail!(
                "--id: survey '{}' already exists; choose another id (nothing was defined)",
                def.id
            ),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(refused("GetSurvey", s)),
        }
        println!(
            "dry run, nothing defined — survey {} — {} ({}) would ask {} question(s): {}; \
             the caller's permission is checked when it is defined",
            def.id,
            def.title,
            def.period,
            def.questions.len(),
            def.questions
                .iter()
                .map(|q| q.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let got = client
        .define_survey(def)
        .await
        .map_err(|s| refused("DefineSurvey", s))?
        .into_inner();
    println!(
        "defined survey {} — {} ({}), {} question(s): {}",
        got.id,
        got.title,
        got.period,
        got.questions.len(),
        got.questions
            .iter()
            .map(|q| q.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn batch_state_name(state: i32) -> &'static str {
    match psv::BatchState::try_from(state) {
        Ok(psv::BatchState::Pending) => "待审核 pending",
        Ok(psv::BatchState::Returned) => "已退回 returned",
        _ => "已通过 accepted",
    }
}

async fn batches(
    survey: Option<String>,
    state: Option<crate::cli::BatchStateArg>,
    config: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    use crate::cli::BatchStateArg;
    let svc = Services::load(config.as_deref())?;
    let mut client = svc.surveys().await?;
    let list = client
        .list_survey_batches(psv::ListSurveyBatchesRequest {
            survey_id: survey.unwrap_or_default(),
            state: match state {
                None => psv::BatchState::Unspecified,
                Some(BatchStateArg::Pending) => psv::BatchState::Pending,
                Some(BatchStateArg::Accepted) => psv::BatchState::Accepted,
                Some(BatchStateArg::Returned) => psv::BatchState::Returned,
            } as i32,
        })
        .await
        .map_err(|s| refused("ListSurveyBatches", s))?
        .into_inner()
        .batches;
    let offset = svc.settings.scheduler.utc_offset_hours;
    println!(
        "{} {} {} {} 报送 filed by / received",
        crate::render::fit("批次 batch", 37),
        crate::render::fit("问卷 survey", 15),
        crate::render::fit("答卷 responses", 15),
        crate::render::fit("状态 state", 16),
    );
    for b in &list {
        let review = if b.reviewed_by.is_empty() {
            String::new()
        } else {
            format!(
                "; {} {} {}",
                b.reviewed_by,
                crate::render::local_time(&b.reviewed_at, offset),
                b.review_comment
            )
        };
        println!(
            "{} {} {:>15} {} {} {}{review}",
            crate::render::fit(&b.id, 37),
            crate::render::fit(&b.survey_id, 15),
            b.responses,
            crate::render::fit(batch_state_name(b.state), 16),
            b.filed_by,
            crate::render::local_time(&b.received_at, offset),
        );
    }
    println!("{} batch(es)", list.len());
    Ok(ExitCode::SUCCESS)
}

async fn review(
    batch: String,
    accept: bool,
    return_with: Option<String>,
    config: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let (accept, comment) = match (accept, return_with) {
        (true, None) => (true, String::new()),
        (false, Some(c)) if !c.trim().is_empty() => (false, c),
        (false, Some(_)) => bail!("--return: say what to correct (the comment is empty)"),
        _ => bail!("give --accept or --return COMMENT"),
    };
    let svc = Services::load(config.as_deref())?;
    let mut client = svc.surveys().await?;
    let b = client
        .review_survey_batch(psv::ReviewSurveyBatchRequest {
            batch_id: batch,
            accept,
            comment,
        })
        .await
        .map_err(|s| refused("ReviewSurveyBatch", s))?
        .into_inner();
    println!(
        "{} {}: {} response(s) of survey {} filed by {}",
        batch_state_name(b.state),
        b.id,
        b.responses,
        b.survey_id,
        b.filed_by
    );
    Ok(ExitCode::SUCCESS)
}
