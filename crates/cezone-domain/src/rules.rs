//! Scoring rules: how a criterion's points are earned from evidence, statistics and surveys.
//! Rules are plain data (read from a framework's rules file) evaluated by `engine`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::calendar::SourceLines;
use crate::ident::ident_newtype;
use crate::org::{OrgLevel, RegionClass};

ident_newtype!(
    /// A statistic a rule reads (`community_learning_participants`).
    MetricId,
    "a metric",
    "lowercase letters, digits, '_'",
    crate::ident::snake_case
);
ident_newtype!(
    /// A survey question a rule reads.
    QuestionId,
    "a question",
    "lowercase letters, digits, '_'",
    crate::ident::snake_case
);

impl MetricId {
    /// The reserved metric standing for the resident population of the org units concerned.
    pub const POPULATION: &'static str = "population";

    pub fn is_population(&self) -> bool {
        self.0 == Self::POPULATION
    }
}

/// A rate in basis points (1% = 100), written "70%" in rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl Percent {
    pub fn parse(text: &str) -> Result<Percent, String> {
        let t = text.trim();
        let Some(num) = t.strip_suffix('%') else {
            return Err(format!("'{text}' is not a percentage (expected e.g. 70%)"));
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a percentage"))?;
        if !(0.0..=100.0).contains(&v) {
            return Err(format!("'{text}' is outside 0%..100%"));
        }
        Ok(Percent((v * 100.0).round() as u32))
    }

    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}%", self.0 / 100)
        } else {
            write!(f, "{:.2}%", f64::from(self.0) / 100.0)
        }
    }
}

/// An amount of money in fen (分, 1/100 yuan), written in yuan ("2", "1.5", "2元") in rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(pub i64);

impl Fen {
    pub fn parse_yuan(text: &str) -> Result<Fen, String> {
        let t = text.trim().trim_end_matches('元').trim();
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if !digits(int) || (!frac.is_empty() && !digits(frac)) || frac.len() > 2 {
            return Err(format!(
                "'{text}' is not an amount in yuan (expected e.g. 2 or 1.5)"
            ));
        }
        let int: i64 = int.parse().map_err(|_| format!("'{text}' is too large"))?;
        let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
        int.checked_mul(100)
            .and_then(|v| v.checked_add(frac))
            .map(Fen)
            .ok_or_else(|| format!("'{text}' is too large"))
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02} 元", a / 100, a % 100)
    }
}

macro_rules! text_serde {
    ($t:ty, $parse:path) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Text(String),
                    Int(i64),
                    Float(f64),
                }
                let text = match Raw::deserialize(d)? {
                    Raw::Text(t) => t,
                    Raw::Int(i) => i.to_string(),
                    Raw::Float(f) => f.to_string(),
                };
                $parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_serde!(Percent, Percent::parse);

impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}.{:02}", self.0 / 100, (self.0 % 100).abs()))
    }
}

impl<'de> Deserialize<'de> for Fen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        };
        Fen::parse_yuan(&text).map_err(serde::de::Error::custom)
    }
}

/// A target that is either fixed or depends on the district's region class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target<T> {
    ByRegion {
        pearl_river_delta: T,
        less_developed: T,
    },
    Fixed(T),
}

impl<T: Copy> Target<T> {
    pub fn for_region(&self, region: RegionClass) -> T {
        match *self {
            Target::Fixed(t) => t,
            Target::ByRegion {
                pearl_river_delta,
                less_developed,
            } => match region {
                RegionClass::PearlRiverDelta => pearl_river_delta,
                RegionClass::LessDeveloped => less_developed,
            },
        }
    }
}

/// How a measured value short of its target earns points. None of this is in the document,
/// which states targets only: every choice here is the evaluation office's 口径.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partial {
    /// value / target of the points, up to all of them.
    #[default]
    Linear,
    /// All or nothing.
    None,
    /// A tolerance band below a target the document gives as "about" (70%左右): a value from
    /// `from` up to the target earns `credit`, a value below `from` earns nothing. Only for
    /// percentage targets.
    Band {
        from: Percent,
        #[serde(default)]
        credit: BandCredit,
    },
}

/// What a value inside a tolerance band earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandCredit {
    /// value / target of the points.
    #[default]
    Proportional,
    /// All the points: inside the band counts as "about" the target.
    Full,
}

impl Partial {
    /// The fraction of the points a value earns against a positive target (both as fractions
    /// of one, or both in the same unit).
    pub fn credit(self, value: f64, target: f64) -> f64 {
        if target <= 0.0 || value >= target {
            return 1.0;
        }
        match self {
            Partial::Linear => (value / target).clamp(0.0, 1.0),
            Partial::None => 0.0,
            Partial::Band { from, credit } => {
                if value < from.as_fraction() {
                    0.0
                } else {
                    match credit {
                        BandCredit::Proportional => (value / target).clamp(0.0, 1.0),
                        BandCredit::Full => 1.0,
                    }
                }
            }
        }
    }

    /// The office's reading of a value short of `target`, in words (Chinese, then English).
    pub fn describe(self, target: &str) -> String {
        match self {
            Partial::Linear => format!(
                "未达 {target} 时按 实测÷目标 比例得分 (short of {target}: measured ÷ target of the points)"
            ),
            Partial::None => format!("未达 {target} 不得分 (short of {target}: no points)"),
            Partial::Band { from, credit } => match credit {
                BandCredit::Proportional => format!(
                    "“左右”按 {from}–{target} 容差区间：区间内按 实测÷目标 比例得分，低于 {from} 不得分 \
                     (tolerance band {from}–{target}: inside it measured ÷ target of the points, below {from} none)"
                ),
                BandCredit::Full => format!(
                    "“左右”按 {from}–{target} 容差区间：区间内视为达标得满分，低于 {from} 不得分 \
                     (tolerance band {from}–{target}: inside it full points, below {from} none)"
                ),
            },
        }
    }

    /// Which band a value fell in, for explanations.
    pub fn band_applied(self, value: f64, target: f64) -> Option<String> {
        let Partial::Band { from, .. } = self else {
            return None;
        };
        Some(if value >= target {
            "达到目标 at or above the target".to_string()
        } else if value >= from.as_fraction() {
            format!(
                "在容差区间 {from}–{} 内 inside the tolerance band",
                Percent((target * 10_000.0).round() as u32)
            )
        } else {
            format!("低于容差区间下限 {from} below the tolerance band")
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Falling,
    Rising,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedPart {
    pub weight: u32,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    /// Every responsible unit has its materials accepted; the reviewer's grade (0–100) counts.
    Evidence {
        /// Separate material kinds each responsible unit must provide; empty means one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        materials: Vec<String>,
    },
    /// Σ numerator / Σ denominator over the org unit's subtree against a target rate.
    Ratio {
        numerator: MetricId,
        denominator: MetricId,
        target: Target<Percent>,
        #[serde(default)]
        partial: Partial,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        basis: String,
    },
    /// Σ amount (yuan) / resident population against a target amount per resident per year.
    PerCapita {
        amount: MetricId,
        target: Target<Fen>,
        #[serde(default)]
        partial: Partial,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        basis: String,
    },
    /// Population-weighted survey rate of every listed question against the target; all must pass.
    SurveyRate {
        questions: Vec<QuestionId>,
        target: Target<Percent>,
        #[serde(default)]
        partial: Partial,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        basis: String,
    },
    /// Each org unit at `level` reports at least `at_least` of the metric; the share that does.
    CountAtLeast {
        metric: MetricId,
        at_least: i64,
        level: OrgLevel,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        basis: String,
    },
    /// The metric (optionally per resident) moves in `direction` from last period to this one.
    Trend {
        metric: MetricId,
        direction: Direction,
        #[serde(default)]
        per_capita: bool,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        basis: String,
    },
    /// One rule for urban communities and one for rural ones; each applies to its own
    /// communities and both must pass.
    ByCommunityType { urban: Box<Rule>, rural: Box<Rule> },
    /// Every part must pass: the lowest fraction counts.
    AllOf { rules: Vec<Rule> },
    /// The points are split between parts in proportion to their weights.
    Weighted { parts: Vec<WeightedPart> },
}

impl Rule {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Rule::Evidence { .. } => "evidence",
            Rule::Ratio { .. } => "ratio",
            Rule::PerCapita { .. } => "per_capita",
            Rule::SurveyRate { .. } => "survey_rate",
            Rule::CountAtLeast { .. } => "count_at_least",
            Rule::Trend { .. } => "trend",
            Rule::ByCommunityType { .. } => "by_community_type",
            Rule::AllOf { .. } => "all_of",
            Rule::Weighted { .. } => "weighted",
        }
    }

    /// The default rule of a criterion with none attached.
    pub fn evidence() -> Rule {
        Rule::Evidence {
            materials: Vec::new(),
        }
    }

    /// Whether any part of the rule reads evidence.
    pub fn uses_evidence(&self) -> bool {
        match self {
            Rule::Evidence { .. } => true,
            Rule::ByCommunityType { urban, rural } => {
                urban.uses_evidence() || rural.uses_evidence()
            }
            Rule::AllOf { rules } => rules.iter().any(Rule::uses_evidence),
            Rule::Weighted { parts } => parts.iter().any(|p| p.rule.uses_evidence()),
            _ => false,
        }
    }

    /// Metrics the rule reads (the population pseudo-metric excluded).
    pub fn metrics(&self) -> Vec<&MetricId> {
        let mut out = Vec::new();
        self.visit(&mut |r| match r {
            Rule::Ratio {
                numerator,
                denominator,
                ..
            } => {
                out.push(numerator);
                out.push(denominator);
            }
            Rule::PerCapita { amount, .. } => out.push(amount),
            Rule::CountAtLeast { metric, .. } | Rule::Trend { metric, .. } => out.push(metric),
            _ => {}
        });
        out.retain(|m| !m.is_population());
        out
    }

    pub fn questions(&self) -> Vec<&QuestionId> {
        let mut out = Vec::new();
        self.visit(&mut |r| {
            if let Rule::SurveyRate { questions, .. } = r {
                out.extend(questions.iter());
            }
        });
        out
    }

    /// Calls `f` on the rule and on every rule inside it.
    pub(crate) fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Rule)) {
        f(self);
        match self {
            Rule::ByCommunityType { urban, rural } => {
                urban.visit(f);
                rural.visit(f);
            }
            Rule::AllOf { rules } => rules.iter().for_each(|r| r.visit(f)),
            Rule::Weighted { parts } => parts.iter().for_each(|p| p.rule.visit(f)),
            _ => {}
        }
    }

    /// Structural problems, each a sentence naming the field and value.
    pub fn problems(&self, catalog: &Catalog) -> Vec<String> {
        let mut out = Vec::new();
        self.check(catalog, false, &mut out);
        out
    }

    fn check(&self, catalog: &Catalog, in_segment: bool, out: &mut Vec<String>) {
        let metric = |m: &MetricId, field: &str, out: &mut Vec<String>| {
            if !m.is_population() && catalog.metric(m).is_none() {
                out.push(format!("{field} '{m}' is not a declared metric"));
            }
        };
        match self {
            Rule::Evidence { .. } => {}
            Rule::Ratio {
                numerator,
                denominator,
                target,
                partial,
                ..
            } => {
                band_fits(partial, target, out);
                if numerator.is_population() {
                    out.push("numerator cannot be the population".into());
                }
                metric(numerator, "numerator", out);
                metric(denominator, "denominator", out);
            }
            Rule::PerCapita {
                amount, partial, ..
            } => {
                if matches!(partial, Partial::Band { .. }) {
                    out.push(
                        "partial: a tolerance band needs a percentage target; per_capita targets are amounts"
                            .into(),
                    );
                }
                metric(amount, "amount", out);
                if let Some(m) = catalog.metric(amount)
                    && m.unit != MetricUnit::Yuan
                {
                    out.push(format!(
                        "amount '{amount}' is counted in {:?}, not yuan",
                        m.unit
                    ));
                }
            }
            Rule::SurveyRate {
                questions,
                target,
                partial,
                ..
            } => {
                band_fits(partial, target, out);
                if questions.is_empty() {
                    out.push("questions is empty; a survey rate needs at least one".into());
                }
                for q in questions {
                    if catalog.question(q).is_none() {
                        out.push(format!("question '{q}' is not a declared survey question"));
                    }
                }
            }
            Rule::CountAtLeast {
                metric: m,
                at_least,
                ..
            } => {
                metric(m, "metric", out);
                if *at_least < 1 {
                    out.push(format!("at_least is {at_least}; it must be 1 or more"));
                }
            }
            Rule::Trend { metric: m, .. } => metric(m, "metric", out),
            Rule::ByCommunityType { urban, rural } => {
                if in_segment {
                    out.push("by_community_type cannot be nested inside another".into());
                }
                urban.check(catalog, true, out);
                rural.check(catalog, true, out);
            }
            Rule::AllOf { rules } => {
                if rules.is_empty() {
                    out.push("all_of has no rules".into());
                }
                rules.iter().for_each(|r| r.check(catalog, in_segment, out));
            }
            Rule::Weighted { parts } => {
                if parts.is_empty() {
                    out.push("weighted has no parts".into());
                }
                for p in parts {
                    if p.weight == 0 {
                        out.push(format!("a {} part has weight 0", p.rule.kind_name()));
                    }
                    p.rule.check(catalog, in_segment, out);
                }
            }
        }
    }
}

/// A band's lower end must lie below every target it bands.
fn band_fits(partial: &Partial, target: &Target<Percent>, out: &mut Vec<String>) {
    let Partial::Band { from, .. } = partial else {
        return;
    };
    let targets = match *target {
        Target::Fixed(t) => vec![t],
        Target::ByRegion {
            pearl_river_delta,
            less_developed,
        } => vec![pearl_river_delta, less_developed],
    };
    for t in targets {
        if *from >= t {
            out.push(format!(
                "partial: band from {from} is not below the target {t}; a tolerance band lies under its target"
            ));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricUnit {
    Count,
    Person,
    /// Stored in fen (1/100 yuan).
    Yuan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDef {
    pub id: MetricId,
    pub name: String,
    pub unit: MetricUnit,
    /// The largest value any org unit may report, in the stored unit (fen for yuan). Absent:
    /// the unit's default ([`MetricDef::max`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// The most per resident of the org unit (persons per resident, yuan per resident, counts
    /// per resident) where its population for the year is known. Absent: the unit's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_resident: Option<PerResident>,
    /// The level whose org units file it (`community`, `town`, `district`): what a return
    /// owes. Absent: no org unit is held to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<crate::org::OrgLevel>,
    /// Only communities of this type file it (`urban`, `rural`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_type: Option<crate::org::CommunityType>,
}

/// A bound per resident, kept in thousandths so the catalog stays comparable; written as a
/// number (`max_per_resident = 1.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct PerResident(u64);

impl PerResident {
    pub fn milli(self) -> u64 {
        self.0
    }
}

impl TryFrom<f64> for PerResident {
    type Error = String;
    fn try_from(x: f64) -> Result<Self, String> {
        if x.is_finite() && (0.0..=1e9).contains(&x) {
            Ok(PerResident((x * 1000.0).round() as u64))
        } else {
            Err(format!(
                "max_per_resident {x} must be a number from 0 to 1e9"
            ))
        }
    }
}

impl From<PerResident> for f64 {
    fn from(p: PerResident) -> f64 {
        p.0 as f64 / 1000.0
    }
}

impl MetricDef {
    /// The largest plausible value anywhere: the catalog's `max`, else 1,000,000 things,
    /// 20,000,000 persons (more than any district's residents) or 10,000,000,000 yuan.
    pub fn max(&self) -> i64 {
        self.max.unwrap_or(match self.unit {
            MetricUnit::Count => 1_000_000,
            MetricUnit::Person => 20_000_000,
            MetricUnit::Yuan => 1_000_000_000_000,
        })
    }

    /// The most per resident: the catalog's `max_per_resident`, else one person per resident
    /// (a count of people cannot exceed the people living there) and 1,000 yuan per resident;
    /// counts of things have none.
    pub fn max_per_resident(&self) -> Option<PerResident> {
        self.max_per_resident.or(match self.unit {
            MetricUnit::Count => None,
            MetricUnit::Person => Some(PerResident(1_000)),
            MetricUnit::Yuan => Some(PerResident(1_000_000)),
        })
    }

    /// The unit in people's words, Chinese first.
    pub fn unit_label(&self) -> &'static str {
        match self.unit {
            MetricUnit::Count => "个 count",
            MetricUnit::Person => "人 persons",
            MetricUnit::Yuan => "元 yuan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// 0 = no, 1 = yes.
    YesNo,
    /// 1..=5; `satisfied_from` and above count as satisfied.
    Likert5,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionDef {
    pub id: QuestionId,
    pub text: String,
    pub kind: QuestionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfied_from: Option<u8>,
}

impl QuestionDef {
    /// Whether `answer` is a valid answer, and if so whether it counts as positive.
    pub fn judge(&self, answer: i32) -> Result<bool, String> {
        match self.kind {
            QuestionKind::YesNo => match answer {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(format!(
                    "answer {answer} to '{}' is out of range: a yes/no answer is 0 or 1",
                    self.id
                )),
            },
            QuestionKind::Likert5 => {
                if (1..=5).contains(&answer) {
                    Ok(answer >= i32::from(self.satisfied_from.unwrap_or(4)))
                } else {
                    Err(format!(
                        "answer {answer} to '{}' is out of range: a Likert answer is 1 to 5",
                        self.id
                    ))
                }
            }
        }
    }
}

/// Metrics and survey questions a framework's rules may name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default, rename = "metric")]
    pub metrics: Vec<MetricDef>,
    #[serde(default, rename = "question")]
    pub questions: Vec<QuestionDef>,
}

impl Catalog {
    pub fn metric(&self, id: &MetricId) -> Option<&MetricDef> {
        self.metrics.iter().find(|m| &m.id == id)
    }

    pub fn question(&self, id: &QuestionId) -> Option<&QuestionDef> {
        self.questions.iter().find(|q| &q.id == id)
    }
}

/// The contents of a rules file: the catalog and one rule per criterion code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesFile {
    #[serde(flatten)]
    pub catalog: Catalog,
    #[serde(default)]
    pub rules: BTreeMap<String, Rule>,
    /// The line each criterion's rule starts on, keyed by code, for findings.
    #[serde(skip)]
    pub lines: SourceLines,
}

impl RulesFile {
    pub fn from_toml(text: &str) -> Result<RulesFile, String> {
        let mut file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut lines = std::collections::BTreeMap::new();
        for code in file.rules.keys() {
            let quoted = format!("[rules.\"{code}\"]");
            let bare = format!("[rules.{code}]");
            let inline = format!("\"{code}\"");
            if let Some(n) = SourceLines::find(text, |l| l == quoted || l == bare)
                .or_else(|| SourceLines::find(text, |l| l.starts_with(&inline)))
            {
                lines.insert(code.clone(), n);
            }
        }
        file.lines = SourceLines(lines);
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(Percent::parse("70%").unwrap(), Percent(7000));
        assert_eq!(Percent::parse("12.5%").unwrap(), Percent(1250));
        assert!(Percent::parse("70").is_err());
        assert!(Percent::parse("170%").is_err());
        assert_eq!(Fen::parse_yuan("2").unwrap(), Fen(200));
        assert_eq!(Fen::parse_yuan("1.5").unwrap(), Fen(150));
        assert_eq!(Fen::parse_yuan("2元").unwrap(), Fen(200));
        assert!(Fen::parse_yuan("1.234").is_err());
        assert!(Fen::parse_yuan("-1").is_err());
    }

    #[test]
    fn region_targets_choose_by_class() {
        let t: Target<Percent> = toml::from_str::<BTreeMap<String, Target<Percent>>>(
            "t = { pearl_river_delta = \"50%\", less_developed = \"30%\" }",
        )
        .unwrap()
        .remove("t")
        .unwrap();
        assert_eq!(t.for_region(RegionClass::PearlRiverDelta), Percent(5000));
        assert_eq!(t.for_region(RegionClass::LessDeveloped), Percent(3000));
    }

    fn band_rule(text: &str) -> Rule {
        toml::from_str::<BTreeMap<String, Rule>>(text)
            .unwrap()
            .remove("r")
            .unwrap()
    }

    #[test]
    fn a_tolerance_band_credits_inside_it_and_nothing_below() {
        let rule = band_rule(
            r#"r = { kind = "ratio", numerator = "a", denominator = "b", target = "70%", partial = { band = { from = "65%" } } }"#,
        );
        let Rule::Ratio { partial, .. } = rule else {
            panic!("{rule:?}")
        };
        assert_eq!(
            partial,
            Partial::Band {
                from: Percent(6500),
                credit: BandCredit::Proportional
            }
        );
        assert_eq!(partial.credit(0.72, 0.70), 1.0);
        assert!((partial.credit(0.67, 0.70) - 0.67 / 0.70).abs() < 1e-9);
        assert_eq!(partial.credit(0.649, 0.70), 0.0);
        assert!(
            partial
                .band_applied(0.67, 0.70)
                .unwrap()
                .contains("65%–70%")
        );
        let full = Partial::Band {
            from: Percent(6500),
            credit: BandCredit::Full,
        };
        assert_eq!(full.credit(0.66, 0.70), 1.0);
        // Linear, the default, still credits any value in proportion.
        assert!((Partial::Linear.credit(0.35, 0.70) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_band_must_lie_under_a_percentage_target() {
        let rule = band_rule(
            r#"r = { kind = "ratio", numerator = "a", denominator = "population", target = "70%", partial = { band = { from = "75%" } } }"#,
        );
        let catalog: Catalog =
            toml::from_str("[[metric]]\nid = \"a\"\nname = \"a\"\nunit = \"count\"\n").unwrap();
        let problems = rule.problems(&catalog);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("band from 75%") && p.contains("70%")),
            "{problems:?}"
        );
    }

    #[test]
    fn judges_answers() {
        let q = QuestionDef {
            id: QuestionId::parse("satisfaction").unwrap(),
            text: String::new(),
            kind: QuestionKind::Likert5,
            satisfied_from: Some(4),
        };
        assert_eq!(q.judge(4), Ok(true));
        assert_eq!(q.judge(3), Ok(false));
        assert!(q.judge(6).unwrap_err().contains("out of range"));
    }

    #[test]
    fn reports_unknown_metric_and_zero_weight() {
        let rule: Rule = toml::from_str::<BTreeMap<String, Rule>>(
            r#"r = { kind = "weighted", parts = [ { weight = 0, rule = { kind = "trend", metric = "nope", direction = "falling" } } ] }"#,
        )
        .unwrap()
        .remove("r")
        .unwrap();
        let problems = rule.problems(&Catalog::default());
        assert!(
            problems.iter().any(|p| p.contains("'nope'")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("weight 0")),
            "{problems:?}"
        );
    }
}
