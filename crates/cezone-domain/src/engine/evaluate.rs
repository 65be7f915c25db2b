//! Rule evaluation for one org unit: a fraction of the criterion's points, confirmed and
//! projected, and (when asked) the explanation of how it came about.

use crate::engine::Engine;
use crate::engine::aggregate::{MetricAgg, Segment, SurveyAgg, View};
use crate::engine::explain::{RuleExplanation, SurveyStat};
use crate::org::{OrgIdx, OrgLevel, RegionClass};
use crate::rules::{Direction, Fen, MetricId, Partial, Percent, QuestionId, Rule, Target};
use crate::stats::WeightedRate;

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
}

pub(crate) enum Den<'e> {
    Population,
    Metric(Option<&'e MetricAgg>),
}

pub(crate) struct CountTable {
    total: [Vec<u32>; 3],
    meet: [Vec<u32>; 3],
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

fn linear(value: f64, target: f64, partial: Partial) -> f64 {
    partial.credit(value, target)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
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
        let s = seg as usize;
        let region = self.region[node];
        let period = self.eng.period;
        let agg = &self.eng.agg;
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
                let t = target.for_region(region);
                let n = num.map_or(0, |m| m.sum[s][node]);
                let (d, has_den) = match den {
                    Den::Population => {
                        let p = agg.population(period, seg, node) as i64;
                        (p, p > 0)
                    }
                    Den::Metric(m) => {
                        let d = m.map_or(0, |m| m.sum[s][node]);
                        (d, m.is_some_and(|m| m.filed[s][node] > 0))
                    }
                };
                let has_num = num.is_some_and(|m| m.filed[s][node] > 0);
                let v = if has_den && d > 0 && has_num {
                    Some(n as f64 / d as f64)
                } else {
                    None
                };
                let f = v.map_or(0.0, |v| linear(v, t.as_fraction(), *partial));
                // Words only when asked: this runs for every cell of the board.
                if let Some(x) = explain.as_deref_mut() {
                    let (measured, note) = if !has_den {
                        (
                            None,
                            Some(format!(
                                "no {den_id} filed for {period}, so the rate cannot be computed"
                            )),
                        )
                    } else if d <= 0 {
                        (
                            None,
                            Some(format!(
                                "{den_id} is {d} for {period}, so the rate cannot be computed"
                            )),
                        )
                    } else if !has_num {
                        (
                            Some(pct(0.0)),
                            Some(format!("no {num_id} filed for {period}")),
                        )
                    } else {
                        let band = v.and_then(|v| partial.band_applied(v, t.as_fraction()));
                        (v.map(pct), band.map(|b| format!("容差区间 band: {b}")))
                    };
                    x.basis = basis.to_string();
                    x.target = Some(format!("≥ {t}"));
                    x.measured = measured;
                    x.facts.push(format!("{num_id} = {n} ({period})"));
                    x.facts.push(format!("{den_id} = {d} ({period})"));
                    x.note = note;
                }
                Eval::same(f)
            }
            Compiled::PerCapita {
                amount,
                amount_id,
                target,
                partial,
                basis,
            } => {
                let t = target.for_region(region);
                let fen = amount.map_or(0, |m| m.sum[s][node]);
                let filed = amount.is_some_and(|m| m.filed[s][node] > 0);
                let pop = agg.population(period, seg, node);
                let per = (pop > 0 && filed).then(|| fen as f64 / pop as f64);
                let f = per.map_or(0.0, |per| linear(per, t.0 as f64, *partial));
                if let Some(x) = explain.as_deref_mut() {
                    let (measured, note) = if pop == 0 {
                        (
                            None,
                            Some(format!("no resident population known for {period}")),
                        )
                    } else if !filed {
                        (None, Some(format!("no {amount_id} filed for {period}")))
                    } else {
                        (
                            per.map(|per| format!("{:.2} 元 per resident", per / 100.0)),
                            None,
                        )
                    };
                    x.basis = basis.to_string();
                    x.target = Some(format!("≥ {t} per resident per year"));
                    x.measured = measured;
                    x.facts
                        .push(format!("{amount_id} = {} ({period})", Fen(fen)));
                    x.facts.push(format!("population = {pop} ({period})"));
                    x.note = note;
                }
                Eval::same(f)
            }
            Compiled::Survey {
                questions,
                target,
                partial,
                basis,
            } => {
                let t = target.for_region(region);
                let mut f = 1.0f64;
                let mut notes = Vec::new();
                for (q, sa) in questions {
                    let wr: WeightedRate = sa.map(|a| a.sum[s][node]).unwrap_or_default();
                    let rate = wr.rate();
                    let qf = match rate {
                        Some(r) => linear(r, t.as_fraction(), *partial),
                        None => {
                            if explain.is_some() {
                                notes.push(format!("no survey answers to '{q}' for {period}"));
                            }
                            0.0
                        }
                    };
                    f = f.min(qf);
                    if let Some(x) = explain.as_deref_mut() {
                        if let Some(b) = rate.and_then(|r| partial.band_applied(r, t.as_fraction()))
                        {
                            notes.push(format!("{q} 容差区间 band: {b}"));
                        }
                        let (lo, hi) = wr.interval().unwrap_or((0.0, 1.0));
                        let tf = t.as_fraction();
                        x.surveys.push(SurveyStat {
                            question: q.to_string(),
                            rate,
                            low: lo,
                            high: hi,
                            responses: wr.responses,
                            positive: wr.positive,
                            effective_n: wr.effective_n(),
                            target: tf,
                            straddles_target: rate.is_some() && lo < tf && tf < hi,
                        });
                    }
                }
                if let Some(x) = explain.as_deref_mut() {
                    x.basis = basis.to_string();
                    x.target = Some(format!("≥ {t} for every question"));
                    x.measured = Some(
                        x.surveys
                            .iter()
                            .map(|s| format!("{} {}", s.question, s.rate.map_or("—".into(), pct)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                    if x.surveys.iter().any(|s| s.straddles_target) {
                        notes.push("a 95% interval straddles the target: the sample cannot tell whether it is met".into());
                    }
                    if !notes.is_empty() {
                        x.note = Some(notes.join("; "));
                    }
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
                let org = &self.eng.org;
                let (total, meet, at) = if org.unit(node).level > *level {
                    match org.ancestor_at(node, *level) {
                        Some(a) => (table.total[s][a], table.meet[s][a], Some(a)),
                        None => (0, 0, None),
                    }
                } else {
                    (table.total[s][node], table.meet[s][node], None)
                };
                let f = if total == 0 {
                    0.0
                } else {
                    f64::from(meet) / f64::from(total)
                };
                if let Some(x) = explain.as_deref_mut() {
                    x.basis = basis.to_string();
                    x.target = Some(format!(
                        "{metric_id} ≥ {at_least} in every {}",
                        level.as_str()
                    ));
                    x.measured = Some(format!(
                        "{meet} of {total} {} unit(s) meet it",
                        level.as_str()
                    ));
                    if let Some(a) = at {
                        x.facts.push(format!(
                            "judged at {} ({})",
                            org.unit(a).name,
                            org.unit(a).id
                        ));
                    }
                    if total == 0 {
                        x.note = Some(format!("no org unit at level {} here", level.as_str()));
                    }
                }
                Eval::same(f)
            }
            Compiled::Trend {
                metric_id,
                current,
                previous,
                direction,
                per_capita,
                basis,
            } => {
                let value = |m: &Option<&MetricAgg>, year: i32| -> Option<f64> {
                    let m = (*m)?;
                    if m.filed[s][node] == 0 {
                        return None;
                    }
                    let v = m.sum[s][node] as f64;
                    if *per_capita {
                        let pop = agg.population(year, seg, node);
                        (pop > 0).then(|| v * 10_000.0 / pop as f64)
                    } else {
                        Some(v)
                    }
                };
                let (cur, prev) = (value(current, period), value(previous, period - 1));
                let f = match (cur, prev, direction) {
                    (Some(c), Some(p), Direction::Falling) if c < p => 1.0,
                    (Some(c), Some(p), Direction::Rising) if c > p => 1.0,
                    _ => 0.0,
                };
                if let Some(x) = explain.as_deref_mut() {
                    let unit = if *per_capita {
                        " per 10,000 residents"
                    } else {
                        ""
                    };
                    let show =
                        |v: Option<f64>| v.map_or("not filed".to_string(), |v| format!("{v:.2}"));
                    x.basis = basis.to_string();
                    x.target = Some(format!(
                        "{metric_id}{unit} {} from {} to {period}",
                        if *direction == Direction::Falling {
                            "falls"
                        } else {
                            "rises"
                        },
                        period - 1
                    ));
                    x.measured = Some(format!("{} → {}", show(prev), show(cur)));
                    x.facts
                        .push(format!("{metric_id}{unit} {}: {}", period - 1, show(prev)));
                    x.facts
                        .push(format!("{metric_id}{unit} {period}: {}", show(cur)));
                    if cur.is_none() || prev.is_none() {
                        x.note = Some("both periods must be filed to judge a trend".into());
                    }
                }
                Eval::same(f)
            }
            Compiled::BySegment { urban, rural } => {
                let counts = &agg.community_count;
                let mut result: Option<Eval> = None;
                for (sub, subseg, label) in [
                    (urban, Segment::Urban, "urban"),
                    (rural, Segment::Rural, "rural"),
                ] {
                    let applies = counts[subseg as usize][node] > 0;
                    let mut part = explain.as_ref().map(|_| RuleExplanation::named(label));
                    if applies {
                        let e = self.eval(sub, node, subseg, evidence, part.as_mut());
                        result = Some(match result {
                            None => e,
                            Some(r) => Eval {
                                confirmed: r.confirmed.min(e.confirmed),
                                projected: r.projected.min(e.projected),
                            },
                        });
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
                    && let Some(x) = explain.as_deref_mut()
                {
                    x.note = Some("no communities here, so neither target applies".into());
                }
                result.unwrap_or(Eval::same(0.0))
            }
            Compiled::AllOf(parts) => {
                let mut r = Eval::same(1.0);
                for sub in parts {
                    let mut part = explain
                        .as_ref()
                        .map(|_| RuleExplanation::named(sub_kind(sub)));
                    let e = self.eval(sub, node, seg, evidence, part.as_mut());
                    r.confirmed = r.confirmed.min(e.confirmed);
                    r.projected = r.projected.min(e.projected);
                    if let Some(p) = part
                        && let Some(x) = explain.as_deref_mut()
                    {
                        x.parts.push(p);
                    }
                }
                r
            }
            Compiled::Weighted(parts) => {
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
        };
        if let Some(x) = explain {
            x.fraction_confirmed = out.confirmed;
            x.fraction_projected = out.projected;
        }
        out
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
