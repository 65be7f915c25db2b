//! What each kind of rule measures for one org unit: the figures it reads and the fraction of
//! the criterion's points they earn. This runs for every cell of the board, so nothing here
//! writes words; `describe` explains a reading when one is asked for.

use crate::engine::aggregate::{Aggregates, MetricAgg, Segment, SurveyAgg};
use crate::engine::evaluate::{CountTable, Den};
use crate::org::{OrgIdx, OrgLevel, OrgTree, RegionClass};
use crate::rules::{Direction, Fen, Partial, Percent};
use crate::stats::WeightedRate;

/// Where a rule is read: one org unit, one segment of its communities, its region class
/// (which picks a target), and the evaluation period.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub node: OrgIdx,
    pub seg: Segment,
    pub region: RegionClass,
    pub period: i32,
}

impl At {
    fn s(self) -> usize {
        self.seg as usize
    }
}

/// A rate of two filed figures (or of a figure and the resident population).
#[derive(Debug)]
pub(crate) struct RatioReading {
    pub target: Percent,
    pub numerator: i64,
    pub denominator: i64,
    pub numerator_filed: bool,
    pub denominator_known: bool,
    /// None when the rate cannot be computed (nothing filed, a zero denominator).
    pub rate: Option<f64>,
    pub fraction: f64,
}

pub(crate) fn ratio(
    agg: &Aggregates,
    at: At,
    num: Option<&MetricAgg>,
    den: &Den<'_>,
    target: Percent,
    partial: Partial,
) -> RatioReading {
    let (s, node) = (at.s(), at.node);
    let numerator = num.map_or(0, |m| m.sum[s][node]);
    let (denominator, denominator_known) = match den {
        Den::Population => {
            let p = agg.population(at.period, at.seg, node) as i64;
            (p, p > 0)
        }
        Den::Metric(m) => (
            m.map_or(0, |m| m.sum[s][node]),
            m.is_some_and(|m| m.filed[s][node] > 0),
        ),
    };
    let numerator_filed = num.is_some_and(|m| m.filed[s][node] > 0);
    let rate = (denominator_known && denominator > 0 && numerator_filed)
        .then(|| numerator as f64 / denominator as f64);
    let fraction = rate.map_or(0.0, |v| partial.credit(v, target.as_fraction()));
    RatioReading {
        target,
        numerator,
        denominator,
        numerator_filed,
        denominator_known,
        rate,
        fraction,
    }
}

/// An amount per resident.
#[derive(Debug)]
pub(crate) struct PerCapitaReading {
    pub target: Fen,
    pub amount: Fen,
    pub filed: bool,
    pub population: u64,
    /// Fen per resident, when both are known.
    pub per_resident: Option<f64>,
    pub fraction: f64,
}

pub(crate) fn per_capita(
    agg: &Aggregates,
    at: At,
    amount: Option<&MetricAgg>,
    target: Fen,
    partial: Partial,
) -> PerCapitaReading {
    let (s, node) = (at.s(), at.node);
    let fen = amount.map_or(0, |m| m.sum[s][node]);
    let filed = amount.is_some_and(|m| m.filed[s][node] > 0);
    let population = agg.population(at.period, at.seg, node);
    let per_resident = (population > 0 && filed).then(|| fen as f64 / population as f64);
    let fraction = per_resident.map_or(0.0, |per| partial.credit(per, target.0 as f64));
    PerCapitaReading {
        target,
        amount: Fen(fen),
        filed,
        population,
        per_resident,
        fraction,
    }
}

/// One question's answers under `at`.
pub(crate) fn answers(survey: Option<&SurveyAgg>, at: At) -> WeightedRate {
    survey.map(|a| a.sum[at.s()][at.node]).unwrap_or_default()
}

/// The share of the points the weakest question earns (a question nobody answered earns none).
pub(crate) fn survey<'q>(
    surveys: impl Iterator<Item = Option<&'q SurveyAgg>>,
    at: At,
    target: Percent,
    partial: Partial,
) -> f64 {
    surveys
        .map(|sa| {
            answers(sa, at)
                .rate()
                .map_or(0.0, |r| partial.credit(r, target.as_fraction()))
        })
        .fold(1.0, f64::min)
}

/// How many units at a level meet a count, judged at the unit or (below that level) at its
/// ancestor on it.
#[derive(Debug)]
pub(crate) struct CountReading {
    pub total: u32,
    pub meet: u32,
    /// The ancestor judged for a unit below the level.
    pub judged_at: Option<OrgIdx>,
    pub fraction: f64,
}

pub(crate) fn count(org: &OrgTree, table: &CountTable, level: OrgLevel, at: At) -> CountReading {
    let (s, node) = (at.s(), at.node);
    let (total, meet, judged_at) = if org.unit(node).level > level {
        match org.ancestor_at(node, level) {
            Some(a) => (table.total[s][a], table.meet[s][a], Some(a)),
            None => (0, 0, None),
        }
    } else {
        (table.total[s][node], table.meet[s][node], None)
    };
    let fraction = if total == 0 {
        0.0
    } else {
        f64::from(meet) / f64::from(total)
    };
    CountReading {
        total,
        meet,
        judged_at,
        fraction,
    }
}

/// A figure this period beside the last (per 10,000 residents when asked).
#[derive(Debug)]
pub(crate) struct TrendReading {
    pub current: Option<f64>,
    pub previous: Option<f64>,
    pub fraction: f64,
}

pub(crate) fn trend(
    agg: &Aggregates,
    at: At,
    current: Option<&MetricAgg>,
    previous: Option<&MetricAgg>,
    direction: Direction,
    per_capita: bool,
) -> TrendReading {
    let (s, node) = (at.s(), at.node);
    let value = |m: Option<&MetricAgg>, year: i32| -> Option<f64> {
        let m = m?;
        if m.filed[s][node] == 0 {
            return None;
        }
        let v = m.sum[s][node] as f64;
        if per_capita {
            let pop = agg.population(year, at.seg, node);
            (pop > 0).then(|| v * 10_000.0 / pop as f64)
        } else {
            Some(v)
        }
    };
    let (cur, prev) = (value(current, at.period), value(previous, at.period - 1));
    let fraction = match (cur, prev, direction) {
        (Some(c), Some(p), Direction::Falling) if c < p => 1.0,
        (Some(c), Some(p), Direction::Rising) if c > p => 1.0,
        _ => 0.0,
    };
    TrendReading {
        current: cur,
        previous: prev,
        fraction,
    }
}
