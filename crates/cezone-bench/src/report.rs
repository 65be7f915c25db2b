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
        });
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<22} {:<28} {:>14} {:>14} {:>8}  {}\n",
            "workload", "metric", "ours", "baseline", "ratio", "target"
        );
        for r in &self.rows {
            let fmt = |v: f64| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            };
            out.push_str(&format!(
                "{:<22} {:<28} {:>14} {:>14} {:>8}  {}\n",
                r.workload,
                format!("{} ({})", r.metric, r.unit),
                fmt(r.ours),
                r.baseline.map(fmt).unwrap_or_else(|| "—".into()),
                r.ratio
                    .map(|x| format!("{x:.2}×"))
                    .unwrap_or_else(|| "—".into()),
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
