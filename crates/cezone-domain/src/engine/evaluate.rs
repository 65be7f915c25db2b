//! Rule evaluation for one org unit: a fraction of the criterion's points, confirmed and
//! projected, and (when asked) the explanation of how it came about. Rules are compiled
//! against the aggregates once; each kind's arithmetic is in `measure`, its words in
//! `describe`, and the combinations (by community type, all of, weighted) here.

use crate::engine::Engine;
use crate::engine::aggregate::{MetricAgg, Segment, SurveyAgg, View};
use crate::engine::describe;
use crate::engine::explain::RuleExplanation;
use crate::engine::measure::{self, At};
use crate::org::{OrgIdx, OrgLevel, RegionClass};
use crate::rules::{Direction, Fen, MetricId, Partial, Percent, QuestionId, Rule, Target};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Eval {
    pub confirmed: f64,
    pub projected: f64,
}

impl Eval {
    fn same(f: f64) -> Eval {
        Eval {
            confirmed: f,
            projected: f,
        }
    }

    fn min(self, other: Eval) -> Eval {
        Eval {
            confirmed: self.confirmed.min(other.confirmed),
            projected: self.projected.min(other.projected),
        }
    }
}

pub(crate) enum Den<'e> {
    Population,
    Metric(Option<&'e MetricAgg>),
}

pub(crate) struct CountTable {
    pub total: [Vec<u32>; 3],
    pub meet: [Vec<u32>; 3],
}

/// A rule with its metric and question references resolved against the aggregates.
pub(crate) enum Compiled<'e> {
    Evidence,
    Ratio {
        num: Option<&'e MetricAgg>,
        num_id: &'e MetricId,
        den: Den<'e>,
        den_id: &'e MetricId,
        target: Target<Percent>,
        partial: Partial,
        basis: &'e str,
    },
    PerCapita {
        amount: Option<&'e MetricAgg>,
        amount_id: &'e MetricId,
        target: Target<Fen>,
        partial: Partial,
        basis: &'e str,
    },
    Survey {
        questions: Vec<(&'e QuestionId, Option<&'e SurveyAgg>)>,
        target: Target<Percent>,
        partial: Partial,
        basis: &'e str,
    },
    Count {
        metric_id: &'e MetricId,
        at_least: i64,
        level: OrgLevel,
        table: CountTable,
        basis: &'e str,
    },
    Trend {
        metric_id: &'e MetricId,
        current: Option<&'e MetricAgg>,
        previous: Option<&'e MetricAgg>,
        direction: Direction,
        per_capita: bool,
        basis: &'e str,
    },
    BySegment {
        urban: Box<Compiled<'e>>,
        rural: Box<Compiled<'e>>,
    },
    AllOf(Vec<Compiled<'e>>),
    Weighted(Vec<(u32, Compiled<'e>)>),
}

/// A rule compiled for both scores; `confirmed` is none when both read the same figures.
pub(crate) struct Pair<'e> {
    pub projected: Compiled<'e>,
    pub confirmed: Option<Compiled<'e>>,
}

pub(crate) struct Context<'e> {
    eng: &'e Engine,
    region: Vec<RegionClass>,
}

impl<'e> Context<'e> {
    pub fn new(eng: &'e Engine) -> Context<'e> {
        let org = &eng.org;
        let mut region = Vec::with_capacity(org.len());
        for i in 0..org.len() {
            let r = match (org.unit(i).region, org.parent(i)) {
                (Some(r), _) => r,
                (None, Some(p)) => region[p],
                (None, None) => RegionClass::default(),
            };
            region.push(r);
        }
        Context { eng, region }
    }

    /// A rule read over the projected view and, where some figure it reads is not accepted,
    /// over the confirmed view too.
    pub fn compile_pair<'r>(&'r self, rule: &'r Rule) -> Pair<'r>
    where
        'e: 'r,
    {
        let agg = &self.eng.agg;
        let p = self.eng.period;
        let differs = rule.metrics().iter().any(|m| {
            [p, p - 1]
                .iter()
                .any(|&y| agg.metric(m, y).is_some_and(|a| a.confirmed.is_some()))
        }) || rule
            .questions()
            .iter()
            .any(|q| agg.survey(q, p).is_some_and(|a| a.confirmed.is_some()));
        Pair {
            projected: self.compile_as(rule, View::Projected),
            confirmed: differs.then(|| self.compile_as(rule, View::Confirmed)),
        }
    }

    /// Both scores of a pair: the confirmed one from accepted figures, the projected one from
    /// pending figures too. The explanation, when asked, is of the projected reading.
    pub fn eval_pair(
        &self,
        pair: &Pair<'_>,
        node: OrgIdx,
        seg: Segment,
        evidence: (f64, f64),
        explain: Option<&mut RuleExplanation>,
    ) -> Eval {
        let mut e = self.eval(&pair.projected, node, seg, evidence, explain);
        if let Some(c) = &pair.confirmed {
            e.confirmed = self.eval(c, node, seg, evidence, None).confirmed;
        }
        e
    }

    pub fn compile_as<'r>(&'r self, rule: &'r Rule, view: View) -> Compiled<'r>
    where
        'e: 'r,
    {
        let agg = &self.eng.agg;
        let p = self.eng.period;
        let read = |id: &MetricId, year: i32| agg.metric(id, year).map(|m| m.view(view));
        match rule {
            Rule::Evidence { .. } => Compiled::Evidence,
            Rule::Ratio {
                numerator,
                denominator,
                target,
                partial,
                basis,
            } => Compiled::Ratio {
                num: read(numerator, p),
                num_id: numerator,
                den: if denominator.is_population() {
                    Den::Population
                } else {
                    Den::Metric(read(denominator, p))
                },
                den_id: denominator,
                target: *target,
                partial: *partial,
                basis,
            },
            Rule::PerCapita {
                amount,
                target,
                partial,
                basis,
            } => Compiled::PerCapita {
                amount: read(amount, p),
                amount_id: amount,
                target: *target,
                partial: *partial,
                basis,
            },
            Rule::SurveyRate {
                questions,
                target,
                partial,
                basis,
            } => Compiled::Survey {
                questions: questions
                    .iter()
                    .map(|q| (q, agg.survey(q, p).map(|a| a.view(view))))
                    .collect(),
                target: *target,
                partial: *partial,
                basis,
            },
            Rule::CountAtLeast {
                metric,
                at_least,
                level,
                basis,
            } => {
                let org = &self.eng.org;
                let n = org.len();
                let m = read(metric, p);
                let mut table = CountTable {
                    total: [vec![0; n], vec![0; n], vec![0; n]],
                    meet: [vec![0; n], vec![0; n], vec![0; n]],
                };
                for seg in Segment::EACH {
                    let s = seg as usize;
                    for i in (0..n).rev() {
                        let here = org.unit(i).level == *level && seg.includes(org, i);
                        let mut t = u32::from(here);
                        let value = m.map_or(0, |m| m.sum[0][i]);
                        let mut k = u32::from(here && value >= *at_least);
                        for &c in org.children(i) {
                            t += table.total[s][c];
                            k += table.meet[s][c];
                        }
                        table.total[s][i] = t;
                        table.meet[s][i] = k;
                    }
                }
                Compiled::Count {
                    metric_id: metric,
                    at_least: *at_least,
                    level: *level,
                    table,
                    basis,
                }
            }
            Rule::Trend {
                metric,
                direction,
                per_capita,
                basis,
            } => Compiled::Trend {
                metric_id: metric,
                current: read(metric, p),
                previous: read(metric, p - 1),
                direction: *direction,
                per_capita: *per_capita,
                basis,
            },
            Rule::ByCommunityType { urban, rural } => Compiled::BySegment {
                urban: Box::new(self.compile_as(urban, view)),
                rural: Box::new(self.compile_as(rural, view)),
            },
            Rule::AllOf { rules } => {
                Compiled::AllOf(rules.iter().map(|r| self.compile_as(r, view)).collect())
            }
            Rule::Weighted { parts } => Compiled::Weighted(
                parts
                    .iter()
                    .map(|p| (p.weight, self.compile_as(&p.rule, view)))
                    .collect(),
            ),
        }
    }

    /// Evaluates a compiled rule for `node` restricted to `seg`. `evidence` is the criterion's
    /// evidence fraction (confirmed, projected) for the node. With `explain`, fills it in.
    pub fn eval(
        &self,
        rule: &Compiled<'_>,
        node: OrgIdx,
        seg: Segment,
        evidence: (f64, f64),
        mut explain: Option<&mut RuleExplanation>,
    ) -> Eval {
        let at = At {
            node,
            seg,
            region: self.region[node],
            period: self.eng.period,
        };
        let (agg, org) = (&self.eng.agg, &self.eng.org);
        // Words only when asked: this runs for every cell of the board.
        let words = explain.as_deref_mut();
        let out = match rule {
            Compiled::Evidence => Eval {
                confirmed: evidence.0,
                projected: evidence.1,
            },
            Compiled::Ratio {
                num,
                num_id,
                den,
                den_id,
                target,
                partial,
                basis,
            } => {
                let t = target.for_region(at.region);
                let r = measure::ratio(agg, at, *num, den, t, *partial);
                if let Some(x) = words {
                    describe::ratio(x, &r, (*num_id, *den_id), *partial, basis, at.period);
                }
                Eval::same(r.fraction)
            }
            Compiled::PerCapita {
                amount,
                amount_id,
                target,
                partial,
                basis,
            } => {
                let t = target.for_region(at.region);
                let r = measure::per_capita(agg, at, *amount, t, *partial);
                if let Some(x) = words {
                    describe::per_capita(x, &r, amount_id, basis, at.period);
                }
                Eval::same(r.fraction)
            }
            Compiled::Survey {
                questions,
                target,
                partial,
                basis,
            } => {
                let t = target.for_region(at.region);
                let f = measure::survey(questions.iter().map(|(_, sa)| *sa), at, t, *partial);
                if let Some(x) = words {
                    describe::survey(x, questions, at, (t, *partial), basis);
                }
                Eval::same(f)
            }
            Compiled::Count {
                metric_id,
                at_least,
                level,
                table,
                basis,
            } => {
                let r = measure::count(org, table, *level, at);
                if let Some(x) = words {
                    describe::count(x, &r, org, (*metric_id, *at_least, *level), basis);
                }
                Eval::same(r.fraction)
            }
            Compiled::Trend {
                metric_id,
                current,
                previous,
                direction,
                per_capita,
                basis,
            } => {
                let r = measure::trend(agg, at, *current, *previous, *direction, *per_capita);
                if let Some(x) = words {
                    let what = (*metric_id, *direction, *per_capita);
                    describe::trend(x, &r, what, basis, at.period);
                }
                Eval::same(r.fraction)
            }
            Compiled::BySegment { urban, rural } => {
                self.by_segment([&**urban, &**rural], node, evidence, words)
            }
            Compiled::AllOf(parts) => self.all_of(parts, node, seg, evidence, words),
            Compiled::Weighted(parts) => self.weighted(parts, node, seg, evidence, words),
        };
        if let Some(x) = explain {
            x.fraction_confirmed = out.confirmed;
            x.fraction_projected = out.projected;
        }
        out
    }

    /// Urban and rural communities judged each by their own rule; the weaker counts. A part
    /// with no communities of its kind here does not apply.
    fn by_segment(
        &self,
        [urban, rural]: [&Compiled<'_>; 2],
        node: OrgIdx,
        evidence: (f64, f64),
        mut explain: Option<&mut RuleExplanation>,
    ) -> Eval {
        let counts = &self.eng.agg.community_count;
        let mut result: Option<Eval> = None;
        for (sub, subseg, label) in [
            (urban, Segment::Urban, "urban"),
            (rural, Segment::Rural, "rural"),
        ] {
            let applies = counts[subseg as usize][node] > 0;
            let mut part = explain.as_ref().map(|_| RuleExplanation::named(label));
            if applies {
                let e = self.eval(sub, node, subseg, evidence, part.as_mut());
                result = Some(result.map_or(e, |r| r.min(e)));
            } else if let Some(p) = part.as_mut() {
                p.note = Some(format!("no {label} communities here; not applicable"));
            }
            // Matched apart, so the empty part is not moved on every cell.
            if let Some(mut p) = part
                && let Some(x) = explain.as_deref_mut()
            {
                p.segment = Some(subseg.name());
                p.rule = sub_kind(sub);
                x.parts.push(p);
            }
        }
        if result.is_none()
            && let Some(x) = explain
        {
            x.note = Some("no communities here, so neither target applies".into());
        }
        result.unwrap_or(Eval::same(0.0))
    }

    /// Every part must be met: the weakest counts.
    fn all_of(
        &self,
        parts: &[Compiled<'_>],
        node: OrgIdx,
        seg: Segment,
        evidence: (f64, f64),
        mut explain: Option<&mut RuleExplanation>,
    ) -> Eval {
        let mut r = Eval::same(1.0);
        for sub in parts {
            let mut part = explain
                .as_ref()
                .map(|_| RuleExplanation::named(sub_kind(sub)));
            r = r.min(self.eval(sub, node, seg, evidence, part.as_mut()));
            if let Some(p) = part
                && let Some(x) = explain.as_deref_mut()
            {
                x.parts.push(p);
            }
        }
        r
    }

    /// The parts' readings weighed by their share of the weights.
    fn weighted(
        &self,
        parts: &[(u32, Compiled<'_>)],
        node: OrgIdx,
        seg: Segment,
        evidence: (f64, f64),
        mut explain: Option<&mut RuleExplanation>,
    ) -> Eval {
        let total: u32 = parts.iter().map(|(w, _)| *w).sum();
        let mut r = Eval::same(0.0);
        for (w, sub) in parts {
            let mut part = explain
                .as_ref()
                .map(|_| RuleExplanation::named(sub_kind(sub)));
            let e = self.eval(sub, node, seg, evidence, part.as_mut());
            let share = if total == 0 {
                0.0
            } else {
                f64::from(*w) / f64::from(total)
            };
            r.confirmed += share * e.confirmed;
            r.projected += share * e.projected;
            if let Some(mut p) = part
                && let Some(x) = explain.as_deref_mut()
            {
                p.weight = Some(*w);
                x.parts.push(p);
            }
        }
        r
    }
}

pub(crate) fn sub_kind(c: &Compiled<'_>) -> &'static str {
    match c {
        Compiled::Evidence => "evidence",
        Compiled::Ratio { .. } => "ratio",
        Compiled::PerCapita { .. } => "per_capita",
        Compiled::Survey { .. } => "survey_rate",
        Compiled::Count { .. } => "count_at_least",
        Compiled::Trend { .. } => "trend",
        Compiled::BySegment { .. } => "by_community_type",
        Compiled::AllOf(_) => "all_of",
        Compiled::Weighted(_) => "weighted",
    }
}
