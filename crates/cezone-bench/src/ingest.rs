//! Survey ingest: responses streamed over gRPC (one client-streaming `IngestResponses` call)
//! into the survey service on a fresh PostgreSQL database, timed from the first message to the
//! committed summary. Beside it, the same rows with `COPY … FROM STDIN` into a bare table of
//! the same columns (no keys, no indexes) in the same database, timed from `BEGIN` to `COMMIT`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cezone_bus::{Bus, BusConfig, InProcessBus};
use cezone_client::demo::survey_id;
use cezone_client::{registry, surveys};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::guangdong;
use cezone_platform::scratch;
use cezone_stack::Part;

use crate::throwaway::Throwaway;
use cezone_proto::surveys::v1 as psv;
use sqlx::Connection;

/// Communities the responses are spread over.
const COMMUNITIES: usize = 100;
/// Rows formatted into one `COPY` data message by the baseline.
const COPY_ROWS_PER_SEND: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Run {
    pub rows: u64,
    pub seconds: f64,
    pub per_second: f64,
}

impl Run {
    pub(crate) fn new(rows: u64, started: Instant) -> Run {
        let seconds = started.elapsed().as_secs_f64();
        Run {
            rows,
            seconds,
            per_second: rows as f64 / seconds,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Measured {
    /// The survey service: gRPC stream → checked → COPY into its table → tallies → commit;
    /// one call per round.
    pub ours: Vec<Run>,
    /// `COPY … FROM STDIN` of the same rows into a bare table; one per round, each right after
    /// ours.
    pub copy: Vec<Run>,
    /// Bytes of one response's row in the COPY text, on average.
    pub row_bytes: f64,
}

/// Starts registry and surveys on a fresh database, creates `COMMUNITIES` communities and a
/// survey, generates `n` responses, then runs ours and the baseline on them in alternating
/// rounds (ours, COPY, ours, COPY, …), each round's respondents new (their ids suffixed with
/// the round), after a warm-up round of a tenth of the rows that is not counted.
pub async fn measure(n: usize, rounds: usize) -> Result<Measured> {
    let per = n.div_ceil(COMMUNITIES) as u32;
    let (fw, _) = guangdong::framework();
    let mut district = generate(
        &fw,
        &DemoParams {
            towns: 4,
            communities: COMMUNITIES,
            responses_per_community: per,
            ..DemoParams::nanhai(11)
        },
    );
    // Every round surveys the same communities anew, and a community may not have more
    // respondents than residents: the communities are given enough residents for all rounds.
    let period = district.params.period;
    for u in &mut district.units {
        if u.level == cezone_domain::org::OrgLevel::Community {
            u.population
                .insert(period, (per as u64) * (rounds as u64 + 1) * 2);
        }
    }
    let responses: Vec<psv::Response> = district
        .responses(&fw.catalog)
        .take(n)
        .map(|r| surveys::response(&r))
        .collect();

    let deployment = registry_and_surveys().await?;
    let (settings, office) = (&deployment.stack.settings, &deployment.office);
    let result = async {
        let mut reg = registry::client(
            cezone_client::connect(&settings.services.registry_url, office).await?,
        );
        registry::import_and_publish(&mut reg, registry::guangdong_source()).await?;
        registry::create_org_units(&mut reg, &registry::parents_first(&district.units)).await?;
        let mut sv =
            surveys::client(cezone_client::connect(&settings.services.surveys_url, office).await?);
        let period = district.params.period;
        let id = survey_id(period);
        sv.define_survey(surveys::survey_for(&fw.catalog, &id, "bench", period))
            .await
            .context("DefineSurvey")?;

        let mut conn = sqlx::PgConnection::connect(&settings.database.url)
            .await
            .context("connecting for COPY")?;
        sqlx::query(
            "CREATE TABLE bench_copy_responses (survey_id VARCHAR NOT NULL, \
             batch_id VARCHAR NOT NULL, respondent_id VARCHAR NOT NULL, \
             org_unit VARCHAR NOT NULL, answers VARCHAR NOT NULL)",
        )
        .execute(&mut conn)
        .await?;
        let (mut ours, mut copy, mut row_bytes) = (Vec::new(), Vec::new(), 0.0);
        for round in 0..=rounds {
            let rows: Vec<psv::Response> = responses
                .iter()
                .take(if round == 0 { n / 10 } else { n })
                .map(|r| psv::Response {
                    respondent_id: format!("{}-r{round}", r.respondent_id),
                    ..r.clone()
                })
                .collect();
            let want = rows.len() as u64;
            let sent = rows.clone();
            let started = Instant::now();
            let summary = surveys::ingest(&mut sv, &id, sent)
                .await
                .context("IngestResponses")?;
            let run = Run::new(summary.accepted, started);
            if summary.accepted != want {
                bail!(
                    "the service accepted {} of {want} responses",
                    summary.accepted
                );
            }
            let (base, bytes) = baseline(&mut conn, &id, &rows).await?;
            if round > 0 {
                ours.push(run);
                copy.push(base);
                row_bytes = bytes;
            }
        }
        conn.close().await?;
        Ok(Measured {
            ours,
            copy,
            row_bytes,
        })
    }
    .await;
    deployment.stop().await;
    result
}

/// The registry and the survey service on a fresh PostgreSQL database and an in-process bus.
pub(crate) async fn registry_and_surveys() -> Result<Throwaway> {
    let settings = Throwaway::prepare(|_| {}).await?;
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::connect(&BusConfig::in_process(
        &scratch::bus_prefix("t"),
    ))?);
    Throwaway::start(&settings, bus, &[Part::Registry, Part::Surveys]).await
}

/// The same rows as the service writes (survey, batch, respondent, org unit, "q=v;q=v"),
/// formatted and sent with COPY in one transaction; rows/s and the mean row size.
async fn baseline(
    conn: &mut sqlx::PgConnection,
    survey: &str,
    responses: &[psv::Response],
) -> Result<(Run, f64)> {
    let batch = uuid::Uuid::now_v7().to_string();
    let mut bytes = 0usize;
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY bench_copy_responses (survey_id, batch_id, respondent_id, org_unit, answers) \
             FROM STDIN",
        )
        .await?;
    let mut buf = String::new();
    for chunk in responses.chunks(COPY_ROWS_PER_SEND) {
        buf.clear();
        for r in chunk {
            cezone_surveys::copy_field(&mut buf, survey);
            buf.push('\t');
            cezone_surveys::copy_field(&mut buf, &batch);
            buf.push('\t');
            cezone_surveys::copy_field(&mut buf, &r.respondent_id);
            buf.push('\t');
            cezone_surveys::copy_field(&mut buf, &r.org_unit);
            buf.push('\t');
            for (i, a) in r.answers.iter().enumerate() {
                if i > 0 {
                    buf.push(';');
                }
                cezone_surveys::copy_field(&mut buf, &a.question);
                buf.push('=');
                buf.push_str(&a.value.to_string());
            }
            buf.push('\n');
        }
        bytes += buf.len();
        copy.send(buf.as_bytes()).await?;
    }
    let copied = copy.finish().await?;
    tx.commit().await?;
    let run = Run::new(copied, started);
    if copied != responses.len() as u64 {
        bail!("COPY stored {copied} of {} rows", responses.len());
    }
    Ok((run, bytes as f64 / responses.len().max(1) as f64))
}
