//! `cezone bench`: every workload beside its baseline, one table.

use anyhow::{Context, Result};
use cezone_bench::stack::Stack;
use cezone_bench::{Report, Size, pipeline};
use cezone_domain::demo::DemoParams;

use crate::cli::BenchArgs;

pub async fn run(args: BenchArgs) -> Result<()> {
    let size = if args.quick { Size::Quick } else { Size::Full };
    let mut report = Report::new(if args.quick { "quick" } else { "full" });
    eprintln!("bench: event pipeline (PostgreSQL + RabbitMQ) …");
    event_pipeline(size, &mut report)
        .await
        .context("event pipeline")?;
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
    stack.stop().await;
    let (raw_full, raw_half) =
        pipeline::baseline(&url, n, size_bytes, full.per_second / 2.0).await?;
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
