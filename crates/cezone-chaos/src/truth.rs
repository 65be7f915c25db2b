//! What the read model must equal once quiet: scores computed from scratch from the services'
//! own data (pulled over their APIs, as `Recompute` pulls it), cell by cell for every replica;
//! and facts counted once — what the services acknowledged is in the services, and what the
//! services hold is in the read model's tables, no older and no more.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use cezone_domain::facts::EvidenceState;
use cezone_platform::access::auth::AuthChannel;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_scoring::reconcile::{Upstream, pull};
use cezone_scoring::{Inputs, Scored};
use sqlx::{PgPool, Row};

use crate::writers::Ledger;

/// The scores the services' data gives, computed from scratch.
pub async fn expected(up: &Upstream, framework_id: &str, period: i32) -> Result<Scored> {
    let inputs = pull(up, framework_id, "", period)
        .await
        .map_err(|e| anyhow::anyhow!("pulling the services' data: {e}"))?;
    Scored::compute(Arc::new(inputs), String::new())
        .map_err(|e| anyhow::anyhow!("scoring the services' data: {e}"))
}

/// The cells of one replica that differ from `expected` (every cell of a unit it cannot
/// answer for), with a few of them described.
pub async fn divergences(
    client: &mut ScoringServiceClient<AuthChannel>,
    expected: &Scored,
) -> (u64, Vec<String>) {
    let fw = expected.framework();
    let tree = expected.tree();
    let mut count = 0;
    let mut examples = Vec::new();
    for node in 0..tree.len() {
        let id = tree.unit(node).id.to_string();
        let got = client
            .get_scores(ps::GetScoresRequest {
                org_unit: id.clone(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner());
        let Ok(got) = got else {
            count += fw.len() as u64;
            if examples.len() < 5 {
                examples.push(format!("{id}: no answer"));
            }
            continue;
        };
        let got: HashMap<&str, (&str, &str)> = got
            .items
            .iter()
            .map(|i| {
                let s = i.score.as_ref();
                (
                    i.code.as_str(),
                    (
                        s.map_or("", |s| s.confirmed.as_str()),
                        s.map_or("", |s| s.projected.as_str()),
                    ),
                )
            })
            .collect();
        for (i, cell) in expected.board.row(node).iter().enumerate() {
            let code = fw.item(i).code.to_string();
            let want = (cell.confirmed.to_string(), cell.projected.to_string());
            let have = got.get(code.as_str()).copied();
            if have != Some((want.0.as_str(), want.1.as_str())) {
                count += 1;
                if examples.len() < 5 {
                    examples.push(format!("{id} {code}: {have:?}, want {want:?}"));
                }
            }
        }
    }
    (count, examples)
}

/// Facts not where they must be.
#[derive(Debug, Default)]
pub struct Counted {
    /// Acknowledged by a service but not in it, or in a service but not (or older) in the
    /// read model.
    pub lost: u64,
    /// In the read model beyond what the services hold (a newer version, a larger tally, a
    /// record they do not have), or counted twice by a service.
    pub doubled: u64,
    pub examples: Vec<String>,
}

impl Counted {
    fn lost(&mut self, what: String) {
        self.lost += 1;
        if self.examples.len() < 10 {
            self.examples.push(format!("lost: {what}"));
        }
    }

    fn doubled(&mut self, what: String) {
        self.doubled += 1;
        if self.examples.len() < 10 {
            self.examples.push(format!("doubled: {what}"));
        }
    }
}

/// Holds the services to the ledger and the read model's tables to the services.
pub async fn counted(
    pool: &PgPool,
    services: &Inputs,
    ledger: &Ledger,
    survey: &str,
) -> Result<Counted> {
    let mut c = Counted::default();

    // What the services acknowledged is what they hold.
    let held: HashMap<(String, String, i32), (u64, i64)> = services
        .facts
        .statistics
        .iter()
        .map(|s| {
            (
                (s.org_unit.to_string(), s.metric.to_string(), s.period),
                (s.version, s.value),
            )
        })
        .collect();
    for (k, (version, value)) in &ledger.statistics {
        match held.get(k) {
            Some((v, _)) if v > version => {}
            Some((v, x)) if v == version && x == value => {}
            other => c.lost(format!(
                "statistic {k:?} v{version} acknowledged, surveys hold {other:?}"
            )),
        }
    }
    for (org_unit, n) in &ledger.responses {
        let tallied = services
            .facts
            .surveys
            .iter()
            .filter(|t| t.source == survey && t.org_unit.as_str() == org_unit)
            .map(|t| t.responses)
            .max()
            .unwrap_or(0);
        if tallied < *n {
            c.lost(format!(
                "{org_unit}: {n} responses acknowledged, {tallied} tallied"
            ));
        } else if tallied > *n {
            c.doubled(format!(
                "{org_unit}: {n} responses acknowledged, {tallied} tallied"
            ));
        }
    }

    // What the services hold is in the read model, no older and no more.
    let mut model: HashMap<(String, String, i32), (u64, i64)> = HashMap::new();
    for r in sqlx::query("SELECT org_unit, metric, period, value, version FROM scoring_stat_facts")
        .fetch_all(pool)
        .await?
    {
        model.insert(
            (r.get("org_unit"), r.get("metric"), r.get("period")),
            (r.get::<i64, _>("version") as u64, r.get("value")),
        );
    }
    for (k, want) in &held {
        match model.remove(k) {
            Some(have) if have == *want => {}
            Some(have) if have.0 > want.0 => c.doubled(format!(
                "statistic {k:?}: read model {have:?}, surveys {want:?}"
            )),
            have => c.lost(format!(
                "statistic {k:?}: read model {have:?}, surveys {want:?}"
            )),
        }
    }
    for (k, have) in model {
        c.doubled(format!(
            "statistic {k:?} {have:?} is not the surveys service's"
        ));
    }

    // (survey, org unit, question, period) → (responses, positive, version)
    type TallyKey = (String, String, String, i32);
    let mut tallies: HashMap<TallyKey, (u64, u64, u64)> = HashMap::new();
    for r in sqlx::query(
        "SELECT survey_id, org_unit, question, period, responses, positive, version FROM scoring_tally_facts",
    )
    .fetch_all(pool)
    .await?
    {
        tallies.insert(
            (
                r.get("survey_id"),
                r.get("org_unit"),
                r.get("question"),
                r.get("period"),
            ),
            (
                r.get::<i64, _>("responses") as u64,
                r.get::<i64, _>("positive") as u64,
                r.get::<i64, _>("version") as u64,
            ),
        );
    }
    for t in &services.facts.surveys {
        let k = (
            t.source.clone(),
            t.org_unit.to_string(),
            t.question.to_string(),
            t.period,
        );
        let want = (t.responses, t.positive, t.version);
        match tallies.remove(&k) {
            Some(have) if have == want => {}
            Some(have) if have.0 > want.0 || have.2 > want.2 => c.doubled(format!(
                "tally {k:?}: read model {have:?}, surveys {want:?}"
            )),
            have => c.lost(format!(
                "tally {k:?}: read model {have:?}, surveys {want:?}"
            )),
        }
    }
    for (k, have) in tallies {
        c.doubled(format!("tally {k:?} {have:?} is not the surveys service's"));
    }

    let mut evidence: HashMap<String, (String, i32, u64)> = HashMap::new();
    for r in sqlx::query("SELECT id, state, grade, version FROM scoring_evidence_facts")
        .fetch_all(pool)
        .await?
    {
        evidence.insert(
            r.get("id"),
            (
                r.get("state"),
                r.get("grade"),
                r.get::<i64, _>("version") as u64,
            ),
        );
    }
    for e in &services.facts.evidence {
        let (state, grade) = match e.state {
            EvidenceState::Accepted { grade } => ("accepted", i32::from(grade)),
            EvidenceState::Returned => ("returned", 0),
            EvidenceState::Submitted => ("submitted", 0),
        };
        let want = (state.to_string(), grade, e.version);
        match evidence.remove(&e.id) {
            Some(have) if have == want => {}
            Some(have) if have.2 > want.2 => c.doubled(format!(
                "evidence {}: read model {have:?}, evidence {want:?}",
                e.id
            )),
            have => c.lost(format!(
                "evidence {}: read model {have:?}, evidence {want:?}",
                e.id
            )),
        }
    }
    for (id, have) in evidence {
        c.doubled(format!(
            "evidence {id} {have:?} is not the evidence service's"
        ));
    }
    Ok(c)
}
