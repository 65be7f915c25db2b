//! Readiness before a checkpoint: ★ criteria short of full marks, criteria ranked by points
//! lost, and which responsible units still owe which evidence — for any org unit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::{Cell, Engine, Scoreboard, SlotStatus};
use crate::org::OrgIdx;
use crate::points::Points;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionGap {
    pub code: String,
    pub title: String,
    pub key: bool,
    pub points: Points,
    pub confirmed: Points,
    pub projected: Points,
    pub lost: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwedEvidence {
    pub criterion: String,
    pub org_unit: String,
    pub org_unit_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    pub status: SlotStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitGap {
    pub unit: String,
    pub unit_name: String,
    /// Nothing submitted, or returned and not yet resubmitted.
    pub missing: usize,
    /// Submitted, waiting for review.
    pub pending: usize,
    pub required: usize,
    pub owed: Vec<OwedEvidence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub org_unit: String,
    pub org_unit_name: String,
    pub period: i32,
    pub total: Cell,
    pub max_points: Points,
    pub key_short: Vec<CriterionGap>,
    pub weakest: Vec<CriterionGap>,
    pub units: Vec<UnitGap>,
}

impl Engine {
    /// `top` bounds the ranked list; ★ criteria short of full marks are always all listed.
    pub fn readiness(&self, board: &Scoreboard, node: OrgIdx, top: usize) -> Readiness {
        let fw = &self.fw;
        let mut gaps: Vec<CriterionGap> = fw
            .leaves()
            .map(|c| {
                let it = fw.item(c);
                let cell = board.cell(node, c);
                CriterionGap {
                    code: it.code.to_string(),
                    title: it.title.clone(),
                    key: it.key,
                    points: it.points,
                    confirmed: cell.confirmed,
                    projected: cell.projected,
                    lost: it.points - cell.confirmed,
                }
            })
            .collect();
        let key_short: Vec<CriterionGap> = gaps
            .iter()
            .filter(|g| g.key && g.lost > Points::ZERO)
            .cloned()
            .collect();
        gaps.retain(|g| g.lost > Points::ZERO);
        gaps.sort_by(|a, b| b.lost.cmp(&a.lost).then_with(|| a.code.cmp(&b.code)));
        gaps.truncate(top);

        let mut by_unit: BTreeMap<String, UnitGap> = BTreeMap::new();
        for c in fw.leaves() {
            for s in self.evidence.relevant(&self.org, c, node) {
                let g = by_unit
                    .entry(s.unit.to_string())
                    .or_insert_with(|| UnitGap {
                        unit: s.unit.to_string(),
                        unit_name: fw.units.name_of(&s.unit),
                        missing: 0,
                        pending: 0,
                        required: 0,
                        owed: Vec::new(),
                    });
                g.required += 1;
                match s.status {
                    SlotStatus::Accepted => continue,
                    SlotStatus::Pending => g.pending += 1,
                    SlotStatus::Missing | SlotStatus::Returned => g.missing += 1,
                }
                g.owed.push(OwedEvidence {
                    criterion: fw.item(c).code.to_string(),
                    org_unit: self.org.unit(s.node).id.to_string(),
                    org_unit_name: self.org.unit(s.node).name.clone(),
                    material: s.material.clone(),
                    status: s.status,
                });
            }
        }
        let mut units: Vec<UnitGap> = by_unit
            .into_values()
            .filter(|g| g.missing + g.pending > 0)
            .collect();
        units.sort_by(|a, b| b.missing.cmp(&a.missing).then_with(|| a.unit.cmp(&b.unit)));

        let unit = self.org.unit(node);
        Readiness {
            org_unit: unit.id.to_string(),
            org_unit_name: unit.name.clone(),
            period: self.period,
            total: board.total(fw, node),
            max_points: fw.max_points(),
            key_short,
            weakest: gaps,
            units,
        }
    }
}
