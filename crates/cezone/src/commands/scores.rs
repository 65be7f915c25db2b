//! `cezone scores export`: an org unit's scores for another system.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cezone_client::files::scores;
use cezone_proto::scoring::v1 as ps;

use super::connect::{Services, refused};
use crate::cli::{ScoresCommand, ScoresFormat};

pub async fn run(cmd: ScoresCommand) -> Result<ExitCode> {
    let ScoresCommand::Export {
        org_unit,
        snapshot,
        format,
        out,
        config,
    } = cmd;
    if format == ScoresFormat::Xlsx && out.is_none() {
        bail!("--format xlsx needs --out FILE (a workbook is not written to a terminal)");
    }
    let svc = Services::load(config.as_deref())?;
    let mut client = svc.scoring().await?;
    let org = org_unit.clone().unwrap_or_default();
    let (s, snap) = match &snapshot {
        Some(id) => {
            let r = client
                .get_snapshot(ps::GetSnapshotRequest {
                    id: id.clone(),
                    org_unit: org,
                    explain: false,
                })
                .await
                .map_err(|s| refused("GetSnapshot", s))?
                .into_inner();
            (
                r.scores
                    .ok_or_else(|| anyhow!("the snapshot came without scores"))?,
                id.clone(),
            )
        }
        None => (
            client
                .get_scores(ps::GetScoresRequest {
                    org_unit: org,
                    items: Vec::new(),
                    explain: false,
                })
                .await
                .map_err(|s| refused("GetScores", s))?
                .into_inner(),
            String::new(),
        ),
    };
    let file = scores::rows(&s, &snap);
    let bytes = match format {
        ScoresFormat::Csv => scores::to_csv(&file),
        ScoresFormat::Json => scores::to_json(&file),
        ScoresFormat::Xlsx => scores::to_xlsx(&file).map_err(|e| anyhow!("{e}"))?,
    };
    match out {
        Some(path) => {
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {}: {} {} total {} of {} (projected {}), {} items",
                path.display(),
                s.org_unit,
                s.name,
                file.confirmed,
                file.max_points,
                file.projected,
                file.items.len()
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}
