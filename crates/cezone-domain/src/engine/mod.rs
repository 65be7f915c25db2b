//! The scoring engine: every criterion × org unit cell from the facts, groups rolled up and
//! capped at their declared points, and an explanation for any cell on demand.

mod aggregate;
mod evaluate;
mod evidence;
mod explain;
mod incremental;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use aggregate::{Aggregates, Segment};
pub use evidence::{EvidenceIndex, Slot, SlotStatus};
pub use explain::{CapNote, CellExplanation, ChildScore, RuleExplanation, SlotView, SurveyStat};
pub use incremental::{Affected, Change, NodeSet, Readers};

use crate::facts::Facts;
use crate::framework::{Framework, ItemIdx};
use crate::org::{OrgIdx, OrgTree};
use crate::points::Points;

/// The two scores of one criterion or group in one org unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Only accepted evidence counts.
    pub confirmed: Points,
    /// Pending evidence counts as if accepted.
    pub projected: Points,
}

/// Scores of every item in every org unit for one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoreboard {
    pub period: i32,
    items: usize,
    cells: Vec<Cell>,
}

impl Scoreboard {
    pub fn cell(&self, node: OrgIdx, item: ItemIdx) -> Cell {
        self.cells[node * self.items + item]
    }

    pub fn row(&self, node: OrgIdx) -> &[Cell] {
        &self.cells[node * self.items..(node + 1) * self.items]
    }

    /// Sum of the first-level areas' scores.
    pub fn total(&self, fw: &Framework, node: OrgIdx) -> Cell {
        fw.roots().iter().fold(Cell::default(), |acc, &r| {
            let c = self.cell(node, r);
            Cell {
                confirmed: acc.confirmed + c.confirmed,
                projected: acc.projected + c.projected,
            }
        })
    }

    /// Children's sum of a group before the cap, to report it.
    pub fn children_sum(&self, fw: &Framework, node: OrgIdx, item: ItemIdx) -> Cell {
        fw.children(item).iter().fold(Cell::default(), |acc, &c| {
            let x = self.cell(node, c);
            Cell {
                confirmed: acc.confirmed + x.confirmed,
                projected: acc.projected + x.projected,
            }
        })
    }

    pub fn units(&self) -> usize {
        self.cells.len().checked_div(self.items).unwrap_or(0)
    }
}

/// Facts aggregated over one org tree for one framework and period, ready to score.
#[derive(Debug, Clone)]
pub struct Engine {
    pub fw: Arc<Framework>,
    pub org: Arc<OrgTree>,
    pub period: i32,
    pub agg: Aggregates,
    pub evidence: EvidenceIndex,
    pub readers: Readers,
}

impl Engine {
    pub fn new(fw: Arc<Framework>, org: Arc<OrgTree>, facts: &Facts, period: i32) -> Engine {
        let agg = Aggregates::build(
            &org,
            &facts.statistics,
            &facts.surveys,
            &[period, period - 1],
        );
        let evidence = EvidenceIndex::build(&fw, &org, &facts.evidence);
        let readers = Readers::of(&fw);
        Engine {
            fw,
            org,
            period,
            agg,
            evidence,
            readers,
        }
    }

    /// Every cell: criteria by their rules, groups as their children's sum capped at their points.
    pub fn scoreboard(&self) -> Scoreboard {
        let n = self.org.len();
        let m = self.fw.len();
        let mut cells = vec![Cell::default(); n * m];
        let ctx = evaluate::Context::new(self);
        for c in self.fw.leaves() {
            let rule = self.fw.rule_of(c);
            let compiled = ctx.compile(&rule);
            let evidence = self.evidence.fractions(&self.org, c);
            let points = self.fw.item(c).points;
            for node in 0..n {
                let e = ctx.eval(&compiled, node, Segment::All, evidence[node], None);
                cells[node * m + c] = Cell {
                    confirmed: points.scaled(e.confirmed),
                    projected: points.scaled(e.projected),
                };
            }
        }
        for node in 0..n {
            let row = &mut cells[node * m..(node + 1) * m];
            roll_up(&self.fw, row);
        }
        Scoreboard {
            period: self.period,
            items: m,
            cells,
        }
    }
}

/// Groups from their children, deepest first (items are in preorder), capped at declared points.
pub fn roll_up(fw: &Framework, row: &mut [Cell]) {
    for i in (0..fw.len()).rev() {
        let kids = fw.children(i);
        if kids.is_empty() {
            continue;
        }
        let (mut conf, mut proj) = (Points::ZERO, Points::ZERO);
        for &k in kids {
            conf = conf + row[k].confirmed;
            proj = proj + row[k].projected;
        }
        let cap = fw.item(i).points;
        row[i] = Cell {
            confirmed: conf.min(cap),
            projected: proj.min(cap),
        };
    }
}
