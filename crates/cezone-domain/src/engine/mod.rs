//! The scoring engine: every criterion × org unit cell from the facts, groups rolled up and
//! capped at their declared points, and an explanation for any cell on demand.

mod aggregate;
mod describe;
mod evaluate;
mod evidence;
mod explain;
mod incremental;
mod measure;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use aggregate::{Aggregates, Segment, View};
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
    /// Only accepted evidence and statistics count.
    pub confirmed: Points,
    /// Pending evidence and statistics count as if accepted.
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
        Scoreboard::row_total(fw, self.row(node))
    }

    /// Sum of the first-level areas' scores in one unit's row (as `row` gives it).
    pub fn row_total(fw: &Framework, row: &[Cell]) -> Cell {
        fw.roots().iter().fold(Cell::default(), |acc, &r| {
            let c = row[r];
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
        let years = [period, period - 1];
        let aggregates = || Aggregates::build(&org, &facts.statistics, &facts.surveys, &years);
        let evidence = || EvidenceIndex::build(&fw, &org, &facts.evidence);
        // The aggregates and the evidence index are independent: at province scale each takes
        // a good part of the build, so they are made side by side when there are cores to spare.
        let (agg, evidence) = if parallel(org.len()) {
            std::thread::scope(|s| {
                let ev = s.spawn(evidence);
                let agg = aggregates();
                (agg, join(ev))
            })
        } else {
            (aggregates(), evidence())
        };
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

    /// One criterion's cells in every org unit, by its rule.
    fn column(&self, ctx: &evaluate::Context<'_>, c: ItemIdx) -> Vec<Cell> {
        let rule = self.fw.rule_of(c);
        let compiled = ctx.compile_pair(&rule);
        let evidence = self.evidence.fractions(&self.org, c);
        let points = self.fw.item(c).points;
        (0..self.org.len())
            .map(|node| {
                let e = ctx.eval_pair(&compiled, node, Segment::All, evidence[node], None);
                Cell {
                    confirmed: points.scaled(e.confirmed),
                    projected: points.scaled(e.projected),
                }
            })
            .collect()
    }

    /// Every cell: criteria by their rules, groups as their children's sum capped at their points.
    /// Criteria are independent of each other, so large trees share them among the cores.
    pub fn scoreboard(&self) -> Scoreboard {
        let n = self.org.len();
        let m = self.fw.len();
        let mut cells = vec![Cell::default(); n * m];
        let ctx = evaluate::Context::new(self);
        let leaves: Vec<ItemIdx> = self.fw.leaves().collect();
        let columns = |part: &[ItemIdx]| -> Vec<(ItemIdx, Vec<Cell>)> {
            part.iter().map(|&c| (c, self.column(&ctx, c))).collect()
        };
        let done = if parallel(n) {
            let (a, b) = leaves.split_at(leaves.len() / 2);
            std::thread::scope(|s| {
                let other = s.spawn(|| columns(b));
                let mut mine = columns(a);
                mine.extend(join(other));
                mine
            })
        } else {
            columns(&leaves)
        };
        for (c, column) in done {
            for (node, cell) in column.into_iter().enumerate() {
                cells[node * m + c] = cell;
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

/// Org units from which a full build is worth a second thread (a district of ~300 builds in
/// about a millisecond; a province of ~27,000 in a few hundred).
const PARALLEL_FROM_UNITS: usize = 2_000;

fn parallel(units: usize) -> bool {
    units >= PARALLEL_FROM_UNITS && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// A scoped thread's result; its panic, if any, continues in the caller.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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
