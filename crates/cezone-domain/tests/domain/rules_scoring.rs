//! Each rule kind on a small district: d → t1 (c1 urban 1000, c2 rural 3000), t2 (c3 urban 4000).

use cezone_domain::engine::{Engine, SlotStatus};
use cezone_domain::facts::{EvidenceFact, EvidenceState, Facts, StatFact, SurveyTally};
use cezone_domain::org::{OrgTree, OrgUnitId, RegionClass};
use cezone_domain::points::Points;
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_domain::units::UnitId;

use crate::support::{catalog_toml, code, framework, item, small_tree};

fn stat(org: &str, metric: &str, period: i32, value: i64) -> StatFact {
    StatFact {
        org_unit: OrgUnitId::parse(org).unwrap(),
        metric: MetricId::parse(metric).unwrap(),
        period,
        value,
        version: 1,
        state: Default::default(),
    }
}

fn tally(org: &str, q: &str, n: u64, k: u64) -> SurveyTally {
    SurveyTally {
        org_unit: OrgUnitId::parse(org).unwrap(),
        question: QuestionId::parse(q).unwrap(),
        period: 2013,
        responses: n,
        positive: k,
        source: String::new(),
        version: 0,
        pending_responses: 0,
        pending_positive: 0,
    }
}

fn ev(id: &str, unit: &str, org: &str, state: EvidenceState, version: u64) -> EvidenceFact {
    EvidenceFact {
        id: id.into(),
        criterion: code("1.1"),
        unit: UnitId::parse(unit).unwrap(),
        org_unit: OrgUnitId::parse(org).unwrap(),
        material: None,
        state,
        version,
        title: String::new(),
    }
}

/// Score (milli-points) of criterion 1.1 (10 points) for each of d, t1, t2, c1, c2, c3.
fn scores(rule: &str, tree: &OrgTree, facts: &Facts) -> Vec<(i64, i64)> {
    let fw = framework(
        10,
        vec![item("1.1", 10, &["education", "towns"])],
        &format!("{}\n[rules.\"1.1\"]\n{rule}", catalog_toml()),
    );
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), facts, 2013);
    let board = engine.scoreboard();
    let c = fw.find(&code("1.1")).unwrap();
    ["d", "t1", "t2", "c1", "c2", "c3"]
        .iter()
        .map(|id| {
            let cell = board.cell(tree.find(&OrgUnitId::parse(id).unwrap()).unwrap(), c);
            (cell.confirmed.milli(), cell.projected.milli())
        })
        .collect()
}

fn confirmed(rule: &str, tree: &OrgTree, facts: &Facts) -> Vec<i64> {
    scores(rule, tree, facts).into_iter().map(|s| s.0).collect()
}

#[test]
fn ratios_roll_up_from_summed_numerators_and_denominators_not_averaged_percentages() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = Facts {
        statistics: vec![
            stat("c1", "served", 2013, 900),
            stat("c2", "served", 2013, 300),
            stat("c3", "served", 2013, 2000),
        ],
        ..Default::default()
    };
    let rule = r#"kind = "ratio"
numerator = "served"
denominator = "population"
target = { pearl_river_delta = "50%", less_developed = "30%" }"#;
    // d: 3200/8000 = 40% of 50% → 8 points (the mean of 90%, 10%, 50% would give full marks).
    // t1: 1200/4000 = 30% → 6; t2: 50% → 10; c1 90% → 10; c2 10% → 2; c3 → 10.
    assert_eq!(
        confirmed(rule, &tree, &facts),
        vec![8000, 6000, 10000, 10000, 2000, 10000]
    );
    let less = small_tree(RegionClass::LessDeveloped);
    // The less developed target is 30%: d 40% and t1 30% now pass.
    assert_eq!(
        confirmed(rule, &less, &facts),
        vec![10000, 10000, 10000, 10000, 3333, 10000]
    );
}

/// Criterion 1.1 (10 points, education): trained ÷ registered, target 70 %.
fn trained_of_registered() -> cezone_domain::framework::Framework {
    framework(
        10,
        vec![item("1.1", 10, &["education"])],
        &format!(
            "{}\n[rules.\"1.1\"]\nkind = \"ratio\"\nnumerator = \"trained\"\ndenominator = \"registered\"\ntarget = \"70%\"\n",
            catalog_toml()
        ),
    )
}

#[test]
fn a_ratio_with_nothing_filed_scores_zero_and_says_so() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let fw = trained_of_registered();
    let engine = Engine::new(
        fw.clone().into(),
        tree.clone().into(),
        &Facts::default(),
        2013,
    );
    let board = engine.scoreboard();
    let x = engine.explain(&board, 0, fw.find(&code("1.1")).unwrap());
    assert_eq!(x.confirmed, Points::ZERO);
    assert_eq!(x.lost, Points::whole(10));
    let note = x.rule.unwrap().note.unwrap();
    assert!(note.contains("no registered filed for 2013"), "{note}");
}

/// A denominator filed as 0 is not "nothing filed": the note says what was filed.
#[test]
fn regression_a_zero_denominator_is_named_not_reported_missing() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let fw = trained_of_registered();
    let facts = Facts {
        statistics: vec![
            stat("t1", "trained", 2013, 5),
            stat("t1", "registered", 2013, 0),
        ],
        ..Default::default()
    };
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
    let board = engine.scoreboard();
    let x = engine.explain(&board, 0, fw.find(&code("1.1")).unwrap());
    assert_eq!(x.confirmed, Points::ZERO);
    let note = x.rule.unwrap().note.unwrap();
    assert!(note.contains("registered is 0 for 2013"), "{note}");
}

#[test]
fn per_capita_funding_uses_population_and_region_targets() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = Facts {
        // Fen: t1 2 yuan × 4000 residents, t2 1 yuan × 4000 residents.
        statistics: vec![
            stat("t1", "funding", 2013, 800_000),
            stat("t2", "funding", 2013, 400_000),
        ],
        ..Default::default()
    };
    let rule = r#"kind = "per_capita"
amount = "funding"
target = { pearl_river_delta = "2", less_developed = "1.5" }"#;
    let s = confirmed(rule, &tree, &facts);
    assert_eq!(&s[..3], &[7500, 10000, 5000]); // d: 1.50 of 2.00 yuan
    let less = confirmed(rule, &small_tree(RegionClass::LessDeveloped), &facts);
    assert_eq!(&less[..3], &[10000, 10000, 6667]);
}

#[test]
fn survey_rates_are_weighted_by_population_and_every_question_must_pass() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = Facts {
        surveys: vec![
            tally("c1", "aware", 100, 90),
            tally("c3", "aware", 100, 62),
            tally("c1", "satisfied", 100, 100),
            tally("c3", "satisfied", 100, 100),
        ],
        ..Default::default()
    };
    let rule = r#"kind = "survey_rate"
questions = ["aware", "satisfied"]
target = "70%""#;
    // d: aware = (1000×0.9 + 4000×0.62) / 5000 = 67.6% → 67.6/70 of 10 points; satisfied
    // passes. The pooled rate (152 of 200 = 76%) would have passed.
    let s = confirmed(rule, &tree, &facts);
    assert_eq!(s[0], 9657);
    // c2 has no answers: nothing to judge, zero.
    assert_eq!(s[4], 0);

    let fw = framework(
        10,
        vec![item("1.1", 10, &["education"])],
        &format!("{}\n[rules.\"1.1\"]\n{rule}", catalog_toml()),
    );
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
    let board = engine.scoreboard();
    let x = engine
        .explain(&board, 0, fw.find(&code("1.1")).unwrap())
        .rule
        .unwrap();
    let aware = &x.surveys[0];
    assert!((aware.rate.unwrap() - 0.676).abs() < 1e-12);
    assert_eq!(aware.responses, 200);
    assert!(aware.low < 0.676 && aware.high > 0.676);
    assert!(
        aware.effective_n < 200.0,
        "unequal weights shrink the effective sample"
    );
    assert!(
        aware.straddles_target,
        "0.70 lies inside the interval with ~150 effective answers"
    );
    assert!(x.note.unwrap().contains("straddles"));
}

#[test]
fn count_at_least_is_the_share_of_units_at_the_level_that_meet_it() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = Facts {
        statistics: vec![
            stat("t1", "managers", 2013, 1),
            stat("t2", "managers", 2013, 0),
        ],
        ..Default::default()
    };
    let rule = r#"kind = "count_at_least"
metric = "managers"
at_least = 1
level = "town""#;
    // d: one of two towns; communities are judged by their own town.
    assert_eq!(
        confirmed(rule, &tree, &facts),
        vec![5000, 10000, 0, 10000, 10000, 0]
    );
}

#[test]
fn a_falling_case_rate_earns_the_points_and_a_missing_year_does_not() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let rule = r#"kind = "trend"
metric = "cases"
direction = "falling"
per_capita = true"#;
    let falling = Facts {
        statistics: vec![stat("d", "cases", 2012, 100), stat("d", "cases", 2013, 80)],
        ..Default::default()
    };
    assert_eq!(confirmed(rule, &tree, &falling)[0], 10000);
    let rising = Facts {
        statistics: vec![stat("d", "cases", 2012, 80), stat("d", "cases", 2013, 100)],
        ..Default::default()
    };
    assert_eq!(confirmed(rule, &tree, &rising)[0], 0);
    let missing = Facts {
        statistics: vec![stat("d", "cases", 2013, 80)],
        ..Default::default()
    };
    assert_eq!(confirmed(rule, &tree, &missing)[0], 0);
}

#[test]
fn urban_and_rural_targets_apply_to_their_own_communities_and_both_must_pass() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = Facts {
        statistics: vec![
            stat("c1", "registered", 2013, 100),
            stat("c1", "trained", 2013, 80),
            stat("c3", "registered", 2013, 100),
            stat("c3", "trained", 2013, 50),
            stat("c2", "registered", 2013, 100),
            stat("c2", "trained", 2013, 40),
        ],
        ..Default::default()
    };
    let rule = r#"kind = "by_community_type"
urban = { kind = "ratio", numerator = "trained", denominator = "registered", target = "70%" }
rural = { kind = "ratio", numerator = "trained", denominator = "registered", target = "30%" }"#;
    // d: urban (80+50)/200 = 65% of 70%; rural 40% passes → min = 65/70.
    // t1: urban 80% passes, rural passes; t2: urban 50/70, no rural communities.
    assert_eq!(
        confirmed(rule, &tree, &facts),
        vec![9286, 10000, 7143, 10000, 10000, 7143]
    );
}

/// The education bureau's record returned, then accepted at 80; a town's pending.
fn evidence_filed() -> Facts {
    Facts {
        evidence: vec![
            ev("e1", "education", "d", EvidenceState::Returned, 1),
            ev(
                "e1",
                "education",
                "d",
                EvidenceState::Accepted { grade: 80 },
                2,
            ),
            ev("e2", "towns", "t1", EvidenceState::Submitted, 1),
        ],
        ..Default::default()
    }
}

#[test]
fn evidence_counts_accepted_grades_confirmed_and_pending_as_projected() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = evidence_filed();
    let s = scores(r#"kind = "evidence""#, &tree, &facts);
    // d: slots (education@d 80, towns@t1 pending, towns@t2 missing).
    assert_eq!(s[0], (2667, 6000));
    // t1 sees the district's and its own slot; c3 sees the district's and t2's.
    assert_eq!(s[1], (4000, 9000));
    assert_eq!(s[5], (4000, 4000));
}

#[test]
fn weighted_parts_split_the_points_and_the_explanation_lists_every_fact() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = Facts {
        statistics: vec![
            stat("c1", "served", 2013, 1000),
            stat("c2", "served", 2013, 3000),
            stat("c3", "served", 2013, 4000),
        ],
        evidence: vec![ev(
            "e1",
            "education",
            "d",
            EvidenceState::Accepted { grade: 100 },
            1,
        )],
        ..Default::default()
    };
    let rule = r#"kind = "weighted"
parts = [
  { weight = 1, rule = { kind = "evidence" } },
  { weight = 1, rule = { kind = "ratio", numerator = "served", denominator = "population", target = "50%", basis = "达50%以上" } },
]"#;
    // Evidence 1 of 3 slots, ratio 100% → (1/3 + 1) / 2 of 10.
    assert_eq!(confirmed(rule, &tree, &facts)[0], 6667);
    let fw = framework(
        10,
        vec![item("1.1", 10, &["education", "towns"])],
        &format!("{}\n[rules.\"1.1\"]\n{rule}", catalog_toml()),
    );
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
    let board = engine.scoreboard();
    let x = engine.explain(&board, 0, fw.find(&code("1.1")).unwrap());
    let r = x.rule.unwrap();
    assert_eq!(r.parts.len(), 2);
    let evidence = &r.parts[0];
    assert_eq!(evidence.evidence.len(), 3);
    assert_eq!(
        evidence.evidence[0].status,
        SlotStatus::Missing,
        "what must be acted on comes first"
    );
    let ratio = &r.parts[1];
    assert_eq!(ratio.basis, "达50%以上");
    assert_eq!(ratio.measured.as_deref(), Some("100.0%"));
    assert!(ratio.facts.iter().any(|f| f == "population = 8000 (2013)"));
    assert_eq!(x.lost, Points::from_milli(3333));
}

#[test]
fn a_group_whose_children_exceed_it_is_capped_and_both_numbers_are_kept() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let fw = framework(
        7,
        vec![
            item("1.1", 4, &["education"]),
            item("1.2", 4, &["education"]),
        ],
        catalog_toml(),
    );
    let facts = Facts {
        evidence: vec![
            EvidenceFact {
                criterion: code("1.1"),
                ..ev(
                    "a",
                    "education",
                    "d",
                    EvidenceState::Accepted { grade: 100 },
                    1,
                )
            },
            EvidenceFact {
                criterion: code("1.2"),
                ..ev(
                    "b",
                    "education",
                    "d",
                    EvidenceState::Accepted { grade: 100 },
                    1,
                )
            },
        ],
        ..Default::default()
    };
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
    let board = engine.scoreboard();
    let area = fw.find(&code("1")).unwrap();
    assert_eq!(board.cell(0, area).confirmed, Points::whole(7));
    let x = engine.explain(&board, 0, area);
    let cap = x.capped.unwrap();
    assert_eq!(
        (cap.children_confirmed, cap.declared),
        (Points::whole(8), Points::whole(7))
    );
    assert_eq!(x.children.len(), 2);
}

#[test]
fn readiness_lists_key_criteria_short_ranked_losses_and_units_owing_evidence() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let mut key = item("1.1", 6, &["education", "towns"]);
    key.key = true;
    let fw = framework(11, vec![key, item("1.2", 5, &["finance"])], catalog_toml());
    let facts = Facts {
        evidence: vec![
            ev(
                "a",
                "education",
                "d",
                EvidenceState::Accepted { grade: 100 },
                1,
            ),
            ev("b", "towns", "t1", EvidenceState::Submitted, 1),
        ],
        ..Default::default()
    };
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
    let board = engine.scoreboard();
    let r = engine.readiness(&board, 0, 10);
    assert_eq!(r.key_short.len(), 1);
    assert_eq!(r.key_short[0].code, "1.1");
    assert_eq!(
        r.weakest
            .iter()
            .map(|g| g.code.as_str())
            .collect::<Vec<_>>(),
        ["1.2", "1.1"]
    );
    let units: Vec<(&str, usize, usize)> = r
        .units
        .iter()
        .map(|u| (u.unit.as_str(), u.missing, u.pending))
        .collect();
    assert_eq!(units, [("finance", 1, 0), ("towns", 1, 1)]);
    // For town t1 only its own slot and the district's count.
    let t1 = tree.find(&OrgUnitId::parse("t1").unwrap()).unwrap();
    let r1 = engine.readiness(&board, t1, 10);
    let towns = r1.units.iter().find(|u| u.unit == "towns").unwrap();
    assert_eq!((towns.missing, towns.pending), (0, 1));
}

#[test]
fn regression_a_responsible_unit_named_twice_counts_its_evidence_once() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let facts = evidence_filed();
    let board = |responsible: &[&str]| {
        let fw = framework(
            10,
            vec![item("1.1", 10, responsible)],
            &format!("{}\n[rules.\"1.1\"]\nkind = \"evidence\"", catalog_toml()),
        );
        let engine = Engine::new(fw.into(), tree.clone().into(), &facts, 2013);
        engine.scoreboard()
    };
    assert_eq!(
        board(&["education", "towns", "education"]),
        board(&["education", "towns"])
    );
    // The framework check says so.
    let fw = framework(
        10,
        vec![item("1.1", 10, &["education", "towns", "education"])],
        &format!("{}\n[rules.\"1.1\"]\nkind = \"evidence\"", catalog_toml()),
    );
    let findings = fw.check();
    assert!(
        findings
            .iter()
            .any(|f| f.kind.as_str() == "duplicate_unit" && f.message.contains("education")),
        "{findings:#?}"
    );
}

/// "70%左右": a tolerance band credits 65–70 % in proportion and nothing below, and the
/// explanation names the band that applied and the 口径 beside the document's words.
#[test]
fn an_about_target_is_scored_by_its_tolerance_band_and_says_which_band_applied() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let rule = |from: &str, credit: &str| {
        format!(
            "kind = \"ratio\"\nnumerator = \"trained\"\ndenominator = \"registered\"\ntarget = \"70%\"\n\
             partial = {{ band = {{ from = \"{from}\", credit = \"{credit}\" }} }}\nbasis = \"创建率达70%左右\"\n"
        )
    };
    let facts = |trained: i64| Facts {
        statistics: vec![
            stat("t1", "trained", 2013, trained),
            stat("t1", "registered", 2013, 100),
        ],
        ..Default::default()
    };
    // 67 % inside 65–70 %: 67/70 of 10 points at t1.
    assert_eq!(
        confirmed(&rule("65%", "proportional"), &tree, &facts(67))[1],
        9571
    );
    // 64 % below the band: nothing (linear would have given 64/70).
    assert_eq!(
        confirmed(&rule("65%", "proportional"), &tree, &facts(64))[1],
        0
    );
    // The office may read "about" as met inside the band.
    assert_eq!(
        confirmed(&rule("65%", "full"), &tree, &facts(66))[1],
        10_000
    );
    // And widen the band per rule.
    assert_eq!(
        confirmed(&rule("60%", "proportional"), &tree, &facts(63))[1],
        9000
    );

    let fw = framework(
        10,
        vec![item("1.1", 10, &["education"])],
        &format!(
            "{}\n[rules.\"1.1\"]\n{}",
            catalog_toml(),
            rule("65%", "proportional")
        ),
    );
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts(67), 2013);
    let board = engine.scoreboard();
    let t1 = tree.find(&OrgUnitId::parse("t1").unwrap()).unwrap();
    let x = engine
        .explain(&board, t1, fw.find(&code("1.1")).unwrap())
        .rule
        .unwrap();
    assert_eq!(x.basis, "创建率达70%左右");
    let note = x.note.unwrap();
    assert!(note.contains("65%–70%"), "{note}");
    let band = x
        .interpretation
        .iter()
        .find(|c| c.topic == cezone_domain::interpret::Topic::ToleranceBand)
        .expect("the band is named as 口径");
    assert!(band.choice.contains("65%–70%"), "{}", band.choice);
    assert_eq!(band.key, "partial");
}

/// A pending statistic counts in the projected score only, a returned one in neither, and the
/// explanation says which figures make the difference.
#[test]
fn pending_statistics_count_in_the_projected_score_and_the_explanation_says_so() {
    use cezone_domain::facts::StatState;
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let fw = trained_of_registered();
    let with = |state: StatState| {
        let facts = Facts {
            statistics: vec![
                stat("t1", "registered", 2013, 100),
                StatFact {
                    state,
                    ..stat("t1", "trained", 2013, 70)
                },
            ],
            ..Default::default()
        };
        let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
        let board = engine.scoreboard();
        // Org unit 1 is t1 (preorder).
        engine.explain(&board, 1, fw.find(&code("1.1")).unwrap())
    };
    let accepted = with(StatState::Accepted);
    assert_eq!(
        (accepted.confirmed, accepted.projected),
        (Points::whole(10), Points::whole(10))
    );
    assert!(accepted.projected_because.is_none() && accepted.unreviewed.is_empty());

    let pending = with(StatState::Pending);
    assert_eq!(
        (pending.confirmed, pending.projected),
        (Points::ZERO, Points::whole(10))
    );
    let why = pending.projected_because.unwrap();
    assert!(
        why.contains("待审核") && why.contains("1 statistic(s) still pending review"),
        "{why}"
    );
    assert_eq!(pending.unreviewed.len(), 1);
    assert_eq!(
        (
            pending.unreviewed[0].metric.as_str(),
            pending.unreviewed[0].org_unit.as_str(),
            pending.unreviewed[0].state
        ),
        ("trained", "t1", "pending")
    );

    let returned = with(StatState::Returned);
    assert_eq!(
        (returned.confirmed, returned.projected),
        (Points::ZERO, Points::ZERO)
    );
    let why = returned.projected_because.unwrap();
    assert!(why.contains("returned and count in neither score"), "{why}");
}

/// Survey answers of a batch pending review count in the projected score only, and the
/// explanation says how many there are.
#[test]
fn pending_survey_answers_count_in_the_projected_score_and_the_explanation_says_so() {
    let tree = small_tree(RegionClass::PearlRiverDelta);
    let rule = r#"kind = "survey_rate"
questions = ["aware"]
target = "70%""#;
    let fw = framework(
        10,
        vec![item("1.1", 10, &["education"])],
        &format!("{}\n[rules.\"1.1\"]\n{rule}", catalog_toml()),
    );
    // c1: 100 accepted answers, 40% aware; a pending batch adds 100 answers, all aware.
    let facts = Facts {
        surveys: vec![SurveyTally {
            pending_responses: 100,
            pending_positive: 100,
            ..tally("c1", "aware", 200, 140)
        }],
        ..Default::default()
    };
    let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
    let board = engine.scoreboard();
    // Org unit 2 is c1 (preorder: d, t1, c1 …).
    let x = engine.explain(&board, 2, fw.find(&code("1.1")).unwrap());
    // Projected: 140 of 200 = 70%, met; confirmed: 40 of 100 = 40%, 40/70 of 10 points.
    assert_eq!(x.projected, Points::whole(10));
    assert!(
        x.confirmed < x.projected,
        "{:?}",
        (x.confirmed, x.projected)
    );
    let why = x.projected_because.unwrap();
    assert!(
        why.contains("100 份待审核问卷答卷") && why.contains("100 survey answer(s)"),
        "{why}"
    );
    // Once accepted, both count them and nothing is said.
    let accepted = Facts {
        surveys: vec![tally("c1", "aware", 200, 140)],
        ..Default::default()
    };
    let engine = Engine::new(fw.clone().into(), tree.into(), &accepted, 2013);
    let board = engine.scoreboard();
    let x = engine.explain(&board, 2, fw.find(&code("1.1")).unwrap());
    assert_eq!(
        (x.confirmed, x.projected),
        (Points::whole(10), Points::whole(10))
    );
    assert!(x.projected_because.is_none());
}
