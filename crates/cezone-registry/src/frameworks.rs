//! Framework versions: read a source (table or document), validate, store drafts, publish
//! (after which a version never changes), and answer queries from the stored document.

use cezone_domain::access::Principal;
use cezone_domain::calendar::Calendar;
use cezone_domain::export;
use cezone_domain::findings::Findings;
use cezone_domain::framework::{Framework, FrameworkDocument, FrameworkId};
use cezone_domain::guangdong;
use cezone_domain::package::{Manifest, read_table};
use cezone_domain::rules::RulesFile;
use cezone_domain::units::UnitRegistry;
use cezone_platform::ApiError;
use cezone_platform::glue::convert::finding_to_proto;
use cezone_platform::time::now_rfc3339;
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::framework_source::Source;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::entities::framework_version as fv;

pub const DRAFT: &str = "draft";
pub const PUBLISHED: &str = "published";

/// Reads and validates a framework source; nothing is stored.
pub fn read_source(src: &pr::FrameworkSource) -> Result<(Framework, Findings), ApiError> {
    let (mut fw, mut findings) = match &src.source {
        Some(Source::Table(bytes)) => {
            if src.file_name.trim().is_empty() {
                return Err(ApiError::invalid(
                    "file_name",
                    "is empty; it tells a .csv table from an .xlsx one",
                ));
            }
            if bytes.is_empty() {
                return Err(ApiError::invalid("table", "is empty"));
            }
            let rows = read_table(&src.file_name, bytes)
                .map_err(|e| ApiError::invalid("table", e.to_string()))?;
            let mut parts = guangdong::parts();
            if !src.manifest_toml.is_empty() {
                let m: Manifest = toml::from_str(&src.manifest_toml)
                    .map_err(|e| ApiError::invalid("manifest_toml", e.to_string()))?;
                parts.meta.id = m.id;
                parts.meta.edition = m.edition;
                parts.meta.title = m.title;
                parts.meta.total_points = m.total_points;
                // Findings then point at the field the caller sent, with its lines.
                parts.manifest_name = "manifest_toml".into();
                parts.total_points_line = src
                    .manifest_toml
                    .lines()
                    .position(|l| l.trim_start().starts_with("total_points"))
                    .and_then(|i| u32::try_from(i + 1).ok());
            }
            if !src.units_toml.is_empty() {
                parts.units = UnitRegistry::from_toml(&src.units_toml)
                    .map_err(|e| ApiError::invalid("units_toml", e))?;
            }
            if !src.rules_toml.is_empty() {
                parts.rules = RulesFile::from_toml(&src.rules_toml)
                    .map_err(|e| ApiError::invalid("rules_toml", e))?;
                parts.rules_name = Some("rules_toml".into());
            }
            if !src.calendar_toml.is_empty() {
                parts.calendar = Calendar::from_toml(&src.calendar_toml)
                    .map_err(|e| ApiError::invalid("calendar_toml", e))?;
                parts.calendar_name = Some("calendar_toml".into());
            }
            parts.with_table(&src.file_name, rows).build()
        }
        Some(Source::DocumentJson(json)) => {
            let doc: FrameworkDocument = serde_json::from_str(json)
                .map_err(|e| ApiError::invalid("document_json", e.to_string()))?;
            Framework::from_document(doc)
        }
        None => {
            return Err(ApiError::invalid(
                "source",
                "is empty; send a table or a document_json",
            ));
        }
    };
    if !src.framework_id.is_empty() {
        fw.meta.id = FrameworkId::parse(&src.framework_id)
            .map_err(|e| ApiError::invalid("framework_id", e))?;
    }
    if !src.edition.is_empty() {
        fw.meta.edition = src.edition.clone();
    }
    if fw.meta.edition.trim().is_empty() || fw.meta.edition.len() > 64 {
        return Err(ApiError::invalid(
            "edition",
            format!("'{}' must be 1 to 64 characters", fw.meta.edition),
        ));
    }
    if fw.is_empty() {
        findings.push(cezone_domain::Finding::new(
            cezone_domain::Severity::Error,
            cezone_domain::FindingKind::EmptyField,
            Default::default(),
            "the framework has no items",
        ));
    }
    Ok((fw, findings))
}

pub fn error_for_findings(findings: &Findings) -> ApiError {
    let violations = findings
        .iter()
        .filter(|f| f.severity == cezone_domain::Severity::Error)
        .map(|f| {
            (
                f.location.to_string(),
                format!("[{}] {}", f.kind.as_str(), f.message),
            )
        })
        .collect();
    ApiError::invalid_many(
        format!(
            "the framework has {} error(s); nothing was stored",
            findings.errors()
        ),
        violations,
    )
}

pub fn version_to_proto(m: &fv::Model, with_findings: bool) -> pr::FrameworkVersion {
    let findings: Vec<cezone_domain::Finding> = if with_findings {
        serde_json::from_str(&m.findings_json).unwrap_or_default()
    } else {
        Vec::new()
    };
    pr::FrameworkVersion {
        framework_id: m.framework_id.clone(),
        edition: m.edition.clone(),
        title: m.title.clone(),
        state: if m.state == PUBLISHED {
            pr::FrameworkState::Published
        } else {
            pr::FrameworkState::Draft
        } as i32,
        total_points: m.total_points.clone(),
        criteria: m.criteria as u32,
        imported_at: m.imported_at.clone(),
        published_at: m.published_at.clone().unwrap_or_default(),
        findings: findings.iter().map(finding_to_proto).collect(),
        content_hash: m.content_hash.clone(),
    }
}

/// Stores (or replaces) a draft. A published edition is never replaced.
pub async fn store_draft(
    db: &DatabaseConnection,
    who: &Principal,
    fw: &Framework,
    findings: &Findings,
) -> Result<fv::Model, ApiError> {
    let document = export::to_json(fw);
    let hash = hex::encode(Sha256::digest(document.as_bytes()));
    let txn = db.begin().await?;
    let existing = fv::Entity::find()
        .filter(fv::Column::FrameworkId.eq(fw.meta.id.as_str()))
        .filter(fv::Column::Edition.eq(fw.meta.edition.as_str()))
        .one(&txn)
        .await?;
    let model = fv::ActiveModel {
        framework_id: Set(fw.meta.id.to_string()),
        edition: Set(fw.meta.edition.clone()),
        title: Set(fw.meta.title.clone()),
        state: Set(DRAFT.to_string()),
        document_json: Set(document),
        content_hash: Set(hash),
        total_points: Set(fw.max_points().to_string()),
        criteria: Set(fw.leaves().count() as i32),
        findings_json: Set(serde_json::to_string(&findings.0).unwrap_or_else(|_| "[]".into())),
        imported_at: Set(now_rfc3339()),
        published_at: Set(None),
        ..Default::default()
    };
    let saved = match existing {
        Some(e) if e.state == PUBLISHED => {
            return Err(ApiError::already_exists(format!(
                "{} edition {} is published and cannot change; import it as a new edition",
                e.framework_id, e.edition
            )));
        }
        Some(e) => {
            let mut m = model;
            m.id = Set(e.id);
            m.update(&txn).await?
        }
        None => model.insert(&txn).await?,
    };
    cezone_platform::access::audit::append(
        &txn,
        "registry",
        cezone_platform::access::audit::Entry {
            actor: who,
            action: "framework.imported",
            target: &format!("{}/{}", saved.framework_id, saved.edition),
            details: serde_json::json!({
                "content_hash": saved.content_hash,
                "criteria": saved.criteria,
                "total_points": saved.total_points,
            }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

pub async fn publish(
    db: &DatabaseConnection,
    who: &Principal,
    framework_id: &str,
    edition: &str,
) -> Result<fv::Model, ApiError> {
    if edition.is_empty() {
        return Err(ApiError::invalid(
            "edition",
            "is empty; name the draft edition to publish",
        ));
    }
    let txn = db.begin().await?;
    let Some(found) = fv::Entity::find()
        .filter(fv::Column::FrameworkId.eq(framework_id))
        .filter(fv::Column::Edition.eq(edition))
        .one(&txn)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "framework {framework_id} edition {edition} does not exist"
        )));
    };
    if found.state == PUBLISHED {
        return Err(ApiError::precondition(format!(
            "{framework_id} edition {edition} is already published"
        )));
    }
    // Only a draft row flips; a concurrent publish finds nothing to update.
    let now = now_rfc3339();
    let res = fv::Entity::update_many()
        .col_expr(fv::Column::State, Expr::value(PUBLISHED))
        .col_expr(fv::Column::PublishedAt, Expr::value(now))
        .filter(fv::Column::Id.eq(found.id))
        .filter(fv::Column::State.eq(DRAFT))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ApiError::precondition(format!(
            "{framework_id} edition {edition} is already published"
        )));
    }
    let model = fv::Entity::find_by_id(found.id)
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::internal_msg("published row vanished"))?;
    let event = cezone_proto::events::v1::FrameworkPublished {
        framework_id: model.framework_id.clone(),
        edition: model.edition.clone(),
        document_json: model.document_json.clone(),
    };
    cezone_bus::outbox::enqueue(
        &txn,
        crate::OUTBOX,
        &cezone_bus::envelope("framework.published", "registry", &event, None),
    )
    .await?;
    cezone_platform::access::audit::append(
        &txn,
        "registry",
        cezone_platform::access::audit::Entry {
            actor: who,
            action: "framework.published",
            target: &format!("{framework_id}/{edition}"),
            details: serde_json::json!({ "content_hash": model.content_hash, "state": [DRAFT, PUBLISHED] }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// A stored version: the named edition, or the latest published one when `edition` is empty.
pub async fn find(
    db: &DatabaseConnection,
    framework_id: &str,
    edition: &str,
) -> Result<fv::Model, ApiError> {
    if framework_id.is_empty() {
        return Err(ApiError::invalid("framework_id", "is empty"));
    }
    let q = fv::Entity::find().filter(fv::Column::FrameworkId.eq(framework_id));
    let found = if edition.is_empty() {
        q.filter(fv::Column::State.eq(PUBLISHED))
            .order_by_desc(fv::Column::PublishedAt)
            .one(db)
            .await?
    } else {
        q.filter(fv::Column::Edition.eq(edition)).one(db).await?
    };
    found.ok_or_else(|| {
        if edition.is_empty() {
            ApiError::not_found(format!("framework {framework_id} has no published edition"))
        } else {
            ApiError::not_found(format!(
                "framework {framework_id} edition {edition} does not exist"
            ))
        }
    })
}

pub fn parse_stored(m: &fv::Model) -> Result<Framework, ApiError> {
    let doc: FrameworkDocument = serde_json::from_str(&m.document_json)
        .map_err(|e| ApiError::internal_msg(format!("stored framework unreadable: {e}")))?;
    Ok(Framework::from_document(doc).0)
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<fv::Model>, ApiError> {
    Ok(fv::Entity::find()
        .order_by_asc(fv::Column::FrameworkId)
        .order_by_asc(fv::Column::ImportedAt)
        .all(db)
        .await?)
}

pub fn items_to_proto(fw: &Framework, leaves_only: bool) -> Vec<pr::Item> {
    (0..fw.len())
        .filter(|&i| !leaves_only || fw.is_leaf(i))
        .map(|i| item_to_proto(fw, i))
        .collect()
}

pub fn item_to_proto(fw: &Framework, i: usize) -> pr::Item {
    let it = fw.item(i);
    let leaf = fw.is_leaf(i);
    pr::Item {
        code: it.code.to_string(),
        parent_code: fw
            .parent(i)
            .map(|p| fw.item(p).code.to_string())
            .unwrap_or_default(),
        title: it.title.clone(),
        points: it.points.to_string(),
        key: it.key,
        materials: it.materials.clone(),
        responsible_units: it.responsible.iter().map(ToString::to_string).collect(),
        rule_kind: if leaf {
            fw.rule_of(i).kind_name().to_string()
        } else {
            String::new()
        },
        rule_json: it
            .rule
            .as_ref()
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .unwrap_or_default(),
        source_row: it.source_row.unwrap_or(0),
        leaf,
    }
}
