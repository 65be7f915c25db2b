//! What a run found, for people (a table) and for machines ("cezone.chaos.v1" JSON).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// One round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub round: u32,
    pub faults: Vec<&'static str>,
    /// Writes the services acknowledged in this round.
    pub facts: u64,
    pub divergences: u64,
    pub lost: u64,
    pub doubled: u64,
    /// Milliseconds from the end of the round's last fault until every replica equalled a
    /// from-scratch recompute (none when that did not happen within the limit).
    pub converged_ms: Option<u64>,
    /// Poison messages the broker confirmed.
    pub poison_sent: u64,
    /// Poison messages found in the dead-letter queue, each counted once (at least those
    /// confirmed; one whose confirmation was lost may be there too).
    pub dead_letters: u64,
    /// Real events found in the dead-letter queue (each a fact that did not count).
    pub unexpected_dead_letters: u64,
    /// What went wrong, when something did.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    pub fn of(values: &[f64]) -> Quantiles {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        Quantiles {
            p50: q(0.5),
            p99: q(0.99),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub seed: u64,
    pub queue_type: &'static str,
    pub rounds: u32,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// Writes the services acknowledged.
    pub facts: u64,
    pub divergences: u64,
    pub lost: u64,
    pub doubled: u64,
    pub poison_sent: u64,
    /// Poison messages found in the dead-letter queue, each counted once.
    pub dead_letters: u64,
    /// Real events found in the dead-letter queue.
    pub unexpected_dead_letters: u64,
    /// Time to converge after the faults, in ms, over all rounds.
    pub converge_ms: Quantiles,
    /// The same per kind of fault (each round counts for each of its faults).
    pub converge_ms_by_fault: BTreeMap<&'static str, Quantiles>,
    /// Acknowledged writes per second of burst.
    pub facts_per_second: f64,
    pub round_results: Vec<Round>,
}

impl Report {
    pub fn new(seed: u64, queue_type: &'static str) -> Report {
        Report {
            format: "cezone.chaos.v1",
            seed,
            queue_type,
            rounds: 0,
            faults: BTreeMap::new(),
            facts: 0,
            divergences: 0,
            lost: 0,
            doubled: 0,
            poison_sent: 0,
            dead_letters: 0,
            unexpected_dead_letters: 0,
            converge_ms: Quantiles::default(),
            converge_ms_by_fault: BTreeMap::new(),
            facts_per_second: 0.0,
            round_results: Vec::new(),
        }
    }

    /// Adds a round and recomputes the totals.
    pub fn add(&mut self, r: Round, burst_seconds: f64) {
        self.rounds += 1;
        for f in &r.faults {
            *self.faults.entry(f).or_default() += 1;
        }
        self.facts += r.facts;
        self.divergences += r.divergences;
        self.lost += r.lost;
        self.doubled += r.doubled;
        self.poison_sent += r.poison_sent;
        self.dead_letters += r.dead_letters;
        self.unexpected_dead_letters += r.unexpected_dead_letters;
        self.round_results.push(r);
        let times: Vec<f64> = self
            .round_results
            .iter()
            .filter_map(|r| r.converged_ms.map(|m| m as f64))
            .collect();
        self.converge_ms = Quantiles::of(&times);
        let mut by: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for r in &self.round_results {
            if let Some(ms) = r.converged_ms {
                for f in &r.faults {
                    by.entry(f).or_default().push(ms as f64);
                }
            }
        }
        self.converge_ms_by_fault = by
            .into_iter()
            .map(|(k, v)| (k, Quantiles::of(&v)))
            .collect();
        self.facts_per_second = self.facts as f64 / (burst_seconds * self.rounds as f64);
    }

    /// Whether the run found nothing wrong.
    pub fn clean(&self) -> bool {
        self.divergences == 0
            && self.lost == 0
            && self.doubled == 0
            && self.dead_letters >= self.poison_sent
            && self.unexpected_dead_letters == 0
            && self.round_results.iter().all(|r| r.converged_ms.is_some())
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chaos: {} rounds, seed {}, {} queues",
            self.rounds, self.seed, self.queue_type
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "  faults          {}", faults.join(", "));
        let _ = writeln!(
            out,
            "  facts written   {} ({:.0}/s of burst)",
            self.facts, self.facts_per_second
        );
        let _ = writeln!(out, "  divergences     {}", self.divergences);
        let _ = writeln!(out, "  lost            {}", self.lost);
        let _ = writeln!(out, "  doubled         {}", self.doubled);
        let _ = writeln!(
            out,
            "  dead letters    {} of {} poison messages sent, {} real events",
            self.dead_letters, self.poison_sent, self.unexpected_dead_letters
        );
        let _ = writeln!(
            out,
            "  converged in    p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.converge_ms.p50, self.converge_ms.p99, self.converge_ms.max
        );
        for (f, q) in &self.converge_ms_by_fault {
            let _ = writeln!(
                out,
                "    after {f:<18} p50 {:.0} ms, p99 {:.0} ms",
                q.p50, q.p99
            );
        }
        for r in &self.round_results {
            for n in &r.notes {
                let _ = writeln!(out, "  round {}: {n}", r.round);
            }
        }
        let _ = writeln!(
            out,
            "  result          {}",
            if self.clean() { "clean" } else { "FAILED" }
        );
        out
    }
}
