//! `cezone bench`: every workload beside its baseline, one table.

use anyhow::{Context, Result};
use cezone_bench::stack::Stack;
use cezone_bench::{Report, Size, pipeline};
use cezone_domain::demo::DemoParams;

use crate::cli::{BenchArgs, Workload};

pub async fn run(args: BenchArgs) -> Result<()> {
    let size = if args.quick { Size::Quick } else { Size::Full };
    let mut report = Report::new(if args.quick { "quick" } else { "full" });
    let runs = |w: Workload| args.only.is_empty() || args.only.contains(&w);
    if runs(Workload::Pipeline) {
        eprintln!("bench: event pipeline (PostgreSQL + RabbitMQ) …");
        event_pipeline(size, &mut report)
            .await
            .context("event pipeline")?;
    }
    if runs(Workload::EndToEnd) {
        eprintln!("bench: end to end, separate processes (PostgreSQL + RabbitMQ) …");
        end_to_end(size, &mut report).await.context("end to end")?;
    }
    if runs(Workload::Ingest) {
        survey_ingest(size, &mut report).await?;
    }
    if runs(Workload::Upload) {
        evidence_upload(size, &mut report).await?;
    }
    if runs(Workload::Recompute) {
        recompute(size, &mut report).await.context("recompute")?;
    }
    if runs(Workload::Queries) {
        score_queries(size, &mut report)
            .await
            .context("score queries")?;
    }
    print!("{}", report.table());
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn event_pipeline(size: Size, report: &mut Report) -> Result<()> {
    let (params, n) = match size {
        Size::Quick => (
            DemoParams {
                towns: 3,
                communities: 60,
                responses_per_community: 10,
                ..DemoParams::nanhai(7)
            },
            600,
        ),
        Size::Full => (DemoParams::nanhai(7), 5000),
    };
    let mut stack = Stack::start(&params).await?;
    let loaded = stack.load().await?;
    eprintln!(
        "bench: demo district loaded and scored through the services in {:.1} s",
        loaded.as_secs_f64()
    );
    let (full, half) = pipeline::ours(&stack, n).await?;
    let size_bytes = pipeline::event_size(&stack);
    let url = stack.settings.bus.amqp_url.clone();
    let prefetch = stack.settings.bus.prefetch;
    stack.stop().await;
    let (raw_full, raw_half) =
        pipeline::baseline(&url, n, size_bytes, full.per_second / 2.0, prefetch).await?;
    let w = "event pipeline";
    report.push(
        w,
        "throughput",
        "events/s",
        full.per_second,
        Some(raw_full.per_second),
        "≥ 0.5× raw",
        &format!(
            "{} statistic events of {size_bytes} bytes, publish → scores committed",
            full.events
        ),
    );
    report.push(
        w,
        "latency p50 at full load",
        "ms",
        full.p50_ms,
        Some(raw_full.p50_ms),
        "",
        "",
    );
    report.push(
        w,
        "latency p99 at full load",
        "ms",
        full.p99_ms,
        Some(raw_full.p99_ms),
        "",
        "",
    );
    report.push(
        w,
        "latency p50 at half load",
        "ms",
        half.p50_ms,
        Some(raw_half.p50_ms),
        "",
        &format!("{} events at {:.0}/s", half.events, full.per_second / 2.0),
    );
    report.push(
        w,
        "latency p99 at half load",
        "ms",
        half.p99_ms,
        Some(raw_half.p99_ms),
        "< 50 ms",
        "",
    );
    Ok(())
}

async fn end_to_end(size: Size, report: &mut Report) -> Result<()> {
    let (params, n) = match size {
        Size::Quick => (
            DemoParams {
                towns: 3,
                communities: 60,
                responses_per_community: 10,
                ..DemoParams::nanhai(7)
            },
            6_000,
        ),
        Size::Full => (DemoParams::nanhai(7), 30_000),
    };
    let binary = std::env::current_exe().context("finding the cezone binary")?;
    let m = cezone_bench::end_to_end::measure(&binary, &params, n).await?;
    let settings = cezone_platform::Settings::load(None)?;
    let (raw_full, raw_half) = pipeline::baseline(
        &cezone_platform::testing::amqp_url(),
        n,
        m.event_bytes,
        m.full.per_second / 2.0,
        settings.bus.prefetch,
    )
    .await?;
    let w = "end to end";
    report.push(
        w,
        "throughput",
        "statistics/s",
        m.full.per_second,
        Some(raw_full.per_second),
        "≥ 0.5× raw",
        &format!(
            "{} statistics filed by {} callers in calls of 50 (RecordStatistics) to the surveys \
             process → its outbox → relay → RabbitMQ → the scoring process → new score visible \
             to GetScores; raw: lapin publish with confirms → consume, {}-byte messages",
            m.full.statistics, 8, m.event_bytes
        ),
    );
    report.push(
        w,
        "latency p50 at half load",
        "ms",
        m.half.p50_ms,
        Some(raw_half.p50_ms),
        "",
        &format!(
            "{} statistics at {:.0}/s, from the call's answer to the score",
            m.half.statistics,
            m.full.per_second / 2.0
        ),
    );
    report.push(
        w,
        "latency p99 at half load",
        "ms",
        m.half.p99_ms,
        Some(raw_half.p99_ms),
        "< 100 ms",
        "",
    );
    report.push(
        w,
        "outbox backlog at full load",
        "events",
        m.full.max_backlog as f64,
        None,
        "bounded",
        &format!(
            "the most unpublished events sampled in the surveys outbox (writes are refused past \
             bus.outbox_backlog_limit = {})",
            settings.bus.outbox_backlog_limit
        ),
    );
    Ok(())
}

async fn survey_ingest(size: Size, report: &mut Report) -> Result<()> {
    let n = match size {
        Size::Quick => 100_000,
        Size::Full => 1_000_000,
    };
    eprintln!("bench: survey ingest, {n} responses (PostgreSQL) …");
    let m = cezone_bench::ingest::measure(n)
        .await
        .context("survey ingest")?;
    report.push(
        "survey ingest",
        "throughput",
        "rows/s",
        m.ours.per_second,
        Some(m.copy.per_second),
        "≥ 0.5× COPY",
        &format!(
            "{} responses in one IngestResponses stream, first message → committed summary \
             ({:.2} s); COPY FROM STDIN of the same rows (~{:.0} bytes each) into a bare table \
             without keys or indexes, BEGIN → COMMIT ({:.2} s)",
            m.ours.rows, m.ours.seconds, m.row_bytes, m.copy.seconds
        ),
    );
    Ok(())
}

async fn evidence_upload(size: Size, report: &mut Report) -> Result<()> {
    let total: u64 = match size {
        Size::Quick => 128 << 20,
        Size::Full => 1 << 30,
    };
    eprintln!("bench: evidence upload, {} MiB (local disk) …", total >> 20);
    let m = cezone_bench::upload::measure(total, 5)
        .await
        .context("evidence upload")?;
    report.push(
        "evidence upload",
        "throughput",
        "MB/s",
        m.ours.mb_per_second,
        Some(m.baseline.mb_per_second),
        "≥ 0.6×",
        &format!(
            "{} files of 1–50 MiB, {:.0} MiB, uploaded one at a time until stored, hashed and \
             synced ({:.2} s); the sha256sum and cp commands over the same files, no sync \
             ({:.2} s)",
            m.files,
            m.bytes as f64 / (1u64 << 20) as f64,
            m.ours.seconds,
            m.baseline.seconds
        ),
    );
    Ok(())
}

async fn recompute(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::recompute::{self as rc, Scale};
    let quick = size == Size::Quick;
    let (district_runs, district_sql_runs) = if quick { (5, 3) } else { (9, 5) };
    let (province_runs, province_sql_runs, changes) =
        if quick { (3, 1, 500) } else { (5, 3, 5000) };

    eprintln!("bench: full recompute, district scale (engine vs SQL on PostgreSQL) …");
    let district = Scale::generate(&DemoParams::nanhai(7))?;
    let (ours, engine, board) = rc::full(&district, district_runs);
    let sql = rc::sql_baseline(&district, &engine, &board, district_sql_runs)
        .await
        .context("full recompute (district), SQL baseline")?;
    drop((engine, board));
    let coverage = rc::sql_coverage(&district.fw);
    report.push(
        "full recompute (district)",
        "time",
        "ms",
        ours.median,
        Some(sql.timing.median),
        "≥ 10× faster",
        &format!(
            "{}; ours: Engine::new + scoreboard() over every criterion × unit, median of {} \
             runs ({:.1}–{:.1} ms); baseline: one SQL query over the facts in PostgreSQL \
             (closure-table roll-up, {} rows fetched), median of {} runs ({:.0}–{:.0} ms), \
             load {:.1} s not timed; {}; {}",
            district.describe(),
            ours.runs,
            ours.min,
            ours.max,
            sql.rows,
            sql.timing.runs,
            sql.timing.min,
            sql.timing.max,
            sql.load_seconds,
            coverage,
            sql.check
        ),
    );
    report.lower_is_better();
    drop(district);

    let province_params = if quick {
        DemoParams {
            towns: 400,
            communities: 6_500,
            ..DemoParams::province(7)
        }
    } else {
        DemoParams::province(7)
    };
    let scale_name = if quick {
        "a quarter of province scale (quick)"
    } else {
        "full province scale"
    };
    eprintln!("bench: province scale, {scale_name}: generating the facts …");
    let province = Scale::generate(&province_params)?;
    let (mem, engine, board) = rc::memory(&province);
    let units = engine.org.len();
    let cells = board.units() * engine.fw.len();
    drop((engine, board));
    eprintln!("bench: full recompute, {scale_name} …");
    let (ours, engine, board) = rc::full(&province, province_runs);
    let sql = rc::sql_baseline(&province, &engine, &board, province_sql_runs)
        .await
        .context("full recompute (province), SQL baseline")?;
    drop((engine, board));
    report.push(
        "full recompute (province)",
        "time",
        "ms",
        ours.median,
        Some(sql.timing.median),
        "≥ 10× faster; province < 1 s",
        &format!(
            "{scale_name}: {}; {units} org units × {} items = {cells} cells; ours median of {} \
             runs ({:.0}–{:.0} ms); SQL median of {} run(s) ({:.0}–{:.0} ms, {} rows), load \
             {:.1} s not timed; {}",
            province.describe(),
            cells / units.max(1),
            ours.runs,
            ours.min,
            ours.max,
            sql.timing.runs,
            sql.timing.min,
            sql.timing.max,
            sql.rows,
            sql.load_seconds,
            sql.check
        ),
    );
    report.lower_is_better();

    eprintln!("bench: incremental recompute, {scale_name} …");
    let inc = rc::incremental(&province, changes, 11);
    report.push(
        "incremental recompute",
        "time",
        "µs",
        inc.median_us,
        Some(ours.median * 1000.0),
        "≥ 1000× faster at province scale",
        &format!(
            "{scale_name}: one community statistic of the current period (random community and \
             metric, new value, higher version) → apply + rescore of the affected cells and \
             their ancestors; median of {} changes (p99 {:.1} µs, {:.1} cells each on average); \
             baseline: the full recompute above; board after all changes equals a full \
             recompute from the facts: {}",
            inc.changes,
            inc.p99_us,
            inc.mean_cells,
            if inc.equal_to_full { "yes" } else { "NO" }
        ),
    );
    report.lower_is_better();

    let mib = |kib: u64| kib as f64 / 1024.0;
    report.push(
        "memory",
        "peak RSS",
        "MiB",
        mib(mem.after_kib),
        None,
        "< 512 MiB",
        &format!(
            "{scale_name}: VmHWM of this process after building the province engine and \
             scoreboard ({units} units); before {:.0} MiB (facts and demo data already in \
             memory{}), delta {:.0} MiB; VmRSS after {:.0} MiB",
            mib(mem.before_kib),
            if mem.peak_was_reset {
                ", peak reset via /proc/self/clear_refs first"
            } else {
                ", peak not reset"
            },
            mib(mem.after_kib.saturating_sub(mem.before_kib)),
            mib(mem.rss_after_kib)
        ),
    );
    report.lower_is_better();
    Ok(())
}

async fn score_queries(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::queries;
    const CLIENTS: usize = 32;
    let (params, duration, label) = match size {
        Size::Quick => (
            DemoParams {
                towns: 3,
                communities: 60,
                responses_per_community: 10,
                ..DemoParams::nanhai(7)
            },
            std::time::Duration::from_secs(3),
            "a 60-community demo district (quick)",
        ),
        Size::Full => (
            DemoParams::nanhai(7),
            std::time::Duration::from_secs(15),
            "the Nanhai demo district",
        ),
    };
    eprintln!("bench: score queries, loading {label} through the services …");
    let mut stack = Stack::start(&params).await?;
    let loaded = stack.load().await?;
    eprintln!("bench: score queries, {CLIENTS} clients for {duration:?} each …");
    let ours = queries::get_scores(&stack, CLIENTS, duration).await;
    let base = queries::health_check(&stack, CLIENTS, duration).await;
    stack.stop().await;
    let (ours, base) = (ours?, base?);
    report.push(
        "score queries",
        "throughput",
        "req/s",
        ours.per_second,
        Some(base.per_second),
        "≥ 0.5×",
        &format!(
            "GetScores (every item, no explanation) for a random org unit of {label} ({} units, \
             loaded through the services on PostgreSQL in {:.1} s), {CLIENTS} clients on their \
             own connections for {:.1} s: {} ok, {} failed; baseline: grpc.health.v1 Check on \
             the same scoring server, same clients and duration: {} ok, {} failed",
            stack_units(&params),
            loaded.as_secs_f64(),
            ours.seconds,
            ours.requests,
            ours.errors,
            base.requests,
            base.errors
        ),
    );
    Ok(())
}

fn stack_units(params: &DemoParams) -> usize {
    1 + params.towns + params.communities
}
