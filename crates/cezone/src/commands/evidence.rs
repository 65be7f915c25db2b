//! `cezone evidence upload|list|download|review`.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use sha2::{Digest, Sha256};

use super::connect::{Services, progress, refused};
use crate::cli::{EvidenceCommand, OutputFormat, ReviewStateArg};
use crate::render::local_time;

/// Largest file uploaded (the evidence service's default limit); larger ones are refused here
/// before a byte is sent.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Longest review comment the evidence service keeps.
const MAX_COMMENT_CHARS: usize = 2000;

fn content_type(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

fn state_name(s: i32) -> &'static str {
    match pe::ReviewState::try_from(s).unwrap_or_default() {
        pe::ReviewState::Submitted => "待审 submitted",
        pe::ReviewState::Accepted => "已采纳 accepted",
        pe::ReviewState::Returned => "已退回 returned",
        pe::ReviewState::Unspecified => "",
    }
}

pub async fn run(cmd: EvidenceCommand) -> Result<ExitCode> {
    match cmd {
        EvidenceCommand::Upload {
            files,
            criterion,
            unit,
            org_unit,
            period,
            title,
            replaces,
            dry_run,
            config,
        } => {
            if replaces.is_some() && files.len() > 1 {
                bail!(
                    "--replaces revises one record: give one file (got {})",
                    files.len()
                );
            }
            // Every file is checked before any is sent.
            let mut problems = Vec::new();
            for f in &files {
                match std::fs::metadata(f) {
                    Ok(m) if !m.is_file() => problems.push(format!("{}: not a file", f.display())),
                    Ok(m) if m.len() == 0 => {
                        problems.push(format!("{}: the file is empty", f.display()))
                    }
                    Ok(m) if m.len() > MAX_FILE_BYTES => problems.push(format!(
                        "{}: {} bytes, more than the {} MiB an evidence file may have",
                        f.display(),
                        m.len(),
                        MAX_FILE_BYTES / 1024 / 1024
                    )),
                    Ok(_) => {}
                    Err(e) => problems.push(format!("{}: {e}", f.display())),
                }
            }
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("  {p}");
                }
                eprintln!("{} file(s) refused; nothing was uploaded", problems.len());
                return Ok(ExitCode::from(1));
            }
            if dry_run {
                println!(
                    "dry run: {} file(s) would be uploaded to criterion {criterion}",
                    files.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let svc = Services::load(config.as_deref())?;
            let period = period.unwrap_or(svc.settings.scoring.period);
            let mut client = svc.evidence().await?;
            let bar = progress(files.len() as u64, "uploading");
            let mut failed = 0;
            for f in &files {
                let file_name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let bytes =
                    std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
                let meta = pe::UploadMetadata {
                    framework_id: svc.settings.scoring.framework_id.clone(),
                    edition: svc.settings.scoring.edition.clone(),
                    criterion: criterion.clone(),
                    org_unit: org_unit.clone(),
                    responsible_unit: unit.clone(),
                    period,
                    title: title.clone().unwrap_or_else(|| {
                        file_name
                            .rsplit_once('.')
                            .map_or(file_name.clone(), |(s, _)| s.to_string())
                    }),
                    material_type: String::new(),
                    content_type: content_type(&file_name).to_string(),
                    file_name: file_name.clone(),
                    replaces: replaces.clone().unwrap_or_default(),
                    submitted_by: String::new(),
                };
                match cezone_client::evidence::upload(&mut client, meta, bytes).await {
                    Ok(e) => {
                        let v = e.current.unwrap_or_default();
                        // Printed above the bar (which is hidden when not on a terminal).
                        bar.suspend(|| {
                            println!(
                                "  {} → {} (version {}, {} bytes, SHA-256 {})",
                                f.display(),
                                e.id,
                                v.version,
                                v.size,
                                v.sha256
                            )
                        });
                    }
                    Err(s) => {
                        failed += 1;
                        bar.suspend(|| {
                            eprintln!("  {}: {}", f.display(), super::connect::describe(&s))
                        });
                    }
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!("{} uploaded, {failed} refused", files.len() - failed);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        EvidenceCommand::List {
            criterion,
            org_unit,
            unit,
            state,
            format,
            config,
        } => {
            let svc = Services::load(config.as_deref())?;
            let mut client = svc.evidence().await?;
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = client
                    .list_evidence(pe::ListEvidenceRequest {
                        framework_id: String::new(),
                        criterion: criterion.clone().unwrap_or_default(),
                        org_unit: org_unit.clone().unwrap_or_default(),
                        responsible_unit: unit.clone().unwrap_or_default(),
                        state: match state {
                            None => pe::ReviewState::Unspecified,
                            Some(ReviewStateArg::Submitted) => pe::ReviewState::Submitted,
                            Some(ReviewStateArg::Accepted) => pe::ReviewState::Accepted,
                            Some(ReviewStateArg::Returned) => pe::ReviewState::Returned,
                        } as i32,
                        page: Some(PageRequest {
                            page_size: 500,
                            page_token: token.clone(),
                        }),
                    })
                    .await
                    .map_err(|s| refused("ListEvidence", s))?
                    .into_inner();
                all.extend(page.evidence);
                match page.page.map(|p| p.next_page_token) {
                    Some(t) if !t.is_empty() => token = t,
                    _ => break,
                }
            }
            let offset = svc.settings.scheduler.utc_offset_hours;
            match format {
                OutputFormat::Json => {
                    let rows: Vec<serde_json::Value> = all
                        .iter()
                        .map(|e| {
                            let v = e.current.clone().unwrap_or_default();
                            serde_json::json!({
                                "id": e.id, "criterion": e.criterion, "org_unit": e.org_unit,
                                "responsible_unit": e.responsible_unit, "period": e.period,
                                "title": e.title, "version": v.version,
                                "state": state_name(v.state).split(' ').nth(1).unwrap_or(""),
                                "grade": v.grade, "comment": v.comment, "file_name": v.file_name,
                                "size": v.size, "sha256": v.sha256, "submitted_at": v.submitted_at,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                OutputFormat::Text => {
                    for e in &all {
                        let v = e.current.clone().unwrap_or_default();
                        println!(
                            "{}  {:<8} {:<24} {:<10} v{} {}{}  {}  {}",
                            e.id,
                            e.criterion,
                            e.org_unit,
                            e.responsible_unit,
                            v.version,
                            state_name(v.state),
                            if v.state == pe::ReviewState::Accepted as i32 {
                                format!(" {}", v.grade)
                            } else if !v.comment.is_empty() {
                                format!(" “{}”", v.comment)
                            } else {
                                String::new()
                            },
                            local_time(&v.submitted_at, offset),
                            e.title
                        );
                    }
                    println!("{} record(s)", all.len());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EvidenceCommand::Download {
            id,
            version,
            out,
            config,
        } => {
            let svc = Services::load(config.as_deref())?;
            let mut client = svc.evidence().await?;
            let (record, bytes) =
                cezone_client::evidence::download(&mut client, &id, version.unwrap_or(0))
                    .await
                    .map_err(|s| refused("Download", s))?;
            let v = match version {
                Some(n) => record.history.iter().find(|h| h.version == n).cloned(),
                None => record.current.clone(),
            }
            .ok_or_else(|| anyhow!("the record carries no version {}", version.unwrap_or(0)))?;
            let sum = hex::encode(Sha256::digest(&bytes));
            if sum != v.sha256 || bytes.len() as u64 != v.size {
                bail!(
                    "the download does not match the record (SHA-256 {sum}, {} bytes; expected {}, {} bytes); nothing written",
                    bytes.len(),
                    v.sha256,
                    v.size
                );
            }
            let path = out.unwrap_or_else(|| std::path::PathBuf::from(&v.file_name));
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "wrote {} ({} bytes, SHA-256 {} checked): {} v{}",
                path.display(),
                bytes.len(),
                sum,
                record.title,
                v.version
            );
            Ok(ExitCode::SUCCESS)
        }
        EvidenceCommand::Review {
            id,
            accept,
            return_with,
            dry_run,
            config,
        } => {
            let (decision, grade, comment) = match (accept, return_with) {
                (Some(g), None) => {
                    if g > 100 {
                        bail!("--accept: {g} is not a grade (0–100)");
                    }
                    (pe::Decision::Accept, g, String::new())
                }
                (None, Some(c)) if !c.trim().is_empty() => {
                    let n = c.chars().count();
                    if n > MAX_COMMENT_CHARS {
                        bail!(
                            "--return: the comment has {n} characters; at most {MAX_COMMENT_CHARS}"
                        );
                    }
                    (pe::Decision::Return, 0, c)
                }
                (None, Some(_)) => bail!("--return: say what is wrong (the comment is empty)"),
                _ => bail!("give --accept GRADE or --return COMMENT"),
            };
            let svc = Services::load(config.as_deref())?;
            let mut client = svc.evidence().await?;
            if dry_run {
                // Read only: the record must exist and await review, as the service requires.
                let e = client
                    .get_evidence(pe::GetEvidenceRequest { id: id.clone() })
                    .await
                    .map_err(|s| refused("GetEvidence", s))?
                    .into_inner();
                let v = e.current.unwrap_or_default();
                if v.state != pe::ReviewState::Submitted as i32 {
                    bail!(
                        "evidence {id} is {}; only submitted evidence is reviewed (nothing was recorded)",
                        state_name(v.state)
                    );
                }
                println!(
                    "dry run, nothing recorded — {} v{} ({}, criterion {}, {}) would be {}; \
                     the reviewer's permission is checked when the review is made",
                    e.id,
                    v.version,
                    v.file_name,
                    e.criterion,
                    e.org_unit,
                    match decision {
                        pe::Decision::Accept => format!("accepted, grade {grade}"),
                        _ => format!("returned: {}", comment.trim()),
                    }
                );
                return Ok(ExitCode::SUCCESS);
            }
            let e = client
                .review(pe::ReviewRequest {
                    id: id.clone(),
                    decision: decision as i32,
                    grade,
                    comment,
                    reviewer: String::new(),
                })
                .await
                .map_err(|s| refused("Review", s))?
                .into_inner();
            let v = e.current.unwrap_or_default();
            println!(
                "{} v{}: {}{}",
                e.id,
                v.version,
                state_name(v.state),
                if v.state == pe::ReviewState::Accepted as i32 {
                    format!(", grade {}", v.grade)
                } else {
                    format!(": {}", v.comment)
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
