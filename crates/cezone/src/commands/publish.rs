//! `cezone framework publish`: a framework validated here, then imported and published by
//! the registry.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use cezone_domain::export;
use cezone_proto::registry::v1 as pr;

use super::connect::{Services, describe};
use crate::render;

pub async fn run(
    file: &Path,
    package: Option<&Path>,
    dry_run: bool,
    config: Option<&Path>,
) -> Result<ExitCode> {
    let (fw, findings) = super::load_framework(file, package)?;
    eprint!("{}", render::findings(&findings));
    if findings.has_errors() {
        eprintln!(
            "{}: {} error(s); nothing was sent to the registry",
            file.display(),
            findings.errors()
        );
        return Ok(ExitCode::from(1));
    }
    // The document carries the table, units, rules and calendar as one: the registry stores
    // exactly what was validated here.
    let source = pr::FrameworkSource {
        source: Some(pr::framework_source::Source::DocumentJson(export::to_json(
            &fw,
        ))),
        file_name: format!("{}.json", fw.meta.id),
        ..Default::default()
    };
    let svc = Services::load(config)?;
    let mut reg = svc.registry().await?;
    if dry_run {
        let r = reg
            .validate_framework(source)
            .await
            .map_err(|s| anyhow::anyhow!("ValidateFramework: {}", describe(&s)))?
            .into_inner();
        println!(
            "dry run, nothing stored — {} {} ({} items): the registry finds {} finding(s)",
            fw.meta.id,
            fw.meta.edition,
            fw.len(),
            r.findings.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let draft = match reg.import_framework(source).await {
        Ok(v) => v.into_inner(),
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            bail!(
                "{} {} is already published and published editions never change; give the table a new edition (the package's `edition`) to publish a revision ({})",
                fw.meta.id,
                fw.meta.edition,
                s.message()
            )
        }
        Err(s) => bail!("ImportFramework: {}", describe(&s)),
    };
    let published = reg
        .publish_framework(pr::FrameworkRef {
            framework_id: draft.framework_id.clone(),
            edition: draft.edition.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("PublishFramework: {}", describe(&s)))?
        .into_inner();
    println!(
        "published {} {} — {}: {} criteria, {} points, content {}",
        published.framework_id,
        published.edition,
        published.title,
        published.criteria,
        published.total_points,
        published.content_hash
    );
    Ok(ExitCode::SUCCESS)
}
