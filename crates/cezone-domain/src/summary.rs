//! The district scoreboard in one structure: total against the maximum, each first-level area,
//! each child org unit (towns of a district), ★ criteria and the weakest links.

use serde::{Deserialize, Serialize};

use crate::engine::{Cell, Engine, Scoreboard};
use crate::org::OrgIdx;
use crate::points::Points;
use crate::readiness::CriterionGap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaScore {
    pub code: String,
    pub title: String,
    pub points: Points,
    pub confirmed: Points,
    pub projected: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitScore {
    pub org_unit: String,
    pub name: String,
    pub total: Cell,
    /// One per first-level area, in area order.
    pub areas: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub code: String,
    pub title: String,
    pub points: Points,
    pub confirmed: Points,
    pub projected: Points,
    pub full_marks: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub format: String,
    pub framework: String,
    pub edition: String,
    pub org_unit: String,
    pub org_unit_name: String,
    pub period: i32,
    pub max_points: Points,
    pub total: Cell,
    pub areas: Vec<AreaScore>,
    pub children: Vec<UnitScore>,
    pub key_criteria: Vec<KeyStatus>,
    pub weak_links: Vec<CriterionGap>,
}

pub const SUMMARY_FORMAT: &str = "cezone.summary.v1";

impl Engine {
    pub fn summary(&self, board: &Scoreboard, node: OrgIdx, weak_links: usize) -> Summary {
        let fw = &self.fw;
        let areas = fw
            .roots()
            .iter()
            .map(|&r| {
                let it = fw.item(r);
                let c = board.cell(node, r);
                AreaScore {
                    code: it.code.to_string(),
                    title: it.title.clone(),
                    points: it.points,
                    confirmed: c.confirmed,
                    projected: c.projected,
                }
            })
            .collect();
        let children = self
            .org
            .children(node)
            .iter()
            .map(|&ch| UnitScore {
                org_unit: self.org.unit(ch).id.to_string(),
                name: self.org.unit(ch).name.clone(),
                total: board.total(fw, ch),
                areas: fw.roots().iter().map(|&r| board.cell(ch, r)).collect(),
            })
            .collect();
        let key_criteria = fw
            .leaves()
            .filter(|&c| fw.item(c).key)
            .map(|c| {
                let it = fw.item(c);
                let cell = board.cell(node, c);
                KeyStatus {
                    code: it.code.to_string(),
                    title: it.title.clone(),
                    points: it.points,
                    confirmed: cell.confirmed,
                    projected: cell.projected,
                    full_marks: cell.confirmed == it.points,
                }
            })
            .collect();
        let readiness = self.readiness(board, node, weak_links);
        let unit = self.org.unit(node);
        Summary {
            format: SUMMARY_FORMAT.to_string(),
            framework: fw.meta.id.to_string(),
            edition: fw.meta.edition.clone(),
            org_unit: unit.id.to_string(),
            org_unit_name: unit.name.clone(),
            period: self.period,
            max_points: fw.max_points(),
            total: board.total(fw, node),
            areas,
            children,
            key_criteria,
            weak_links: readiness.weakest,
        }
    }
}
