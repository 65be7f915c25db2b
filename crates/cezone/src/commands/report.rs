//! `cezone report …`: a report streamed from the scoring service's ExportReport and written to
//! a file.

use anyhow::{Context, Result, bail};
use cezone_platform::error::violations;
use cezone_platform::settings::Settings;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use futures::StreamExt;

use crate::cli::{ReportArgs, ReportCommand, ReportFileFormat};

pub async fn run(cmd: ReportCommand) -> Result<()> {
    let (kind, args, checkpoint, as_of) = match cmd {
        ReportCommand::SelfScore(a) => ("self-score", a, String::new(), String::new()),
        ReportCommand::Checklist(c) => ("checklist", c.report, c.checkpoint, c.as_of),
    };
    let format = format_of(&args)?;
    let settings = Settings::load(args.config.as_deref())?;
    let url = &settings.services.scoring_url;
    let bearer = super::access::credentials(&settings)?;
    let channel = cezone_client::connect(url, &bearer)
        .await
        .with_context(|| format!("the scoring service at {url} (services.scoring_url)"))?;
    let mut client = ScoringServiceClient::new(channel)
        .max_decoding_message_size(cezone_client::MAX_MESSAGE_BYTES);
    let request = ps::ExportReportRequest {
        kind: kind.into(),
        format: format.into(),
        org_unit: args.org_unit.clone(),
        snapshot_id: args.snapshot.clone(),
        checkpoint,
        as_of,
    };
    let mut stream = match client.export_report(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => bail!("{}", describe(&status)),
    };
    let mut info = None;
    let mut bytes = Vec::new();
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|s| anyhow::anyhow!("{}", describe(&s)))?;
        match msg.part {
            Some(ps::report_chunk::Part::Info(i)) => info = Some(i),
            Some(ps::report_chunk::Part::Chunk(c)) => bytes.extend_from_slice(&c),
            None => {}
        }
    }
    let info = info.context("the scoring service sent no report description")?;
    if info.size as usize != bytes.len() {
        bail!(
            "the report arrived incomplete: {} of {} bytes",
            bytes.len(),
            info.size
        );
    }
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let total = info.total.unwrap_or_default();
    println!(
        "wrote {} ({} bytes, SHA-256 {}): {} {}, total {} (projected {})",
        args.out.display(),
        info.size,
        info.sha256,
        kind,
        info.org_unit,
        total.confirmed,
        total.projected
    );
    Ok(())
}

fn format_of(args: &ReportArgs) -> Result<&'static str> {
    let from_ext = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match (args.format, from_ext.as_deref()) {
        (Some(ReportFileFormat::Xlsx), _) | (None, Some("xlsx")) => "xlsx",
        (Some(ReportFileFormat::Html), _) | (None, Some("html" | "htm")) => "html",
        (None, _) => bail!(
            "give --format xlsx|html (the extension of {} does not tell)",
            args.out.display()
        ),
    })
}

fn describe(status: &tonic::Status) -> String {
    let mut s = format!("{:?}: {}", status.code(), status.message());
    let v = violations(status);
    if v.len() > 1 {
        for (field, why) in v {
            s.push_str(&format!("\n  {field}: {why}"));
        }
    }
    s
}
