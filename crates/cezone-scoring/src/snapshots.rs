//! Frozen snapshots: the scores of every cell and the exact inputs behind them, stored once and
//! never changed, with a content hash an inspector can check.

use std::collections::HashMap;
use std::sync::Arc;

use cezone_domain::framework::{Framework, FrameworkDocument};
use cezone_domain::points::Points;
use cezone_platform::ApiError;
use cezone_platform::paging::Page;
use cezone_platform::time::now_rfc3339;
use cezone_proto::common::v1::{PageInfo, Score};
use cezone_proto::scoring::v1 as ps;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use sha2::{Digest, Sha256};

use crate::entities::{snapshot, snapshot_cell};
use crate::model::{Inputs, Scored};

/// Ranked losses kept with a frozen snapshot.
const READINESS_TOP: usize = 20;

fn to_proto(m: &snapshot::Model) -> ps::Snapshot {
    ps::Snapshot {
        id: m.id.clone(),
        checkpoint: m.checkpoint.clone(),
        label: m.label.clone(),
        framework_id: m.framework_id.clone(),
        edition: m.edition.clone(),
        period: m.period,
        frozen_at: m.frozen_at.clone(),
        frozen_by: m.frozen_by.clone(),
        district_total: Some(Score {
            confirmed: Points::from_milli(m.total_confirmed_milli).to_string(),
            projected: Points::from_milli(m.total_projected_milli).to_string(),
        }),
        content_hash: m.content_hash.clone(),
        readiness_json: m.readiness_json.clone(),
    }
}

pub async fn freeze(
    txn: &impl ConnectionTrait,
    scored: &Scored,
    r: &ps::FreezeSnapshotRequest,
) -> Result<ps::Snapshot, ApiError> {
    if !r.checkpoint.is_empty()
        && scored
            .framework()
            .calendar
            .checkpoint(&r.checkpoint)
            .is_none()
    {
        let known: Vec<&str> = scored
            .framework()
            .calendar
            .checkpoints
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        return Err(ApiError::invalid(
            "checkpoint",
            format!(
                "'{}' is not a checkpoint (known: {})",
                r.checkpoint,
                known.join(", ")
            ),
        ));
    }
    if r.label.chars().count() > 200 || r.label.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "label",
            "must be at most 200 printable characters",
        ));
    }
    let inputs_json = serde_json::to_string(&*scored.inputs)
        .map_err(|e| ApiError::internal_msg(e.to_string()))?;
    let cells = scored.cells();
    let mut hasher = Sha256::new();
    hasher.update(inputs_json.as_bytes());
    for (org, item, c, p) in &cells {
        hasher.update(format!("\n{org}\t{item}\t{c}\t{p}").as_bytes());
    }
    let total = scored.total();
    let readiness = scored
        .engine
        .readiness(&scored.board, scored.tree().root(), READINESS_TOP);
    let readiness_json =
        serde_json::to_string(&readiness).map_err(|e| ApiError::internal_msg(e.to_string()))?;
    let model = snapshot::Model {
        id: uuid::Uuid::now_v7().to_string(),
        checkpoint: r.checkpoint.clone(),
        label: r.label.trim().to_string(),
        framework_id: scored.inputs.framework_id.clone(),
        edition: scored.inputs.edition.clone(),
        period: scored.inputs.period,
        frozen_at: now_rfc3339(),
        frozen_by: r.frozen_by.trim().to_string(),
        total_confirmed_milli: total.confirmed.milli(),
        total_projected_milli: total.projected.milli(),
        content_hash: hex::encode(hasher.finalize()),
        inputs_json,
        readiness_json,
    };
    snapshot::ActiveModel::from(model.clone())
        .insert(txn)
        .await?;
    let rows: Vec<snapshot_cell::ActiveModel> = cells
        .into_iter()
        .map(|(org, item, c, p)| snapshot_cell::ActiveModel {
            snapshot_id: Set(model.id.clone()),
            org_unit: Set(org),
            item: Set(item),
            confirmed_milli: Set(c.milli()),
            projected_milli: Set(p.milli()),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(3000) {
        snapshot_cell::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(to_proto(&model))
}

pub async fn list(
    db: &DatabaseConnection,
    page: Option<&cezone_proto::common::v1::PageRequest>,
) -> Result<(Vec<ps::Snapshot>, Option<PageInfo>), ApiError> {
    let page = Page::parse(page)?;
    let all: Vec<ps::Snapshot> = snapshot::Entity::find()
        .order_by_asc(snapshot::Column::FrozenAt)
        .order_by_asc(snapshot::Column::Id)
        .all(db)
        .await?
        .iter()
        .map(to_proto)
        .collect();
    Ok(page.slice(&all))
}

async fn find(db: &DatabaseConnection, field: &str, id: &str) -> Result<snapshot::Model, ApiError> {
    if id.is_empty() {
        return Err(ApiError::invalid(field, "is empty"));
    }
    snapshot::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("snapshot '{id}' does not exist")))
}

fn inputs_of(m: &snapshot::Model) -> Result<(Inputs, Framework), ApiError> {
    let inputs: Inputs = serde_json::from_str(&m.inputs_json)
        .map_err(|e| ApiError::internal_msg(format!("snapshot {}: {e}", m.id)))?;
    let doc: FrameworkDocument = serde_json::from_str(&inputs.framework_json)
        .map_err(|e| ApiError::internal_msg(format!("snapshot {}: {e}", m.id)))?;
    Ok((inputs, Framework::from_document(doc).0))
}

/// Stored cells of one org unit in a snapshot, by item code.
async fn cells_of(
    db: &DatabaseConnection,
    snapshot_id: &str,
    org_unit: &str,
) -> Result<HashMap<String, (i64, i64)>, ApiError> {
    Ok(snapshot_cell::Entity::find()
        .filter(snapshot_cell::Column::SnapshotId.eq(snapshot_id))
        .filter(snapshot_cell::Column::OrgUnit.eq(org_unit))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.item, (c.confirmed_milli, c.projected_milli)))
        .collect())
}

fn score(c: (i64, i64)) -> Score {
    Score {
        confirmed: Points::from_milli(c.0).to_string(),
        projected: Points::from_milli(c.1).to_string(),
    }
}

fn root_of(inputs: &Inputs) -> String {
    inputs
        .org_units
        .iter()
        .find(|(u, _)| u.parent.is_none())
        .map(|(u, _)| u.id.to_string())
        .unwrap_or_default()
}

/// The frozen scores of one org unit, read back as stored; explanations are recomputed from
/// the frozen inputs.
pub async fn get(
    db: &DatabaseConnection,
    r: &ps::GetSnapshotRequest,
) -> Result<ps::SnapshotScores, ApiError> {
    let m = find(db, "id", &r.id).await?;
    let (inputs, fw) = inputs_of(&m)?;
    let org_unit = if r.org_unit.is_empty() {
        root_of(&inputs)
    } else {
        r.org_unit.clone()
    };
    let cells = cells_of(db, &m.id, &org_unit).await?;
    if cells.is_empty() {
        return Err(ApiError::invalid(
            "org_unit",
            format!("'{org_unit}' is not in snapshot {}", m.id),
        ));
    }
    let mut scores = if r.explain {
        let scored = Scored::compute(Arc::new(inputs.clone()), m.frozen_at.clone())?;
        let node = scored.node(&org_unit)?;
        scored.scores(node, &[], true)?
    } else {
        let name = inputs
            .org_units
            .iter()
            .find(|(u, _)| u.id.as_str() == org_unit)
            .map(|(u, _)| u.name.clone())
            .unwrap_or_default();
        ps::OrgUnitScores {
            org_unit: org_unit.clone(),
            name,
            framework_id: m.framework_id.clone(),
            edition: m.edition.clone(),
            period: m.period,
            max_points: fw.max_points().to_string(),
            total: None,
            items: Vec::new(),
            computed_at: m.frozen_at.clone(),
        }
    };
    // Scores are always the stored ones.
    let mut total = (0i64, 0i64);
    scores.items = (0..fw.len())
        .map(|i| {
            let it = fw.item(i);
            let code = it.code.to_string();
            let c = cells.get(&code).copied().unwrap_or((0, 0));
            if fw.parent(i).is_none() {
                total = (total.0 + c.0, total.1 + c.1);
            }
            let explanation_json = scores
                .items
                .iter()
                .find(|x| x.code == code)
                .map(|x| x.explanation_json.clone())
                .unwrap_or_default();
            ps::ItemScore {
                code,
                title: it.title.clone(),
                key: it.key,
                leaf: fw.is_leaf(i),
                points: it.points.to_string(),
                score: Some(score(c)),
                lost: Points::from_milli(it.points.milli() - c.0).to_string(),
                explanation_json,
            }
        })
        .collect();
    scores.total = Some(score(total));
    scores.computed_at = m.frozen_at.clone();
    Ok(ps::SnapshotScores {
        snapshot: Some(to_proto(&m)),
        scores: Some(scores),
    })
}

pub async fn diff(
    db: &DatabaseConnection,
    r: &ps::DiffSnapshotsRequest,
) -> Result<ps::SnapshotDiff, ApiError> {
    let a = find(db, "from_id", &r.from_id).await?;
    let b = find(db, "to_id", &r.to_id).await?;
    let (inputs, fw) = inputs_of(&b)?;
    let org_unit = if r.org_unit.is_empty() {
        root_of(&inputs)
    } else {
        r.org_unit.clone()
    };
    let ca = cells_of(db, &a.id, &org_unit).await?;
    let cb = cells_of(db, &b.id, &org_unit).await?;
    if ca.is_empty() || cb.is_empty() {
        return Err(ApiError::invalid(
            "org_unit",
            format!("'{org_unit}' is not in both snapshots"),
        ));
    }
    let mut changes = Vec::new();
    let (mut ta, mut tb) = ((0, 0), (0, 0));
    for i in 0..fw.len() {
        let it = fw.item(i);
        let code = it.code.to_string();
        let (x, y) = (
            ca.get(&code).copied().unwrap_or((0, 0)),
            cb.get(&code).copied().unwrap_or((0, 0)),
        );
        if fw.parent(i).is_none() {
            ta = (ta.0 + x.0, ta.1 + x.1);
            tb = (tb.0 + y.0, tb.1 + y.1);
        }
        if x != y {
            changes.push(ps::ItemChange {
                code,
                title: it.title.clone(),
                from: Some(score(x)),
                to: Some(score(y)),
                delta: Points::from_milli(y.0 - x.0).to_string(),
            });
        }
    }
    Ok(ps::SnapshotDiff {
        from: Some(to_proto(&a)),
        to: Some(to_proto(&b)),
        total_from: Some(score(ta)),
        total_to: Some(score(tb)),
        changes,
    })
}
