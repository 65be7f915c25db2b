//! Incremental scoring: apply changed facts, then recompute only the criterion × org-unit cells
//! they can affect and the groups above them. Equal, bit for bit, to a full recompute.

use std::collections::BTreeMap;

// Keys are the district's own validated ids; a fast hasher is what the hot paths need.
use foldhash::HashMap;
use std::ops::Range;

use crate::engine::evaluate::{Context, Pair};
use crate::engine::{Cell, Engine, Scoreboard, Segment, roll_up};
use crate::facts::{EvidenceFact, StatFact, SurveyTally};
use crate::framework::{Framework, ItemIdx};
use crate::org::{OrgIdx, OrgLevel, OrgTree};
use crate::rules::{MetricId, QuestionId, Rule};

/// One changed fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Statistic(StatFact),
    Tally(SurveyTally),
    Evidence(EvidenceFact),
}

/// Org units as merged, sorted preorder ranges (a path is a few one-unit ranges, a subtree one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSet {
    ranges: Vec<Range<OrgIdx>>,
}

impl NodeSet {
    pub fn add(&mut self, r: Range<OrgIdx>) {
        if r.is_empty() {
            return;
        }
        let pos = self.ranges.partition_point(|x| x.start < r.start);
        self.ranges.insert(pos, r);
        let mut merged: Vec<Range<OrgIdx>> = Vec::with_capacity(self.ranges.len());
        for r in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        self.ranges = merged;
    }

    pub fn len(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = OrgIdx> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }
}

/// The cells a batch of changes can affect: criteria (leaves) and, for each, the org units.
#[derive(Debug, Clone, Default)]
pub struct Affected {
    pub cells: BTreeMap<ItemIdx, NodeSet>,
}

impl Affected {
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn cell_count(&self) -> usize {
        self.cells.values().map(NodeSet::len).sum()
    }

    fn add_path(&mut self, org: &OrgTree, c: ItemIdx, from: OrgIdx) {
        let set = self.cells.entry(c).or_default();
        for a in org.path_to_root(from) {
            set.add(a..a + 1);
        }
    }

    fn add_subtree(&mut self, org: &OrgTree, c: ItemIdx, root: OrgIdx) {
        self.cells.entry(c).or_default().add(org.subtree(root));
    }
}

/// Which criteria read which metric and question, and at which levels they count units.
#[derive(Debug, Clone, Default)]
pub struct Readers {
    metric: HashMap<MetricId, Vec<ItemIdx>>,
    question: HashMap<QuestionId, Vec<ItemIdx>>,
    count_levels: HashMap<ItemIdx, Vec<OrgLevel>>,
}

impl Readers {
    pub fn of(fw: &Framework) -> Readers {
        let mut r = Readers::default();
        for c in fw.leaves() {
            let rule = fw.rule_of(c);
            for m in rule.metrics() {
                r.metric.entry(m.clone()).or_default().push(c);
            }
            for q in rule.questions() {
                r.question.entry(q.clone()).or_default().push(c);
            }
            let mut levels = Vec::new();
            collect_levels(&rule, &mut levels);
            if !levels.is_empty() {
                r.count_levels.insert(c, levels);
            }
        }
        for v in r.metric.values_mut().chain(r.question.values_mut()) {
            v.sort_unstable();
            v.dedup();
        }
        r
    }
}

fn collect_levels(rule: &Rule, out: &mut Vec<OrgLevel>) {
    match rule {
        Rule::CountAtLeast { level, .. } => out.push(*level),
        Rule::ByCommunityType { urban, rural } => {
            collect_levels(urban, out);
            collect_levels(rural, out);
        }
        Rule::AllOf { rules } => rules.iter().for_each(|r| collect_levels(r, out)),
        Rule::Weighted { parts } => parts.iter().for_each(|p| collect_levels(&p.rule, out)),
        _ => {}
    }
}

/// Above this many units a criterion's evidence fractions are computed for all units at once.
const PER_UNIT_LIMIT: usize = 64;

impl Engine {
    /// Applies one change if it is newer than what the engine holds; records what it affects.
    /// Returns false for a stale or duplicate fact, or one about an unknown org unit.
    pub fn apply(&mut self, change: &Change, affected: &mut Affected) -> bool {
        let org = self.org.clone();
        match change {
            Change::Statistic(s) => {
                let Some(i) = org.find(&s.org_unit) else {
                    return false;
                };
                if !self.agg.apply_stat(&org, i, s) {
                    return false;
                }
                for &c in self
                    .readers
                    .metric
                    .get(&s.metric)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    affected.add_path(&org, c, i);
                    // A unit judged by its ancestor at a level sees that ancestor's count.
                    for &level in self
                        .readers
                        .count_levels
                        .get(&c)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        if let Some(a) = org.ancestor_at(i, level) {
                            affected.add_subtree(&org, c, a);
                        }
                    }
                }
                true
            }
            Change::Tally(t) => {
                let Some(i) = org.find(&t.org_unit) else {
                    return false;
                };
                if !self.agg.apply_tally(&org, i, t) {
                    return false;
                }
                for &c in self
                    .readers
                    .question
                    .get(&t.question)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    affected.add_path(&org, c, i);
                }
                true
            }
            Change::Evidence(e) => {
                let fw = self.fw.clone();
                let touched = self.evidence.apply(&fw, &org, e);
                for &(c, node) in &touched {
                    // Slots at a unit count for its ancestors and for its whole subtree.
                    affected.add_path(&org, c, node);
                    affected.add_subtree(&org, c, node);
                }
                !touched.is_empty()
            }
        }
    }

    /// Recomputes the affected cells in `board` and the groups above them. Returns how many
    /// criterion cells were recomputed.
    pub fn rescore(&self, board: &mut Scoreboard, affected: &Affected) -> usize {
        let ctx = Context::new(self);
        let m = self.fw.len();
        let mut rows = NodeSet::default();
        let mut count = 0;
        for (&c, nodes) in &affected.cells {
            let rule = self.fw.rule_of(c);
            let compiled: Pair<'_> = ctx.compile_pair(&rule);
            let points = self.fw.item(c).points;
            let all = (nodes.len() > PER_UNIT_LIMIT).then(|| self.evidence.fractions(&self.org, c));
            for node in nodes.iter() {
                let ev = match &all {
                    Some(v) => v[node],
                    None => self.evidence.fraction_at(&self.org, c, node),
                };
                let e = ctx.eval_pair(&compiled, node, Segment::All, ev, None);
                board.cells[node * m + c] = Cell {
                    confirmed: points.scaled(e.confirmed),
                    projected: points.scaled(e.projected),
                };
                count += 1;
            }
            for r in &nodes.ranges {
                rows.add(r.clone());
            }
        }
        for node in rows.iter() {
            roll_up(&self.fw, &mut board.cells[node * m..(node + 1) * m]);
        }
        count
    }
}
