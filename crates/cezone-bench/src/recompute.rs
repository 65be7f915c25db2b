//! Full and incremental recompute. Ours: the scoring engine built from the facts and every
//! criterion × org unit cell computed (`Engine::new` + `scoreboard()`), and one changed fact
//! applied and rescored (`apply` + `rescore`). Beside it, the analytics-table way: the same facts
//! in PostgreSQL tables and one SQL query rolling numerators, denominators, populations and
//! population-weighted survey rates up the org hierarchy through a closure table.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::engine::{Affected, Change, Engine, Scoreboard};
use cezone_domain::facts::{Facts, StatFact};
use cezone_domain::framework::{Framework, ItemIdx};
use cezone_domain::guangdong;
use cezone_domain::org::{CommunityType, OrgLevel, OrgTree, RegionClass};
use cezone_domain::rules::{Partial, Rule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{Connection, PgConnection, Row};

use crate::report::quantile;
use crate::sample::{Paired, Plan, interleave};

/// One scale of data: the Guangdong framework, an org tree and its facts.
#[derive(Debug)]
pub struct Scale {
    pub fw: Arc<Framework>,
    pub org: Arc<OrgTree>,
    pub facts: Facts,
    pub period: i32,
    pub towns: usize,
    pub communities: usize,
}

impl Scale {
    pub fn generate(params: &DemoParams) -> Result<Scale> {
        let (fw, _) = guangdong::framework();
        let district = generate(&fw, params);
        let facts = district.facts(&fw.catalog);
        let org = OrgTree::build(district.units.clone()).context("demo org tree")?;
        Ok(Scale {
            fw: Arc::new(fw),
            towns: org.count_at_level(OrgLevel::Town),
            communities: org.count_at_level(OrgLevel::Community),
            org: Arc::new(org),
            facts,
            period: params.period,
        })
    }

    /// The same data with one statistic in `every` still pending review, and one survey
    /// tally in `every` holding half its answers in a pending batch: what a district looks like
    /// while returns and batches wait for the level above, so confirmed and projected differ.
    pub fn with_pending(&self, every: usize) -> Scale {
        let mut facts = self.facts.clone();
        for s in facts.statistics.iter_mut().step_by(every.max(1)) {
            s.state = cezone_domain::facts::StatState::Pending;
        }
        for t in facts.surveys.iter_mut().step_by(every.max(1)) {
            t.pending_responses = t.responses / 2;
            t.pending_positive = (t.positive / 2).min(t.pending_responses);
        }
        Scale {
            fw: self.fw.clone(),
            org: self.org.clone(),
            facts,
            period: self.period,
            towns: self.towns,
            communities: self.communities,
        }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.fw.clone(), self.org.clone(), &self.facts, self.period)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} towns, {} communities, {} statistics, {} survey tallies, {} evidence facts",
            self.towns,
            self.communities,
            self.facts.statistics.len(),
            self.facts.surveys.len(),
            self.facts.evidence.len()
        )
    }
}

/// Median and spread of a few timed runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Timing {
    fn of(mut samples: Vec<f64>) -> Timing {
        samples.sort_by(f64::total_cmp);
        Timing {
            median: quantile(&samples, 0.5),
            min: samples.first().copied().unwrap_or(f64::NAN),
            max: samples.last().copied().unwrap_or(f64::NAN),
            runs: samples.len(),
        }
    }
}

/// Ours once: the engine from the facts and every score; ms.
pub fn full_once(scale: &Scale) -> f64 {
    let started = Instant::now();
    let engine = scale.engine();
    let board = engine.scoreboard();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    std::hint::black_box((engine, board));
    ms
}

/// Ours: the engine from the facts and every score, `runs` times; ms. Returns the last engine
/// and board for the checks.
pub fn full(scale: &Scale, runs: usize) -> (Timing, Engine, Scoreboard) {
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let engine = scale.engine();
        let board = engine.scoreboard();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        last = Some((std::hint::black_box(engine), std::hint::black_box(board)));
    }
    let (engine, board) = last.expect("at least one run");
    (Timing::of(samples), engine, board)
}

/// Kernel memory figures of this process, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Peak resident set size so far (VmHWM), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// Current resident set size (VmRSS), KiB.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// Resets the peak to the current RSS (Linux ≥ 4.0), so earlier workloads do not mask it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub before_kib: u64,
    pub after_kib: u64,
    pub rss_after_kib: u64,
    pub peak_was_reset: bool,
}

/// Peak RSS before and after building the engine (the scoring read model) and its scoreboard
/// from facts already in memory. Returns them with the engine and board, kept alive until the
/// figure is read.
pub fn memory(scale: &Scale) -> (Memory, Engine, Scoreboard) {
    let reset = reset_peak_rss();
    let before = peak_rss_kib().unwrap_or(0);
    let engine = scale.engine();
    let board = engine.scoreboard();
    let after = peak_rss_kib().unwrap_or(0);
    let rss = rss_kib().unwrap_or(0);
    (
        Memory {
            before_kib: before,
            after_kib: after,
            rss_after_kib: rss,
            peak_was_reset: reset,
        },
        engine,
        board,
    )
}

#[derive(Debug, Clone)]
pub struct Incremental {
    pub changes: usize,
    pub median_us: f64,
    /// Every change's time, µs.
    pub spread: crate::sample::Spread,
    /// The median of each of ten equal groups of changes, in the order applied, µs.
    pub group_medians: Vec<f64>,
    pub p99_us: f64,
    pub mean_cells: f64,
    /// The incrementally maintained board equals a full recompute from the facts with every
    /// change added.
    pub equal_to_full: bool,
}

/// Ours: `changes` statistic changes, each a random community and one of its metrics for the
/// current period with a new value and a higher version, applied and rescored one at a time; µs.
pub fn incremental(scale: &Scale, changes: usize, seed: u64) -> Incremental {
    let mut engine = scale.engine();
    let mut board = engine.scoreboard();
    let org = scale.org.clone();
    let candidates: Vec<&StatFact> = scale
        .facts
        .statistics
        .iter()
        .filter(|s| {
            s.period == scale.period
                && org
                    .find(&s.org_unit)
                    .is_some_and(|i| org.unit(i).level == OrgLevel::Community)
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples = Vec::with_capacity(changes);
    let mut cells = 0usize;
    let mut applied = Vec::with_capacity(changes);
    for k in 0..changes {
        let s = candidates[rng.random_range(0..candidates.len())];
        let fact = StatFact {
            value: s.value + 1 + rng.random_range(0..500),
            version: 1_000 + k as u64,
            state: Default::default(),
            ..s.clone()
        };
        let change = Change::Statistic(fact.clone());
        let started = Instant::now();
        let mut affected = Affected::default();
        engine.apply(&change, &mut affected);
        cells += engine.rescore(&mut board, &affected);
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        applied.push(fact);
    }
    let mut facts = scale.facts.clone();
    facts.statistics.extend(applied);
    let fresh = Engine::new(scale.fw.clone(), org, &facts, scale.period).scoreboard();
    let group_medians = samples
        .chunks(samples.len().div_ceil(10).max(1))
        .map(|g| crate::sample::Spread::of(g).median)
        .collect();
    samples.sort_by(f64::total_cmp);
    Incremental {
        changes,
        median_us: quantile(&samples, 0.5),
        spread: crate::sample::Spread::of(&samples),
        group_medians,
        p99_us: quantile(&samples, 0.99),
        mean_cells: cells as f64 / changes.max(1) as f64,
        equal_to_full: fresh == board,
    }
}

/// A rule part the SQL query computes: a ratio (per segment for `by_community_type`), a
/// per-capita amount or one survey question.
#[derive(Debug, Clone)]
struct Part {
    item: ItemIdx,
    code: String,
    /// Index of the part among a weighted rule's parts (0 for an unweighted rule).
    part: usize,
    share: f64,
    points_milli: i64,
    kind: &'static str,
    num: String,
    den: String,
    question: String,
    segment: &'static str,
    target_prd: f64,
    target_ld: f64,
    linear: bool,
}

fn covered_parts(fw: &Framework) -> Vec<Part> {
    let mut out = Vec::new();
    for c in fw.leaves() {
        let rule = fw.rule_of(c);
        let item = fw.item(c);
        let mut add = |part: usize, share: f64, r: &Rule| {
            let base = Part {
                item: c,
                code: item.code.to_string(),
                part,
                share,
                points_milli: item.points.milli(),
                kind: "",
                num: String::new(),
                den: String::new(),
                question: String::new(),
                segment: "all",
                target_prd: 0.0,
                target_ld: 0.0,
                linear: true,
            };
            let ratio = |r: &Rule, segment: &'static str| match r {
                // The query credits linearly or all-or-nothing; a tolerance band it leaves out.
                Rule::Ratio {
                    partial: Partial::Band { .. },
                    ..
                } => None,
                Rule::Ratio {
                    numerator,
                    denominator,
                    target,
                    partial,
                    ..
                } => Some(Part {
                    kind: "ratio",
                    num: numerator.to_string(),
                    den: if denominator.is_population() {
                        String::new()
                    } else {
                        denominator.to_string()
                    },
                    segment,
                    target_prd: target
                        .for_region(RegionClass::PearlRiverDelta)
                        .as_fraction(),
                    target_ld: target.for_region(RegionClass::LessDeveloped).as_fraction(),
                    linear: *partial == Partial::Linear,
                    ..base.clone()
                }),
                _ => None,
            };
            match r {
                Rule::Ratio { .. } => out.extend(ratio(r, "all")),
                Rule::ByCommunityType { urban, rural } => {
                    if let (Some(u), Some(r)) = (ratio(urban, "urban"), ratio(rural, "rural")) {
                        out.push(u);
                        out.push(r);
                    }
                }
                Rule::PerCapita {
                    partial: Partial::Band { .. },
                    ..
                }
                | Rule::SurveyRate {
                    partial: Partial::Band { .. },
                    ..
                } => {}
                Rule::PerCapita {
                    amount,
                    target,
                    partial,
                    ..
                } => out.push(Part {
                    kind: "per_capita",
                    num: amount.to_string(),
                    target_prd: target.for_region(RegionClass::PearlRiverDelta).0 as f64,
                    target_ld: target.for_region(RegionClass::LessDeveloped).0 as f64,
                    linear: *partial == Partial::Linear,
                    ..base.clone()
                }),
                Rule::SurveyRate {
                    questions,
                    target,
                    partial,
                    ..
                } => {
                    for q in questions {
                        out.push(Part {
                            kind: "survey",
                            question: q.to_string(),
                            target_prd: target
                                .for_region(RegionClass::PearlRiverDelta)
                                .as_fraction(),
                            target_ld: target.for_region(RegionClass::LessDeveloped).as_fraction(),
                            linear: *partial == Partial::Linear,
                            ..base.clone()
                        });
                    }
                }
                _ => {}
            }
        };
        match &*rule {
            Rule::Weighted { parts } => {
                let total: u32 = parts.iter().map(|p| p.weight).sum();
                for (k, p) in parts.iter().enumerate() {
                    let share = if total == 0 {
                        0.0
                    } else {
                        f64::from(p.weight) / f64::from(total)
                    };
                    add(k, share, &p.rule);
                }
            }
            r => add(0, 1.0, r),
        }
    }
    out
}

/// Every covered rule part in every org unit, in one statement: statistics, populations and
/// survey tallies rolled up through the closure table (sums of numerators and denominators,
/// population-weighted survey rates), then each part's fraction of its points and the points it
/// earns.
const SCORES_SQL: &str = r#"
WITH st AS (
    SELECT c.ancestor AS org, s.metric,
           SUM(s.value) AS v_all, COUNT(*) AS n_all,
           COALESCE(SUM(s.value) FILTER (WHERE d.ctype = 'urban'), 0) AS v_urban,
           COUNT(*) FILTER (WHERE d.ctype = 'urban') AS n_urban,
           COALESCE(SUM(s.value) FILTER (WHERE d.ctype = 'rural'), 0) AS v_rural,
           COUNT(*) FILTER (WHERE d.ctype = 'rural') AS n_rural
    FROM statistic s
    JOIN org_closure c ON c.descendant = s.org
    JOIN org_unit d ON d.id = s.org
    WHERE s.period = $1
    GROUP BY c.ancestor, s.metric
), pop AS (
    SELECT c.ancestor AS org, SUM(p.value) AS p_all
    FROM population p
    JOIN org_closure c ON c.descendant = p.org
    WHERE p.period = $1
    GROUP BY c.ancestor
), comm AS (
    SELECT c.ancestor AS org,
           COUNT(*) FILTER (WHERE d.ctype = 'urban') AS c_urban,
           COUNT(*) FILTER (WHERE d.ctype = 'rural') AS c_rural
    FROM org_unit d
    JOIN org_closure c ON c.descendant = d.id
    WHERE d.level = 'community'
    GROUP BY c.ancestor
), sv AS (
    SELECT c.ancestor AS org, t.question,
           SUM(p.value * t.positive / t.responses) AS wpos, SUM(p.value) AS w
    FROM survey_tally t
    JOIN population p ON p.org = t.org AND p.period = t.period
    JOIN org_closure c ON c.descendant = t.org
    WHERE t.period = $1 AND t.responses > 0 AND p.value > 0
    GROUP BY c.ancestor, t.question
), measured AS (
    SELECT o.id AS org, r.code, r.part, r.share, r.points_milli, r.linear,
           CASE WHEN o.region = 'prd' THEN r.target_prd ELSE r.target_ld END AS target,
           CASE r.segment WHEN 'all' THEN true
                          WHEN 'urban' THEN COALESCE(cc.c_urban, 0) > 0
                          ELSE COALESCE(cc.c_rural, 0) > 0 END AS applies,
           CASE r.kind
             WHEN 'ratio' THEN
               CASE
                 WHEN r.den = '' THEN
                   CASE WHEN COALESCE(pp.p_all, 0) <= 0 THEN NULL
                        WHEN COALESCE(sn.n_all, 0) = 0 THEN 0.0
                        ELSE sn.v_all / pp.p_all END
                 ELSE
                   CASE r.segment
                     WHEN 'all' THEN
                       CASE WHEN COALESCE(sd.n_all, 0) = 0 OR sd.v_all <= 0 THEN NULL
                            WHEN COALESCE(sn.n_all, 0) = 0 THEN 0.0
                            ELSE sn.v_all / sd.v_all END
                     WHEN 'urban' THEN
                       CASE WHEN COALESCE(sd.n_urban, 0) = 0 OR sd.v_urban <= 0 THEN NULL
                            WHEN COALESCE(sn.n_urban, 0) = 0 THEN 0.0
                            ELSE sn.v_urban / sd.v_urban END
                     ELSE
                       CASE WHEN COALESCE(sd.n_rural, 0) = 0 OR sd.v_rural <= 0 THEN NULL
                            WHEN COALESCE(sn.n_rural, 0) = 0 THEN 0.0
                            ELSE sn.v_rural / sd.v_rural END
                   END
               END
             WHEN 'per_capita' THEN
               CASE WHEN COALESCE(pp.p_all, 0) <= 0 OR COALESCE(sn.n_all, 0) = 0 THEN NULL
                    ELSE sn.v_all / pp.p_all END
             ELSE
               CASE WHEN COALESCE(sv.w, 0) > 0 THEN sv.wpos / sv.w END
           END AS value
    FROM org_unit o
    CROSS JOIN rule_part r
    LEFT JOIN st sn ON sn.org = o.id AND sn.metric = r.num
    LEFT JOIN st sd ON sd.org = o.id AND sd.metric = r.den
    LEFT JOIN pop pp ON pp.org = o.id
    LEFT JOIN comm cc ON cc.org = o.id
    LEFT JOIN sv ON sv.org = o.id AND sv.question = r.question
), fractions AS (
    SELECT org, code, part, share, points_milli, applies,
           CASE WHEN value IS NULL THEN 0.0
                WHEN target <= 0 THEN 1.0
                WHEN linear THEN LEAST(GREATEST(value / target, 0.0), 1.0)
                WHEN value >= target THEN 1.0
                ELSE 0.0 END AS f
    FROM measured
)
SELECT org, code, part,
       COALESCE(MIN(f) FILTER (WHERE applies), 0.0) AS fraction,
       ROUND(MAX(points_milli) * MAX(share) * COALESCE(MIN(f) FILTER (WHERE applies), 0.0))::int8
         AS points_milli
FROM fractions
GROUP BY org, code, part
"#;

const SCHEMA_SQL: &str = r#"
CREATE TABLE org_unit (id int4 PRIMARY KEY, code text NOT NULL, parent int4, level text NOT NULL,
                       ctype text, region text NOT NULL);
CREATE TABLE org_closure (ancestor int4 NOT NULL, descendant int4 NOT NULL,
                          PRIMARY KEY (ancestor, descendant));
CREATE TABLE statistic (org int4 NOT NULL, metric text NOT NULL, period int4 NOT NULL,
                        value float8 NOT NULL);
CREATE TABLE population (org int4 NOT NULL, period int4 NOT NULL, value float8 NOT NULL);
CREATE TABLE survey_tally (org int4 NOT NULL, question text NOT NULL, period int4 NOT NULL,
                           responses float8 NOT NULL, positive float8 NOT NULL);
CREATE TABLE rule_part (code text NOT NULL, part int4 NOT NULL, share float8 NOT NULL,
                        points_milli int8 NOT NULL, kind text NOT NULL, num text NOT NULL,
                        den text NOT NULL, question text NOT NULL, segment text NOT NULL,
                        target_prd float8 NOT NULL, target_ld float8 NOT NULL,
                        linear bool NOT NULL);
"#;

const INDEX_SQL: &str = r#"
CREATE INDEX org_closure_descendant ON org_closure (descendant, ancestor);
CREATE INDEX statistic_period ON statistic (period, org, metric);
CREATE INDEX population_org ON population (org, period);
CREATE INDEX survey_tally_period ON survey_tally (period, org, question);
ANALYZE;
"#;

#[derive(Debug, Clone)]
pub struct SqlRun {
    /// Ours (`full_once`) and the query, interleaved; ms.
    pub paired: Paired,
    pub rows: usize,
    pub load_seconds: f64,
    /// How the query's fractions compare with the engine's for the same rule parts.
    pub check: String,
}

async fn copy(conn: &mut PgConnection, table: &str, data: String) -> Result<()> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN"))
        .await
        .with_context(|| format!("COPY {table}"))?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Loads the facts into fresh PostgreSQL tables (not timed), then times ours (`full_once`) and
/// the scoring query (rows fetched to the client) in alternating turns as `plan` says, and
/// compares the query's fractions with the engine's explanations at the root and at a sample of
/// other units.
pub async fn sql_baseline(
    scale: &Scale,
    engine: &Engine,
    board: &Scoreboard,
    plan: Plan,
) -> Result<SqlRun> {
    let url = cezone_platform::scratch::create_database("cezone_b")
        .await
        .context("PostgreSQL for the SQL baseline")?;
    let result = sql_baseline_on(&url, scale, engine, board, plan).await;
    cezone_platform::scratch::drop_database(&url).await;
    result
}

async fn sql_baseline_on(
    url: &str,
    scale: &Scale,
    engine: &Engine,
    board: &Scoreboard,
    plan: Plan,
) -> Result<SqlRun> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("PostgreSQL on 127.0.0.1")?;
    let loading = Instant::now();
    sqlx::raw_sql(SCHEMA_SQL).execute(&mut conn).await?;
    let org = &scale.org;
    let mut units = String::new();
    let mut closure = String::new();
    let mut population = String::new();
    for i in 0..org.len() {
        let u = org.unit(i);
        let parent = org
            .parent(i)
            .map_or_else(|| "\\N".to_string(), |p| p.to_string());
        let ctype = match u.community_type {
            Some(CommunityType::Urban) => "urban",
            Some(CommunityType::Rural) => "rural",
            None => "\\N",
        };
        let region = match org.region(i) {
            RegionClass::PearlRiverDelta => "prd",
            RegionClass::LessDeveloped => "ld",
        };
        let _ = writeln!(
            units,
            "{i}\t{}\t{parent}\t{}\t{ctype}\t{region}",
            u.id,
            u.level.as_str()
        );
        for a in org.path_to_root(i) {
            let _ = writeln!(closure, "{a}\t{i}");
        }
        for (year, pop) in &u.population {
            let _ = writeln!(population, "{i}\t{year}\t{pop}");
        }
    }
    // One version per fact in the demo data; the latest is kept in any case.
    let mut latest: HashMap<(usize, &str, i32), (u64, i64)> = HashMap::new();
    for s in &scale.facts.statistics {
        if let Some(i) = org.find(&s.org_unit) {
            let cand = (s.version, s.value);
            latest
                .entry((i, s.metric.as_str(), s.period))
                .and_modify(|v| *v = (*v).max(cand))
                .or_insert(cand);
        }
    }
    let mut statistics = String::with_capacity(latest.len() * 32);
    for ((i, metric, period), (_, value)) in latest {
        let _ = writeln!(statistics, "{i}\t{metric}\t{period}\t{value}");
    }
    let mut tallies = String::new();
    for t in &scale.facts.surveys {
        if let Some(i) = org.find(&t.org_unit) {
            let _ = writeln!(
                tallies,
                "{i}\t{}\t{}\t{}\t{}",
                t.question,
                t.period,
                t.responses,
                t.positive.min(t.responses)
            );
        }
    }
    let parts = covered_parts(&scale.fw);
    let mut rule_parts = String::new();
    for p in &parts {
        let _ = writeln!(
            rule_parts,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            p.code,
            p.part,
            p.share,
            p.points_milli,
            p.kind,
            p.num,
            p.den,
            p.question,
            p.segment,
            p.target_prd,
            p.target_ld,
            p.linear
        );
    }
    copy(&mut conn, "org_unit", units).await?;
    copy(&mut conn, "org_closure", closure).await?;
    copy(&mut conn, "population", population).await?;
    copy(&mut conn, "statistic", statistics).await?;
    copy(&mut conn, "survey_tally", tallies).await?;
    copy(&mut conn, "rule_part", rule_parts).await?;
    sqlx::raw_sql(INDEX_SQL).execute(&mut conn).await?;
    let load_seconds = loading.elapsed().as_secs_f64();

    let mut rows = Vec::new();
    let paired = interleave(
        plan,
        async || Ok(full_once(scale)),
        async || {
            let started = Instant::now();
            rows = sqlx::query(SCORES_SQL)
                .bind(scale.period)
                .fetch_all(&mut conn)
                .await
                .context("the scoring query")?;
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        },
    )
    .await?;
    let _ = conn.close().await;

    let mut sql: HashMap<(usize, String, usize), f64> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let org: i32 = r.try_get(0)?;
        let code: String = r.try_get(1)?;
        let part: i32 = r.try_get(2)?;
        let f: f64 = r.try_get(3)?;
        sql.insert((org as usize, code, part as usize), f);
    }
    let check = check(engine, board, &parts, &sql);
    Ok(SqlRun {
        paired,
        rows: rows.len(),
        load_seconds,
        check,
    })
}

/// Compares the query's fractions with the engine's explanation of the same parts: every covered
/// part at the root (listed) and at 40 other units (largest difference).
fn check(
    engine: &Engine,
    board: &Scoreboard,
    parts: &[Part],
    sql: &HashMap<(usize, String, usize), f64>,
) -> String {
    let org = &engine.org;
    let mut keys: Vec<(ItemIdx, String, usize)> = parts
        .iter()
        .map(|p| (p.item, p.code.clone(), p.part))
        .collect();
    keys.dedup();
    let engine_fraction = |node: usize, item: ItemIdx, part: usize| -> Option<f64> {
        let x = engine.explain(board, node, item).rule?;
        if x.rule == "weighted" {
            x.parts.get(part).map(|p| p.fraction_confirmed)
        } else {
            Some(x.fraction_confirmed)
        }
    };
    let mut root = Vec::new();
    let mut max_diff = 0.0f64;
    let mut compared = 0usize;
    let mut missing = 0usize;
    let step = (org.len() / 40).max(1);
    let nodes: Vec<usize> = std::iter::once(org.root())
        .chain((1..org.len()).step_by(step))
        .collect();
    for &node in &nodes {
        for (item, code, part) in &keys {
            let (Some(e), Some(s)) = (
                engine_fraction(node, *item, *part),
                sql.get(&(node, code.clone(), *part)),
            ) else {
                missing += 1;
                continue;
            };
            max_diff = max_diff.max((e - s).abs());
            compared += 1;
            if node == org.root() {
                root.push(format!("{code} {s:.3}/{e:.3}"));
            }
        }
    }
    format!(
        "SQL/engine fraction at the root: {}; max |Δ| over {compared} (unit, part) pairs at {} \
         units: {max_diff:.2e}{}",
        root.join(", "),
        nodes.len(),
        if missing > 0 {
            format!(", {missing} missing")
        } else {
            String::new()
        }
    )
}

/// What the SQL query covers, for the note.
pub fn sql_coverage(fw: &Framework) -> String {
    let parts = covered_parts(fw);
    let mut codes: Vec<String> = parts.iter().map(|p| p.code.clone()).collect();
    codes.dedup();
    let leaves = fw.leaves().count();
    format!(
        "the SQL computes the ratio, per_capita, survey_rate and by_community_type-ratio parts of \
         {} of {leaves} criteria ({}) for every org unit, and the points they earn; not evidence, \
         count_at_least, trend nor group roll-up",
        codes.len(),
        codes.join(" ")
    )
}
