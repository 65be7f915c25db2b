//! The words of a rule's explanation: what it asked, what it measured, the figures it read
//! and why it could not judge. Written only when someone asks how a score came about;
//! `measure` computes the same readings without them.

use crate::engine::aggregate::SurveyAgg;
use crate::engine::explain::{RuleExplanation, SurveyStat};
use crate::engine::measure::{
    At, CountReading, PerCapitaReading, RatioReading, TrendReading, answers,
};
use crate::org::{OrgLevel, OrgTree};
use crate::rules::{Direction, MetricId, Partial, Percent, QuestionId};

pub(crate) fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

pub(crate) fn ratio(
    x: &mut RuleExplanation,
    r: &RatioReading,
    ids: (&MetricId, &MetricId),
    partial: Partial,
    basis: &str,
    period: i32,
) {
    let (num_id, den_id) = ids;
    let (d, t) = (r.denominator, r.target);
    let (measured, note) = if !r.denominator_known {
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
    } else if !r.numerator_filed {
        (
            Some(pct(0.0)),
            Some(format!("no {num_id} filed for {period}")),
        )
    } else {
        let band = r
            .rate
            .and_then(|v| partial.band_applied(v, t.as_fraction()));
        (r.rate.map(pct), band.map(|b| format!("容差区间 band: {b}")))
    };
    x.basis = basis.to_string();
    x.target = Some(format!("≥ {t}"));
    x.measured = measured;
    x.facts
        .push(format!("{num_id} = {} ({period})", r.numerator));
    x.facts.push(format!("{den_id} = {d} ({period})"));
    x.note = note;
}

pub(crate) fn per_capita(
    x: &mut RuleExplanation,
    r: &PerCapitaReading,
    amount_id: &MetricId,
    basis: &str,
    period: i32,
) {
    let (measured, note) = if r.population == 0 {
        (
            None,
            Some(format!("no resident population known for {period}")),
        )
    } else if !r.filed {
        (None, Some(format!("no {amount_id} filed for {period}")))
    } else {
        (
            r.per_resident
                .map(|per| format!("{:.2} 元 per resident", per / 100.0)),
            None,
        )
    };
    x.basis = basis.to_string();
    x.target = Some(format!("≥ {} per resident per year", r.target));
    x.measured = measured;
    x.facts
        .push(format!("{amount_id} = {} ({period})", r.amount));
    x.facts
        .push(format!("population = {} ({period})", r.population));
    x.note = note;
}

/// Each question's rate with its 95 % interval, and whether the sample can tell.
pub(crate) fn survey(
    x: &mut RuleExplanation,
    questions: &[(&QuestionId, Option<&SurveyAgg>)],
    at: At,
    (target, partial): (Percent, Partial),
    basis: &str,
) {
    let tf = target.as_fraction();
    let mut notes = Vec::new();
    for (q, sa) in questions {
        let wr = answers(*sa, at);
        let rate = wr.rate();
        if rate.is_none() {
            notes.push(format!("no survey answers to '{q}' for {}", at.period));
        }
        if let Some(b) = rate.and_then(|r| partial.band_applied(r, tf)) {
            notes.push(format!("{q} 容差区间 band: {b}"));
        }
        let (lo, hi) = wr.interval().unwrap_or((0.0, 1.0));
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
    x.basis = basis.to_string();
    x.target = Some(format!("≥ {target} for every question"));
    x.measured = Some(
        x.surveys
            .iter()
            .map(|s| format!("{} {}", s.question, s.rate.map_or("—".into(), pct)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if x.surveys.iter().any(|s| s.straddles_target) {
        notes.push(
            "a 95% interval straddles the target: the sample cannot tell whether it is met".into(),
        );
    }
    if !notes.is_empty() {
        x.note = Some(notes.join("; "));
    }
}

pub(crate) fn count(
    x: &mut RuleExplanation,
    r: &CountReading,
    org: &OrgTree,
    (metric_id, at_least, level): (&MetricId, i64, OrgLevel),
    basis: &str,
) {
    let level = level.as_str();
    x.basis = basis.to_string();
    x.target = Some(format!("{metric_id} ≥ {at_least} in every {level}"));
    x.measured = Some(format!("{} of {} {level} unit(s) meet it", r.meet, r.total));
    if let Some(a) = r.judged_at {
        x.facts.push(format!(
            "judged at {} ({})",
            org.unit(a).name,
            org.unit(a).id
        ));
    }
    if r.total == 0 {
        x.note = Some(format!("no org unit at level {level} here"));
    }
}

pub(crate) fn trend(
    x: &mut RuleExplanation,
    r: &TrendReading,
    (metric_id, direction, per_capita): (&MetricId, Direction, bool),
    basis: &str,
    period: i32,
) {
    let unit = if per_capita {
        " per 10,000 residents"
    } else {
        ""
    };
    let show = |v: Option<f64>| v.map_or("not filed".to_string(), |v| format!("{v:.2}"));
    let (cur, prev) = (r.current, r.previous);
    let moves = if direction == Direction::Falling {
        "falls"
    } else {
        "rises"
    };
    x.basis = basis.to_string();
    x.target = Some(format!(
        "{metric_id}{unit} {moves} from {} to {period}",
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
