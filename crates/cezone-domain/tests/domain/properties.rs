//! Invariants of the engine on random districts scored by the real Guangdong rules:
//! 0 ≤ confirmed ≤ projected ≤ points, groups are their children's sum capped, and the order
//! (or duplication) of facts changes nothing.

use std::collections::BTreeMap;

use cezone_domain::engine::Engine;
use cezone_domain::facts::{EvidenceFact, EvidenceState, Facts, StatFact, StatState, SurveyTally};
use cezone_domain::framework::Framework;
use cezone_domain::guangdong;
use cezone_domain::org::{CommunityType, OrgLevel, OrgTree, OrgUnit, OrgUnitId, RegionClass};
use cezone_domain::points::Points;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_district(seed: u64, fw: &Framework) -> (OrgTree, Facts) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let oid = |s: String| OrgUnitId::parse(&s).unwrap();
    let mut units = vec![OrgUnit {
        id: oid("d".into()),
        name: "d".into(),
        level: OrgLevel::District,
        parent: None,
        community_type: None,
        region: Some(if rng.random_bool(0.5) {
            RegionClass::PearlRiverDelta
        } else {
            RegionClass::LessDeveloped
        }),
        population: BTreeMap::new(),
    }];
    for t in 0..rng.random_range(1..5) {
        units.push(OrgUnit {
            id: oid(format!("t{t}")),
            name: format!("t{t}"),
            level: OrgLevel::Town,
            parent: Some(oid("d".into())),
            community_type: None,
            region: None,
            population: BTreeMap::new(),
        });
        for c in 0..rng.random_range(0..6) {
            let pop = if rng.random_bool(0.9) {
                rng.random_range(1..20_000)
            } else {
                0
            };
            units.push(OrgUnit {
                id: oid(format!("t{t}.c{c}")),
                name: format!("c{c}"),
                level: OrgLevel::Community,
                parent: Some(oid(format!("t{t}"))),
                community_type: Some(if rng.random_bool(0.5) {
                    CommunityType::Urban
                } else {
                    CommunityType::Rural
                }),
                region: None,
                population: BTreeMap::from([(2012, pop), (2013, pop)]),
            });
        }
    }
    let ids: Vec<OrgUnitId> = units.iter().map(|u| u.id.clone()).collect();
    let mut facts = Facts::default();
    for m in &fw.catalog.metrics {
        for _ in 0..rng.random_range(0..12) {
            facts.statistics.push(StatFact {
                org_unit: ids[rng.random_range(0..ids.len())].clone(),
                metric: m.id.clone(),
                period: rng.random_range(2012..=2013),
                value: rng.random_range(0..50_000),
                version: rng.random_range(0..3),
                state: match rng.random_range(0..4) {
                    0 => StatState::Pending,
                    1 => StatState::Returned,
                    _ => StatState::Accepted,
                },
            });
        }
    }
    for q in &fw.catalog.questions {
        for _ in 0..rng.random_range(0..8) {
            let n = rng.random_range(0..200);
            let positive = rng.random_range(0..=n);
            // A third of the tallies hold answers of batches still pending review.
            let pending = if rng.random_bool(0.33) {
                rng.random_range(0..=n)
            } else {
                0
            };
            facts.surveys.push(SurveyTally {
                org_unit: ids[rng.random_range(0..ids.len())].clone(),
                question: q.id.clone(),
                period: 2013,
                responses: n,
                positive,
                source: format!("s{}", rng.random_range(0..2)),
                version: rng.random_range(0..3),
                pending_responses: pending,
                pending_positive: rng.random_range(0..=pending.min(positive)),
            });
        }
    }
    for (k, c) in fw.leaves().enumerate() {
        let it = fw.item(c);
        for u in &it.responsible {
            for (i, org) in ids.iter().enumerate() {
                if !rng.random_bool(0.3) {
                    continue;
                }
                let state = match rng.random_range(0..3) {
                    0 => EvidenceState::Submitted,
                    1 => EvidenceState::Returned,
                    _ => EvidenceState::Accepted {
                        grade: rng.random_range(0..=100),
                    },
                };
                facts.evidence.push(EvidenceFact {
                    id: format!("e{k}-{u}-{i}-{}", rng.random_range(0..2)),
                    criterion: it.code.clone(),
                    unit: u.clone(),
                    org_unit: org.clone(),
                    material: None,
                    state,
                    version: rng.random_range(0..3),
                    title: String::new(),
                });
            }
        }
    }
    (OrgTree::build(units).unwrap(), facts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn scores_stay_within_their_points_and_groups_are_capped_sums(seed in any::<u64>()) {
        let (fw, _) = guangdong::framework();
        let (tree, facts) = random_district(seed, &fw);
        let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
        let board = engine.scoreboard();
        let all_accepted = facts.statistics.iter().all(|s| s.state.is_accepted());
        for node in 0..tree.len() {
            for i in 0..fw.len() {
                let cell = board.cell(node, i);
                let points = fw.item(i).points;
                prop_assert!(Points::ZERO <= cell.confirmed, "negative score");
                // A pending statistic may lower a rate (a larger denominator), so only evidence
                // makes the projected score the upper one.
                if all_accepted {
                    prop_assert!(cell.confirmed <= cell.projected, "confirmed above projected at {node}/{i}");
                }
                prop_assert!(cell.projected <= points, "above points at {node}/{i}");
                if !fw.is_leaf(i) {
                    let sum = board.children_sum(&fw, node, i);
                    prop_assert_eq!(cell.confirmed, sum.confirmed.min(points));
                    prop_assert_eq!(cell.projected, sum.projected.min(points));
                }
            }
            prop_assert!(board.total(&fw, node).projected <= fw.max_points());
        }
    }

    #[test]
    fn the_order_and_duplication_of_facts_change_nothing(seed in any::<u64>(), shuffle in any::<u64>()) {
        let (fw, _) = guangdong::framework();
        let (tree, facts) = random_district(seed, &fw);
        let board = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013).scoreboard();
        let mut rng = ChaCha8Rng::seed_from_u64(shuffle);
        let mut again = facts.clone();
        // Redelivered statistics and evidence (same version) are harmless; survey tallies are
        // batches and do add up, so they are only reordered.
        let dup_stats: Vec<StatFact> = again.statistics.iter().filter(|_| rng.random_bool(0.3)).cloned().collect();
        again.statistics.extend(dup_stats);
        let dup_ev: Vec<EvidenceFact> = again.evidence.iter().filter(|_| rng.random_bool(0.3)).cloned().collect();
        again.evidence.extend(dup_ev);
        again.statistics.shuffle(&mut rng);
        again.surveys.shuffle(&mut rng);
        again.evidence.shuffle(&mut rng);
        let board2 = Engine::new(fw.clone().into(), tree.clone().into(), &again, 2013).scoreboard();
        prop_assert_eq!(board, board2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Facts arriving one by one (shuffled, duplicated, some stale) and rescored incrementally
    /// give exactly the scoreboard a full recompute over all of them gives.
    #[test]
    fn incremental_rescoring_equals_a_full_recompute(seed in any::<u64>(), split in any::<u64>()) {
        use cezone_domain::engine::{Affected, Change};
        let (fw, _) = guangdong::framework();
        let (tree, facts) = random_district(seed, &fw);
        let (fw, tree) = (std::sync::Arc::new(fw), std::sync::Arc::new(tree));
        let mut rng = ChaCha8Rng::seed_from_u64(split);
        let mut first = Facts::default();
        let mut later: Vec<Change> = Vec::new();
        for s in &facts.statistics {
            if rng.random_bool(0.5) { first.statistics.push(s.clone()) } else { later.push(Change::Statistic(s.clone())) }
        }
        for t in &facts.surveys {
            if rng.random_bool(0.5) { first.surveys.push(t.clone()) } else { later.push(Change::Tally(t.clone())) }
        }
        for e in &facts.evidence {
            if rng.random_bool(0.5) { first.evidence.push(e.clone()) } else { later.push(Change::Evidence(e.clone())) }
        }
        // Redeliveries.
        let dups: Vec<Change> = later.iter().filter(|_| rng.random_bool(0.2)).cloned().collect();
        later.extend(dups);
        later.shuffle(&mut rng);

        let mut engine = Engine::new(fw.clone(), tree.clone(), &first, 2013);
        let mut board = engine.scoreboard();
        let mut affected = Affected::default();
        for (i, change) in later.iter().enumerate() {
            engine.apply(change, &mut affected);
            // Coalesce bursts: rescore every few changes, not after each.
            if i % 7 == 6 {
                engine.rescore(&mut board, &affected);
                affected = Affected::default();
            }
        }
        engine.rescore(&mut board, &affected);
        let full = Engine::new(fw, tree, &facts, 2013).scoreboard();
        prop_assert_eq!(board, full);
    }
}

/// The statistics as one review view counts them: the deciding filing of each key, kept when
/// `counts` says its state counts there, as an accepted figure.
fn as_accepted(facts: &Facts, counts: impl Fn(StatState) -> bool) -> Facts {
    let mut latest: BTreeMap<(String, String, i32), StatFact> = BTreeMap::new();
    for s in &facts.statistics {
        let k = (s.org_unit.to_string(), s.metric.to_string(), s.period);
        match latest.get(&k) {
            Some(held) if held.precedence() >= s.precedence() => {}
            _ => {
                latest.insert(k, s.clone());
            }
        }
    }
    let mut out = facts.clone();
    out.statistics = latest
        .into_values()
        .filter(|s| counts(s.state))
        .map(|s| StatFact {
            state: StatState::Accepted,
            ..s
        })
        .collect();
    // The deciding tally of each key, its pending answers kept (as accepted) or left out.
    let keep_pending = counts(StatState::Pending);
    let mut tallies: BTreeMap<(String, String, String, i32), SurveyTally> = BTreeMap::new();
    for t in &facts.surveys {
        let k = (
            t.org_unit.to_string(),
            t.source.clone(),
            t.question.to_string(),
            t.period,
        );
        match tallies.get(&k) {
            Some(held) if held.precedence() >= t.precedence() => {}
            _ => {
                tallies.insert(k, t.clone());
            }
        }
    }
    out.surveys = tallies
        .into_values()
        .map(|t| {
            let positive = t.positive.min(t.responses);
            let pr = t.pending_responses.min(t.responses);
            let pp = t.pending_positive.min(pr).min(positive);
            let (responses, positive) = if keep_pending {
                (t.responses, positive)
            } else {
                (t.responses - pr, (positive - pp).min(t.responses - pr))
            };
            SurveyTally {
                responses,
                positive,
                pending_responses: 0,
                pending_positive: 0,
                ..t
            }
        })
        .collect();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The confirmed score is the score of the accepted statistics and survey answers alone;
    /// the projected score is the score with every pending statistic and survey batch
    /// accepted; a returned statistic counts in neither.
    #[test]
    fn confirmed_counts_accepted_statistics_and_projected_pending_ones_too(seed in any::<u64>()) {
        let (fw, _) = guangdong::framework();
        let (tree, facts) = random_district(seed, &fw);
        let (fw, tree) = (std::sync::Arc::new(fw), std::sync::Arc::new(tree));
        let board = Engine::new(fw.clone(), tree.clone(), &facts, 2013).scoreboard();
        let confirmed = Engine::new(fw.clone(), tree.clone(), &as_accepted(&facts, StatState::counts_confirmed), 2013).scoreboard();
        let projected = Engine::new(fw.clone(), tree.clone(), &as_accepted(&facts, StatState::counts_projected), 2013).scoreboard();
        for node in 0..tree.len() {
            for i in 0..fw.len() {
                prop_assert_eq!(board.cell(node, i).confirmed, confirmed.cell(node, i).confirmed, "confirmed at {}/{}", node, i);
                prop_assert_eq!(board.cell(node, i).projected, projected.cell(node, i).projected, "projected at {}/{}", node, i);
            }
        }
    }
}
