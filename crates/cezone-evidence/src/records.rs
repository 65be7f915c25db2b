//! Evidence records and their versions: create, resubmit, review, read.

use cezone_domain::access::Principal;
use cezone_platform::ApiError;
use cezone_platform::paging::Page;
use cezone_platform::time::now_rfc3339;
use cezone_proto::common::v1::PageInfo;
use cezone_proto::evidence::v1 as pe;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::blobs::Stored;
use crate::entities::{blob, record, version};
use crate::metadata::Checked;

pub const SUBMITTED: &str = "submitted";
pub const ACCEPTED: &str = "accepted";
pub const RETURNED: &str = "returned";

pub fn state_to_proto(s: &str) -> pe::ReviewState {
    match s {
        SUBMITTED => pe::ReviewState::Submitted,
        ACCEPTED => pe::ReviewState::Accepted,
        RETURNED => pe::ReviewState::Returned,
        _ => pe::ReviewState::Unspecified,
    }
}

fn version_to_proto(v: &version::Model) -> pe::Version {
    pe::Version {
        version: v.version as u32,
        sha256: v.sha256.clone(),
        size: v.size as u64,
        file_name: v.file_name.clone(),
        content_type: v.content_type.clone(),
        state: state_to_proto(&v.state) as i32,
        grade: v.grade.unwrap_or(0) as u32,
        comment: v.comment.clone(),
        submitted_by: v.submitted_by.clone(),
        submitted_at: v.submitted_at.clone(),
        reviewed_by: v.reviewed_by.clone().unwrap_or_default(),
        reviewed_at: v.reviewed_at.clone().unwrap_or_default(),
    }
}

pub fn to_proto(r: &record::Model, versions: &[version::Model]) -> pe::Evidence {
    let history: Vec<pe::Version> = versions.iter().map(version_to_proto).collect();
    pe::Evidence {
        id: r.id.clone(),
        framework_id: r.framework_id.clone(),
        edition: r.edition.clone(),
        criterion: r.criterion.clone(),
        org_unit: r.org_unit.clone(),
        responsible_unit: r.responsible_unit.clone(),
        period: r.period,
        title: r.title.clone(),
        material_type: r.material_type.clone(),
        current: history
            .iter()
            .find(|v| v.version == r.current_version as u32)
            .cloned(),
        history,
        revision: r.revision as u64,
    }
}

async fn versions_of(db: &impl ConnectionTrait, id: &str) -> Result<Vec<version::Model>, ApiError> {
    Ok(version::Entity::find()
        .filter(version::Column::EvidenceId.eq(id))
        .order_by_asc(version::Column::Version)
        .all(db)
        .await?)
}

async fn remember_blob(txn: &DatabaseTransaction, stored: &Stored) -> Result<(), ApiError> {
    blob::Entity::insert(blob::ActiveModel {
        sha256: Set(stored.sha256.clone()),
        size: Set(stored.size as i64),
        stored_at: Set(now_rfc3339()),
    })
    .on_conflict(
        OnConflict::column(blob::Column::Sha256)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(txn)
    .await?;
    Ok(())
}

fn new_version(id: &str, n: i32, c: &Checked, stored: &Stored, now: &str) -> version::ActiveModel {
    version::ActiveModel {
        evidence_id: Set(id.to_string()),
        version: Set(n),
        sha256: Set(stored.sha256.clone()),
        size: Set(stored.size as i64),
        file_name: Set(c.file_name.clone()),
        content_type: Set(c.content_type.clone()),
        state: Set(SUBMITTED.to_string()),
        grade: Set(None),
        comment: Set(String::new()),
        submitted_by: Set(c.submitted_by.clone()),
        submitted_at: Set(now.to_string()),
        reviewed_by: Set(None),
        reviewed_at: Set(None),
        ..Default::default()
    }
}

/// Stores a first submission, or the next version of a returned record.
pub async fn submit(
    db: &DatabaseConnection,
    who: &Principal,
    c: &Checked,
    stored: &Stored,
) -> Result<pe::Evidence, ApiError> {
    let now = now_rfc3339();
    let txn = db.begin().await?;
    remember_blob(&txn, stored).await?;
    let (rec, versions) = match &c.replaces {
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            let rec = record::ActiveModel {
                id: Set(id.clone()),
                framework_id: Set(c.framework_id.clone()),
                edition: Set(c.edition.clone()),
                criterion: Set(c.criterion.to_string()),
                org_unit: Set(c.org_unit.to_string()),
                responsible_unit: Set(c.unit.to_string()),
                period: Set(c.period),
                title: Set(c.title.clone()),
                material_type: Set(c.material_type.clone()),
                current_version: Set(1),
                state: Set(SUBMITTED.to_string()),
                grade: Set(None),
                revision: Set(1),
                first_submitted_at: Set(now.clone()),
                updated_at: Set(now.clone()),
            }
            .insert(&txn)
            .await?;
            let v = new_version(&id, 1, c, stored, &now).insert(&txn).await?;
            (rec, vec![v])
        }
        Some(id) => {
            let Some(old) = record::Entity::find_by_id(id.clone())
                .lock_exclusive()
                .one(&txn)
                .await?
            else {
                return Err(ApiError::invalid(
                    "replaces",
                    format!("'{id}' is not an evidence record"),
                ));
            };
            let same = old.framework_id == c.framework_id
                && old.criterion == c.criterion.to_string()
                && old.org_unit == c.org_unit.as_str()
                && old.responsible_unit == c.unit.as_str();
            if !same {
                return Err(ApiError::invalid(
                    "replaces",
                    format!(
                        "'{id}' is evidence for {} by {} at {}; a resubmission keeps criterion, unit and org unit",
                        old.criterion, old.responsible_unit, old.org_unit
                    ),
                ));
            }
            if old.state != RETURNED {
                return Err(ApiError::precondition(format!(
                    "evidence {id} is {}; only returned evidence is resubmitted",
                    old.state
                )));
            }
            let n = old.current_version + 1;
            new_version(id, n, c, stored, &now).insert(&txn).await?;
            let mut a: record::ActiveModel = old.clone().into();
            a.current_version = Set(n);
            a.state = Set(SUBMITTED.to_string());
            a.grade = Set(None);
            a.title = Set(c.title.clone());
            a.material_type = Set(c.material_type.clone());
            a.revision = Set(old.revision + 1);
            a.updated_at = Set(now.clone());
            let rec = a.update(&txn).await?;
            let versions = versions_of(&txn, id).await?;
            (rec, versions)
        }
    };
    let out = to_proto(&rec, &versions);
    announce(&txn, who, "evidence.submitted", &out).await?;
    txn.commit().await?;
    Ok(out)
}

/// The event of an evidence change, in the change's transaction.
async fn announce(
    txn: &DatabaseTransaction,
    who: &Principal,
    event_type: &str,
    e: &pe::Evidence,
) -> Result<(), ApiError> {
    let current = e.current.clone().unwrap_or_default();
    cezone_platform::access::audit::append(
        txn,
        "evidence",
        cezone_platform::access::audit::Entry {
            actor: who,
            action: event_type,
            target: &e.id,
            details: serde_json::json!({
                "criterion": e.criterion,
                "org_unit": e.org_unit,
                "responsible_unit": e.responsible_unit,
                "revision": e.revision,
                "version": current.version,
                "sha256": current.sha256,
                "size": current.size,
                "state": current.state().as_str_name(),
                "grade": current.grade,
                "comment": current.comment,
            }),
        },
    )
    .await?;
    let payload = cezone_proto::events::v1::EvidenceChanged {
        evidence: Some(e.clone()),
    };
    cezone_bus::outbox::enqueue(
        txn,
        crate::OUTBOX,
        &cezone_bus::envelope(event_type, "evidence", &payload, None),
    )
    .await?;
    Ok(())
}

pub async fn review(
    db: &DatabaseConnection,
    who: &Principal,
    id: &str,
    decision: pe::Decision,
    grade: u32,
    comment: &str,
    reviewer: &str,
) -> Result<pe::Evidence, ApiError> {
    let (state, grade) = match decision {
        pe::Decision::Accept => {
            if grade > 100 {
                return Err(ApiError::invalid("grade", format!("{grade} is above 100")));
            }
            (ACCEPTED, Some(grade as i32))
        }
        pe::Decision::Return => {
            if comment.trim().is_empty() {
                return Err(ApiError::invalid(
                    "comment",
                    "is empty; say what the unit must fix",
                ));
            }
            (RETURNED, None)
        }
        pe::Decision::Unspecified => {
            return Err(ApiError::invalid(
                "decision",
                "is unspecified; accept or return",
            ));
        }
    };
    if comment.chars().count() > 2000 {
        return Err(ApiError::invalid(
            "comment",
            "is longer than 2000 characters",
        ));
    }
    let now = now_rfc3339();
    let txn = db.begin().await?;
    let Some(rec) = record::Entity::find_by_id(id.to_string())
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "evidence '{id}' does not exist"
        )));
    };
    if rec.state != SUBMITTED {
        return Err(ApiError::precondition(format!(
            "evidence {id} is {}; only submitted evidence is reviewed",
            rec.state
        )));
    }
    let Some(v) = version::Entity::find()
        .filter(version::Column::EvidenceId.eq(id))
        .filter(version::Column::Version.eq(rec.current_version))
        .one(&txn)
        .await?
    else {
        return Err(ApiError::internal_msg(format!(
            "evidence {id} has no current version"
        )));
    };
    let mut va: version::ActiveModel = v.into();
    va.state = Set(state.to_string());
    va.grade = Set(grade);
    va.comment = Set(comment.trim().to_string());
    va.reviewed_by = Set(Some(reviewer.trim().to_string()));
    va.reviewed_at = Set(Some(now.clone()));
    va.update(&txn).await?;
    let revision = rec.revision + 1;
    let mut ra: record::ActiveModel = rec.into();
    ra.state = Set(state.to_string());
    ra.grade = Set(grade);
    ra.revision = Set(revision);
    ra.updated_at = Set(now);
    let rec = ra.update(&txn).await?;
    let versions = versions_of(&txn, id).await?;
    let out = to_proto(&rec, &versions);
    announce(&txn, who, "evidence.reviewed", &out).await?;
    txn.commit().await?;
    Ok(out)
}

pub async fn get(
    db: &DatabaseConnection,
    id: &str,
) -> Result<(record::Model, Vec<version::Model>), ApiError> {
    let Some(rec) = record::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Err(ApiError::not_found(format!(
            "evidence '{id}' does not exist"
        )));
    };
    let versions = versions_of(db, id).await?;
    Ok((rec, versions))
}

pub async fn list(
    db: &DatabaseConnection,
    r: &pe::ListEvidenceRequest,
) -> Result<(Vec<pe::Evidence>, Option<PageInfo>), ApiError> {
    let page = Page::parse(r.page.as_ref())?;
    let mut q = record::Entity::find();
    if !r.framework_id.is_empty() {
        q = q.filter(record::Column::FrameworkId.eq(&r.framework_id));
    }
    if !r.criterion.is_empty() {
        q = q.filter(record::Column::Criterion.eq(&r.criterion));
    }
    if !r.org_unit.is_empty() {
        q = q.filter(record::Column::OrgUnit.eq(&r.org_unit));
    }
    if !r.responsible_unit.is_empty() {
        q = q.filter(record::Column::ResponsibleUnit.eq(&r.responsible_unit));
    }
    match pe::ReviewState::try_from(r.state) {
        Ok(pe::ReviewState::Unspecified) => {}
        Ok(pe::ReviewState::Submitted) => q = q.filter(record::Column::State.eq(SUBMITTED)),
        Ok(pe::ReviewState::Accepted) => q = q.filter(record::Column::State.eq(ACCEPTED)),
        Ok(pe::ReviewState::Returned) => q = q.filter(record::Column::State.eq(RETURNED)),
        Err(_) => {
            return Err(ApiError::invalid(
                "state",
                format!("{} is not a review state", r.state),
            ));
        }
    }
    let rows = q
        .order_by_asc(record::Column::Id)
        .offset(page.offset)
        .limit(page.size + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > page.size;
    let rows: Vec<record::Model> = rows.into_iter().take(page.size as usize).collect();
    // Every version of the page's records in one query.
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut by_record: std::collections::HashMap<String, Vec<version::Model>> =
        std::collections::HashMap::new();
    for v in version::Entity::find()
        .filter(version::Column::EvidenceId.is_in(ids))
        .order_by_asc(version::Column::Version)
        .all(db)
        .await?
    {
        by_record.entry(v.evidence_id.clone()).or_default().push(v);
    }
    let out: Vec<pe::Evidence> = rows
        .iter()
        .map(|r| to_proto(r, by_record.get(&r.id).map(Vec::as_slice).unwrap_or(&[])))
        .collect();
    Ok((out, page.info(has_more)))
}

/// Every record of a framework (for completeness), without versions.
pub async fn all_records(
    db: &DatabaseConnection,
    framework_id: &str,
) -> Result<Vec<record::Model>, ApiError> {
    Ok(record::Entity::find()
        .filter(record::Column::FrameworkId.eq(framework_id))
        .all(db)
        .await?)
}
