//! Survey statistics: Wilson score intervals and population-weighted rates with their effective
//! sample size.

use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval for a proportion `p` observed over `n` (possibly fractional, as an
/// effective sample size). Returns (low, high) within [0, 1]; (0, 1) when n is 0.
pub fn wilson(p: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 || !p.is_finite() {
        return (0.0, 1.0);
    }
    let p = p.clamp(0.0, 1.0);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Weighted accumulation of per-stratum rates: each stratum (org unit with answers) has weight
/// w (its population) and rate k/n. Sums of integers and of per-stratum terms only, so the
/// result does not depend on the order facts arrived in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightedRate {
    /// Σ w·(k/n)
    pub weighted_positive: f64,
    /// Σ w
    pub weight: f64,
    /// Σ w²/n, for Kish's effective sample size.
    pub weight_sq_over_n: f64,
    pub responses: u64,
    pub positive: u64,
}

impl WeightedRate {
    pub fn stratum(weight: f64, responses: u64, positive: u64) -> WeightedRate {
        if responses == 0 || weight <= 0.0 {
            return WeightedRate {
                responses,
                positive,
                ..Default::default()
            };
        }
        let n = responses as f64;
        WeightedRate {
            weighted_positive: weight * positive as f64 / n,
            weight,
            weight_sq_over_n: weight * weight / n,
            responses,
            positive,
        }
    }

    pub fn add(&mut self, other: &WeightedRate) {
        self.weighted_positive += other.weighted_positive;
        self.weight += other.weight;
        self.weight_sq_over_n += other.weight_sq_over_n;
        self.responses += other.responses;
        self.positive += other.positive;
    }

    /// The population-weighted rate, if any stratum had answers and weight.
    pub fn rate(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.weighted_positive / self.weight)
    }

    /// Kish's effective sample size (Σw)² / Σ(w²/n).
    pub fn effective_n(&self) -> f64 {
        if self.weight_sq_over_n > 0.0 {
            self.weight * self.weight / self.weight_sq_over_n
        } else {
            0.0
        }
    }

    pub fn interval(&self) -> Option<(f64, f64)> {
        self.rate().map(|p| wilson(p, self.effective_n(), Z95))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_textbook_value() {
        // 81 of 263: Wilson 95% ≈ (0.2553, 0.3662).
        let (lo, hi) = wilson(81.0 / 263.0, 263.0, Z95);
        assert!((lo - 0.2553).abs() < 1e-3, "{lo}");
        assert!((hi - 0.3662).abs() < 1e-3, "{hi}");
    }

    #[test]
    fn wilson_stays_inside_unit_interval() {
        let (lo, hi) = wilson(1.0, 5.0, Z95);
        assert!(lo > 0.5 && hi == 1.0);
        assert_eq!(wilson(0.5, 0.0, Z95), (0.0, 1.0));
    }

    #[test]
    fn equal_weights_and_sizes_give_the_pooled_rate() {
        let mut r = WeightedRate::default();
        r.add(&WeightedRate::stratum(100.0, 50, 40));
        r.add(&WeightedRate::stratum(100.0, 50, 20));
        assert!((r.rate().unwrap() - 0.6).abs() < 1e-12);
        assert!((r.effective_n() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn weighting_is_by_population_not_by_sample() {
        let mut r = WeightedRate::default();
        r.add(&WeightedRate::stratum(9000.0, 10, 10)); // large community, small sample: 100%
        r.add(&WeightedRate::stratum(1000.0, 1000, 0)); // small community, big sample: 0%
        assert!((r.rate().unwrap() - 0.9).abs() < 1e-12);
        assert!(r.effective_n() < 20.0);
    }
}
