//! The benchmark table and its JSON form (field names are stable).

use serde::Serialize;

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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub size: String,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn new(size: &str) -> Report {
        Report {
            format: "cezone.bench.v1",
            size: size.to_string(),
            rows: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        workload: &str,
        metric: &str,
        unit: &str,
        ours: f64,
        baseline: Option<f64>,
        target: &str,
        note: &str,
    ) {
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
        });
    }

    /// Marks the last row pushed as lower-is-better; the table then shows baseline / ours as
    /// "N× faster" (or "N× slower") beside the ratio.
    pub fn lower_is_better(&mut self) {
        if let Some(r) = self.rows.last_mut() {
            r.better = Some("lower");
        }
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<22} {:<28} {:>14} {:>14} {:>8} {:>13}  {}\n",
            "workload", "metric", "ours", "baseline", "ratio", "speed-up", "target"
        );
        for r in &self.rows {
            let fmt = |v: f64| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
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
                "{:<22} {:<28} {:>14} {:>14} {:>8} {:>13}  {}\n",
                r.workload,
                format!("{} ({})", r.metric, r.unit),
                fmt(r.ours),
                r.baseline.map(fmt).unwrap_or_else(|| "—".into()),
                r.ratio
                    .map(|x| {
                        if x > 0.0 && x < 0.01 {
                            format!("{x:.1e}×")
                        } else {
                            format!("{x:.2}×")
                        }
                    })
                    .unwrap_or_else(|| "—".into()),
                speed_up,
                r.target
            ));
            if !r.note.is_empty() {
                out.push_str(&format!("{:<22} {}\n", "", r.note));
            }
        }
        out
    }
}

/// The q-quantile of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
