//! A deterministic demo district: Nanhai's 7 towns and streets with about 290 communities
//! (or any size up to a province), populations, statistics, survey responses and evidence.
//! The same seed always gives the same data.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::facts::{EvidenceFact, EvidenceState, Facts, StatFact, SurveyTally};
use crate::framework::Framework;
use crate::org::{CommunityType, OrgLevel, OrgTree, OrgUnit, OrgUnitId, RegionClass};
use crate::rules::{Catalog, Direction, MetricId, MetricUnit, QuestionId, QuestionKind, Rule};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoParams {
    pub seed: u64,
    /// With 7 towns the real Nanhai names are used; otherwise towns are numbered.
    pub towns: usize,
    pub communities: usize,
    /// The evaluation year; statistics are also filed for the year before.
    pub period: i32,
    pub responses_per_community: u32,
    pub region: RegionClass,
}

impl DemoParams {
    pub fn nanhai(seed: u64) -> DemoParams {
        DemoParams {
            seed,
            towns: 7,
            communities: 290,
            period: 2013,
            responses_per_community: 60,
            region: RegionClass::PearlRiverDelta,
        }
    }

    /// Guangdong at province scale: ~1,600 towns, ~26,000 communities.
    pub fn province(seed: u64) -> DemoParams {
        DemoParams {
            towns: 1600,
            communities: 26_000,
            responses_per_community: 20,
            ..DemoParams::nanhai(seed)
        }
    }
}

/// 南海区's towns and streets with the share of its communities each holds and how urban it is.
const NANHAI_TOWNS: [(&str, &str, u32, f64); 7] = [
    ("guicheng", "桂城街道", 56, 0.9),
    ("jiujiang", "九江镇", 23, 0.35),
    ("xiqiao", "西樵镇", 38, 0.3),
    ("danzao", "丹灶镇", 28, 0.3),
    ("shishan", "狮山镇", 70, 0.4),
    ("dali", "大沥镇", 40, 0.55),
    ("lishui", "里水镇", 35, 0.4),
];

/// One resident's answers, as the survey service receives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyResponse {
    pub respondent: String,
    pub org_unit: OrgUnitId,
    pub period: i32,
    pub answers: Vec<(QuestionId, i32)>,
}

#[derive(Debug, Clone)]
pub struct DemoDistrict {
    pub params: DemoParams,
    pub units: Vec<OrgUnit>,
    pub statistics: Vec<StatFact>,
    pub evidence: Vec<EvidenceFact>,
    /// Per community: answer propensities, so responses can be streamed without storing them.
    survey_profile: Vec<(OrgUnitId, [f64; 3])>,
}

fn id(s: &str) -> OrgUnitId {
    OrgUnitId::parse(s).expect("demo ids are valid")
}

fn metric(s: &str) -> MetricId {
    MetricId::parse(s).expect("demo metric ids are valid")
}

pub fn generate(fw: &Framework, params: &DemoParams) -> DemoDistrict {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let p = params.period;
    let root = id("nanhai");
    let mut units = vec![OrgUnit {
        id: root.clone(),
        name: if params.towns == 7 {
            "南海区".into()
        } else {
            "示范区".into()
        },
        level: OrgLevel::District,
        parent: None,
        community_type: None,
        region: Some(params.region),
        population: BTreeMap::new(),
    }];
    let towns: Vec<(String, String, f64, f64)> = if params.towns == 7 {
        NANHAI_TOWNS
            .iter()
            .map(|(code, name, share, urban)| {
                (
                    code.to_string(),
                    name.to_string(),
                    f64::from(*share),
                    *urban,
                )
            })
            .collect()
    } else {
        (0..params.towns)
            .map(|t| {
                (
                    format!("t{t:04}"),
                    format!("第{}镇", t + 1),
                    rng.random_range(0.5..1.5),
                    rng.random_range(0.2..0.9),
                )
            })
            .collect()
    };
    let share_sum: f64 = towns.iter().map(|t| t.2).sum();
    let mut statistics = Vec::new();
    // Only metrics the framework declares are filed: another package has other metrics, and the
    // services refuse a statistic of an undeclared one. The draws stay the same either way, so
    // a seed gives the same district whatever the package.
    let declared = |m: &str| fw.catalog.metric(&metric(m)).is_some();
    let mut stat = |org: &OrgUnitId, m: &str, period: i32, value: i64| {
        if !declared(m) {
            return;
        }
        statistics.push(StatFact {
            org_unit: org.clone(),
            metric: metric(m),
            period,
            value,
            version: 1,
            state: Default::default(),
        });
    };
    let mut survey_profile = Vec::new();
    let mut assigned = 0usize;
    for (ti, (code, name, share, urban_share)) in towns.iter().enumerate() {
        let town_id = id(&format!("nanhai.{code}"));
        let count = if ti + 1 == towns.len() {
            params.communities - assigned
        } else {
            ((share / share_sum) * params.communities as f64).round() as usize
        }
        .min(params.communities - assigned);
        assigned += count;
        units.push(OrgUnit {
            id: town_id.clone(),
            name: name.clone(),
            level: OrgLevel::Town,
            parent: Some(root.clone()),
            community_type: None,
            region: None,
            population: BTreeMap::new(),
        });
        let mut town_pop: [u64; 2] = [0, 0];
        for ci in 0..count {
            let urban = rng.random_bool(*urban_share);
            let ctype = if urban {
                CommunityType::Urban
            } else {
                CommunityType::Rural
            };
            let cid = id(&format!("nanhai.{code}.c{ci:03}"));
            let pop_prev: u64 = rng.random_range(2_500..16_000);
            let pop: u64 = (pop_prev as f64 * rng.random_range(0.99..1.04)) as u64;
            town_pop[0] += pop_prev;
            town_pop[1] += pop;
            let cname = format!(
                "{}{}{:02}",
                name.trim_end_matches(['镇', '街', '道']),
                if urban { "社区" } else { "村" },
                ci + 1
            );
            units.push(OrgUnit {
                id: cid.clone(),
                name: cname,
                level: OrgLevel::Community,
                parent: Some(town_id.clone()),
                community_type: Some(ctype),
                region: None,
                population: BTreeMap::from([(p - 1, pop_prev), (p, pop)]),
            });
            for (year, popy) in [(p - 1, pop_prev), (p, pop)] {
                let f = popy as f64;
                let lift = if year == p { 1.05 } else { 1.0 };
                stat(
                    &cid,
                    "residents_served",
                    year,
                    (f * rng.random_range(0.38..0.66) * lift) as i64,
                );
                stat(&cid, "communities", year, 1);
                stat(
                    &cid,
                    "learning_communities",
                    year,
                    i64::from(rng.random_bool(0.6 * lift.min(1.0))),
                );
                stat(
                    &cid,
                    "learning_points",
                    year,
                    i64::from(rng.random_bool(0.93)),
                );
                stat(
                    &cid,
                    "criminal_cases",
                    year,
                    (f * 0.004 * rng.random_range(0.8..1.1) / lift) as i64,
                );
                if urban {
                    let reg = (f * rng.random_range(0.006..0.014)) as i64 + 1;
                    stat(&cid, "laid_off_registered", year, reg);
                    stat(
                        &cid,
                        "laid_off_trained",
                        year,
                        (reg as f64 * rng.random_range(0.55..0.95)) as i64,
                    );
                    let mig = (f * rng.random_range(0.1..0.3)) as i64 + 1;
                    stat(&cid, "migrant_workers_registered", year, mig);
                    stat(
                        &cid,
                        "migrant_workers_trained",
                        year,
                        (mig as f64 * rng.random_range(0.35..0.7)) as i64,
                    );
                } else {
                    let lab = (f * rng.random_range(0.35..0.55)) as i64 + 1;
                    stat(&cid, "rural_labour", year, lab);
                    stat(
                        &cid,
                        "farmers_trained",
                        year,
                        (lab as f64 * rng.random_range(0.2..0.45)) as i64,
                    );
                    stat(
                        &cid,
                        "labour_transfer_trained",
                        year,
                        (lab as f64 * rng.random_range(0.35..0.7)) as i64,
                    );
                }
            }
            survey_profile.push((
                cid,
                [
                    rng.random_range(0.62..0.92),
                    rng.random_range(0.6..0.9),
                    rng.random_range(0.5..0.85),
                ],
            ));
        }
        for (year, popy) in [(p - 1, town_pop[0]), (p, town_pop[1])] {
            stat(
                &town_id,
                "fulltime_managers",
                year,
                i64::from(rng.random_bool(0.9)) + i64::from(rng.random_bool(0.3)),
            );
            stat(
                &town_id,
                "tutor_groups",
                year,
                i64::from(rng.random_bool(0.85)),
            );
            let staff = rng.random_range(10..30);
            stat(&town_id, "staff_fulltime", year, staff);
            stat(
                &town_id,
                "staff_trained",
                year,
                (staff as f64 * rng.random_range(0.7..1.0)) as i64,
            );
            let organs = rng.random_range(15..40);
            stat(&town_id, "party_gov_organs", year, organs);
            stat(
                &town_id,
                "learning_party_gov_organs",
                year,
                (organs as f64 * rng.random_range(0.55..0.85)) as i64,
            );
            let pilots = rng.random_range(10..20)
                + if year == p {
                    rng.random_range(-1..6)
                } else {
                    0
                };
            stat(&town_id, "learning_org_pilots", year, pilots);
            // Funding in fen: between 1.6 and 2.6 yuan per resident.
            stat(
                &town_id,
                "education_funding",
                year,
                (popy as f64 * rng.random_range(1.6..2.6) * 100.0) as i64,
            );
        }
    }
    for year in [p - 1, p] {
        stat(&root, "provincial_civilized_titles", year, 2);
    }

    let org = OrgTree::build(units.clone()).expect("demo tree is valid");
    statistics.extend(other_statistics(fw, params, &org, &statistics));

    // Evidence for every slot the framework asks for, in a realistic mix of states.
    let mut evidence = Vec::new();
    for c in fw.leaves() {
        let item = fw.item(c);
        if !fw.rule_of(c).uses_evidence() {
            continue;
        }
        for unit in &item.responsible {
            let nodes: Vec<usize> = match fw.units.get(unit).and_then(|u| u.expands_to()) {
                Some(level) => (0..org.len())
                    .filter(|&i| org.unit(i).level == level)
                    .collect(),
                None => vec![org.root()],
            };
            for node in nodes {
                let roll: f64 = rng.random();
                let state = if roll < 0.62 {
                    let grades = [100u8, 100, 90, 80, 60];
                    EvidenceState::Accepted {
                        grade: grades[rng.random_range(0..grades.len())],
                    }
                } else if roll < 0.82 {
                    EvidenceState::Submitted
                } else if roll < 0.87 {
                    EvidenceState::Returned
                } else {
                    continue;
                };
                let org_id = org.unit(node).id.clone();
                evidence.push(EvidenceFact {
                    id: format!("ev-{}-{}-{}", item.code, unit, org_id),
                    criterion: item.code.clone(),
                    unit: unit.clone(),
                    org_unit: org_id,
                    material: None,
                    state,
                    version: 1,
                    title: format!(
                        "{} {}",
                        item.code,
                        item.materials.chars().take(24).collect::<String>()
                    ),
                });
            }
        }
    }
    DemoDistrict {
        params: params.clone(),
        units,
        statistics,
        evidence,
        survey_profile,
    }
}

/// The metrics the Guangdong-shaped district above files, each with values drawn for its own
/// meaning. A package's rules may read any other metric: [`other_statistics`] files those.
const KNOWN_METRICS: [&str; 21] = [
    "residents_served",
    "communities",
    "learning_communities",
    "learning_points",
    "criminal_cases",
    "laid_off_registered",
    "laid_off_trained",
    "migrant_workers_registered",
    "migrant_workers_trained",
    "rural_labour",
    "farmers_trained",
    "labour_transfer_trained",
    "fulltime_managers",
    "tutor_groups",
    "staff_fulltime",
    "staff_trained",
    "party_gov_organs",
    "learning_party_gov_organs",
    "learning_org_pilots",
    "education_funding",
    "provincial_civilized_titles",
];

/// Statistics for the metrics a framework's rules read that the district above does not file,
/// drawn from what each rule asks of them: a ratio's parts around its target, an amount per
/// resident around its target, a count at least its minimum in most org units of its level, a
/// trend moving the way it should in most communities. Drawn from a generator of their own, so
/// the rest of the district stays as the seed makes it.
fn other_statistics(
    fw: &Framework,
    params: &DemoParams,
    org: &OrgTree,
    known: &[StatFact],
) -> Vec<StatFact> {
    let mut rules: Vec<&Rule> = Vec::new();
    for c in fw.leaves() {
        if let Some(rule) = &fw.item(c).rule {
            rule.visit(&mut |r| rules.push(r));
        }
    }
    let unknown = rules
        .iter()
        .flat_map(|r| r.metrics())
        .any(|m| !KNOWN_METRICS.contains(&m.as_str()));
    if !unknown {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x0A11_5EED_u64);
    let p = params.period;
    let mut filed = Filed {
        values: known
            .iter()
            .map(|s| ((s.metric.clone(), s.org_unit.clone(), s.period), s.value))
            .collect(),
        new: Default::default(),
        out: Vec::new(),
    };
    let communities: Vec<&OrgUnit> = (0..org.len())
        .map(|i| org.unit(i))
        .filter(|u| u.level == OrgLevel::Community)
        .collect();
    // A plausible base for a metric with nothing else to go by.
    let base = |rng: &mut ChaCha8Rng, m: &MetricId, population: u64| -> i64 {
        let f = population as f64;
        match fw.catalog.metric(m).map(|d| d.unit) {
            Some(MetricUnit::Person) => (f * rng.random_range(0.05..0.2)) as i64 + 1,
            Some(MetricUnit::Yuan) => (f * rng.random_range(1.0..3.0) * 100.0) as i64,
            _ => rng.random_range(5..30),
        }
    };
    for rule in rules {
        match rule {
            Rule::Ratio {
                numerator,
                denominator,
                target,
                ..
            } => {
                let target = f64::from(target.for_region(params.region).0) / 10_000.0;
                let new_denominator = !denominator.is_population() && !filed.has(denominator);
                let new_numerator = !filed.has(numerator);
                if !new_numerator && !new_denominator {
                    continue;
                }
                for c in &communities {
                    for (&year, &pop) in &c.population {
                        let whole = if denominator.is_population() {
                            pop as i64
                        } else if new_denominator {
                            let v = base(&mut rng, denominator, pop);
                            filed.push(denominator, &c.id, year, v);
                            v
                        } else {
                            filed.value(denominator, &c.id, year)
                        };
                        if new_numerator {
                            let rate = (target * rng.random_range(0.8..1.3)).min(0.98);
                            filed.push(numerator, &c.id, year, (whole as f64 * rate) as i64);
                        }
                    }
                }
            }
            Rule::PerCapita { amount, target, .. } if !filed.has(amount) => {
                let fen = target.for_region(params.region).0 as f64;
                for c in &communities {
                    for (&year, &pop) in &c.population {
                        let v = (pop as f64 * fen * rng.random_range(0.8..1.3)) as i64;
                        filed.push(amount, &c.id, year, v);
                    }
                }
            }
            Rule::CountAtLeast {
                metric: m,
                at_least,
                level,
                ..
            } if !filed.has(m) => {
                for i in (0..org.len()).filter(|&i| org.unit(i).level == *level) {
                    let u = org.unit(i);
                    for year in [p - 1, p] {
                        let v = if rng.random_bool(0.9) {
                            *at_least + i64::from(rng.random_bool(0.3))
                        } else {
                            (*at_least - 1).max(0)
                        };
                        filed.push(m, &u.id, year, v);
                    }
                }
            }
            Rule::Trend {
                metric: m,
                direction,
                ..
            } if !filed.has(m) => {
                for c in &communities {
                    let pop = c.population.get(&(p - 1)).copied().unwrap_or(5_000);
                    let before = base(&mut rng, m, pop);
                    let change = match direction {
                        Direction::Rising => rng.random_range(0.97..1.2),
                        Direction::Falling => rng.random_range(0.82..1.03),
                    };
                    filed.push(m, &c.id, p - 1, before);
                    filed.push(m, &c.id, p, (before as f64 * change) as i64);
                }
            }
            _ => {}
        }
    }
    filed.out
}

/// The statistics filed while the demo district is drawn.
struct Filed {
    values: BTreeMap<(MetricId, OrgUnitId, i32), i64>,
    /// Metrics filed here, beyond [`KNOWN_METRICS`].
    new: std::collections::BTreeSet<MetricId>,
    out: Vec<StatFact>,
}

impl Filed {
    fn has(&self, m: &MetricId) -> bool {
        KNOWN_METRICS.contains(&m.as_str()) || self.new.contains(m)
    }

    fn value(&self, m: &MetricId, org: &OrgUnitId, year: i32) -> i64 {
        self.values
            .get(&(m.clone(), org.clone(), year))
            .copied()
            .unwrap_or(0)
    }

    fn push(&mut self, m: &MetricId, org: &OrgUnitId, year: i32, value: i64) {
        self.new.insert(m.clone());
        self.values.insert((m.clone(), org.clone(), year), value);
        self.out.push(StatFact {
            org_unit: org.clone(),
            metric: m.clone(),
            period: year,
            value,
            version: 1,
            state: Default::default(),
        });
    }
}

impl DemoDistrict {
    /// Every survey response, generated on the fly (deterministic, independent of the rest).
    pub fn responses<'c>(
        &'c self,
        catalog: &'c Catalog,
    ) -> impl Iterator<Item = SurveyResponse> + 'c {
        let mut rng = ChaCha8Rng::seed_from_u64(self.params.seed ^ 0x0005_EED5_u64);
        let per = self.params.responses_per_community;
        let period = self.params.period;
        // Guangdong's three questions first, each answered with its own propensity, then any
        // other question the catalog declares (answered with the third propensity).
        const KNOWN: [&str; 3] = ["awareness", "acceptance", "satisfaction"];
        let others = catalog
            .questions
            .iter()
            .filter(|d| !KNOWN.contains(&d.id.as_str()))
            .map(|d| d.id.clone());
        let questions: Vec<(QuestionId, QuestionKind, u8)> = KNOWN
            .iter()
            .filter_map(|q| QuestionId::parse(q).ok())
            .chain(others)
            .filter_map(|q| {
                catalog
                    .question(&q)
                    .map(|d| (q, d.kind, d.satisfied_from.unwrap_or(4)))
            })
            .collect();
        self.survey_profile.iter().flat_map(move |(org, probs)| {
            let mut out = Vec::with_capacity(per as usize);
            for r in 0..per {
                let answers = questions
                    .iter()
                    .enumerate()
                    .map(|(qi, (q, kind, cut))| {
                        let positive = rng.random_bool(probs[qi.min(2)]);
                        let a = match kind {
                            QuestionKind::YesNo => i32::from(positive),
                            QuestionKind::Likert5 => {
                                let cut = i32::from(*cut);
                                if positive {
                                    rng.random_range(cut..=5)
                                } else {
                                    rng.random_range(1..cut)
                                }
                            }
                        };
                        (q.clone(), a)
                    })
                    .collect();
                out.push(SurveyResponse {
                    respondent: format!("{org}-r{r:05}"),
                    org_unit: org.clone(),
                    period,
                    answers,
                });
            }
            out
        })
    }

    /// The facts of the district, survey responses judged and tallied per community.
    pub fn facts(&self, catalog: &Catalog) -> Facts {
        Facts {
            statistics: self.statistics.clone(),
            surveys: tally(self.responses(catalog), catalog),
            evidence: self.evidence.clone(),
        }
    }
}

/// Judges responses against the catalog and counts them per org unit, question and period.
/// Answers to unknown questions or out of range are skipped (the survey service rejects them
/// before they get here).
pub fn tally(
    responses: impl Iterator<Item = SurveyResponse>,
    catalog: &Catalog,
) -> Vec<SurveyTally> {
    let mut counts: BTreeMap<(OrgUnitId, QuestionId, i32), (u64, u64)> = BTreeMap::new();
    for r in responses {
        for (q, a) in &r.answers {
            let Some(def) = catalog.question(q) else {
                continue;
            };
            let Ok(positive) = def.judge(*a) else {
                continue;
            };
            let e = counts
                .entry((r.org_unit.clone(), q.clone(), r.period))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(positive);
        }
    }
    counts
        .into_iter()
        .map(
            |((org_unit, question, period), (responses, positive))| SurveyTally {
                org_unit,
                question,
                period,
                responses,
                positive,
                source: String::new(),
                version: 0,
                pending_responses: 0,
                pending_positive: 0,
            },
        )
        .collect()
}
