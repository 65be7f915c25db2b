//! The phase calendar: phases and checkpoints with their dates, and the plan's own wording kept
//! beside every date so that defects in the plan (days that do not exist, mistyped years) are
//! reported against the value actually used.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::findings::{Finding, FindingKind, Findings, Location, Severity};

/// A calendar date written `YYYY-MM-DD`; a day that does not exist is refused with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

/// The checkpoint lateness is judged against when a question names none: the materials are
/// handed in.
pub const DEFAULT_CHECKPOINT: &str = "materials-submitted";

impl Date {
    pub fn parse(text: &str) -> Result<Date, String> {
        let parts: Vec<&str> = text.trim().split('-').collect();
        let [y, m, d] = parts[..] else {
            return Err(format!("'{text}' is not a date (expected YYYY-MM-DD)"));
        };
        let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) else {
            return Err(format!("'{text}' is not a date (expected YYYY-MM-DD)"));
        };
        NaiveDate::from_ymd_opt(y, m, d)
            .map(Date)
            .ok_or_else(|| format!("'{text}' does not exist in the calendar"))
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub id: String,
    pub number: u32,
    pub name: String,
    /// The plan's wording, e.g. `2013年7月至2014年2月`.
    pub original: String,
    pub start: Date,
    pub end: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: String,
    pub phase: String,
    pub name: String,
    pub original: String,
    pub due: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the plan's "…前" (before a date) means for a checkpoint: the document does not say
/// whether the named day itself is still in time. This is the office's reading (口径).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineBefore {
    /// "2014年4月10日前" is due on 2014-04-10: the named day is the last day in time.
    #[default]
    Inclusive,
    /// "2014年4月10日前" is due on 2014-04-09: the named day is already late.
    Exclusive,
}

impl DeadlineBefore {
    /// The reading in words, Chinese first.
    pub fn describe(self) -> &'static str {
        match self {
            DeadlineBefore::Inclusive => {
                "“某日前”含当日：当日截止 (\"before\" a day includes that day: due on or before it)"
            }
            DeadlineBefore::Exclusive => {
                "“某日前”不含当日：前一日截止 (\"before\" a day excludes it: due the day before)"
            }
        }
    }
}

impl Checkpoint {
    /// How the due date reads in calendars and checklists: `due` is the last day in time.
    pub fn due_wording(&self) -> String {
        format!("{} 截止（含当日）due on or before {}", self.due, self.due)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// How a checkpoint written "…前" is read; validation checks each `due` against it.
    #[serde(default)]
    pub deadline_before: DeadlineBefore,
    #[serde(default, rename = "phase")]
    pub phases: Vec<Phase>,
    #[serde(default, rename = "checkpoint")]
    pub checkpoints: Vec<Checkpoint>,
    /// The line of each phase and checkpoint in the file it was read from, for findings.
    #[serde(skip)]
    pub lines: SourceLines,
}

/// Where entries of a TOML file start (1-based lines), keyed by what findings name them. Not part
/// of the value: two calendars with the same entries are equal wherever they were read from.
#[derive(Debug, Clone, Default)]
pub struct SourceLines(pub std::collections::BTreeMap<String, u32>);

impl PartialEq for SourceLines {
    fn eq(&self, _: &SourceLines) -> bool {
        true
    }
}

impl Eq for SourceLines {}

impl SourceLines {
    pub fn get(&self, key: &str) -> Option<u32> {
        self.0.get(key).copied()
    }

    /// The 1-based number of the first line of `text` (trimmed) for which `hit` holds.
    pub fn find(text: &str, hit: impl Fn(&str) -> bool) -> Option<u32> {
        text.lines()
            .position(|l| hit(l.trim()))
            .and_then(|i| u32::try_from(i + 1).ok())
    }
}

/// Lines of `[[table]]` entries with `id = "…"`: key `"{prefix} {id}"` → the line of the header.
pub(crate) fn entry_lines(text: &str, header: &str, prefix: &str) -> SourceLines {
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<u32> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if t.starts_with('[') {
            current = (t == header).then_some(n);
            continue;
        }
        if let (Some(start), Some(rest)) = (current, t.strip_prefix("id"))
            && let Some(v) = rest.trim_start().strip_prefix('=')
        {
            let id = v.trim().trim_matches('"').to_string();
            out.entry(format!("{prefix} {id}")).or_insert(start);
        }
    }
    SourceLines(out)
}

/// A date as a plan writes it: `2014年2月30日`, `2014年6月`, or `7月` after an earlier year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMention {
    pub year: i32,
    pub month: u32,
    pub day: Option<u32>,
}

impl DateMention {
    pub fn exists(&self) -> bool {
        match self.day {
            Some(d) => NaiveDate::from_ymd_opt(self.year, self.month, d).is_some(),
            None => (1..=12).contains(&self.month),
        }
    }

    pub fn text(&self) -> String {
        match self.day {
            Some(d) => format!("{}年{}月{}日", self.year, self.month, d),
            None => format!("{}年{}月", self.year, self.month),
        }
    }

    fn first_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day.unwrap_or(1))
    }

    fn last_day(&self) -> Option<NaiveDate> {
        match self.day {
            Some(d) => NaiveDate::from_ymd_opt(self.year, self.month, d),
            None => last_day_of_month(self.year, self.month),
        }
    }
}

pub fn last_day_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt())
}

/// Every date mentioned in a piece of plan text, in order; a month without a year takes the
/// year of the mention before it (`2013年6月至7月`).
pub fn mentions(text: &str) -> Vec<DateMention> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut year: Option<i32> = None;
    let mut i = 0;
    let number = |i: &mut usize| -> Option<u32> {
        let start = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        (start < *i).then(|| chars[start..*i].iter().collect::<String>().parse().ok())?
    };
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let Some(n) = number(&mut i) else { continue };
        match chars.get(i) {
            Some('年') => {
                year = Some(n as i32);
                i += 1;
            }
            Some('月') => {
                i += 1;
                let Some(y) = year else { continue };
                let mut day = None;
                let save = i;
                if let Some(d) = number(&mut i) {
                    if chars.get(i) == Some(&'日') {
                        day = Some(d);
                        i += 1;
                    } else {
                        i = save;
                    }
                }
                out.push(DateMention {
                    year: y,
                    month: n,
                    day,
                });
            }
            _ => {}
        }
    }
    out
}

impl Calendar {
    pub fn from_toml(text: &str) -> Result<Calendar, String> {
        let mut cal: Calendar = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut lines = entry_lines(text, "[[phase]]", "phase");
        lines
            .0
            .extend(entry_lines(text, "[[checkpoint]]", "checkpoint").0);
        if let Some(n) = SourceLines::find(text, |l| l.starts_with("deadline_before")) {
            lines.0.insert("deadline_before".into(), n);
        }
        cal.lines = lines;
        Ok(cal)
    }

    pub fn checkpoint(&self, id: &str) -> Option<&Checkpoint> {
        self.checkpoints.iter().find(|c| c.id == id)
    }

    /// A lateness question: the due date of `checkpoint` (empty: `materials-submitted`) and
    /// the day lateness is judged on (`as_of`, YYYY-MM-DD; empty: `today`), or which field is
    /// wrong and why.
    pub fn deadline(
        &self,
        checkpoint: &str,
        as_of: &str,
        today: Date,
    ) -> Result<(Date, Date), (&'static str, String)> {
        let checkpoint = if checkpoint.is_empty() {
            DEFAULT_CHECKPOINT
        } else {
            checkpoint
        };
        let due = self
            .checkpoint(checkpoint)
            .ok_or_else(|| {
                (
                    "checkpoint",
                    format!("'{checkpoint}' is not a checkpoint of the calendar"),
                )
            })?
            .due;
        let as_of = if as_of.is_empty() {
            today
        } else {
            Date::parse(as_of).map_err(|e| ("as_of", e))?
        };
        Ok((due, as_of))
    }

    /// Re-reads the plan's wording of every date and reports each defect beside the value used.
    pub fn check(&self) -> Findings {
        let mut findings = Findings::default();
        let mut all_years: Vec<i32> = self
            .phases
            .iter()
            .flat_map(|p| mentions(&p.original))
            .chain(self.checkpoints.iter().flat_map(|c| mentions(&c.original)))
            .map(|m| m.year)
            .collect();
        all_years.sort_unstable();
        let median = all_years.get(all_years.len() / 2).copied();

        for p in &self.phases {
            let loc = Location::default()
                .with_item(format!("phase {}", p.id))
                .in_file("calendar");
            let ms = mentions(&p.original);
            if ms.is_empty() {
                findings.push(Finding::new(
                    Severity::Warning,
                    FindingKind::DateMismatch,
                    loc.clone(),
                    format!("phase {}: no date found in '{}'", p.id, p.original),
                ));
            } else {
                let first = ms[0];
                let last = *ms.last().unwrap_or(&first);
                compare(
                    &mut findings,
                    &loc,
                    &p.original,
                    first,
                    p.start,
                    true,
                    median,
                    p.correction.as_deref(),
                );
                compare(
                    &mut findings,
                    &loc,
                    &p.original,
                    last,
                    p.end,
                    false,
                    median,
                    p.correction.as_deref(),
                );
            }
            if p.start > p.end {
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::CalendarOrder,
                    loc,
                    format!("phase {} starts {} after it ends {}", p.id, p.start, p.end),
                ));
            }
        }
        let mut phases: Vec<&Phase> = self.phases.iter().collect();
        phases.sort_by_key(|p| p.number);
        for w in phases.windows(2) {
            if w[1].start < w[0].start {
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::CalendarOrder,
                    Location::default()
                        .with_item(format!("phase {}", w[1].id))
                        .in_file("calendar"),
                    format!(
                        "phase {} ({}) starts {} before phase {} ({}) starts {}",
                        w[1].number, w[1].id, w[1].start, w[0].number, w[0].id, w[0].start
                    ),
                ));
            }
        }
        for c in &self.checkpoints {
            let loc = Location::default()
                .with_item(format!("checkpoint {}", c.id))
                .in_file("calendar");
            match mentions(&c.original).first() {
                // "2014年4月10日前": the day named is the deadline or the day after it.
                Some(&m) if m.day.is_some() && c.original.contains('前') && m.exists() => {
                    let expected = match self.deadline_before {
                        DeadlineBefore::Inclusive => m.last_day(),
                        DeadlineBefore::Exclusive => m.last_day().and_then(|d| d.pred_opt()),
                    };
                    if median.is_some_and(|y| (m.year - y).abs() > 2) || expected.is_none() {
                        compare(
                            &mut findings,
                            &loc,
                            &c.original,
                            m,
                            c.due,
                            false,
                            median,
                            c.correction.as_deref(),
                        );
                    } else if expected != Some(c.due.0) {
                        let expected = expected.map(Date).map_or(String::new(), |d| d.to_string());
                        findings.push(Finding::new(
                            if c.correction.is_some() {
                                Severity::Warning
                            } else {
                                Severity::Error
                            },
                            FindingKind::DateMismatch,
                            loc.clone(),
                            format!(
                                "'{}' read with deadline_before = {} is due {expected}, but the calendar uses {}{}",
                                c.original,
                                match self.deadline_before {
                                    DeadlineBefore::Inclusive => "inclusive",
                                    DeadlineBefore::Exclusive => "exclusive",
                                },
                                c.due,
                                c.correction
                                    .as_deref()
                                    .map(|w| format!(" ({w})"))
                                    .unwrap_or_default()
                            ),
                        ));
                    }
                }
                Some(&m) => compare(
                    &mut findings,
                    &loc,
                    &c.original,
                    m,
                    c.due,
                    false,
                    median,
                    c.correction.as_deref(),
                ),
                None => findings.push(Finding::new(
                    Severity::Warning,
                    FindingKind::DateMismatch,
                    loc.clone(),
                    format!("checkpoint {}: no date found in '{}'", c.id, c.original),
                )),
            }
            match self.phases.iter().find(|p| p.id == c.phase) {
                None => findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::UnknownPhase,
                    loc,
                    format!(
                        "checkpoint {} belongs to phase '{}', which does not exist",
                        c.id, c.phase
                    ),
                )),
                Some(p) if c.due < p.start || c.due > p.end => findings.push(Finding::new(
                    Severity::Warning,
                    FindingKind::CalendarOrder,
                    loc,
                    format!(
                        "checkpoint {} is due {} outside its phase {} ({} to {})",
                        c.id, c.due, p.id, p.start, p.end
                    ),
                )),
                Some(_) => {}
            }
        }
        findings
    }
}

/// Compares one date as the plan writes it with the value the calendar uses.
#[allow(clippy::too_many_arguments)]
fn compare(
    findings: &mut Findings,
    loc: &Location,
    original: &str,
    m: DateMention,
    used: Date,
    is_start: bool,
    median_year: Option<i32>,
    correction: Option<&str>,
) {
    let documented = correction.is_some();
    let severity = if documented {
        Severity::Warning
    } else {
        Severity::Error
    };
    let why = correction.map(|c| format!(" ({c})")).unwrap_or_default();
    let used_note = if documented {
        format!("the calendar uses {used}{why}")
    } else {
        format!("the calendar uses {used} without a recorded correction")
    };
    if !m.exists() {
        findings.push(Finding::new(
            severity,
            FindingKind::InvalidDate,
            loc.clone(),
            format!("'{}' in '{original}' does not exist; {used_note}", m.text()),
        ));
        return;
    }
    if let Some(median) = median_year
        && (m.year - median).abs() > 2
    {
        findings.push(Finding::new(
            severity,
            FindingKind::MistypedYear,
            loc.clone(),
            format!(
                "year {} in '{original}' is {} years from the plan's other dates ({median}); {used_note}",
                m.year,
                (m.year - median).abs()
            ),
        ));
        return;
    }
    let range = if is_start {
        m.first_day()
    } else {
        m.last_day()
    };
    let fits = match m.day {
        Some(_) => range == Some(used.0),
        None => used.0.year() == m.year && used.0.month() == m.month,
    };
    if !fits {
        findings.push(Finding::new(
            severity,
            FindingKind::DateMismatch,
            loc.clone(),
            format!("'{original}' says {} but {used_note}", m.text()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mentions_with_inherited_years() {
        let ms = mentions("第一阶段：宣传发动阶段（2013年6月至7月）");
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[1].year, ms[1].month), (2013, 7));
        let ms = mentions("创建资料在2014年2月30日前送至区社区学院");
        assert_eq!(ms[0].day, Some(30));
        assert!(!ms[0].exists());
    }

    #[test]
    fn refuses_nonexistent_dates_in_the_file() {
        assert!(
            Date::parse("2014-02-30")
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(Date::parse("2014-02-28").is_ok());
    }

    fn phase(original: &str, start: &str, end: &str, correction: Option<&str>) -> Phase {
        Phase {
            id: "p".into(),
            number: 1,
            name: "p".into(),
            original: original.into(),
            start: Date::parse(start).unwrap(),
            end: Date::parse(end).unwrap(),
            correction: correction.map(str::to_string),
            note: None,
        }
    }

    #[test]
    fn an_uncorrected_mistyped_year_is_an_error() {
        let cal = Calendar {
            phases: vec![
                phase("2014年3月至4月", "2014-03-01", "2014-04-30", None),
                phase("2104年5月至6月", "2104-05-01", "2104-06-30", None),
                phase("2014年1月至2月", "2014-01-01", "2014-02-28", None),
            ],
            checkpoints: vec![],
            ..Default::default()
        };
        let f = cal.check();
        let typo: Vec<_> = f.of_kind(FindingKind::MistypedYear).collect();
        assert_eq!(typo.len(), 2, "{f:?}");
        assert!(typo.iter().all(|x| x.severity == Severity::Error));
    }

    #[test]
    fn a_recorded_correction_is_a_warning_naming_both_values() {
        let cal = Calendar {
            phases: vec![phase(
                "2014年2月30日",
                "2014-02-28",
                "2014-02-28",
                Some("Feb has 28 days"),
            )],
            checkpoints: vec![],
            ..Default::default()
        };
        let f = cal.check();
        let d: Vec<_> = f.of_kind(FindingKind::InvalidDate).collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].severity, Severity::Warning);
        assert!(d[0].message.contains("2014年2月30日") && d[0].message.contains("2014-02-28"));
    }
}
