//! Subtree aggregates of statistics, populations and survey tallies per org unit, by segment
//! (all units, urban communities only, rural communities only). Integer sums and per-stratum
//! terms in a fixed tree order: the same facts in any order give the same aggregates, and a
//! fact applied later (`apply_stat`, `apply_tally`) gives exactly what a full build gives.

// Keys are the district's own validated ids; a fast hasher is what the hot paths need.
use foldhash::HashMap;

use crate::facts::{StatFact, StatState, SurveyTally};
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
        self.includes_kind(org.unit(i).community_type)
    }

    /// Whether facts of a unit of this community type (none for towns and above) count.
    pub fn includes_kind(self, kind: Option<CommunityType>) -> bool {
        match self {
            Segment::All => true,
            Segment::Urban => kind == Some(CommunityType::Urban),
            Segment::Rural => kind == Some(CommunityType::Rural),
        }
    }
}

/// Which figures a view of the facts counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Pending figures too: the projected score.
    Projected,
    /// Accepted figures only: the confirmed score.
    Confirmed,
}

/// Subtree sums of one metric in one period.
#[derive(Debug, Clone)]
pub struct MetricAgg {
    /// The unit's own filed value, the version it came with and its review.
    pub own: Vec<Option<i64>>,
    pub version: Vec<u64>,
    pub state: Vec<StatState>,
    /// Sums of the figures that count in the projected view (all but returned ones).
    pub sum: [Vec<i64>; 3],
    /// How many units in the subtree filed a value, to tell "no data" from zero.
    pub filed: [Vec<u32>; 3],
    /// The same sums over accepted figures only, kept once any figure of the metric is not
    /// accepted; while there is none, the confirmed view is this one.
    pub confirmed: Option<Box<MetricAgg>>,
}

impl MetricAgg {
    fn empty(n: usize) -> MetricAgg {
        MetricAgg {
            own: vec![None; n],
            version: vec![0; n],
            state: vec![StatState::Accepted; n],
            sum: [vec![0; n], vec![0; n], vec![0; n]],
            filed: [vec![0; n], vec![0; n], vec![0; n]],
            confirmed: None,
        }
    }

    /// The sums a view reads.
    pub fn view(&self, view: View) -> &MetricAgg {
        match view {
            View::Projected => self,
            View::Confirmed => self.confirmed.as_deref().unwrap_or(self),
        }
    }

    /// The unit's own figure as it counts in the projected view.
    fn counted(&self, i: OrgIdx) -> Option<i64> {
        self.own[i].filter(|_| self.state[i].counts_projected())
    }

    /// The accepted figures alone, summed.
    fn accepted_only(&self, org: &OrgTree) -> MetricAgg {
        let n = self.own.len();
        let mut c = MetricAgg::empty(n);
        for i in 0..n {
            if self.state[i].counts_confirmed() {
                c.own[i] = self.own[i];
                c.version[i] = self.version[i];
            }
        }
        c.roll_up(org);
        c
    }

    /// Moves unit `i`'s counted figure from `before` to `after` along its path to the root.
    fn shift(&mut self, org: &OrgTree, i: OrgIdx, before: Option<i64>, after: Option<i64>) {
        if before == after {
            return;
        }
        let delta = after.unwrap_or(0) - before.unwrap_or(0);
        let filed = i64::from(after.is_some()) - i64::from(before.is_some());
        for seg in Segment::EACH {
            if !seg.includes(org, i) {
                continue;
            }
            let s = seg as usize;
            for a in org.path_to_root(i) {
                self.sum[s][a] += delta;
                self.filed[s][a] = (i64::from(self.filed[s][a]) + filed) as u32;
            }
        }
    }

    /// Every segment in one pass from the leaves up, reading each unit once.
    fn roll_up(&mut self, org: &OrgTree) {
        for i in (0..org.len()).rev() {
            let kind = org.unit(i).community_type;
            let mut sum = [0i64; 3];
            let mut filed = [0u32; 3];
            if let Some(v) = self.counted(i) {
                for seg in Segment::EACH {
                    if seg.includes_kind(kind) {
                        sum[seg as usize] = v;
                        filed[seg as usize] = 1;
                    }
                }
            }
            for &c in org.children(i) {
                for seg in Segment::EACH {
                    let s = seg as usize;
                    sum[s] += self.sum[s][c];
                    filed[s] += self.filed[s][c];
                }
            }
            for seg in Segment::EACH {
                let s = seg as usize;
                self.sum[s][i] = sum[s];
                self.filed[s][i] = filed[s];
            }
        }
    }
}

/// One source's tally at one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceTally {
    pub version: u64,
    pub responses: u64,
    pub positive: u64,
    /// Of these, the answers of batches still pending review.
    pub pending_responses: u64,
    pub pending_positive: u64,
}

impl SourceTally {
    fn of(t: &SurveyTally) -> SourceTally {
        let responses = t.responses;
        let positive = t.positive.min(responses);
        let pending_responses = t.pending_responses.min(responses);
        SourceTally {
            version: t.version,
            responses,
            positive,
            pending_responses,
            pending_positive: t.pending_positive.min(pending_responses).min(positive),
        }
    }

    /// The accepted answers alone: (responses, positive).
    fn accepted(&self) -> (u64, u64) {
        let n = self.responses - self.pending_responses;
        (n, (self.positive - self.pending_positive).min(n))
    }
}

#[derive(Debug, Clone)]
pub struct SurveyAgg {
    /// Summed over sources, per unit.
    pub own: Vec<(u64, u64)>,
    pub sources: HashMap<(OrgIdx, String), SourceTally>,
    pub sum: [Vec<WeightedRate>; 3],
    /// Sources holding answers pending review: the confirmed twin is kept while any does.
    pending_sources: usize,
    /// The same sums over accepted answers only, kept while some answers are pending review;
    /// without any, the confirmed view is this one.
    pub confirmed: Option<Box<SurveyAgg>>,
}

impl SurveyAgg {
    fn empty(n: usize) -> SurveyAgg {
        SurveyAgg {
            own: vec![(0, 0); n],
            sources: HashMap::default(),
            sum: [
                vec![WeightedRate::default(); n],
                vec![WeightedRate::default(); n],
                vec![WeightedRate::default(); n],
            ],
            pending_sources: 0,
            confirmed: None,
        }
    }

    /// Records `t` as the tally of source `key`, keeping the own sums and the pending count;
    /// the tally it replaces, if any.
    fn put_source(&mut self, key: (OrgIdx, String), t: SourceTally) -> Option<SourceTally> {
        let i = key.0;
        let old = self.sources.insert(key, t);
        let (on, ok, was_pending) = old.map_or((0, 0, false), |o| {
            (o.responses, o.positive, o.pending_responses > 0)
        });
        self.own[i].0 = self.own[i].0 - on + t.responses;
        self.own[i].1 = self.own[i].1 - ok + t.positive;
        self.pending_sources =
            self.pending_sources + usize::from(t.pending_responses > 0) - usize::from(was_pending);
        old
    }

    /// The sums a view reads.
    pub fn view(&self, view: View) -> &SurveyAgg {
        match view {
            View::Projected => self,
            View::Confirmed => self.confirmed.as_deref().unwrap_or(self),
        }
    }

    /// Answers pending review at unit `i` (its own, over its sources).
    pub fn pending_at(&self, i: OrgIdx) -> u64 {
        self.sources
            .iter()
            .filter(|((at, _), _)| *at == i)
            .map(|(_, t)| t.pending_responses)
            .sum()
    }

    /// Every sum from the units' own answers, leaves first.
    fn sum_all(&mut self, org: &OrgTree, pop: &[u64]) {
        for seg in Segment::EACH {
            for i in (0..org.len()).rev() {
                self.sum[seg as usize][i] = self.node_sum(org, pop, seg, i);
            }
        }
    }

    /// The confirmed twin, made whole while any answers are pending, none otherwise.
    fn build_confirmed(&mut self, org: &OrgTree, pop: &[u64]) {
        if self.pending_sources == 0 {
            self.confirmed = None;
            return;
        }
        let mut c = SurveyAgg::empty(self.own.len());
        for (&(i, _), t) in &self.sources {
            let (n, k) = t.accepted();
            c.own[i].0 += n;
            c.own[i].1 += k;
        }
        c.sum_all(org, pop);
        self.confirmed = Some(Box::new(c));
    }

    /// One unit's sums from its own stratum and its children's sums, in child order.
    fn node_sum(&self, org: &OrgTree, pop: &[u64], seg: Segment, i: OrgIdx) -> WeightedRate {
        let s = seg as usize;
        let mut acc = if seg.includes(org, i) && self.own[i].0 > 0 {
            WeightedRate::stratum(pop[i] as f64, self.own[i].0, self.own[i].1)
        } else {
            WeightedRate::default()
        };
        for &c in org.children(i) {
            let child = self.sum[s][c];
            acc.add(&child);
        }
        acc
    }
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

fn populations(org: &OrgTree, year: i32) -> [Vec<u64>; 3] {
    let n = org.len();
    let all = org.populations(year);
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
    [all, urban, rural]
}

impl Aggregates {
    pub fn build(
        org: &OrgTree,
        stats: &[StatFact],
        surveys: &[SurveyTally],
        years: &[i32],
    ) -> Aggregates {
        let n = org.len();
        let mut agg = Aggregates {
            metrics: Vec::new(),
            metric_index: HashMap::default(),
            surveys: Vec::new(),
            survey_index: HashMap::default(),
            population: HashMap::default(),
            community_count: [vec![0u32; n], vec![0u32; n], vec![0u32; n]],
        };
        // Each (metric, period) is looked up once per fact and its slot made once, in sorted
        // order so the layout does not depend on the order of the facts.
        let mut keys: HashMap<(&MetricId, i32), usize> = HashMap::default();
        let mut placed: Vec<(OrgIdx, usize)> = Vec::with_capacity(stats.len());
        for s in stats {
            let Some(i) = org.find(&s.org_unit) else {
                placed.push((usize::MAX, 0));
                continue;
            };
            let next = keys.len();
            let k = *keys.entry((&s.metric, s.period)).or_insert(next);
            placed.push((i, k));
        }
        let mut order: Vec<((&MetricId, i32), usize)> = keys.into_iter().collect();
        order.sort_unstable();
        let mut slot_of = vec![0usize; order.len()];
        for ((metric, period), k) in order {
            slot_of[k] = agg.metric_slot(metric, period, n);
        }
        // Latest version per (unit, metric, period); ties broken by value so order is irrelevant.
        for (s, &(i, k)) in stats.iter().zip(&placed) {
            if i == usize::MAX {
                continue;
            }
            let m = &mut agg.metrics[slot_of[k]];
            let newer = match m.own[i] {
                None => true,
                Some(held) => s.precedence() > (m.version[i], m.state[i].rank(), held),
            };
            if newer {
                m.own[i] = Some(s.value);
                m.version[i] = s.version;
                m.state[i] = s.state;
            }
        }
        for m in &mut agg.metrics {
            m.roll_up(org);
            if m.state.iter().any(|s| !s.is_accepted()) {
                m.confirmed = Some(Box::new(m.accepted_only(org)));
            }
        }

        let mut years: Vec<i32> = years.to_vec();
        years.extend(surveys.iter().map(|s| s.period));
        years.sort_unstable();
        years.dedup();
        for &y in &years {
            agg.population.insert(y, populations(org, y));
        }

        // Latest tally per (unit, source, question, period).
        let mut tallies: HashMap<(OrgIdx, &str, &QuestionId, i32), SourceTally> =
            HashMap::default();
        for t in surveys {
            let Some(i) = org.find(&t.org_unit) else {
                continue;
            };
            let cand = SourceTally::of(t);
            tallies
                .entry((i, t.source.as_str(), &t.question, t.period))
                .and_modify(|v| *v = (*v).max(cand))
                .or_insert(cand);
        }
        // Slots are made in (question, period) order so the layout does not depend on the order
        // of the facts; the sums are integers, so the tallies themselves can go in any order.
        let mut slots: Vec<(&QuestionId, i32)> = tallies.keys().map(|k| (k.2, k.3)).collect();
        slots.sort_unstable();
        slots.dedup();
        for (q, period) in slots {
            agg.survey_slot(q, period, n);
        }
        for ((i, source, q, period), t) in tallies {
            let idx = agg.survey_slot(q, period, n);
            agg.surveys[idx].put_source((i, source.to_string()), t);
        }
        let keys: Vec<((QuestionId, i32), usize)> = agg
            .survey_index
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for ((_, period), idx) in keys {
            let pop = &agg.population[&period][Segment::All as usize];
            let sa = &mut agg.surveys[idx];
            sa.sum_all(org, pop);
            sa.build_confirmed(org, pop);
        }

        for seg in Segment::EACH {
            let s = seg as usize;
            for i in (0..n).rev() {
                let mut c =
                    u32::from(org.unit(i).level == OrgLevel::Community && seg.includes(org, i));
                for &ch in org.children(i) {
                    c += agg.community_count[s][ch];
                }
                agg.community_count[s][i] = c;
            }
        }
        agg
    }

    fn metric_slot(&mut self, metric: &MetricId, period: i32, n: usize) -> usize {
        if let Some(&i) = self.metric_index.get(&(metric.clone(), period)) {
            return i;
        }
        self.metrics.push(MetricAgg::empty(n));
        self.metric_index
            .insert((metric.clone(), period), self.metrics.len() - 1);
        self.metrics.len() - 1
    }

    fn survey_slot(&mut self, q: &QuestionId, period: i32, n: usize) -> usize {
        if let Some(&i) = self.survey_index.get(&(q.clone(), period)) {
            return i;
        }
        self.surveys.push(SurveyAgg::empty(n));
        self.survey_index
            .insert((q.clone(), period), self.surveys.len() - 1);
        self.surveys.len() - 1
    }

    /// Applies one statistic if it goes before what unit `i` holds (same order as `build`:
    /// [`StatFact::precedence`]). Returns whether anything changed.
    pub fn apply_stat(&mut self, org: &OrgTree, i: OrgIdx, s: &StatFact) -> bool {
        let idx = self.metric_slot(&s.metric, s.period, org.len());
        let m = &mut self.metrics[idx];
        if let Some(old) = m.own[i]
            && s.precedence() <= (m.version[i], m.state[i].rank(), old)
        {
            return false;
        }
        if m.confirmed.is_none() && !s.state.is_accepted() {
            // Until now every figure was accepted: the confirmed sums are these.
            let mut twin = m.clone();
            twin.confirmed = None;
            m.confirmed = Some(Box::new(twin));
        }
        let before = m.counted(i);
        let before_accepted = m.own[i].filter(|_| m.state[i].counts_confirmed());
        m.own[i] = Some(s.value);
        m.version[i] = s.version;
        m.state[i] = s.state;
        let after = m.counted(i);
        m.shift(org, i, before, after);
        if let Some(c) = m.confirmed.as_deref_mut() {
            let after_accepted = s.state.counts_confirmed().then_some(s.value);
            c.own[i] = after_accepted;
            c.version[i] = s.version;
            c.shift(org, i, before_accepted, after_accepted);
        }
        true
    }

    /// Applies one source's tally if newer; the path's weighted sums are recomputed from the
    /// children in child order, so the result is the one `build` gives.
    pub fn apply_tally(&mut self, org: &OrgTree, i: OrgIdx, t: &SurveyTally) -> bool {
        let idx = self.survey_slot(&t.question, t.period, org.len());
        let cand = SourceTally::of(t);
        let key = (i, t.source.clone());
        let sa = &mut self.surveys[idx];
        if sa.sources.get(&key).is_some_and(|o| cand <= *o) {
            return false;
        }
        let old = sa.put_source(key, cand);
        let pop = self
            .population
            .entry(t.period)
            .or_insert_with(|| populations(org, t.period));
        let pop = &pop[Segment::All as usize];
        let sa = &mut self.surveys[idx];
        for a in org.path_to_root(i) {
            for seg in Segment::EACH {
                sa.sum[seg as usize][a] = sa.node_sum(org, pop, seg, a);
            }
        }
        // The confirmed twin: dropped when nothing is pending, made whole when answers first
        // are, otherwise moved along the same path as the projected sums.
        match (sa.pending_sources, sa.confirmed.as_deref_mut()) {
            (0, _) => sa.confirmed = None,
            (_, None) => sa.build_confirmed(org, pop),
            (_, Some(c)) => {
                let (on, ok) = old.map_or((0, 0), |o| o.accepted());
                let (nn, nk) = cand.accepted();
                c.own[i].0 = c.own[i].0 - on + nn;
                c.own[i].1 = c.own[i].1 - ok + nk;
                for a in org.path_to_root(i) {
                    for seg in Segment::EACH {
                        c.sum[seg as usize][a] = c.node_sum(org, pop, seg, a);
                    }
                }
            }
        }
        true
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
