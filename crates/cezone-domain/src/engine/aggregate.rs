//! Subtree aggregates of statistics, populations and survey tallies per org unit, by segment
//! (all units, urban communities only, rural communities only). Integer sums and per-stratum
//! terms in a fixed tree order: the same facts in any order give the same aggregates.

use std::collections::HashMap;

use crate::facts::{StatFact, SurveyTally};
use crate::org::{CommunityType, OrgIdx, OrgLevel, OrgTree};
use crate::rules::{MetricId, QuestionId};
use crate::stats::WeightedRate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    All = 0,
    Urban = 1,
    Rural = 2,
}

impl Segment {
    pub const EACH: [Segment; 3] = [Segment::All, Segment::Urban, Segment::Rural];

    pub fn name(self) -> &'static str {
        match self {
            Segment::All => "all",
            Segment::Urban => "urban communities",
            Segment::Rural => "rural communities",
        }
    }

    /// Whether a unit's own facts count in this segment.
    pub fn includes(self, org: &OrgTree, i: OrgIdx) -> bool {
        match self {
            Segment::All => true,
            Segment::Urban => org.unit(i).community_type == Some(CommunityType::Urban),
            Segment::Rural => org.unit(i).community_type == Some(CommunityType::Rural),
        }
    }
}

/// Subtree sums of one metric in one period.
#[derive(Debug, Clone)]
pub struct MetricAgg {
    /// The unit's own filed value.
    pub own: Vec<Option<i64>>,
    pub sum: [Vec<i64>; 3],
    /// How many units in the subtree filed a value, to tell "no data" from zero.
    pub filed: [Vec<u32>; 3],
}

#[derive(Debug, Clone)]
pub struct SurveyAgg {
    pub own: Vec<(u64, u64)>,
    pub sum: [Vec<WeightedRate>; 3],
}

#[derive(Debug, Clone)]
pub struct Aggregates {
    pub metrics: Vec<MetricAgg>,
    pub metric_index: HashMap<(MetricId, i32), usize>,
    pub surveys: Vec<SurveyAgg>,
    pub survey_index: HashMap<(QuestionId, i32), usize>,
    /// Population by year: `[All]` is each unit's effective population (own figure, else the
    /// sum of its children); `[Urban]`/`[Rural]` sum the communities of that type below.
    pub population: HashMap<i32, [Vec<u64>; 3]>,
    /// Communities in each subtree, by segment.
    pub community_count: [Vec<u32>; 3],
}

impl Aggregates {
    pub fn build(
        org: &OrgTree,
        stats: &[StatFact],
        surveys: &[SurveyTally],
        years: &[i32],
    ) -> Aggregates {
        let n = org.len();
        // Latest version per (unit, metric, period); ties broken by value so order is irrelevant.
        let mut latest: HashMap<(OrgIdx, &MetricId, i32), (u64, i64)> = HashMap::new();
        for s in stats {
            let Some(i) = org.find(&s.org_unit) else {
                continue;
            };
            let key = (i, &s.metric, s.period);
            let cand = (s.version, s.value);
            latest
                .entry(key)
                .and_modify(|v| *v = (*v).max(cand))
                .or_insert(cand);
        }
        let mut metric_index = HashMap::new();
        let mut metrics: Vec<MetricAgg> = Vec::new();
        let mut entries: Vec<_> = latest.into_iter().collect();
        entries.sort_by(|a, b| (a.0.1, a.0.2, a.0.0).cmp(&(b.0.1, b.0.2, b.0.0)));
        for ((i, metric, period), (_, value)) in entries {
            let idx = *metric_index
                .entry((metric.clone(), period))
                .or_insert_with(|| {
                    metrics.push(MetricAgg {
                        own: vec![None; n],
                        sum: [vec![0; n], vec![0; n], vec![0; n]],
                        filed: [vec![0; n], vec![0; n], vec![0; n]],
                    });
                    metrics.len() - 1
                });
            metrics[idx].own[i] = Some(value);
        }
        for m in &mut metrics {
            for seg in Segment::EACH {
                let s = seg as usize;
                for i in (0..n).rev() {
                    let (mut sum, mut filed) = match m.own[i] {
                        Some(v) if seg.includes(org, i) => (v, 1),
                        _ => (0, 0),
                    };
                    for &c in org.children(i) {
                        sum += m.sum[s][c];
                        filed += m.filed[s][c];
                    }
                    m.sum[s][i] = sum;
                    m.filed[s][i] = filed;
                }
            }
        }

        let mut population = HashMap::new();
        let mut pop_years: Vec<i32> = years.to_vec();
        pop_years.extend(surveys.iter().map(|s| s.period));
        pop_years.sort_unstable();
        pop_years.dedup();
        for &y in &pop_years {
            let all = org.populations(y);
            let mut urban = vec![0u64; n];
            let mut rural = vec![0u64; n];
            for i in (0..n).rev() {
                let (mut u, mut r) = (0, 0);
                if Segment::Urban.includes(org, i) {
                    u += all[i];
                }
                if Segment::Rural.includes(org, i) {
                    r += all[i];
                }
                for &c in org.children(i) {
                    u += urban[c];
                    r += rural[c];
                }
                urban[i] = u;
                rural[i] = r;
            }
            population.insert(y, [all, urban, rural]);
        }

        let mut own_tallies: HashMap<(&QuestionId, i32), Vec<(u64, u64)>> = HashMap::new();
        for t in surveys {
            let Some(i) = org.find(&t.org_unit) else {
                continue;
            };
            let v = own_tallies
                .entry((&t.question, t.period))
                .or_insert_with(|| vec![(0, 0); n]);
            v[i].0 += t.responses;
            v[i].1 += t.positive.min(t.responses);
        }
        let mut survey_index = HashMap::new();
        let mut survey_aggs = Vec::new();
        let mut keys: Vec<_> = own_tallies.keys().copied().collect();
        keys.sort();
        for key in keys {
            let own = own_tallies.remove(&key).unwrap_or_default();
            let pop = &population[&key.1][Segment::All as usize];
            let mut sum: [Vec<WeightedRate>; 3] = [
                vec![WeightedRate::default(); n],
                vec![WeightedRate::default(); n],
                vec![WeightedRate::default(); n],
            ];
            for seg in Segment::EACH {
                let s = seg as usize;
                for i in (0..n).rev() {
                    let mut acc = if seg.includes(org, i) && own[i].0 > 0 {
                        WeightedRate::stratum(pop[i] as f64, own[i].0, own[i].1)
                    } else {
                        WeightedRate::default()
                    };
                    for &c in org.children(i) {
                        let child = sum[s][c];
                        acc.add(&child);
                    }
                    sum[s][i] = acc;
                }
            }
            survey_index.insert((key.0.clone(), key.1), survey_aggs.len());
            survey_aggs.push(SurveyAgg { own, sum });
        }

        let mut community_count = [vec![0u32; n], vec![0u32; n], vec![0u32; n]];
        for seg in Segment::EACH {
            let s = seg as usize;
            for i in (0..n).rev() {
                let mut c =
                    u32::from(org.unit(i).level == OrgLevel::Community && seg.includes(org, i));
                for &ch in org.children(i) {
                    c += community_count[s][ch];
                }
                community_count[s][i] = c;
            }
        }

        Aggregates {
            metrics,
            metric_index,
            surveys: survey_aggs,
            survey_index,
            population,
            community_count,
        }
    }

    pub fn metric(&self, id: &MetricId, period: i32) -> Option<&MetricAgg> {
        self.metric_index
            .get(&(id.clone(), period))
            .map(|&i| &self.metrics[i])
    }

    pub fn survey(&self, id: &QuestionId, period: i32) -> Option<&SurveyAgg> {
        self.survey_index
            .get(&(id.clone(), period))
            .map(|&i| &self.surveys[i])
    }

    pub fn population(&self, year: i32, seg: Segment, i: OrgIdx) -> u64 {
        self.population.get(&year).map_or(0, |p| p[seg as usize][i])
    }
}
