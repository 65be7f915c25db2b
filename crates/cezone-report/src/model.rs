//! The report models: what a self-score explanation and a checklist say, built from one engine
//! and its scoreboard, independent of the file format.

use std::collections::{BTreeMap, HashMap};

use cezone_domain::calendar::{Checkpoint, Date};
use cezone_domain::engine::{Engine, RuleExplanation, Scoreboard, SlotStatus};
use cezone_domain::framework::ItemIdx;
use cezone_domain::interpret::{Interpretation, interpretations};
use cezone_domain::org::{OrgIdx, OrgLevel};
use cezone_domain::points::Points;
use serde::Serialize;

use crate::ReportError;

/// Where the scores come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ReportSource {
    /// The current scores, as computed at that time.
    Current { computed_at: String },
    /// A frozen snapshot.
    Snapshot {
        id: String,
        checkpoint: String,
        label: String,
        frozen_at: String,
        content_hash: String,
    },
}

impl ReportSource {
    /// One line for a report's header.
    pub fn describe(&self) -> String {
        match self {
            ReportSource::Current { computed_at } => {
                format!("当前分数 current scores, {computed_at}")
            }
            ReportSource::Snapshot {
                id,
                checkpoint,
                label,
                frozen_at,
                content_hash,
            } => {
                let mut s = format!("快照 snapshot {id}, frozen {frozen_at}");
                if !checkpoint.is_empty() {
                    s.push_str(&format!(", checkpoint {checkpoint}"));
                }
                if !label.is_empty() {
                    s.push_str(&format!(", 「{label}」"));
                }
                s.push_str(&format!(", SHA-256 {content_hash}"));
                s
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportMeta {
    pub framework_id: String,
    pub edition: String,
    pub framework_title: String,
    pub org_unit: String,
    pub org_unit_name: String,
    pub period: i32,
    pub source: ReportSource,
    pub generated_at: String,
}

/// What the evidence service says about one record, beyond the review state scoring holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceMeta {
    pub title: String,
    pub sha256: String,
}

/// Evidence record id → its title and file hash.
pub type EvidenceCatalog = HashMap<String, EvidenceMeta>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceLine {
    /// Empty for a material nobody submitted.
    pub evidence_id: String,
    pub title: String,
    pub unit_name: String,
    pub org_unit_name: String,
    pub material: String,
    pub sha256: String,
    pub status: SlotStatus,
    /// Reviewer's grade when accepted.
    pub grade: u8,
}

/// One item of the framework as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemRow {
    pub code: String,
    pub title: String,
    /// 1 for a first-level area.
    pub depth: usize,
    pub key: bool,
    pub leaf: bool,
    pub points: Points,
    pub confirmed: Points,
    pub projected: Points,
    pub lost: Points,
    /// The rule and the facts behind the score, one line per (part of the) rule.
    pub rule_lines: Vec<String>,
    /// Why points were lost; empty at full marks.
    pub lost_reasons: Vec<String>,
    pub materials: String,
    pub responsible: Vec<String>,
    pub evidence: Vec<EvidenceLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AreaSection {
    pub row: ItemRow,
    /// The area's groups and criteria, in framework order.
    pub items: Vec<ItemRow>,
}

/// 评估指标体系自评分说明.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelfScore {
    pub meta: ReportMeta,
    pub max_points: Points,
    pub confirmed: Points,
    pub projected: Points,
    pub areas: Vec<AreaSection>,
    /// ★ criteria, in framework order.
    pub key_criteria: Vec<ItemRow>,
    /// 口径: every choice the scoring makes that the source document does not, with the
    /// document's words and the setting that changes it.
    pub interpretations: Vec<Interpretation>,
}

impl SelfScore {
    pub fn build(
        engine: &Engine,
        board: &Scoreboard,
        node: OrgIdx,
        meta: ReportMeta,
        catalog: &EvidenceCatalog,
    ) -> SelfScore {
        let fw = &engine.fw;
        let row_of = |i: ItemIdx| item_row(engine, board, node, i, catalog);
        let mut areas = Vec::new();
        for &r in fw.roots() {
            let mut items = Vec::new();
            let mut stack: Vec<ItemIdx> = fw.children(r).iter().rev().copied().collect();
            while let Some(i) = stack.pop() {
                items.push(row_of(i));
                stack.extend(fw.children(i).iter().rev().copied());
            }
            areas.push(AreaSection {
                row: row_of(r),
                items,
            });
        }
        let key_criteria = areas
            .iter()
            .flat_map(|a| a.items.iter())
            .filter(|r| r.key && r.leaf)
            .cloned()
            .collect();
        let total = board.total(fw, node);
        SelfScore {
            meta,
            max_points: fw.max_points(),
            confirmed: total.confirmed,
            projected: total.projected,
            areas,
            key_criteria,
            interpretations: interpretations(fw),
        }
    }

    /// Every criterion (leaf) row.
    pub fn criteria(&self) -> impl Iterator<Item = &ItemRow> {
        self.areas
            .iter()
            .flat_map(|a| a.items.iter())
            .filter(|r| r.leaf)
    }
}

pub fn status_label(s: SlotStatus) -> &'static str {
    match s {
        SlotStatus::Missing => "未提交 missing",
        SlotStatus::Returned => "已退回 returned",
        SlotStatus::Pending => "待审核 pending review",
        SlotStatus::Accepted => "已通过 accepted",
    }
}

fn item_row(
    engine: &Engine,
    board: &Scoreboard,
    node: OrgIdx,
    i: ItemIdx,
    catalog: &EvidenceCatalog,
) -> ItemRow {
    let fw = &engine.fw;
    let it = fw.item(i);
    let x = engine.explain(board, node, i);
    let mut rule_lines = Vec::new();
    let mut lost_reasons = Vec::new();
    if let Some(rule) = &x.rule {
        describe_rule(rule, 0, &mut rule_lines);
        // The office's choices, next to the document's basis the lines above quote.
        for c in &rule.interpretation {
            rule_lines.push(format!(
                "口径 interpretation [{}]: {}",
                c.topic.label(),
                c.choice
            ));
        }
        if x.lost > Points::ZERO {
            why_lost(rule, &mut lost_reasons);
        }
    }
    if let Some(cap) = &x.capped {
        rule_lines.push(format!(
            "分项合计 {} 分，按申报分值 {} 分封顶 (children add up to {}, capped at the declared {})",
            cap.children_confirmed, cap.declared, cap.children_confirmed, cap.declared
        ));
    }
    if !x.children.is_empty() {
        rule_lines.push(format!(
            "下级指标得分之和 sum of its {} sub-items",
            x.children.len()
        ));
        if x.lost > Points::ZERO {
            for c in x.children.iter().filter(|c| c.confirmed < c.points) {
                lost_reasons.push(format!(
                    "{} {}：失 {} 分 (lost {})",
                    c.code,
                    c.title,
                    c.points - c.confirmed,
                    c.points - c.confirmed
                ));
            }
        }
    }
    // Statistics still pending review (or returned) are why the projected score differs.
    if let Some(why) = &x.projected_because {
        let mut line = why.clone();
        let named: Vec<String> = x
            .unreviewed
            .iter()
            .take(5)
            .map(|f| {
                format!(
                    "{} {} {} ({})",
                    f.org_unit_name, f.metric, f.period, f.state
                )
            })
            .collect();
        if !named.is_empty() {
            line.push_str(&format!(
                ": {}{}",
                named.join("、"),
                if x.unreviewed.len() + x.unreviewed_not_listed > named.len() {
                    " …"
                } else {
                    ""
                }
            ));
        }
        lost_reasons.push(line);
    }
    if x.lost > Points::ZERO && lost_reasons.is_empty() {
        lost_reasons.push(format!("失 {} 分 (lost {})", x.lost, x.lost));
    }
    let mut evidence = Vec::new();
    if fw.is_leaf(i) {
        for s in engine.evidence.relevant(&engine.org, i, node) {
            let base = EvidenceLine {
                evidence_id: String::new(),
                title: String::new(),
                unit_name: fw.units.name_of(&s.unit),
                org_unit_name: engine.org.unit(s.node).name.clone(),
                material: s.material.clone().unwrap_or_default(),
                sha256: String::new(),
                status: s.status,
                grade: s.confirmed,
            };
            if s.evidence_ids.is_empty() {
                evidence.push(base.clone());
            }
            for id in &s.evidence_ids {
                let meta = catalog.get(id).cloned().unwrap_or_default();
                evidence.push(EvidenceLine {
                    evidence_id: id.clone(),
                    title: meta.title,
                    sha256: meta.sha256,
                    ..base.clone()
                });
            }
        }
    }
    ItemRow {
        code: it.code.to_string(),
        title: it.title.clone(),
        depth: it.code.depth(),
        key: it.key,
        leaf: fw.is_leaf(i),
        points: it.points,
        confirmed: x.confirmed,
        projected: x.projected,
        lost: x.lost,
        rule_lines,
        lost_reasons,
        materials: it.materials.clone(),
        responsible: it.responsible.iter().map(|u| fw.units.name_of(u)).collect(),
        evidence,
    }
}

fn rule_name(rule: &str) -> &'static str {
    match rule {
        "evidence" => "台帐资料 evidence",
        "ratio" => "比例 ratio",
        "per_capita" => "人均 per capita",
        "survey_rate" => "调查比率 survey rate",
        "count_at_least" => "数量 count at least",
        "trend" => "趋势 trend",
        "by_community_type" => "按社区类型 by community type",
        "all_of" => "全部满足 all of",
        "weighted" => "加权 weighted",
        _ => "规则 rule",
    }
}

fn describe_rule(x: &RuleExplanation, depth: usize, out: &mut Vec<String>) {
    let mut line = format!("{}{}", "· ".repeat(depth), rule_name(x.rule));
    if let Some(w) = x.weight {
        line.push_str(&format!(" (权重 weight {w})"));
    }
    if let Some(s) = x.segment {
        line.push_str(&format!(" [{s}]"));
    }
    if let Some(t) = &x.target {
        line.push_str(&format!("；目标 target: {t}"));
    }
    if let Some(m) = &x.measured {
        line.push_str(&format!("；实测 measured: {m}"));
    }
    line.push_str(&format!(
        "；达成 {:.0}% confirmed / {:.0}% projected",
        x.fraction_confirmed * 100.0,
        x.fraction_projected * 100.0
    ));
    out.push(line);
    if !x.basis.is_empty() {
        out.push(format!("{}  依据 basis: {}", "· ".repeat(depth), x.basis));
    }
    for f in &x.facts {
        out.push(format!("{}  事实 fact: {f}", "· ".repeat(depth)));
    }
    for s in &x.surveys {
        let rate = s
            .rate
            .map_or("—".to_string(), |r| format!("{:.1}%", r * 100.0));
        out.push(format!(
            "{}  调查 survey {}: {rate} ({} of {}, 95% CI {:.1}%–{:.1}%, target {:.0}%{})",
            "· ".repeat(depth),
            s.question,
            s.positive,
            s.responses,
            s.low * 100.0,
            s.high * 100.0,
            s.target * 100.0,
            if s.straddles_target {
                ", 样本不足以判定 the sample cannot tell"
            } else {
                ""
            }
        ));
    }
    if let Some(n) = &x.note {
        out.push(format!("{}  注 note: {n}", "· ".repeat(depth)));
    }
    for p in &x.parts {
        describe_rule(p, depth + 1, out);
    }
}

fn why_lost(x: &RuleExplanation, out: &mut Vec<String>) {
    if x.parts.is_empty() {
        if x.fraction_confirmed < 1.0 {
            let mut s = format!(
                "{} 仅达成 {:.0}% (only {:.0}% met)",
                rule_name(x.rule),
                x.fraction_confirmed * 100.0,
                x.fraction_confirmed * 100.0
            );
            if let Some(m) = &x.measured {
                s.push_str(&format!("：{m}"));
            }
            if let Some(t) = &x.target {
                s.push_str(&format!("，目标 target {t}"));
            }
            if x.rule == "evidence" {
                let missing = x
                    .evidence
                    .iter()
                    .filter(|e| matches!(e.status, SlotStatus::Missing | SlotStatus::Returned))
                    .count();
                let pending = x
                    .evidence
                    .iter()
                    .filter(|e| e.status == SlotStatus::Pending)
                    .count();
                s.push_str(&format!(
                    "；{missing} 项未提交或退回 missing or returned, {pending} 项待审核 pending review"
                ));
            }
            out.push(s);
        }
    } else {
        for p in &x.parts {
            why_lost(p, out);
        }
    }
}

/// Whom a checklist group is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A district department (区教育局, 区财政局 …).
    Department,
    /// A town or street (镇/街道), for the materials every town files.
    Town,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    pub criterion: String,
    pub criterion_title: String,
    pub key: bool,
    /// The material asked for (the rule's material kind, or the criterion's 提供材料).
    pub material: String,
    pub unit_name: String,
    pub org_unit_name: String,
    pub status: SlotStatus,
    pub deadline: Date,
    /// Not in (missing or returned) and the deadline has passed.
    pub late: bool,
    /// Records filed for it (pending or returned).
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecklistGroup {
    pub kind: GroupKind,
    pub id: String,
    pub name: String,
    pub required: usize,
    pub accepted: usize,
    pub pending: usize,
    pub missing: usize,
    pub late: usize,
    /// What is still owed: late first, then missing, then pending review.
    pub items: Vec<ChecklistItem>,
}

/// 责任单位材料清单.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checklist {
    pub meta: ReportMeta,
    pub as_of: Date,
    /// The checkpoint whose date is the deadline of every material.
    pub deadline: Checkpoint,
    /// The first checkpoint due on or after `as_of`; none when all are past.
    pub next_checkpoint: Option<Checkpoint>,
    pub groups: Vec<ChecklistGroup>,
}

/// The checkpoint the evidence service also counts lateness against by default.
pub const DEFAULT_DEADLINE: &str = "materials-submitted";

impl Checklist {
    /// `checkpoint` empty: `materials-submitted` when the calendar has it, else the next
    /// checkpoint due, else the last one.
    pub fn build(
        engine: &Engine,
        node: OrgIdx,
        meta: ReportMeta,
        catalog: &EvidenceCatalog,
        checkpoint: &str,
        as_of: Date,
    ) -> Result<Checklist, ReportError> {
        let fw = &engine.fw;
        let cal = &fw.calendar;
        let mut sorted: Vec<&Checkpoint> = cal.checkpoints.iter().collect();
        sorted.sort_by_key(|c| c.due);
        let next_checkpoint = sorted.iter().find(|c| c.due >= as_of).map(|c| (*c).clone());
        let deadline = if checkpoint.is_empty() {
            cal.checkpoint(DEFAULT_DEADLINE)
                .cloned()
                .or_else(|| next_checkpoint.clone())
                .or_else(|| sorted.last().map(|c| (*c).clone()))
        } else {
            cal.checkpoint(checkpoint).cloned()
        };
        let Some(deadline) = deadline else {
            let known: Vec<&str> = cal.checkpoints.iter().map(|c| c.id.as_str()).collect();
            return Err(ReportError::UnknownCheckpoint(
                checkpoint.to_string(),
                if known.is_empty() {
                    "the calendar has none".to_string()
                } else {
                    known.join(", ")
                },
            ));
        };
        let past = as_of > deadline.due;
        let mut groups: BTreeMap<(GroupKind, String), ChecklistGroup> = BTreeMap::new();
        for c in fw.leaves() {
            let it = fw.item(c);
            for s in engine.evidence.relevant(&engine.org, c, node) {
                let per_town = fw.units.get(&s.unit).and_then(|u| u.expands_to()).is_some();
                let (kind, id, name) = if per_town {
                    let town = engine
                        .org
                        .ancestor_at(s.node, OrgLevel::Town)
                        .unwrap_or(s.node);
                    let u = engine.org.unit(town);
                    (GroupKind::Town, u.id.to_string(), u.name.clone())
                } else {
                    (
                        GroupKind::Department,
                        s.unit.to_string(),
                        fw.units.name_of(&s.unit),
                    )
                };
                let g = groups
                    .entry((kind, id.clone()))
                    .or_insert_with(|| ChecklistGroup {
                        kind,
                        id,
                        name,
                        required: 0,
                        accepted: 0,
                        pending: 0,
                        missing: 0,
                        late: 0,
                        items: Vec::new(),
                    });
                g.required += 1;
                let late = match s.status {
                    SlotStatus::Accepted => {
                        g.accepted += 1;
                        continue;
                    }
                    SlotStatus::Pending => {
                        g.pending += 1;
                        false
                    }
                    SlotStatus::Missing | SlotStatus::Returned => {
                        g.missing += 1;
                        past
                    }
                };
                if late {
                    g.late += 1;
                }
                g.items.push(ChecklistItem {
                    criterion: it.code.to_string(),
                    criterion_title: it.title.clone(),
                    key: it.key,
                    material: s.material.clone().unwrap_or_else(|| it.materials.clone()),
                    unit_name: fw.units.name_of(&s.unit),
                    org_unit_name: engine.org.unit(s.node).name.clone(),
                    status: s.status,
                    deadline: deadline.due,
                    late,
                    evidence: s
                        .evidence_ids
                        .iter()
                        .map(|id| match catalog.get(id) {
                            Some(m) if !m.title.is_empty() => m.title.clone(),
                            _ => id.clone(),
                        })
                        .collect(),
                });
            }
        }
        let mut groups: Vec<ChecklistGroup> = groups.into_values().collect();
        for g in &mut groups {
            g.items.sort_by_key(|i| {
                (
                    !i.late,
                    i.status == SlotStatus::Pending,
                    !i.key,
                    i.criterion.clone(),
                )
            });
        }
        Ok(Checklist {
            meta,
            as_of,
            deadline,
            next_checkpoint,
            groups,
        })
    }
}
