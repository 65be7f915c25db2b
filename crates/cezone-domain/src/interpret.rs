//! 口径: the choices the source document leaves open and the evaluation office makes. The
//! document gives each criterion its points, its materials and (sometimes) a target; how
//! evidence is graded, how a value short of a target earns points, how a criterion's points are
//! split between evidence and a target, what "左右" and "…前" mean — none of that is in it.
//! Every such choice is listed here with the document's own words beside it and the setting
//! that changes it, and a criterion's explanation carries the choices its rule makes.

use serde::Serialize;

use crate::framework::Framework;
use crate::org::OrgLevel;
use crate::points::Points;
use crate::rules::{Catalog, Direction, Partial, QuestionKind, Rule, Target};

/// What kind of choice an interpretation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// How materials earn points (every unit, the reviewer's grade).
    EvidenceGrading,
    /// How a criterion's points are split between its parts.
    Weights,
    /// How a value short of its target earns points.
    PartialCredit,
    /// The band a "左右" (about) target is given.
    ToleranceBand,
    /// How a count per org unit earns points.
    CountShare,
    /// How a trend is judged.
    Trend,
    /// How urban and rural targets combine.
    CommunityTypes,
    /// How survey answers make a rate.
    Survey,
    /// A group whose criteria add up to more than it declares.
    GroupCap,
    /// The framework's criteria add up to another total than it declares.
    Total,
    /// What "…前" (before a date) means.
    Deadline,
    /// A date the plan writes wrongly or only to the month.
    DateReading,
    /// A spelling of a unit the document never uses.
    AddedAlias,
    /// Which of the document's names for a unit people see.
    UnitName,
}

impl Topic {
    /// Chinese first, English beside it.
    pub fn label(self) -> &'static str {
        match self {
            Topic::EvidenceGrading => "材料评分 evidence grading",
            Topic::Weights => "分值分配 weights",
            Topic::PartialCredit => "未达标得分 partial credit",
            Topic::ToleranceBand => "“左右”容差 tolerance band",
            Topic::CountShare => "按单位计数 count share",
            Topic::Trend => "趋势判定 trend",
            Topic::CommunityTypes => "城乡分类 community types",
            Topic::Survey => "调查比率 survey rate",
            Topic::GroupCap => "分组封顶 group cap",
            Topic::Total => "总分 total",
            Topic::Deadline => "“前”的截止 deadline",
            Topic::DateReading => "日期解读 date reading",
            Topic::AddedAlias => "增设别名 added alias",
            Topic::UnitName => "单位名称 unit name",
        }
    }
}

/// One choice the document does not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interpretation {
    /// What it applies to: criterion codes, a group, a checkpoint, a unit, the framework.
    pub scope: String,
    pub topic: Topic,
    /// What the document says on the matter, quoted; empty when it says nothing.
    pub document: String,
    /// The office's choice (口径), Chinese then English.
    pub choice: String,
    /// Where the office changes it for an edition.
    pub setting: String,
}

/// A choice a rule makes, for one criterion's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChoice {
    pub topic: Topic,
    pub choice: String,
    /// The rule file key that holds it, relative to the criterion's `[rules."code"]` entry.
    pub key: String,
}

fn target_text<T: Copy + std::fmt::Display>(t: &Target<T>) -> String {
    match t {
        Target::Fixed(v) => v.to_string(),
        Target::ByRegion {
            pearl_river_delta,
            less_developed,
        } => format!("{pearl_river_delta}（珠三角）/ {less_developed}（欠发达）"),
    }
}

const EVIDENCE_CHOICE: &str = "每个负责单位（各镇（街道）为每个镇街）均须提交所列材料，按审核等级 0–100 计分，\
     未提交或退回的计 0，所有应交材料取平均 (every responsible unit — each town for 各镇（街道） — must \
     have its materials accepted; the reviewer's grade 0–100 counts, a missing or returned one 0, \
     averaged over every required submission)";

fn level_name(level: OrgLevel) -> &'static str {
    match level {
        OrgLevel::Province => "省",
        OrgLevel::City => "市",
        OrgLevel::District => "区",
        OrgLevel::Town => "镇（街道）",
        OrgLevel::Community => "居（村）委",
    }
}

/// The choices a criterion's rule makes, in the order of its parts.
pub fn rule_choices(rule: &Rule, catalog: &Catalog) -> Vec<RuleChoice> {
    let mut out = Vec::new();
    choices(rule, catalog, "", &mut out);
    out
}

fn choices(rule: &Rule, catalog: &Catalog, key: &str, out: &mut Vec<RuleChoice>) {
    let at = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    let partial_choice = |partial: &Partial, target: String, out: &mut Vec<RuleChoice>| {
        let topic = if matches!(partial, Partial::Band { .. }) {
            Topic::ToleranceBand
        } else {
            Topic::PartialCredit
        };
        out.push(RuleChoice {
            topic,
            choice: partial.describe(&target),
            key: at("partial"),
        });
    };
    match rule {
        Rule::Evidence { .. } => out.push(RuleChoice {
            topic: Topic::EvidenceGrading,
            choice: EVIDENCE_CHOICE.to_string(),
            key: at("kind"),
        }),
        Rule::Ratio {
            target, partial, ..
        } => partial_choice(partial, target_text(target), out),
        Rule::PerCapita {
            target, partial, ..
        } => partial_choice(partial, target_text(target), out),
        Rule::SurveyRate {
            questions,
            target,
            partial,
            ..
        } => {
            let mut s = "问卷题目由评估办公室拟定；按常住人口加权计算调查比率；".to_string();
            if questions.len() > 1 {
                s.push_str("各问题分别计算，取最低者；");
            }
            for q in questions {
                if let Some(def) = catalog.question(q)
                    && def.kind == QuestionKind::Likert5
                {
                    s.push_str(&format!(
                        "“{}”5 级量表中 {} 级及以上计为肯定；",
                        def.id,
                        def.satisfied_from.unwrap_or(4)
                    ));
                }
            }
            s.push_str(
                "(the questions' wording is the office's; rates weighted by resident population; with \
                 several questions the lowest counts; a Likert answer counts as positive from the level \
                 named)",
            );
            out.push(RuleChoice {
                topic: Topic::Survey,
                choice: s,
                key: at("questions"),
            });
            partial_choice(partial, target_text(target), out);
        }
        Rule::CountAtLeast { level, .. } => out.push(RuleChoice {
            topic: Topic::CountShare,
            choice: format!(
                "按达到要求的{}所占比例得分 (the share of {} units that meet it earns that share of the \
                 points)",
                level_name(*level),
                level.as_str()
            ),
            key: at("level"),
        }),
        Rule::Trend {
            direction,
            per_capita,
            ..
        } => {
            let (zh, en) = match direction {
                Direction::Rising => ("较上一年有增加即得分，否则不得分", "any rise on the year before earns the points, otherwise none"),
                Direction::Falling => ("较上一年有下降即得分，否则不得分", "any fall on the year before earns the points, otherwise none"),
            };
            let mut s = format!("{zh}（“明显”不作量化）");
            if *per_capita {
                s.push_str("；发生率按每万常住人口计");
            }
            s.push_str(&format!(" ({en}; \"明显\" is not quantified"));
            if *per_capita {
                s.push_str("; the rate is per 10,000 residents");
            }
            s.push(')');
            out.push(RuleChoice {
                topic: Topic::Trend,
                choice: s,
                key: at("direction"),
            });
        }
        Rule::ByCommunityType { urban, rural } => {
            out.push(RuleChoice {
                topic: Topic::CommunityTypes,
                choice: "城市、农村社区各按本类目标计算，两类都有时取较低者 (urban and rural communities \
                         each against their own target; where both exist the lower counts)"
                    .to_string(),
                key: at("kind"),
            });
            choices(urban, catalog, &at("urban"), out);
            choices(rural, catalog, &at("rural"), out);
        }
        Rule::AllOf { rules } => {
            out.push(RuleChoice {
                topic: Topic::Weights,
                choice: "各部分都须满足，取最低者 (every part must be met; the lowest counts)".into(),
                key: at("rules"),
            });
            for (i, r) in rules.iter().enumerate() {
                choices(r, catalog, &at(&format!("rules[{i}]")), out);
            }
        }
        Rule::Weighted { parts } => {
            let ratio: Vec<String> = parts.iter().map(|p| p.weight.to_string()).collect();
            let names: Vec<&str> = parts.iter().map(|p| part_name(&p.rule)).collect();
            out.push(RuleChoice {
                topic: Topic::Weights,
                choice: format!(
                    "本项分值按 {} 分配给 {} (points split {} between {})",
                    ratio.join(" : "),
                    names.join(" : "),
                    ratio.join(" : "),
                    parts
                        .iter()
                        .map(|p| p.rule.kind_name())
                        .collect::<Vec<_>>()
                        .join(" : ")
                ),
                key: at("parts.weight"),
            });
            for (i, p) in parts.iter().enumerate() {
                choices(&p.rule, catalog, &at(&format!("parts[{i}].rule")), out);
            }
        }
    }
}

fn part_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::Evidence { .. } => "材料",
        Rule::Ratio { .. } => "比例目标",
        Rule::PerCapita { .. } => "人均目标",
        Rule::SurveyRate { .. } => "调查目标",
        Rule::CountAtLeast { .. } => "数量要求",
        Rule::Trend { .. } => "趋势",
        Rule::ByCommunityType { .. } => "城乡目标",
        Rule::AllOf { .. } => "全部满足",
        Rule::Weighted { .. } => "加权",
    }
}

/// The document's words a rule rests on: every `basis` it quotes.
pub fn rule_basis(rule: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(r: &Rule, out: &mut Vec<String>) {
        match r {
            Rule::Ratio { basis, .. }
            | Rule::PerCapita { basis, .. }
            | Rule::SurveyRate { basis, .. }
            | Rule::CountAtLeast { basis, .. }
            | Rule::Trend { basis, .. } => {
                if !basis.is_empty() {
                    out.push(basis.clone());
                }
            }
            Rule::ByCommunityType { urban, rural } => {
                walk(urban, out);
                walk(rural, out);
            }
            Rule::AllOf { rules } => rules.iter().for_each(|r| walk(r, out)),
            Rule::Weighted { parts } => parts.iter().for_each(|p| walk(&p.rule, out)),
            Rule::Evidence { .. } => {}
        }
    }
    walk(rule, &mut out);
    out
}

/// Every choice the framework package makes that its source document does not.
pub fn interpretations(fw: &Framework) -> Vec<Interpretation> {
    let mut out = Vec::new();

    // Criteria scored on evidence alone: one entry for all of them.
    let evidence_only: Vec<String> = fw
        .leaves()
        .filter(|&i| fw.item(i).rule.is_none())
        .map(|i| fw.item(i).code.to_string())
        .collect();
    if !evidence_only.is_empty() {
        out.push(Interpretation {
            scope: evidence_only.join(" "),
            topic: Topic::EvidenceGrading,
            document: "提供材料（各项所列材料）".into(),
            choice: format!("仅凭材料评分：{EVIDENCE_CHOICE}"),
            setting: "rules.toml: a [rules.\"<code>\"] entry gives the criterion its own rule"
                .into(),
        });
    }

    for i in fw.leaves() {
        let it = fw.item(i);
        let Some(rule) = &it.rule else { continue };
        let basis = rule_basis(rule).join("；");
        for c in rule_choices(rule, &fw.catalog) {
            let document = match c.topic {
                Topic::Weights => format!("本项 {} 分，文件未规定如何分配", it.points),
                Topic::EvidenceGrading => format!("提供材料：{}", it.materials),
                _ => basis.clone(),
            };
            out.push(Interpretation {
                scope: it.code.to_string(),
                topic: c.topic,
                document,
                choice: c.choice,
                setting: format!("rules.toml [rules.\"{}\"] {}", it.code, c.key),
            });
        }
    }

    // Groups whose criteria add up to more than they declare.
    for (i, it) in fw.items().iter().enumerate() {
        let kids = fw.children(i);
        if kids.is_empty() || !it.declared {
            continue;
        }
        let sum: Points = kids.iter().map(|&c| fw.item(c).points).sum();
        if sum > it.points {
            let parts: Vec<String> = kids
                .iter()
                .map(|&c| format!("{} {}分", fw.item(c).code, fw.item(c).points))
                .collect();
            out.push(Interpretation {
                scope: it.code.to_string(),
                topic: Topic::GroupCap,
                document: format!(
                    "{}（{}分）；其下 {} 合计 {sum} 分",
                    it.title,
                    it.points,
                    parts.join("、")
                ),
                choice: format!(
                    "得分按申报的 {} 分封顶 (scores are capped at the declared {}; the criteria keep their own points)",
                    it.points, it.points
                ),
                setting: "none: a group never earns more than it declares (its points are in indicators.csv)"
                    .into(),
            });
        }
    }

    if let Some(total) = fw.meta.total_points {
        let leaves: Points = fw.leaves().map(|i| fw.item(i).points).sum();
        if leaves != total {
            out.push(Interpretation {
                scope: fw.meta.id.to_string(),
                topic: Topic::Total,
                document: format!(
                    "一级指标合计 {} 分；三级指标合计 {leaves} 分",
                    fw.max_points()
                ),
                choice: format!(
                    "满分按声明的 {total} 分计，分组封顶后最多可得 {} 分 (full marks are the declared \
                     {total}; with groups capped at most {} can be earned)",
                    fw.max_points(),
                    fw.max_points()
                ),
                setting: "framework.toml total_points".into(),
            });
        }
    }

    let cal = &fw.calendar;
    for c in &cal.checkpoints {
        if c.original.contains('前') {
            out.push(Interpretation {
                scope: format!("checkpoint {}", c.id),
                topic: Topic::Deadline,
                document: c.original.clone(),
                choice: format!("{} → {}", cal.deadline_before.describe(), c.due_wording()),
                setting: "calendar.toml deadline_before".into(),
            });
        }
        for why in [&c.correction, &c.note].into_iter().flatten() {
            out.push(Interpretation {
                scope: format!("checkpoint {}", c.id),
                topic: Topic::DateReading,
                document: c.original.clone(),
                choice: format!("按 {} 计 ({why})", c.due),
                setting: format!("calendar.toml checkpoint {} due", c.id),
            });
        }
    }
    for p in &cal.phases {
        for why in [&p.correction, &p.note].into_iter().flatten() {
            out.push(Interpretation {
                scope: format!("phase {}", p.id),
                topic: Topic::DateReading,
                document: p.original.clone(),
                choice: format!("按 {} 至 {} 计 ({why})", p.start, p.end),
                setting: format!("calendar.toml phase {} start/end", p.id),
            });
        }
    }

    for u in &fw.units.units {
        if let Some(plan) = &u.plan_name {
            out.push(Interpretation {
                scope: u.id.to_string(),
                topic: Topic::UnitName,
                document: format!("分工表写“{}”；工作分工写“{plan}”", u.name),
                choice: format!(
                    "报告、清单和页面显示分工表的写法“{}”；“{plan}”也读作本单位 (reports, checklists and \
                     the page show the table's spelling; the plan's long form is read as the same unit)",
                    u.name
                ),
                setting: "units.toml name / plan_name".into(),
            });
        }
        if !u.added_aliases.is_empty() {
            out.push(Interpretation {
                scope: u.id.to_string(),
                topic: Topic::AddedAlias,
                document: String::new(),
                choice: format!(
                    "导入时“{}”也读作“{}”，并报告为增设别名 (also read as {} on import, reported as an \
                     added alias; the document never writes it)",
                    u.added_aliases.join("”、“"),
                    u.name,
                    u.name
                ),
                setting: "units.toml added_aliases".into(),
            });
        }
    }
    out
}
