//! Completeness per responsible unit and org unit: which required materials are accepted,
//! submitted, returned or missing, and which are late against the calendar's deadline.

use std::collections::{BTreeMap, HashMap};

use cezone_domain::calendar::Date;
use cezone_domain::code::ItemCode;
use cezone_domain::engine::{EvidenceIndex, SlotStatus};
use cezone_domain::facts::{EvidenceFact, EvidenceState};
use cezone_domain::framework::Framework;
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::units::UnitId;
use cezone_platform::ApiError;
use cezone_proto::evidence::v1 as pe;

use crate::entities::record;
use crate::records::{ACCEPTED, RETURNED};

/// Records as the domain's evidence facts (the revision orders versions of one record).
pub fn facts(records: &[record::Model]) -> Vec<EvidenceFact> {
    records
        .iter()
        .filter_map(|r| {
            Some(EvidenceFact {
                id: r.id.clone(),
                criterion: ItemCode::parse(&r.criterion).ok()?,
                unit: UnitId::parse(&r.responsible_unit).ok()?,
                org_unit: OrgUnitId::parse(&r.org_unit).ok()?,
                material: (!r.material_type.is_empty()).then(|| r.material_type.clone()),
                state: match r.state.as_str() {
                    ACCEPTED => EvidenceState::Accepted {
                        grade: r.grade.unwrap_or(0).clamp(0, 100) as u8,
                    },
                    RETURNED => EvidenceState::Returned,
                    _ => EvidenceState::Submitted,
                },
                version: r.revision as u64,
                title: r.title.clone(),
            })
        })
        .collect()
}

pub fn compute(
    fw: &Framework,
    tree: &OrgTree,
    records: &[record::Model],
    req: &pe::GetCompletenessRequest,
) -> Result<pe::Completeness, ApiError> {
    let (due, as_of) = fw
        .calendar
        .deadline(
            &req.checkpoint,
            &req.as_of,
            Date(chrono::Utc::now().date_naive()),
        )
        .map_err(|(field, why)| ApiError::invalid(field, why))?;
    let scope = if req.org_unit.is_empty() {
        tree.root()
    } else {
        let id = OrgUnitId::parse(&req.org_unit).map_err(|e| ApiError::invalid("org_unit", e))?;
        tree.find(&id).ok_or_else(|| {
            ApiError::invalid("org_unit", format!("'{id}' is not an existing org unit"))
        })?
    };
    if !req.responsible_unit.is_empty()
        && !fw
            .units
            .units
            .iter()
            .any(|u| u.id.as_str() == req.responsible_unit)
    {
        return Err(ApiError::invalid(
            "responsible_unit",
            format!("'{}' is not a unit of this framework", req.responsible_unit),
        ));
    }
    // The first submission date of each record, for lateness.
    let first: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.id.as_str(), r.first_submitted_at.as_str()))
        .collect();
    let index = EvidenceIndex::build(fw, tree, &facts(records));
    let mut groups: BTreeMap<(String, String), pe::UnitCompleteness> = BTreeMap::new();
    for c in fw.leaves() {
        for s in &index.slots[c] {
            if !tree.contains(scope, s.node)
                || (!req.responsible_unit.is_empty() && s.unit.as_str() != req.responsible_unit)
            {
                continue;
            }
            let earliest = s
                .evidence_ids
                .iter()
                .filter_map(|id| first.get(id.as_str()))
                .min()
                .and_then(|t| t.get(..10));
            let submitted_late = earliest.is_some_and(|d| d > due.to_string().as_str());
            let state = match s.status {
                SlotStatus::Accepted => pe::SlotState::Accepted,
                SlotStatus::Pending => pe::SlotState::Submitted,
                SlotStatus::Returned => pe::SlotState::Returned,
                SlotStatus::Missing => pe::SlotState::Missing,
            };
            let outstanding = matches!(s.status, SlotStatus::Missing | SlotStatus::Returned);
            let late = submitted_late || (outstanding && as_of > due);
            let org = tree.unit(s.node);
            let g = groups
                .entry((s.unit.to_string(), org.id.to_string()))
                .or_insert_with(|| pe::UnitCompleteness {
                    responsible_unit: s.unit.to_string(),
                    name: fw.units.name_of(&s.unit),
                    org_unit: org.id.to_string(),
                    ..Default::default()
                });
            g.required += 1;
            match s.status {
                SlotStatus::Accepted => g.accepted += 1,
                SlotStatus::Pending => g.submitted += 1,
                SlotStatus::Missing | SlotStatus::Returned => g.missing += 1,
            }
            g.late += u32::from(late);
            g.slots.push(pe::Slot {
                criterion: fw.item(c).code.to_string(),
                responsible_unit: s.unit.to_string(),
                org_unit: org.id.to_string(),
                state: state as i32,
                late,
                evidence_ids: s.evidence_ids.clone(),
            });
        }
    }
    Ok(pe::Completeness {
        deadline: due.to_string(),
        as_of: as_of.to_string(),
        units: groups.into_values().collect(),
    })
}
