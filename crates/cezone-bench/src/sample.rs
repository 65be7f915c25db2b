//! Samples and their spread, and the interleaved way of timing ours beside a baseline: turns of
//! ours and of the baseline alternate (A B A B …), each turn running its operation for a time
//! slice, until both sides have enough repetitions and enough time. A slow stretch of the
//! machine then lands on both sides, and each turn's ratio is a sample of the ratio.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

/// The q-quantile of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The median of a set of samples, and where the middle 80 % of them lie.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    /// How many samples.
    pub n: usize,
}

impl Spread {
    pub fn of(samples: &[f64]) -> Spread {
        let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        Spread {
            median: quantile(&s, 0.5),
            p10: quantile(&s, 0.1),
            p90: quantile(&s, 0.9),
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
            n: s.len(),
        }
    }

    /// The same spread with its lower decile as the figure shown. For in-process timings on
    /// a busy machine: their samples are bimodal (an undisturbed and a disturbed mode, in
    /// proportions that change from run to run), so the median jumps between the modes while
    /// the lower decile stays with the undisturbed one.
    pub fn fast(self) -> Spread {
        Spread {
            median: self.p10,
            ..self
        }
    }

    /// A single figure (no spread).
    pub fn point(x: f64) -> Spread {
        Spread {
            median: x,
            p10: x,
            p90: x,
            min: x,
            max: x,
            n: 1,
        }
    }
}

/// How long and how often each side of an interleaved measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Repetitions each side needs at least.
    pub min_reps: usize,
    /// Time each side needs at least (its samples summed).
    pub min_time: Duration,
    /// A turn runs its operation until this much time passed (at least once).
    pub slice: Duration,
    /// Runs of each side before the first turn, not counted.
    pub warmup: usize,
    /// The quantile of a turn's samples its ratio is taken from (the lower decile for short
    /// operations, see [`Spread::fast`]; the median for long ones).
    pub turn_quantile: f64,
    /// Stop after this long in all, whatever was reached (with at least two turns each).
    pub max_time: Duration,
}

impl Plan {
    /// Short operations (up to tens of milliseconds).
    pub fn short(quick: bool) -> Plan {
        Plan {
            min_reps: if quick { 30 } else { 100 },
            min_time: Duration::from_millis(if quick { 500 } else { 2000 }),
            slice: Duration::from_millis(50),
            warmup: 3,
            turn_quantile: 0.1,
            max_time: Duration::from_secs(if quick { 10 } else { 40 }),
        }
    }

    /// Long operations (a tenth of a second and more): one run per turn.
    pub fn long(reps: usize) -> Plan {
        Plan {
            min_reps: reps,
            min_time: Duration::ZERO,
            slice: Duration::ZERO,
            warmup: 1,
            turn_quantile: 0.5,
            max_time: Duration::from_secs(120),
        }
    }
}

/// What an interleaved measurement gives: every sample of each side and, per turn, the ratio of
/// the turn's medians (ours / baseline).
#[derive(Debug, Clone)]
pub struct Paired {
    pub ours: Vec<f64>,
    pub baseline: Vec<f64>,
    pub ratios: Vec<f64>,
}

impl Paired {
    pub fn ours(&self) -> Spread {
        Spread::of(&self.ours)
    }
    pub fn baseline(&self) -> Spread {
        Spread::of(&self.baseline)
    }
    /// The ratio over the turns: the median of each turn's ratio (a turn of ours and the turn
    /// of the baseline right after it, so a slow stretch of the machine counts on both sides),
    /// and its spread.
    pub fn ratio(&self) -> Spread {
        Spread::of(&self.ratios)
    }
}

/// Times `ours` and `baseline` in alternating turns as `plan` says. Each call runs its operation
/// once and returns the figure to record (usually milliseconds, timed by the call itself so
/// that set-up inside it is left out).
pub async fn interleave(
    plan: Plan,
    mut ours: impl AsyncFnMut() -> Result<f64>,
    mut baseline: impl AsyncFnMut() -> Result<f64>,
) -> Result<Paired> {
    for _ in 0..plan.warmup {
        ours().await?;
        baseline().await?;
    }
    let started = Instant::now();
    let mut out = Paired {
        ours: Vec::new(),
        baseline: Vec::new(),
        ratios: Vec::new(),
    };
    let (mut time_a, mut time_b) = (Duration::ZERO, Duration::ZERO);
    loop {
        let a = turn(plan.slice, &mut ours, &mut time_a).await?;
        let b = turn(plan.slice, &mut baseline, &mut time_b).await?;
        out.ratios
            .push(at(&a, plan.turn_quantile) / at(&b, plan.turn_quantile));
        out.ours.extend(a);
        out.baseline.extend(b);
        let enough = out.ours.len() >= plan.min_reps
            && out.baseline.len() >= plan.min_reps
            && time_a >= plan.min_time
            && time_b >= plan.min_time;
        let too_long = started.elapsed() >= plan.max_time && out.ratios.len() >= 2;
        if enough || too_long {
            return Ok(out);
        }
    }
}

/// The q-quantile of unsorted samples.
fn at(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, q)
}

async fn turn(
    slice: Duration,
    op: &mut impl AsyncFnMut() -> Result<f64>,
    spent: &mut Duration,
) -> Result<Vec<f64>> {
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        samples.push(op().await?);
        if started.elapsed() >= slice {
            *spent += started.elapsed();
            return Ok(samples);
        }
    }
}

/// Steady throughput from completion times (seconds from the start, any order): the rate
/// between the 10th and the 90th percentile of completions, so the ramp-up and the drain are
/// left out; and the rate in each `bin` of that window, for the spread. Returns (rate, window
/// seconds, per-bin rates).
pub fn steady_rate(completions: &[f64], bin: f64) -> (f64, f64, Vec<f64>) {
    let mut t: Vec<f64> = completions.to_vec();
    t.sort_by(f64::total_cmp);
    if t.len() < 10 {
        let span = t.last().copied().unwrap_or(0.0);
        return (t.len() as f64 / span.max(1e-9), span, Vec::new());
    }
    let (i, j) = (t.len() / 10, t.len() * 9 / 10);
    let (a, b) = (t[i], t[j]);
    let window = (b - a).max(1e-9);
    let rate = (j - i) as f64 / window;
    let bins = ((window / bin).floor() as usize).max(1);
    let width = window / bins as f64;
    let mut counts = vec![0usize; bins];
    for &x in &t[i..j] {
        let k = (((x - a) / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    let rates = counts.iter().map(|&c| c as f64 / width).collect();
    (rate, window, rates)
}

/// Ratios of per-bin rates, bin by bin (as many as both have).
pub fn bin_ratios(ours: &[f64], baseline: &[f64]) -> Vec<f64> {
    ours.iter()
        .zip(baseline)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_samples() {
        let s = Spread::of(&[5.0, 1.0, 3.0, 2.0, 4.0, f64::NAN]);
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 5));
        let s = Spread::of(&(1..=101).map(f64::from).collect::<Vec<_>>());
        assert_eq!((s.p10, s.median, s.p90), (11.0, 51.0, 91.0));
    }

    #[tokio::test]
    async fn turns_alternate_until_both_sides_have_enough() {
        use std::sync::Mutex;
        let log = Mutex::new(Vec::new());
        let plan = Plan {
            min_reps: 4,
            min_time: Duration::ZERO,
            slice: Duration::ZERO,
            warmup: 1,
            turn_quantile: 0.5,
            max_time: Duration::from_secs(60),
        };
        let p = interleave(
            plan,
            async || {
                log.lock().unwrap().push('A');
                Ok(2.0)
            },
            async || {
                log.lock().unwrap().push('B');
                Ok(4.0)
            },
        )
        .await
        .unwrap();
        let log: String = log.into_inner().unwrap().into_iter().collect();
        // One warm-up of each, then four turns of each, alternating.
        assert_eq!(log, "ABABABABAB");
        assert_eq!((p.ours.len(), p.baseline.len()), (4, 4));
        assert_eq!(p.ratio().median, 0.5);
        assert_eq!(p.ratio().n, 4);
        assert_eq!(p.ratios, vec![0.5; 4]);
    }

    #[test]
    fn a_bimodal_timing_is_figured_at_its_undisturbed_mode() {
        // Half the runs undisturbed (1.0 ms), half in a slow mode (1.6 ms), in proportions
        // that differ between two runs of the bench: the medians differ, the lower deciles
        // do not.
        let run = |slow: usize| -> Vec<f64> {
            (0..100)
                .map(|i| if i < slow { 1.6 } else { 1.0 + i as f64 * 1e-4 })
                .collect()
        };
        let (a, b) = (Spread::of(&run(40)), Spread::of(&run(60)));
        assert!((a.median - b.median).abs() > 0.5);
        assert!((a.fast().median - b.fast().median).abs() < 0.01);
        assert_eq!(a.fast().p90, a.p90, "the spread stays as it was");
    }

    #[test]
    fn steady_rate_leaves_out_ramp_and_drain() {
        // 1,000 completions at 100/s over 10 s, then a slow drain of 10 over 10 s more.
        let mut t: Vec<f64> = (0..1000).map(|i| f64::from(i) / 100.0).collect();
        t.extend((0..10).map(|i| 10.0 + f64::from(i)));
        let (rate, window, bins) = steady_rate(&t, 1.0);
        assert!((rate - 100.0).abs() < 2.0, "{rate}");
        assert!(window > 7.0 && window < 9.0, "{window}");
        assert!(bins.iter().all(|r| (r - 100.0).abs() < 15.0), "{bins:?}");
    }
}
