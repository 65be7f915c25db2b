//! `ListObligations`: a unit's statistical return as it stands — each figure it owes (by the
//! matrix and the catalog's filing levels), missing, returned, pending or accepted, and late
//! against the calendar's checkpoint.

use std::collections::HashMap;

use cezone_domain::access::Principal;
use cezone_domain::calendar::Date;
use cezone_domain::facts::StatState;
use cezone_domain::framework::Framework;
use cezone_domain::obligations::{Filed, Standing, owed};
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::rules::MetricId;
use cezone_domain::units::UnitId;
use cezone_platform::ApiError;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::entities::statistic as st;
use crate::statistics::state_of;

pub async fn list(
    db: &DatabaseConnection,
    who: &Principal,
    fw: &Framework,
    tree: &OrgTree,
    r: &psv::ListObligationsRequest,
) -> Result<psv::Obligations, ApiError> {
    let unit = if r.responsible_unit.trim().is_empty() {
        who.unit.clone().ok_or_else(|| {
            ApiError::invalid(
                "responsible_unit",
                "name the responsible unit (the caller acts for none)",
            )
        })?
    } else {
        UnitId::parse(r.responsible_unit.trim())
            .map_err(|e| ApiError::invalid("responsible_unit", e))?
    };
    if fw.units.get(&unit).is_none() {
        return Err(ApiError::invalid(
            "responsible_unit",
            format!(
                "'{unit}' is not a responsible unit of framework {}",
                fw.meta.id
            ),
        ));
    }
    let scope = if r.org_unit.trim().is_empty() {
        match &who.org_unit {
            Some(own) => tree.find(own).ok_or_else(|| {
                ApiError::invalid("org_unit", format!("{own} is not an org unit"))
            })?,
            None => tree.root(),
        }
    } else {
        let id =
            OrgUnitId::parse(r.org_unit.trim()).map_err(|e| ApiError::invalid("org_unit", e))?;
        tree.find(&id)
            .ok_or_else(|| ApiError::invalid("org_unit", format!("{id} is not an org unit")))?
    };
    if !(1900..=2200).contains(&r.period) {
        return Err(ApiError::invalid(
            "period",
            format!("{} is not a year", r.period),
        ));
    }
    let (due, as_of) = fw
        .calendar
        .deadline(
            &r.checkpoint,
            &r.as_of,
            Date(chrono::Utc::now().date_naive()),
        )
        .map_err(|(field, why)| ApiError::invalid(field, why))?;

    let under: std::collections::HashSet<&str> = tree
        .subtree(scope)
        .map(|i| tree.unit(i).id.as_str())
        .collect();
    let mut filed: HashMap<(OrgUnitId, MetricId), Filed> = HashMap::new();
    for m in st::Entity::find()
        .filter(st::Column::Latest.eq(true))
        .filter(st::Column::Period.eq(r.period))
        .all(db)
        .await?
    {
        if !under.contains(m.org_unit.as_str()) {
            continue;
        }
        let (Ok(o), Ok(k)) = (OrgUnitId::parse(&m.org_unit), MetricId::parse(&m.metric)) else {
            continue;
        };
        filed.insert(
            (o, k),
            Filed {
                state: state_of(&m),
                value: m.value,
                review_comment: m.review_comment.clone(),
            },
        );
    }
    let items = owed(fw, tree, &unit, scope, &filed, as_of > due);
    let mut out = psv::Obligations {
        responsible_unit: unit.to_string(),
        org_unit: tree.unit(scope).id.to_string(),
        deadline: due.to_string(),
        as_of: as_of.to_string(),
        ..Default::default()
    };
    for o in items {
        match o.standing {
            Standing::Missing => out.missing += 1,
            Standing::Returned => out.returned += 1,
            Standing::Pending => out.pending += 1,
            Standing::Accepted => out.accepted += 1,
        }
        out.late += u32::from(o.late);
        let org = tree.find(&o.org_unit).map(|i| tree.unit(i).name.clone());
        out.items.push(psv::Obligation {
            metric_name: fw
                .catalog
                .metric(&o.metric)
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            metric: o.metric.to_string(),
            org_unit: o.org_unit.to_string(),
            org_unit_name: org.unwrap_or_default(),
            standing: match o.standing {
                Standing::Missing => psv::Standing::Missing,
                Standing::Returned => psv::Standing::Returned,
                Standing::Pending => psv::Standing::Pending,
                Standing::Accepted => psv::Standing::Accepted,
            } as i32,
            late: o.late,
            value: o.filed.as_ref().map(|f| f.value),
            review_comment: o
                .filed
                .as_ref()
                .filter(|f| f.state == StatState::Returned)
                .map(|f| f.review_comment.clone())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}
