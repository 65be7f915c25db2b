//! The benchmark table and its JSON form (field names are stable; newer fields are added
//! beside the old ones).

use serde::Serialize;

pub use crate::sample::{Spread, quantile};

/// What a row's target asks, in a form a verdict can be computed from. The row's `target`
/// text says the same for people.
#[derive(Debug, Clone, PartialEq)]
pub enum Goal {
    /// ours / baseline at least this (throughputs).
    RatioAtLeast(f64),
    /// baseline / ours at least this (times): the ratio at most 1 / this.
    FasterBy(f64),
    /// ours below this (in the row's unit).
    Below(f64),
    /// Every one of these.
    All(Vec<Goal>),
}

/// met, missed, or inconclusive (the spread crosses the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Met,
    Missed,
    Inconclusive,
}

impl Verdict {
    fn of_range(lo: f64, hi: f64, ok: impl Fn(f64) -> bool) -> Verdict {
        match (ok(lo), ok(hi)) {
            (true, true) => Verdict::Met,
            (false, false) => Verdict::Missed,
            _ => Verdict::Inconclusive,
        }
    }
}

impl Goal {
    /// The verdict for a row: the median must meet the goal and so must the whole spread
    /// (p10–p90) for "met"; neither for "missed".
    pub fn judge(&self, row: &Row) -> Option<Verdict> {
        let range = |point: Option<f64>, spread: Option<Band>| -> Option<(f64, f64, f64)> {
            let p = point?;
            let (lo, hi) = spread.map_or((p, p), |b| (b.p10.min(p), b.p90.max(p)));
            Some((lo, p, hi))
        };
        let judged = |(lo, p, hi): (f64, f64, f64), ok: &dyn Fn(f64) -> bool| {
            let v = Verdict::of_range(lo, hi, ok);
            // A median on the wrong side with the spread crossing is still inconclusive.
            if v == Verdict::Met && !ok(p) {
                Verdict::Inconclusive
            } else {
                v
            }
        };
        match self {
            Goal::RatioAtLeast(x) => {
                Some(judged(range(row.ratio, row.ratio_spread)?, &|r| r >= *x))
            }
            Goal::FasterBy(x) => Some(judged(range(row.ratio, row.ratio_spread)?, &|r| {
                r <= 1.0 / *x
            })),
            Goal::Below(x) => Some(judged(range(Some(row.ours), row.ours_spread)?, &|v| v < *x)),
            Goal::All(goals) => {
                let vs: Vec<Verdict> = goals.iter().filter_map(|g| g.judge(row)).collect();
                if vs.is_empty() {
                    None
                } else if vs.contains(&Verdict::Missed) {
                    Some(Verdict::Missed)
                } else if vs.contains(&Verdict::Inconclusive) {
                    Some(Verdict::Inconclusive)
                } else {
                    Some(Verdict::Met)
                }
            }
        }
    }
}

/// Where the middle 80 % of a row's samples lie.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    pub p10: f64,
    pub p90: f64,
}

impl From<Spread> for Band {
    fn from(s: Spread) -> Band {
        Band {
            p10: s.p10,
            p90: s.p90,
        }
    }
}

/// How many samples each side of a row had.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Repetitions {
    pub ours: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub ours: f64,
    /// None where the workload has no baseline.
    pub baseline: Option<f64>,
    /// ours / baseline.
    pub ratio: Option<f64>,
    pub target: String,
    pub note: String,
    /// "lower" where a smaller figure is better (times, memory): the ratio ours / baseline is
    /// then below 1 when ours is faster. Absent where not stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub better: Option<&'static str>,
    /// Samples behind `ours` and `baseline` (turns, windows, runs or repeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetitions: Option<Repetitions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ours_spread: Option<Band>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_spread: Option<Band>,
    /// The spread of the ratio over interleaved pairs (turns, windows, files or repeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_spread: Option<Band>,
    /// met, missed or inconclusive, where the row has a target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(skip)]
    pub goal: Option<Goal>,
}

impl Row {
    /// Sets ours, the baseline and the ratio from measured spreads: the medians, the ratio of
    /// the medians unless `ratio` gives it (a ratio's own median), and the bands.
    pub fn spreads(&mut self, ours: Spread, baseline: Option<Spread>, ratio: Option<Spread>) {
        self.ours = ours.median;
        self.ours_spread = Some(ours.into());
        self.baseline = baseline.map(|b| b.median);
        self.baseline_spread = baseline.map(Band::from);
        self.ratio = ratio
            .map(|r| r.median)
            .or_else(|| self.baseline.filter(|b| *b != 0.0).map(|b| self.ours / b));
        self.ratio_spread = ratio.map(Band::from);
        self.repetitions = Some(Repetitions {
            ours: ours.n,
            baseline: baseline.map(|b| b.n),
        });
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub size: String,
    /// How many times the whole table ran (`--repeat`); each row's figures are then medians.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<usize>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn new(size: &str) -> Report {
        Report {
            format: "cezone.bench.v1",
            size: size.to_string(),
            repeats: None,
            rows: Vec::new(),
        }
    }

    /// Adds a row and returns it for its spreads and goal.
    pub fn push(
        &mut self,
        workload: &str,
        metric: &str,
        unit: &str,
        ours: f64,
        baseline: Option<f64>,
        target: &str,
        note: &str,
    ) -> &mut Row {
        let ratio = baseline.filter(|b| *b != 0.0).map(|b| ours / b);
        self.rows.push(Row {
            workload: workload.into(),
            metric: metric.into(),
            unit: unit.into(),
            ours,
            baseline,
            ratio,
            target: target.into(),
            note: note.into(),
            better: None,
            repetitions: None,
            ours_spread: None,
            baseline_spread: None,
            ratio_spread: None,
            verdict: None,
            goal: None,
        });
        self.rows.last_mut().expect("just pushed")
    }

    /// Marks the last row pushed as lower-is-better; the table then shows baseline / ours as
    /// "N× faster" (or "N× slower") beside the ratio.
    pub fn lower_is_better(&mut self) {
        if let Some(r) = self.rows.last_mut() {
            r.better = Some("lower");
        }
    }

    /// The last row shows the baseline's figure beside ours but forms no ratio: a latency of
    /// tens of milliseconds against the raw broker's one (a millisecond, mostly scheduling
    /// noise) says nothing stable; such rows have absolute targets.
    pub fn no_ratio(&mut self) {
        if let Some(r) = self.rows.last_mut() {
            r.ratio = None;
            r.ratio_spread = None;
        }
    }

    /// Sets the last row's goal.
    pub fn goal(&mut self, goal: Goal) {
        if let Some(r) = self.rows.last_mut() {
            r.goal = Some(goal);
        }
    }

    /// Computes every row's verdict from its goal and spreads.
    pub fn judge(&mut self) {
        for r in &mut self.rows {
            r.verdict = r.goal.as_ref().and_then(|g| g.judge(r));
        }
    }

    /// One report from the same table run several times: per row (by workload and metric),
    /// the median of ours, of the baseline and of the ratio, with the ratio's spread over the
    /// runs (or the widest band a run gave, whichever is wider) and the runs' notes of the
    /// first.
    pub fn merge(runs: Vec<Report>) -> Report {
        let Some(first) = runs.first().cloned() else {
            return Report::default();
        };
        let mut out = Report {
            repeats: Some(runs.len()),
            rows: Vec::new(),
            ..first.clone()
        };
        for row in &first.rows {
            let same: Vec<&Row> = runs
                .iter()
                .filter_map(|r| {
                    r.rows
                        .iter()
                        .find(|x| x.workload == row.workload && x.metric == row.metric)
                })
                .collect();
            let ours = Spread::of(&same.iter().map(|r| r.ours).collect::<Vec<_>>());
            let base: Vec<f64> = same.iter().filter_map(|r| r.baseline).collect();
            let ratios: Vec<f64> = same.iter().filter_map(|r| r.ratio).collect();
            let mut merged = row.clone();
            merged.ours = ours.median;
            merged.ours_spread = Some(ours.into());
            if !base.is_empty() {
                let b = Spread::of(&base);
                merged.baseline = Some(b.median);
                merged.baseline_spread = Some(b.into());
            }
            if !ratios.is_empty() {
                let r = Spread::of(&ratios);
                merged.ratio = Some(r.median);
                merged.ratio_spread = Some(Band {
                    p10: r.min,
                    p90: r.max,
                });
            }
            merged.repetitions = Some(Repetitions {
                ours: same.len(),
                baseline: (!base.is_empty()).then_some(base.len()),
            });
            merged.note = format!(
                "median of {} runs (ratios {}); first run: {}",
                same.len(),
                ratios
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                row.note
            );
            out.rows.push(merged);
        }
        out.judge();
        out
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<22} {:<28} {:>14} {:>14} {:>8} {:>15} {:>13}  {:<13} {}\n",
            "workload",
            "metric",
            "ours",
            "baseline",
            "ratio",
            "ratio p10–p90",
            "speed-up",
            "verdict",
            "target"
        );
        for r in &self.rows {
            let fmt = |v: f64| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            };
            let ratio = |x: f64| {
                if x > 0.0 && x < 0.01 {
                    format!("{x:.1e}")
                } else {
                    format!("{x:.2}")
                }
            };
            let speed_up = match (r.better, r.baseline, r.ours) {
                (Some("lower"), Some(b), o) if o > 0.0 => {
                    let x = b / o;
                    let x = if x >= 1.0 { x } else { 1.0 / x };
                    let x = if x >= 100.0 {
                        format!("{x:.0}")
                    } else {
                        format!("{x:.1}")
                    };
                    if b >= o {
                        format!("{x}× faster")
                    } else {
                        format!("{x}× slower")
                    }
                }
                _ => String::new(),
            };
            out.push_str(&format!(
                "{:<22} {:<28} {:>14} {:>14} {:>8} {:>15} {:>13}  {:<13} {}\n",
                r.workload,
                format!("{} ({})", r.metric, r.unit),
                fmt(r.ours),
                r.baseline.map(fmt).unwrap_or_else(|| "—".into()),
                r.ratio
                    .map(|x| format!("{}×", ratio(x)))
                    .unwrap_or_else(|| "—".into()),
                r.ratio_spread
                    .map(|b| format!("{}–{}", ratio(b.p10), ratio(b.p90)))
                    .unwrap_or_default(),
                speed_up,
                r.verdict
                    .map(|v| format!("{v:?}").to_lowercase())
                    .unwrap_or_default(),
                r.target
            ));
            if !r.note.is_empty() {
                out.push_str(&format!("{:<22} {}\n", "", r.note));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ratio: f64, band: Option<(f64, f64)>) -> Row {
        let mut r = Report::new("quick");
        r.push("w", "m", "u", ratio, Some(1.0), "", "");
        let mut row = r.rows.remove(0);
        row.ratio_spread = band.map(|(p10, p90)| Band { p10, p90 });
        row
    }

    #[test]
    fn a_spread_across_the_target_is_inconclusive() {
        let g = Goal::RatioAtLeast(0.5);
        assert_eq!(g.judge(&row(0.6, Some((0.55, 0.65)))), Some(Verdict::Met));
        assert_eq!(
            g.judge(&row(0.4, Some((0.35, 0.45)))),
            Some(Verdict::Missed)
        );
        assert_eq!(
            g.judge(&row(0.52, Some((0.45, 0.6)))),
            Some(Verdict::Inconclusive)
        );
        assert_eq!(g.judge(&row(0.52, None)), Some(Verdict::Met));
        let faster = Goal::FasterBy(10.0);
        assert_eq!(
            faster.judge(&row(0.05, Some((0.04, 0.06)))),
            Some(Verdict::Met)
        );
        assert_eq!(
            faster.judge(&row(0.09, Some((0.07, 0.12)))),
            Some(Verdict::Inconclusive)
        );
        let both = Goal::All(vec![Goal::FasterBy(10.0), Goal::Below(1.0)]);
        // ours is 0.05 (the ratio with a baseline of 1), below 1.
        assert_eq!(both.judge(&row(0.05, None)), Some(Verdict::Met));
        assert_eq!(both.judge(&row(0.5, None)), Some(Verdict::Missed));
    }

    #[test]
    fn repeats_merge_into_medians_by_row() {
        let run = |x: f64| {
            let mut r = Report::new("quick");
            r.push("w", "m", "u", x, Some(2.0), "≥ 0.5×", "n");
            r.goal(Goal::RatioAtLeast(0.5));
            r
        };
        let m = Report::merge(vec![run(1.0), run(1.4), run(1.2)]);
        let r = &m.rows[0];
        assert_eq!(m.repeats, Some(3));
        assert_eq!((r.ours, r.baseline, r.ratio), (1.2, Some(2.0), Some(0.6)));
        assert_eq!(r.ratio_spread, Some(Band { p10: 0.5, p90: 0.7 }));
        assert_eq!(r.verdict, Some(Verdict::Met));
        let json = serde_json::to_value(&m).unwrap();
        for field in [
            "workload", "metric", "unit", "ours", "baseline", "ratio", "target",
        ] {
            assert!(json["rows"][0].get(field).is_some(), "{field}");
        }
        assert_eq!(json["rows"][0]["verdict"], "met");
        assert_eq!(json["rows"][0]["repetitions"]["ours"], 3);
    }
}
