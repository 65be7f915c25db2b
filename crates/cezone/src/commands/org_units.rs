//! `cezone org-units import|export`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cezone_client::files::org_list;
use cezone_proto::registry::v1 as pr;

use super::connect::{Services, file_refused, indexed, refused};
use crate::cli::OrgUnitsCommand;

pub async fn run(cmd: OrgUnitsCommand) -> Result<ExitCode> {
    match cmd {
        OrgUnitsCommand::Import {
            file,
            dry_run,
            config,
        } => {
            let name = file.display().to_string();
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
            let units = match org_list::read(&name, &bytes) {
                Ok(u) => u,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let rows = org_list::rows(&name, &bytes);
            let svc = Services::load(config.as_deref())?;
            let mut reg = svc.registry().await?;
            let done = match reg
                .import_org_units(pr::ImportOrgUnitsRequest {
                    units: units.clone(),
                    dry_run,
                })
                .await
            {
                Ok(r) => r.into_inner(),
                // The registry names `units[i].field`: shown as the file's row.
                Err(status) => {
                    return file_refused(&name, "ImportOrgUnits", status, |f| place(f, &rows));
                }
            };
            for c in &done.changes {
                let name = c.unit.as_ref().map_or("", |u| u.name.as_str());
                match c.kind.as_str() {
                    "created" => println!("  + {} {name}", c.id),
                    kind => println!("  ~ {} {name}: {kind} ({})", c.id, c.fields.join(", ")),
                }
            }
            println!(
                "{}{} org units: {} created, {} updated, {} moved, {} unchanged",
                if dry_run {
                    "dry run, nothing stored — "
                } else {
                    ""
                },
                units.len(),
                done.created,
                done.updated,
                done.moved,
                done.unchanged
            );
            Ok(ExitCode::SUCCESS)
        }
        OrgUnitsCommand::Export { root, out, config } => {
            let svc = Services::load(config.as_deref())?;
            let mut reg = svc.registry().await?;
            let mut units = Vec::new();
            let mut token = String::new();
            loop {
                let page = reg
                    .list_org_units(pr::ListOrgUnitsRequest {
                        root_id: root.clone().unwrap_or_default(),
                        page: Some(cezone_proto::common::v1::PageRequest {
                            page_size: 1000,
                            page_token: token.clone(),
                        }),
                    })
                    .await
                    .map_err(|s| refused("ListOrgUnits", s))?
                    .into_inner();
                units.extend(page.units);
                match page.page.map(|p| p.next_page_token) {
                    Some(t) if !t.is_empty() => token = t,
                    _ => break,
                }
            }
            let csv = org_list::export(&units);
            match out {
                Some(path) => {
                    std::fs::write(&path, csv)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {} ({} org units)", path.display(), units.len());
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&csv)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `units[3].parent_id` → `row 5, parent_id` (`sheet …, row 5, parent_id` in XLSX).
fn place(field: &str, rows: &[String]) -> String {
    match indexed(field, "units") {
        Some((i, rest)) if i < rows.len() => format!("{}, {rest}", rows[i]),
        _ => field.to_string(),
    }
}
