//! Explanations: for any cell, which rule, which facts, which target and how many points were
//! lost — the answer an inspector asks for, point by point.

use serde::Serialize;

use crate::engine::evaluate::Context;
use crate::engine::evidence::SlotStatus;
use crate::engine::{Engine, Scoreboard, Segment};
use crate::framework::ItemIdx;
use crate::interpret::{RuleChoice, rule_choices};
use crate::org::OrgIdx;
use crate::points::Points;

/// How many evidence slots an explanation lists before summarising the rest.
pub const SLOT_LIST_LIMIT: usize = 60;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SurveyStat {
    pub question: String,
    pub rate: Option<f64>,
    pub low: f64,
    pub high: f64,
    pub responses: u64,
    pub positive: u64,
    pub effective_n: f64,
    pub target: f64,
    /// The 95% interval contains the target: the sample cannot tell pass from fail.
    pub straddles_target: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotView {
    pub unit: String,
    pub unit_name: String,
    pub org_unit: String,
    pub org_unit_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    pub status: SlotStatus,
    pub grade: u8,
    pub evidence_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleExplanation {
    pub rule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<&'static str>,
    /// The document's words the target rests on.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub basis: String,
    /// 口径: the office's choices this rule makes that the document does not (weights, partial
    /// credit, bands, how evidence is graded), each with the rule file key that holds it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interpretation: Vec<RuleChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub surveys: Vec<SurveyStat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<SlotView>,
    #[serde(skip_serializing_if = "is_zero")]
    pub evidence_not_listed: usize,
    pub fraction_confirmed: f64,
    pub fraction_projected: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<RuleExplanation>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RuleExplanation {
    pub fn named(rule: &'static str) -> RuleExplanation {
        RuleExplanation {
            rule,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildScore {
    pub code: String,
    pub title: String,
    pub points: Points,
    pub confirmed: Points,
    pub projected: Points,
}

/// A group whose children add up to more than it declares is capped; both numbers are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapNote {
    pub children_confirmed: Points,
    pub children_projected: Points,
    pub declared: Points,
}

/// A figure a criterion reads that is not accepted: why its projected score differs from the
/// confirmed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreviewedFigure {
    pub metric: String,
    pub org_unit: String,
    pub org_unit_name: String,
    pub period: i32,
    /// `pending` (counts in the projected score only) or `returned` (counts nowhere).
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellExplanation {
    pub org_unit: String,
    pub org_unit_name: String,
    pub period: i32,
    pub code: String,
    pub title: String,
    pub key: bool,
    pub points: Points,
    pub confirmed: Points,
    pub projected: Points,
    /// Points short of full marks on the confirmed score.
    pub lost: Points,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleExplanation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped: Option<CapNote>,
    /// Why the projected score is not the confirmed one, when statistics the rule reads are
    /// still pending review or were returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_because: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreviewed: Vec<UnreviewedFigure>,
    #[serde(skip_serializing_if = "is_zero")]
    pub unreviewed_not_listed: usize,
}

impl Engine {
    /// Explains one cell of `board` (which must come from this engine).
    pub fn explain(&self, board: &Scoreboard, node: OrgIdx, item: ItemIdx) -> CellExplanation {
        let fw = &self.fw;
        let it = fw.item(item);
        let cell = board.cell(node, item);
        let unit = self.org.unit(node);
        let mut out = CellExplanation {
            org_unit: unit.id.to_string(),
            org_unit_name: unit.name.clone(),
            period: self.period,
            code: it.code.to_string(),
            title: it.title.clone(),
            key: it.key,
            points: it.points,
            confirmed: cell.confirmed,
            projected: cell.projected,
            lost: it.points - cell.confirmed,
            rule: None,
            children: Vec::new(),
            capped: None,
            projected_because: None,
            unreviewed: Vec::new(),
            unreviewed_not_listed: 0,
        };
        if fw.is_leaf(item) {
            let ctx = Context::new(self);
            let rule = fw.rule_of(item);
            let compiled = ctx.compile_pair(&rule);
            let ev = self.evidence.fractions(&self.org, item)[node];
            let mut x = RuleExplanation::named(rule.kind_name());
            ctx.eval_pair(&compiled, node, Segment::All, ev, Some(&mut x));
            self.unreviewed(&rule, node, &mut out);
            x.interpretation = rule_choices(&rule, &fw.catalog);
            let slots: Vec<SlotView> = self
                .evidence
                .relevant(&self.org, item, node)
                .map(|s| SlotView {
                    unit: s.unit.to_string(),
                    unit_name: fw.units.name_of(&s.unit),
                    org_unit: self.org.unit(s.node).id.to_string(),
                    org_unit_name: self.org.unit(s.node).name.clone(),
                    material: s.material.clone(),
                    status: s.status,
                    grade: s.confirmed,
                    evidence_ids: s.evidence_ids.clone(),
                })
                .collect();
            attach_slots(&mut x, slots);
            out.rule = Some(x);
        } else {
            for &c in fw.children(item) {
                let ci = fw.item(c);
                let cc = board.cell(node, c);
                out.children.push(ChildScore {
                    code: ci.code.to_string(),
                    title: ci.title.clone(),
                    points: ci.points,
                    confirmed: cc.confirmed,
                    projected: cc.projected,
                });
            }
            let sum = board.children_sum(fw, node, item);
            if sum.confirmed > it.points || sum.projected > it.points {
                out.capped = Some(CapNote {
                    children_confirmed: sum.confirmed,
                    children_projected: sum.projected,
                    declared: it.points,
                });
            }
        }
        out
    }
}

impl Engine {
    /// The statistics in `node`'s subtree that `rule` reads and that are not accepted, with the
    /// sentence saying what they do to the scores.
    fn unreviewed(&self, rule: &crate::rules::Rule, node: OrgIdx, out: &mut CellExplanation) {
        let mut found = Vec::new();
        for m in rule.metrics() {
            for year in [self.period, self.period - 1] {
                let Some(a) = self.agg.metric(m, year) else {
                    continue;
                };
                if a.confirmed.is_none() {
                    continue;
                }
                for i in self.org.subtree(node) {
                    if a.own[i].is_some() && !a.state[i].is_accepted() {
                        let u = self.org.unit(i);
                        found.push(UnreviewedFigure {
                            metric: m.to_string(),
                            org_unit: u.id.to_string(),
                            org_unit_name: u.name.clone(),
                            period: year,
                            state: a.state[i].as_str(),
                        });
                    }
                }
            }
        }
        // Answers of survey batches still pending review in the subtree: the most to any one
        // question the rule reads (a respondent answers each of them once).
        let mut answers = 0u64;
        for q in rule.questions() {
            if let Some(a) = self.agg.survey(q, self.period)
                && a.confirmed.is_some()
            {
                answers = answers.max(self.org.subtree(node).map(|i| a.pending_at(i)).sum());
            }
        }
        if found.is_empty() && answers == 0 {
            return;
        }
        let pending = found.iter().filter(|f| f.state == "pending").count();
        let returned = found.len() - pending;
        let mut parts = Vec::new();
        if answers > 0 {
            parts.push(format!(
                "预计分计入 {answers} 份待审核问卷答卷 the projected score counts {answers} survey \
                 answer(s) in batches still pending review; the confirmed score does not"
            ));
        }
        if pending > 0 {
            parts.push(format!(
                "预计分计入 {pending} 项待审核统计数据 the projected score counts {pending} \
                 statistic(s) still pending review; the confirmed score does not"
            ));
        }
        if returned > 0 {
            parts.push(format!(
                "{returned} 项统计数据已退回 {returned} statistic(s) were returned and count \
                 in neither score until filed again"
            ));
        }
        out.projected_because = Some(parts.join("; "));
        found.sort_by(|a, b| {
            (a.state, &a.org_unit, &a.metric).cmp(&(b.state, &b.org_unit, &b.metric))
        });
        if found.len() > SLOT_LIST_LIMIT {
            out.unreviewed_not_listed = found.len() - SLOT_LIST_LIMIT;
            found.truncate(SLOT_LIST_LIMIT);
        }
        out.unreviewed = found;
    }
}

/// Puts the slot list on the evidence part of the explanation (the rule itself, or a part).
fn attach_slots(x: &mut RuleExplanation, mut slots: Vec<SlotView>) {
    fn find(x: &mut RuleExplanation) -> Option<&mut RuleExplanation> {
        if x.rule == "evidence" {
            return Some(x);
        }
        x.parts.iter_mut().find_map(find)
    }
    let Some(target) = find(x) else { return };
    // Missing and returned first: those are what someone has to act on.
    slots.sort_by_key(|s| (s.status, s.org_unit.clone(), s.unit.clone()));
    let accepted = slots
        .iter()
        .filter(|s| s.status == SlotStatus::Accepted)
        .count();
    let pending = slots
        .iter()
        .filter(|s| s.status == SlotStatus::Pending)
        .count();
    target.measured = Some(format!(
        "{accepted} of {} required submissions accepted, {pending} pending review",
        slots.len()
    ));
    target.target = Some("every responsible unit's materials accepted".into());
    if slots.len() > SLOT_LIST_LIMIT {
        target.evidence_not_listed = slots.len() - SLOT_LIST_LIMIT;
        slots.truncate(SLOT_LIST_LIMIT);
    }
    target.evidence = slots;
}
