//! `cezone bench`: every workload beside its baseline, one table.

use anyhow::{Context, Result};
use cezone_bench::stack::Stack;
use cezone_bench::{Goal, Report, Size, pipeline};
use cezone_domain::demo::DemoParams;

use crate::cli::{BenchArgs, Workload};

pub async fn run(args: BenchArgs) -> Result<()> {
    // The services the bench starts log only when asked (RUST_LOG=warn, …): the table stays
    // readable, and a failure's cause can still be seen.
    if std::env::var_os("RUST_LOG").is_some() {
        cezone_platform::telemetry::init(&cezone_platform::Settings::defaults().log);
    }
    let repeat = args.repeat.max(1) as usize;
    let mut runs = Vec::with_capacity(repeat);
    for i in 0..repeat {
        if repeat > 1 {
            eprintln!("bench: run {} of {repeat} …", i + 1);
        }
        let mut report = table(&args).await?;
        report.judge();
        if repeat > 1 {
            eprint!("{}", report.table());
        }
        runs.push(report);
    }
    let report = if repeat > 1 {
        Report::merge(runs)
    } else {
        runs.remove(0)
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Every selected workload once.
async fn table(args: &BenchArgs) -> Result<Report> {
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
    if runs(Workload::StatisticsImport) {
        statistics_import(size, &mut report).await?;
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
    Ok(report)
}

/// Steady-state settings of a throughput workload: the window each run needs at least, how
/// many (ours, baseline) pairs of full-load runs, and the length of the half-load runs.
struct Steady {
    window: std::time::Duration,
    pairs: usize,
    half: std::time::Duration,
}

impl Steady {
    fn of(size: Size) -> Steady {
        let s = std::time::Duration::from_secs;
        match size {
            Size::Quick => Steady {
                window: s(3),
                pairs: 1,
                half: s(2),
            },
            Size::Full => Steady {
                window: s(4),
                pairs: 3,
                half: s(6),
            },
        }
    }
}

/// Ours and the baseline over their full-load runs: the median of the runs' steady rates, with
/// the spread of the half-second bins of every run, and the ratio's spread over the bins taken
/// pair by pair.
fn steady_spreads(
    ours: &[pipeline::Run],
    base: &[pipeline::Run],
) -> (
    cezone_bench::sample::Spread,
    cezone_bench::sample::Spread,
    cezone_bench::sample::Spread,
) {
    use cezone_bench::sample::{Spread, bin_ratios};
    let pooled = |runs: &[pipeline::Run]| {
        let rates: Vec<f64> = runs.iter().map(|r| r.per_second).collect();
        let bins: Vec<f64> = runs.iter().flat_map(|r| r.bins.clone()).collect();
        let mut s = Spread::of(&bins);
        s.median = Spread::of(&rates).median;
        s.n = runs.len();
        s
    };
    let (o, b) = (pooled(ours), pooled(base));
    let ratios: Vec<f64> = ours
        .iter()
        .zip(base)
        .flat_map(|(a, b)| bin_ratios(&a.bins, &b.bins))
        .collect();
    // The figure is the ratio of the steady rates (every completion of the window counts);
    // the bins' ratios give its spread.
    let mut r = Spread::of(&ratios);
    r.median = o.median / b.median;
    (o, b, r)
}

/// Ours, the baseline and their ratio from interleaved in-process timings, at the lower
/// decile (see `Spread::fast`): the ratio is that of the two lower deciles, its spread that of
/// the turns' ratios.
fn fast_figures(
    paired: &cezone_bench::sample::Paired,
) -> (
    cezone_bench::sample::Spread,
    cezone_bench::sample::Spread,
    cezone_bench::sample::Spread,
) {
    let (ours, base) = (paired.ours().fast(), paired.baseline().fast());
    let mut ratio = paired.ratio();
    ratio.median = ours.median / base.median;
    (ours, base, ratio)
}

fn median_of(runs: &[pipeline::Run], f: impl Fn(&pipeline::Run) -> f64) -> f64 {
    cezone_bench::sample::Spread::of(&runs.iter().map(f).collect::<Vec<_>>()).median
}

async fn event_pipeline(size: Size, report: &mut Report) -> Result<()> {
    let params = match size {
        Size::Quick => DemoParams {
            towns: 3,
            communities: 60,
            responses_per_community: 10,
            ..DemoParams::nanhai(7)
        },
        Size::Full => DemoParams::nanhai(7),
    };
    let steady = Steady::of(size);
    let mut stack = Stack::start(&params).await?;
    let loaded = stack.load().await?;
    eprintln!(
        "bench: demo district loaded and scored through the services in {:.1} s",
        loaded.as_secs_f64()
    );
    let size_bytes = pipeline::event_size(&stack);
    let raw = pipeline::Raw::connect(
        &stack.settings.bus.amqp_url,
        size_bytes,
        stack.settings.bus.prefetch,
    )
    .await?;
    let result = async {
        // Warm-up runs, not counted; their rates size the measured runs.
        let mut offset = 0;
        let warm = pipeline::ours(&stack, 1_000, offset, None).await?;
        offset += 1_000;
        let warm_raw = raw.run(2_000, None).await?;
        let (n, n_raw) = (
            pipeline::events_for(warm.per_second, steady.window),
            pipeline::events_for(warm_raw.per_second, steady.window),
        );
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..steady.pairs {
            ours.push(pipeline::ours(&stack, n, offset, None).await?);
            offset += n;
            base.push(raw.run(n_raw, None).await?);
        }
        let (o, b, r) = steady_spreads(&ours, &base);
        let rate = o.median / 2.0;
        let m = ((rate * steady.half.as_secs_f64()) as usize).max(50);
        let half = pipeline::ours(&stack, m, offset, Some(rate)).await?;
        let raw_half = raw.run(m, Some(rate)).await?;
        anyhow::Ok((ours, base, (o, b, r), half, raw_half, n, n_raw))
    }
    .await;
    stack.stop().await;
    let _ = raw.close().await;
    let (ours, base, (o, b, r), half, raw_half, n, n_raw) = result?;
    let w = "event pipeline";
    report
        .push(
            w,
            "throughput",
            "events/s",
            o.median,
            Some(b.median),
            "≥ 0.5× raw",
            &format!(
                "statistic events of {size_bytes} bytes, publish → scores committed, at most \
                 1,024 in flight; {} alternating run(s) of {n} (ours) and {n_raw} (raw) events \
                 after a warm-up run of each; steady rate over the middle 80 % of completions \
                 (windows {:.1}–{:.1} s), spreads over its {}-second bins",
                steady.pairs,
                ours.iter()
                    .chain(&base)
                    .map(|r| r.window_seconds)
                    .fold(f64::INFINITY, f64::min),
                ours.iter()
                    .chain(&base)
                    .map(|r| r.window_seconds)
                    .fold(0.0, f64::max),
                pipeline::BIN_SECONDS
            ),
        )
        .spreads(o, Some(b), Some(r));
    report.goal(Goal::RatioAtLeast(0.5));
    report.push(
        w,
        "latency p50 at full load",
        "ms",
        median_of(&ours, |r| r.p50_ms),
        Some(median_of(&base, |r| r.p50_ms)),
        "",
        "",
    );
    report.no_ratio();
    report.push(
        w,
        "latency p99 at full load",
        "ms",
        median_of(&ours, |r| r.p99_ms),
        Some(median_of(&base, |r| r.p99_ms)),
        "",
        "",
    );
    report.no_ratio();
    report.push(
        w,
        "latency p50 at half load",
        "ms",
        half.p50_ms,
        Some(raw_half.p50_ms),
        "",
        &format!("{} events at {:.0}/s", half.events, o.median / 2.0),
    );
    report.no_ratio();
    report.push(
        w,
        "latency p99 at half load",
        "ms",
        half.p99_ms,
        Some(raw_half.p99_ms),
        "< 50 ms",
        "",
    );
    report.no_ratio();
    report.goal(Goal::Below(50.0));
    Ok(())
}

async fn end_to_end(size: Size, report: &mut Report) -> Result<()> {
    let params = match size {
        Size::Quick => DemoParams {
            towns: 3,
            communities: 60,
            responses_per_community: 10,
            ..DemoParams::nanhai(7)
        },
        Size::Full => DemoParams::nanhai(7),
    };
    let steady = Steady::of(size);
    let binary = std::env::current_exe().context("finding the cezone binary")?;
    let settings = cezone_platform::Settings::load(None)?;
    let m = cezone_bench::end_to_end::measure(
        &binary,
        &params,
        cezone_bench::end_to_end::Plan {
            window: steady.window,
            pairs: steady.pairs,
            half: steady.half,
        },
        settings.bus.prefetch,
    )
    .await?;
    let (o, b, r) = steady_spreads(&m.full, &m.raw_full);
    let w = "end to end";
    report
        .push(
            w,
            "throughput",
            "statistics/s",
            o.median,
            Some(b.median),
            "≥ 0.5× raw",
            &format!(
                "statistics filed by {} callers in calls of 50 (RecordStatistics) to the surveys \
                 process → its outbox → relay → RabbitMQ → the scoring process → new score \
                 visible to GetScores; raw: lapin publish with confirms → consume, {}-byte \
                 messages, at most 1,024 in flight; {} alternating run(s) of {} statistics and \
                 {} raw messages after a warm-up run of each; steady rate over the middle 80 % \
                 of completions, spreads over its {}-second bins",
                8,
                m.event_bytes,
                steady.pairs,
                m.sizes.0,
                m.sizes.1,
                pipeline::BIN_SECONDS
            ),
        )
        .spreads(o, Some(b), Some(r));
    report.goal(Goal::RatioAtLeast(0.5));
    report.push(
        w,
        "latency p50 at half load",
        "ms",
        m.half.p50_ms,
        Some(m.raw_half.p50_ms),
        "",
        &format!(
            "{} statistics at {:.0}/s, from the call's answer to the score",
            m.half.events,
            o.median / 2.0
        ),
    );
    report.no_ratio();
    report.push(
        w,
        "latency p99 at half load",
        "ms",
        m.half.p99_ms,
        Some(m.raw_half.p99_ms),
        "< 100 ms",
        "",
    );
    report.no_ratio();
    report.goal(Goal::Below(100.0));
    report.push(
        w,
        "outbox backlog at full load",
        "events",
        m.max_backlog as f64,
        None,
        "bounded",
        &format!(
            "the most unpublished events sampled in the surveys outbox (writes are refused past \
             bus.outbox_backlog_limit = {})",
            settings.bus.outbox_backlog_limit
        ),
    );
    report.goal(Goal::Below(settings.bus.outbox_backlog_limit as f64 + 1.0));
    Ok(())
}

async fn survey_ingest(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::sample::Spread;
    let (n, rounds) = match size {
        Size::Quick => (100_000, 5),
        Size::Full => (1_000_000, 3),
    };
    eprintln!("bench: survey ingest, {rounds} rounds of {n} responses (PostgreSQL) …");
    let m = cezone_bench::ingest::measure(n, rounds)
        .await
        .context("survey ingest")?;
    let (ours, copy) = (run_rates(&m.ours), run_rates(&m.copy));
    let ratio = Spread::of(&cezone_bench::sample::bin_ratios(&ours, &copy));
    let (ours, copy) = (Spread::of(&ours), Spread::of(&copy));
    report
        .push(
            "survey ingest",
            "throughput",
            "rows/s",
            ours.median,
            Some(copy.median),
            "≥ 0.5× COPY",
            &format!(
                "{n} responses in one IngestResponses stream, first message → committed summary \
                 ({} s); COPY FROM STDIN of the same rows (~{:.0} bytes each) into a bare table \
                 without keys or indexes, BEGIN → COMMIT ({} s); {rounds} alternating rounds of \
                 new respondents after a warm-up round, medians, ratio p10–p90 over the rounds",
                run_seconds(&m.ours),
                m.row_bytes,
                run_seconds(&m.copy)
            ),
        )
        .spreads(ours, Some(copy), Some(ratio));
    report.goal(Goal::RatioAtLeast(0.5));
    Ok(())
}

/// The rates of bulk runs (survey ingest, statistics import), one per round.
fn run_rates(runs: &[cezone_bench::ingest::Run]) -> Vec<f64> {
    runs.iter().map(|r| r.per_second).collect()
}

/// The seconds of bulk runs as the table's note lists them: "4.27, 5.05, 5.23".
fn run_seconds(runs: &[cezone_bench::ingest::Run]) -> String {
    runs.iter()
        .map(|r| format!("{:.2}", r.seconds))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn statistics_import(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::sample::Spread;
    let (communities, rounds) = match size {
        Size::Quick => (2_600, 3),
        Size::Full => (26_000, 3),
    };
    eprintln!(
        "bench: statistics import, {rounds} rounds of an XLSX return of {communities} communities (PostgreSQL) …"
    );
    let m = cezone_bench::stat_import::measure(communities, rounds)
        .await
        .context("statistics import")?;
    let (ours, copy) = (run_rates(&m.ours), run_rates(&m.copy));
    let ratio = Spread::of(&cezone_bench::sample::bin_ratios(&ours, &copy));
    let (ours, copy) = (Spread::of(&ours), Spread::of(&copy));
    report
        .push(
            "statistics import (XLSX)",
            "throughput",
            "values/s",
            ours.median,
            Some(copy.median),
            "≥ 0.3× COPY",
            &format!(
                "{} communities × {} metrics = {} values in a {:.1} MB XLSX return: read cell by \
                 cell, checked against the tree and catalog, streamed in one ImportStatistics \
                 call, stored all or nothing, file bytes → committed answer ({} s); COPY FROM \
                 STDIN of the same values into an emptied bare table, BEGIN → COMMIT, the best \
                 of three per round ({} s); {rounds} alternating rounds (each files the next \
                 version of every value) after a warm-up round that files them all, medians, \
                 ratio p10–p90 over the rounds",
                m.communities,
                m.metrics,
                m.values,
                m.file_bytes as f64 / 1e6,
                run_seconds(&m.ours),
                run_seconds(&m.copy)
            ),
        )
        .spreads(ours, Some(copy), Some(ratio));
    report.goal(Goal::RatioAtLeast(0.3));
    Ok(())
}

async fn evidence_upload(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::sample::{Spread, bin_ratios};
    let total: u64 = match size {
        Size::Quick => 512 << 20,
        Size::Full => 1 << 30,
    };
    eprintln!("bench: evidence upload, {} MiB (local disk) …", total >> 20);
    let m = cezone_bench::upload::measure(total, 5)
        .await
        .context("evidence upload")?;
    let rates = |runs: &[cezone_bench::upload::Run]| {
        runs.iter().map(|r| r.mb_per_second).collect::<Vec<_>>()
    };
    let secs = |runs: &[cezone_bench::upload::Run]| runs.iter().map(|r| r.seconds).sum::<f64>();
    // The middle figures are totals (every byte over every second), as a district uploads files
    // of every size; the spreads are the files' own rates and ratios.
    let total = |runs: &[cezone_bench::upload::Run]| m.bytes as f64 / 1e6 / secs(runs);
    let (ours, base) = (rates(&m.ours), rates(&m.baseline));
    let mut ratio = Spread::of(&bin_ratios(&ours, &base));
    let (mut ours, mut base) = (Spread::of(&ours), Spread::of(&base));
    ours.median = total(&m.ours);
    base.median = total(&m.baseline);
    // The ratio of the totals (a small file's own ratio is mostly the baseline's process starts).
    ratio.median = ours.median / base.median;
    report
        .push(
            "evidence upload",
            "throughput",
            "MB/s",
            ours.median,
            Some(base.median),
            "≥ 0.6×",
            &format!(
                "{} files of 1–50 MiB, {:.0} MiB, each uploaded until stored, hashed and synced \
                 ({:.2} s in all); the sha256sum, cp and sync (of the copy) commands over the \
                 same file right before it ({:.2} s in all); totals and their ratio, with the files' \
                 own MB/s and ratios as p10–p90",
                m.files,
                m.bytes as f64 / (1u64 << 20) as f64,
                secs(&m.ours),
                secs(&m.baseline)
            ),
        )
        .spreads(ours, Some(base), Some(ratio));
    report.goal(Goal::RatioAtLeast(0.6));
    Ok(())
}

async fn recompute(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::recompute::{self as rc, Scale};
    use cezone_bench::sample::Plan;
    let quick = size == Size::Quick;
    let (province_turns, changes) = if quick { (5, 500) } else { (7, 5000) };

    eprintln!("bench: full recompute, district scale (engine vs SQL on PostgreSQL) …");
    let district = Scale::generate(&DemoParams::nanhai(7))?;
    let (_, engine, board) = rc::full(&district, 1);
    let sql = rc::sql_baseline(&district, &engine, &board, Plan::short(quick))
        .await
        .context("full recompute (district), SQL baseline")?;
    drop((engine, board));
    let coverage = rc::sql_coverage(&district.fw);
    let (ours, base, ratio) = fast_figures(&sql.paired);
    report
        .push(
            "full recompute (district)",
            "time",
            "ms",
            ours.median,
            Some(base.median),
            "≥ 10× faster",
            &format!(
                "{}; ours: Engine::new + scoreboard() over every criterion × unit, lower \
                 decile of {} runs (median {:.2}, p90 {:.2} ms); baseline: one SQL query over \
                 the facts in PostgreSQL (closure-table roll-up, {} rows fetched), lower decile \
                 of {} runs (median {:.1}, p90 {:.1} ms); the two in {} alternating turns of \
                 50 ms, the ratio of the lower deciles, p10–p90 of the turns' ratios; load \
                 {:.1} s not timed; {}; {}",
                district.describe(),
                ours.n,
                sql.paired.ours().median,
                ours.p90,
                sql.rows,
                base.n,
                sql.paired.baseline().median,
                base.p90,
                ratio.n,
                sql.load_seconds,
                coverage,
                sql.check
            ),
        )
        .spreads(ours, Some(base), Some(ratio));
    report.lower_is_better();
    report.goal(Goal::FasterBy(10.0));

    // What review states cost: the same district with a third of its statistics and survey
    // tallies pending (both views kept, criteria reading them evaluated twice) against the
    // district with everything accepted, in turns.
    eprintln!("bench: full recompute, district scale with pending figures …");
    let pending = district.with_pending(3);
    let (_, _, board) = rc::full(&pending, 1);
    let (_, _, accepted) = rc::full(&district, 1);
    // Cells whose confirmed score the pending figures change.
    let differing = (0..board.units())
        .flat_map(|node| board.row(node).iter().zip(accepted.row(node)))
        .filter(|(p, a)| p.confirmed != a.confirmed)
        .count();
    drop((board, accepted));
    let paired = cezone_bench::sample::interleave(
        Plan::short(quick),
        async || Ok(rc::full_once(&pending)),
        async || Ok(rc::full_once(&district)),
    )
    .await?;
    let (ours, base, ratio) = fast_figures(&paired);
    report
        .push(
            "full recompute (district, pending)",
            "time",
            "ms",
            ours.median,
            Some(base.median),
            "≤ 2× the all-accepted build",
            &format!(
                "the district above with {} of {} statistics pending and {} of {} survey \
                 tallies holding half their answers in pending batches ({} cells whose \
                 confirmed score they change); ours: Engine::new + scoreboard(), lower \
                 decile of {} runs (median {:.2} ms); baseline: the same with everything \
                 accepted, lower decile of {} runs (median {:.2} ms); {} alternating turns of \
                 50 ms, the ratio of the lower deciles, p10–p90 of the turns' ratios",
                pending
                    .facts
                    .statistics
                    .iter()
                    .filter(|s| !s.state.is_accepted())
                    .count(),
                pending.facts.statistics.len(),
                pending
                    .facts
                    .surveys
                    .iter()
                    .filter(|t| t.pending_responses > 0)
                    .count(),
                pending.facts.surveys.len(),
                differing,
                ours.n,
                paired.ours().median,
                base.n,
                paired.baseline().median,
                ratio.n,
            ),
        )
        .spreads(ours, Some(base), Some(ratio));
    report.lower_is_better();
    report.goal(Goal::FasterBy(0.5));
    drop((district, pending));

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
    eprintln!("bench: full recompute, {scale_name} …");
    let sql = rc::sql_baseline(&province, &engine, &board, Plan::long(province_turns))
        .await
        .context("full recompute (province), SQL baseline")?;
    drop((engine, board));
    let (ours, base, ratio) = fast_figures(&sql.paired);
    report
        .push(
            "full recompute (province)",
            "time",
            "ms",
            ours.median,
            Some(base.median),
            "≥ 10× faster; province < 1 s",
            &format!(
                "{scale_name}: {}; {units} org units × {} items = {cells} cells; ours and the \
                 SQL query ({} rows) in {} alternating turns, lower deciles and their ratio: \
                 ours {:.0}–{:.0} ms, SQL {:.0}–{:.0} ms (min–max); load {:.1} s not timed; {}",
                province.describe(),
                cells / units.max(1),
                sql.rows,
                ratio.n,
                ours.min,
                ours.max,
                base.min,
                base.max,
                sql.load_seconds,
                sql.check
            ),
        )
        .spreads(ours, Some(base), Some(ratio));
    report.lower_is_better();
    report.goal(Goal::All(vec![Goal::FasterBy(10.0), Goal::Below(1000.0)]));

    eprintln!("bench: incremental recompute, {scale_name} …");
    let inc = rc::incremental(&province, changes, 11);
    // Both sides at their lower decile (see `Spread::fast`).
    let full_us = ours.p10 * 1000.0;
    // The ratio's spread: the medians of ten equal groups of changes against the full
    // recompute's median (one change's own time varies with how many cells it touches).
    let mut inc_ratio = cezone_bench::sample::Spread::of(
        &inc.group_medians
            .iter()
            .map(|m| m / full_us)
            .collect::<Vec<_>>(),
    );
    inc_ratio.median = inc.spread.p10 / full_us;
    let full_spread = cezone_bench::sample::Spread {
        median: full_us,
        p10: ours.p10 * 1000.0,
        p90: ours.p90 * 1000.0,
        min: ours.min * 1000.0,
        max: ours.max * 1000.0,
        n: ours.n,
    };
    report
        .push(
            "incremental recompute",
            "time",
            "µs",
            inc.spread.p10,
            Some(full_us),
            "≥ 1000× faster at province scale",
            &format!(
                "{scale_name}: one community statistic of the current period (random community \
                 and metric, new value, higher version) → apply + rescore of the affected cells \
                 and their ancestors; lower decile of {} changes (median {:.1}, p90 {:.1} µs, \
                 p99 {:.1} µs, {:.1} cells each on average); baseline: the full recompute \
                 above (its lower decile); the ratio of the two, p10–p90 over ten groups of \
                 changes' medians; board after all changes equals a full recompute from the \
                 facts: {}",
                inc.changes,
                inc.median_us,
                inc.spread.p90,
                inc.p99_us,
                inc.mean_cells,
                if inc.equal_to_full { "yes" } else { "NO" }
            ),
        )
        .spreads(inc.spread.fast(), Some(full_spread), Some(inc_ratio));
    report.lower_is_better();
    report.goal(Goal::FasterBy(1000.0));

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
    report.goal(Goal::Below(512.0));
    Ok(())
}

async fn score_queries(size: Size, report: &mut Report) -> Result<()> {
    use cezone_bench::queries;
    use cezone_bench::sample::{Spread, bin_ratios};
    const CLIENTS: usize = 32;
    let (params, window, windows, label) = match size {
        Size::Quick => (
            DemoParams {
                towns: 3,
                communities: 60,
                responses_per_community: 10,
                ..DemoParams::nanhai(7)
            },
            std::time::Duration::from_millis(300),
            5,
            "a 60-community demo district (quick)",
        ),
        Size::Full => (
            DemoParams::nanhai(7),
            std::time::Duration::from_millis(1500),
            10,
            "the Nanhai demo district",
        ),
    };
    eprintln!("bench: score queries, loading {label} through the services …");
    let mut stack = Stack::start(&params).await?;
    let loaded = stack.load().await?;
    eprintln!(
        "bench: score queries, {CLIENTS} clients, {windows} alternating windows of {window:?} \
         each …"
    );
    let w = queries::interleaved(&stack, CLIENTS, window, windows).await;
    let h = match &w {
        Ok(_) => {
            eprintln!(
                "bench: score queries over HTTP/JSON, {CLIENTS} clients, {windows} alternating windows …"
            );
            Some(queries::http_against_grpc(&stack, CLIENTS, window, windows).await)
        }
        Err(_) => None,
    };
    stack.stop().await;
    let w = w?;
    let rates = |l: &[queries::Load]| l.iter().map(|x| x.per_second).collect::<Vec<_>>();
    let (ours, base) = (rates(&w.ours), rates(&w.baseline));
    let ratio = Spread::of(&bin_ratios(&ours, &base));
    let (ours, base) = (Spread::of(&ours), Spread::of(&base));
    let (ok, failed, seconds) = w.ours_total();
    let (base_ok, base_failed, _) = w.baseline_total();
    report
        .push(
            "score queries",
            "throughput",
            "req/s",
            ours.median,
            Some(base.median),
            "≥ 0.5×",
            &format!(
                "GetScores (every item, no explanation) for a random org unit of {label} ({} \
                 units, loaded through the services on PostgreSQL in {:.1} s), {CLIENTS} \
                 clients on their own connections; baseline: grpc.health.v1 Check on the same \
                 scoring server from as many clients; {windows} windows of {:.1} s each, \
                 alternating, after a warm-up window of each; medians of the windows, ratio \
                 p10–p90 over the pairs; ours {ok} ok, {failed} failed in {seconds:.1} s, \
                 baseline {base_ok} ok, {base_failed} failed",
                stack_units(&params),
                loaded.as_secs_f64(),
                window.as_secs_f64(),
            ),
        )
        .spreads(ours, Some(base), Some(ratio));
    report.goal(Goal::RatioAtLeast(0.5));

    let h = h.expect("run when the gRPC windows ran")?;
    let (ours, base) = (rates(&h.ours), rates(&h.baseline));
    let ratio = Spread::of(&bin_ratios(&ours, &base));
    let (ours, base) = (Spread::of(&ours), Spread::of(&base));
    let (ok, failed, seconds) = h.ours_total();
    let (base_ok, base_failed, _) = h.baseline_total();
    report
        .push(
            "score queries over HTTP/JSON",
            "throughput",
            "req/s",
            ours.median,
            Some(base.median),
            "≥ 0.5× gRPC",
            &format!(
                "GET /api/v1/scores/{{org_unit}} on the web port (HTTP/1.1 keep-alive, bearer \
                 token forwarded, proto3 JSON out) for a random org unit of the same district, \
                 {CLIENTS} clients on their own connections; baseline: GetScores over gRPC to the \
                 scoring server from as many clients; {windows} alternating windows of {:.1} s \
                 after a warm-up of each, medians, ratio p10–p90 over the pairs; ours {ok} ok, \
                 {failed} failed in {seconds:.1} s, baseline {base_ok} ok, {base_failed} failed",
                window.as_secs_f64(),
            ),
        )
        .spreads(ours, Some(base), Some(ratio));
    report.goal(Goal::RatioAtLeast(0.5));
    Ok(())
}

fn stack_units(params: &DemoParams) -> usize {
    1 + params.towns + params.communities
}
