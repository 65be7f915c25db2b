//! The rules a fact must meet wherever it enters cezone: the service that records it checks
//! them before storing it, and every consumer that keeps a copy (scoring's read model) checks
//! each event with the same functions before applying it, so a message published straight to
//! the exchange cannot put into the scores what the service would have refused.
//!
//! Three levels: [`statistic`], [`tally`] and [`evidence`] need nothing but the fact; the
//! `_fits` functions check it against the framework's catalog and criteria; [`in_tree`] checks
//! its org unit. The `_in` functions do all three, as a service that has the framework and the
//! tree at hand does.

use std::ops::RangeInclusive;

use crate::facts::{EvidenceFact, EvidenceState, StatFact, SurveyTally};
use crate::framework::Framework;
use crate::org::{OrgTree, OrgUnitId};

/// Years a fact may be about.
pub const PERIODS: RangeInclusive<i32> = 1900..=2200;

/// Why a fact is refused: the field and the reason, in the caller's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FactError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: String) -> Result<(), FactError> {
    Err(FactError { field, reason })
}

/// The period is a plausible year.
pub fn period(field: &'static str, p: i32) -> Result<(), FactError> {
    if PERIODS.contains(&p) {
        Ok(())
    } else {
        refuse(field, format!("{p} is not a plausible year"))
    }
}

/// A statistic on its own: a plausible year and a value of 0 or more.
pub fn statistic(s: &StatFact) -> Result<(), FactError> {
    period("period", s.period)?;
    if s.value < 0 {
        return refuse(
            "value",
            format!("{} is negative; counts and amounts are 0 or more", s.value),
        );
    }
    Ok(())
}

/// The org unit exists in the tree.
pub fn in_tree(id: &OrgUnitId, tree: &OrgTree) -> Result<(), FactError> {
    if tree.find(id).is_none() {
        return refuse("org_unit", format!("'{id}' is not an existing org unit"));
    }
    Ok(())
}

/// A statistic of this framework and tree: an existing org unit and a metric of the catalog.
pub fn statistic_in(s: &StatFact, fw: &Framework, tree: &OrgTree) -> Result<(), FactError> {
    in_tree(&s.org_unit, tree)?;
    statistic_fits(s, fw)?;
    statistic(s)
}

/// A value in the metric's own unit for people: yuan for amounts stored in fen.
fn shown(def: &crate::rules::MetricDef, v: i64) -> String {
    match def.unit {
        crate::rules::MetricUnit::Yuan => format!("{:.2}", v as f64 / 100.0),
        _ => v.to_string(),
    }
}

/// The statistic's value is within what its org unit's population makes plausible (the
/// catalog's `max_per_resident`, or the unit's default), where the population of the year is
/// known. Checked by the service that records the statistic, which has the current tree.
pub fn statistic_plausible(s: &StatFact, fw: &Framework, tree: &OrgTree) -> Result<(), FactError> {
    statistic_plausible_among(s, fw, tree, &tree.populations(s.period))
}

/// [`statistic_plausible`] with the period's populations computed once
/// ([`OrgTree::populations`] of `s.period`), for checking a whole return.
pub fn statistic_plausible_among(
    s: &StatFact,
    fw: &Framework,
    tree: &OrgTree,
    populations: &[u64],
) -> Result<(), FactError> {
    let (Some(def), Some(i)) = (fw.catalog.metric(&s.metric), tree.find(&s.org_unit)) else {
        return Ok(());
    };
    let Some(per) = def.max_per_resident() else {
        return Ok(());
    };
    let residents = populations.get(i).copied().unwrap_or(0);
    if residents == 0 || s.value < 0 {
        return Ok(());
    }
    // Persons and counts per resident; yuan per resident, stored in fen.
    let scale: u128 = if def.unit == crate::rules::MetricUnit::Yuan {
        100
    } else {
        1
    };
    let bound = (u128::from(per.milli()) * u128::from(residents) * scale).div_ceil(1000);
    if (s.value as u128) > bound {
        return refuse(
            "value",
            format!(
                "{} {} is implausible for {} ({}) in {}: at most {} per resident × {} residents = {}                  (catalog max_per_resident)",
                shown(def, s.value),
                def.unit_label(),
                s.metric,
                s.org_unit,
                s.period,
                f64::from(per),
                residents,
                shown(def, bound.min(i64::MAX as u128) as i64)
            ),
        );
    }
    Ok(())
}

/// The statistic's metric is one of the framework's catalog, and its value within the
/// metric's plausible maximum.
pub fn statistic_fits(s: &StatFact, fw: &Framework) -> Result<(), FactError> {
    if let Some(def) = fw.catalog.metric(&s.metric)
        && s.value > def.max()
    {
        return refuse(
            "value",
            format!(
                "{} {} is more than {} can plausibly be (at most {}; catalog max)",
                shown(def, s.value),
                def.unit_label(),
                s.metric,
                shown(def, def.max())
            ),
        );
    }
    if fw.catalog.metric(&s.metric).is_none() {
        let known: Vec<&str> = fw.catalog.metrics.iter().map(|m| m.id.as_str()).collect();
        return refuse(
            "metric",
            format!(
                "'{}' is not a metric of {} (known: {})",
                s.metric,
                fw.meta.id,
                known.join(", ")
            ),
        );
    }
    Ok(())
}

/// A survey tally on its own: a plausible year, no more positive answers than answers.
pub fn tally(t: &SurveyTally) -> Result<(), FactError> {
    period("period", t.period)?;
    if t.positive > t.responses {
        return refuse(
            "positive",
            format!(
                "{} positive answers out of {} responses",
                t.positive, t.responses
            ),
        );
    }
    Ok(())
}

/// A tally of this framework and tree: an existing org unit and a question of the catalog.
pub fn tally_in(t: &SurveyTally, fw: &Framework, tree: &OrgTree) -> Result<(), FactError> {
    in_tree(&t.org_unit, tree)?;
    tally_fits(t, fw)?;
    tally(t)
}

/// The tally's question is one of the framework's catalog.
pub fn tally_fits(t: &SurveyTally, fw: &Framework) -> Result<(), FactError> {
    if fw.catalog.question(&t.question).is_none() {
        return refuse(
            "question",
            format!("'{}' is not a question of {}", t.question, fw.meta.id),
        );
    }
    Ok(())
}

/// Evidence on its own: a grade of at most 100 and an id.
pub fn evidence(e: &EvidenceFact) -> Result<(), FactError> {
    if e.id.trim().is_empty() {
        return refuse("id", "is empty".into());
    }
    if let EvidenceState::Accepted { grade } = e.state
        && grade > 100
    {
        return refuse("grade", format!("{grade} is above 100"));
    }
    Ok(())
}

/// Evidence of this framework and tree: a criterion (leaf) of the framework, a unit responsible
/// for it, and an existing org unit.
pub fn evidence_in(e: &EvidenceFact, fw: &Framework, tree: &OrgTree) -> Result<(), FactError> {
    in_tree(&e.org_unit, tree)?;
    evidence_fits(e, fw)?;
    evidence(e)
}

/// The evidence's criterion is a criterion (leaf) of the framework and its unit is responsible
/// for it.
pub fn evidence_fits(e: &EvidenceFact, fw: &Framework) -> Result<(), FactError> {
    let Some(i) = fw.find(&e.criterion) else {
        return refuse(
            "criterion",
            format!("'{}' is not an item of {}", e.criterion, fw.meta.id),
        );
    };
    if !fw.is_leaf(i) {
        return refuse(
            "criterion",
            format!(
                "'{}' is a group; evidence is filed for criteria",
                e.criterion
            ),
        );
    }
    if !fw.item(i).responsible.contains(&e.unit) {
        return refuse(
            "unit",
            format!("'{}' is not responsible for {}", e.unit, e.criterion),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::MetricId;

    fn stat(value: i64, period: i32) -> StatFact {
        StatFact {
            org_unit: OrgUnitId::parse("nanhai").unwrap(),
            metric: MetricId::parse("residents_served").unwrap(),
            period,
            value,
            version: 1,
            state: Default::default(),
        }
    }

    #[test]
    fn statistics_need_a_year_and_a_value_of_zero_or_more() {
        assert!(statistic(&stat(0, 2013)).is_ok());
        assert_eq!(statistic(&stat(-1, 2013)).unwrap_err().field, "value");
        assert_eq!(statistic(&stat(1, 1800)).unwrap_err().field, "period");
    }

    #[test]
    fn values_beyond_the_plausible_are_refused_with_the_bound() {
        use crate::org::{CommunityType, OrgLevel, OrgUnit, RegionClass};
        let (fw, _) = crate::guangdong::framework();
        let u = |id: &str, level, parent: Option<&str>, pop: Option<u64>| OrgUnit {
            id: OrgUnitId::parse(id).unwrap(),
            name: id.to_string(),
            level,
            parent: parent.map(|p| OrgUnitId::parse(p).unwrap()),
            community_type: (level == OrgLevel::Community).then_some(CommunityType::Urban),
            region: (level == OrgLevel::District).then_some(RegionClass::PearlRiverDelta),
            population: pop.into_iter().map(|p| (2013, p)).collect(),
        };
        let tree = OrgTree::build(vec![
            u("d", OrgLevel::District, None, None),
            u("d.t", OrgLevel::Town, Some("d"), None),
            u("d.t.c", OrgLevel::Community, Some("d.t"), Some(3_000)),
            u("d.t.n", OrgLevel::Community, Some("d.t"), None),
        ])
        .unwrap();
        let s = |org: &str, metric: &str, value: i64| StatFact {
            org_unit: OrgUnitId::parse(org).unwrap(),
            metric: MetricId::parse(metric).unwrap(),
            period: 2013,
            value,
            version: 1,
            state: Default::default(),
        };
        // i64::MAX staff: beyond any catalog maximum, wherever it is filed.
        let e = statistic_fits(&s("d.t.c", "staff_fulltime", i64::MAX), &fw).unwrap_err();
        assert_eq!(e.field, "value");
        assert!(
            e.reason.contains("20000000") && e.reason.contains("catalog max"),
            "{e}"
        );
        // More staff than residents: refused naming the population and the bound.
        assert!(statistic_plausible(&s("d.t.c", "staff_fulltime", 3_000), &fw, &tree).is_ok());
        let e = statistic_plausible(&s("d.t.c", "staff_fulltime", 3_001), &fw, &tree).unwrap_err();
        assert!(
            e.reason.contains("3000 residents") && e.reason.contains("max_per_resident"),
            "{e}"
        );
        // The town's population is its communities' (3,000), and a unit without one has no
        // relative bound.
        assert!(statistic_plausible(&s("d.t", "residents_served", 3_001), &fw, &tree).is_err());
        assert!(statistic_plausible(&s("d.t.n", "staff_fulltime", 50_000), &fw, &tree).is_ok());
        // Money per resident (stored in fen): 1,000 yuan × 3,000 residents at most.
        assert!(
            statistic_plausible(&s("d.t.c", "education_funding", 300_000_000), &fw, &tree).is_ok()
        );
        let e = statistic_plausible(&s("d.t.c", "education_funding", 300_000_001), &fw, &tree)
            .unwrap_err();
        assert!(e.reason.contains("元 yuan"), "{e}");
        // Counts of things have no per-resident bound by default.
        assert!(statistic_plausible(&s("d.t.c", "learning_points", 900_000), &fw, &tree).is_ok());
    }

    #[test]
    fn the_demo_districts_statistics_are_plausible() {
        let (fw, _) = crate::guangdong::framework();
        for params in [
            crate::demo::DemoParams::nanhai(7),
            crate::demo::DemoParams::nanhai(11),
        ] {
            let d = crate::demo::generate(&fw, &params);
            let tree = OrgTree::build(d.units.clone()).unwrap();
            for s in &d.statistics {
                statistic_in(s, &fw, &tree).unwrap();
                statistic_plausible(s, &fw, &tree).unwrap();
            }
        }
    }

    #[test]
    fn tallies_cannot_have_more_positive_than_responses() {
        let t = SurveyTally {
            org_unit: OrgUnitId::parse("nanhai").unwrap(),
            question: crate::rules::QuestionId::parse("aware").unwrap(),
            period: 2013,
            responses: 3,
            positive: 4,
            source: String::new(),
            version: 1,
            pending_responses: 0,
            pending_positive: 0,
        };
        assert_eq!(tally(&t).unwrap_err().field, "positive");
    }
}
