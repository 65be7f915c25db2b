//! Statistics import: a province-sized return as an XLSX file (every community × every metric of
//! the catalog), read cell by cell and streamed to the survey service in one `ImportStatistics`
//! call on a fresh PostgreSQL database, timed from the file's bytes to the committed answer.
//! Beside it, the same values with `COPY … FROM STDIN` into a bare table of the same columns
//! (no keys, no indexes), timed from `BEGIN` to `COMMIT`.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use cezone_client::files::returns;
use cezone_client::{registry, surveys};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::guangdong;
use cezone_domain::org::{OrgLevel, OrgTree, OrgUnit};
use cezone_domain::rules::{MetricDef, MetricUnit};
use cezone_proto::surveys::v1 as psv;
use sqlx::Connection;

use crate::ingest::Run;

/// Statistics per streamed part (the service takes at most 10,000).
const PART: usize = 5_000;

#[derive(Debug, Clone)]
pub struct Measured {
    /// Values per round (communities × metrics).
    pub values: u64,
    pub communities: usize,
    pub metrics: usize,
    /// Size of the XLSX file.
    pub file_bytes: usize,
    /// XLSX bytes → read and checked → streamed → stored and committed; one call per round.
    pub ours: Vec<Run>,
    /// COPY of the same values into a bare table; one per round, each right after ours.
    pub copy: Vec<Run>,
}

/// A value for round `round` of community `c`'s metric `m`, within the metric's bounds.
fn value(m: &MetricDef, c: usize, round: usize) -> i64 {
    let base = ((c * 37 + round * 11) % 500) as i64 + 1;
    match m.unit {
        MetricUnit::Yuan => base * 10_000 + 25,
        _ => base,
    }
}

/// Starts registry and surveys on a fresh database, loads a district of `communities`
/// communities (in one `ImportOrgUnits` call), then alternates ours and the baseline for
/// `rounds` rounds after an uncounted warm-up round, each round filing new values (the next
/// version of every statistic); the baseline's figure of a round is its best of three.
pub async fn measure(communities: usize, rounds: usize) -> Result<Measured> {
    let (fw, _) = guangdong::framework();
    let district = generate(
        &fw,
        &DemoParams {
            towns: (communities / 200).max(2),
            communities,
            responses_per_community: 0,
            ..DemoParams::nanhai(17)
        },
    );
    let period = district.params.period;
    let tree = OrgTree::build(district.units.clone()).map_err(|e| anyhow!("{e}"))?;
    let metrics: Vec<&MetricDef> = fw.catalog.metrics.iter().collect();
    let rows: Vec<&OrgUnit> = district
        .units
        .iter()
        .filter(|u| u.level == OrgLevel::Community)
        .collect();

    let deployment = crate::ingest::registry_and_surveys().await?;
    let (settings, office) = (&deployment.stack.settings, &deployment.office);
    let result = async {
        let mut reg = registry::client(
            cezone_client::connect(&settings.services.registry_url, office).await?,
        );
        registry::import_and_publish(&mut reg, registry::guangdong_source()).await?;
        reg.import_org_units(cezone_proto::registry::v1::ImportOrgUnitsRequest {
            units: registry::parents_first(&district.units)
                .iter()
                .map(|u| cezone_platform::glue::convert::org_unit_to_proto(u, 0))
                .collect(),
            dry_run: false,
        })
        .await
        .context("ImportOrgUnits")?;
        let mut sv =
            surveys::client(cezone_client::connect(&settings.services.surveys_url, office).await?);

        let mut conn = sqlx::PgConnection::connect(&settings.database.url)
            .await
            .context("connecting for COPY")?;
        sqlx::query(
            "CREATE TABLE bench_copy_statistics (org_unit VARCHAR NOT NULL, \
             metric VARCHAR NOT NULL, period INTEGER NOT NULL, value BIGINT NOT NULL)",
        )
        .execute(&mut conn)
        .await?;
        let (mut ours, mut copy, mut file_bytes) = (Vec::new(), Vec::new(), 0);
        for round in 0..=rounds {
            // The warm-up round files every value once, so each measured round does the same
            // work: the next version of every value, the earlier one retired (a warm-up of a
            // part made the first measured round mostly first filings, faster than the rest).
            let mut values = returns::Current::new();
            for (c, u) in rows.iter().enumerate() {
                for m in &metrics {
                    values.insert(
                        (u.id.to_string(), m.id.to_string(), period),
                        value(m, c, round),
                    );
                }
            }
            let xlsx = returns::sheet(&metrics, &rows, period, &values)
                .map_err(|e| anyhow!("writing the return: {e}"))?;
            let want = values.len() as u64;
            // The previous round's events leave the outbox first, as a district's next return
            // would find it; past the backlog limit the service would refuse the call.
            deployment.stack.flush_events().await;

            let started = Instant::now();
            let filed =
                returns::read("province.xlsx", &xlsx, &fw, &tree).map_err(|e| anyhow!("{e}"))?;
            let parts: Vec<psv::RecordStatisticsRequest> = filed
                .chunks(PART)
                .map(|c| psv::RecordStatisticsRequest {
                    statistics: c.iter().map(|f| f.statistic.clone()).collect(),
                    dry_run: false,
                })
                .collect();
            let done = sv
                .import_statistics(tokio_stream::iter(parts))
                .await
                .context("ImportStatistics")?
                .into_inner();
            let run = Run::new(done.recorded, started);
            if done.recorded != want {
                bail!("the service stored {} of {want} values", done.recorded);
            }
            // COPY takes a few hundredths of a second: its best of three, each into an emptied table,
            // so one slow moment of the machine does not decide the round.
            let mut base = baseline(&mut conn, &values).await?;
            for _ in 0..2 {
                let again = baseline(&mut conn, &values).await?;
                if again.per_second > base.per_second {
                    base = again;
                }
            }
            if round > 0 {
                ours.push(run);
                copy.push(base);
                file_bytes = xlsx.len();
            }
        }
        conn.close().await?;
        Ok(Measured {
            values: (rows.len() * metrics.len()) as u64,
            communities: rows.len(),
            metrics: metrics.len(),
            file_bytes,
            ours,
            copy,
        })
    }
    .await;
    deployment.stop().await;
    result
}

/// The same values as text rows sent with COPY in one transaction.
async fn baseline(conn: &mut sqlx::PgConnection, values: &returns::Current) -> Result<Run> {
    sqlx::query("TRUNCATE bench_copy_statistics")
        .execute(&mut *conn)
        .await?;
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut copy = tx
        .copy_in_raw("COPY bench_copy_statistics (org_unit, metric, period, value) FROM STDIN")
        .await?;
    let mut buf = String::new();
    let mut n = 0usize;
    for ((org, metric, period), v) in values {
        cezone_surveys::copy_field(&mut buf, org);
        buf.push('\t');
        cezone_surveys::copy_field(&mut buf, metric);
        buf.push('\t');
        buf.push_str(&period.to_string());
        buf.push('\t');
        buf.push_str(&v.to_string());
        buf.push('\n');
        n += 1;
        if n.is_multiple_of(10_000) {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await?;
    }
    let copied = copy.finish().await?;
    tx.commit().await?;
    if copied != values.len() as u64 {
        bail!("COPY stored {copied} of {} rows", values.len());
    }
    Ok(Run::new(copied, started))
}
