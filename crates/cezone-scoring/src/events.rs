//! Events in and out: applying the other services' events to the read model (idempotently, by
//! event id and fact version), and the events scoring publishes.

use cezone_bus::Envelope;
use cezone_domain::checks;
use cezone_domain::engine::Cell;
use cezone_domain::facts::{StatFact, StatState};
use cezone_domain::org::OrgUnitId;
use cezone_domain::rules::{MetricId, QuestionId};
use cezone_platform::glue::convert::{org_unit_from_proto, score};
use cezone_proto::events::v1 as ev;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use crate::changes::{self, Change};
use crate::facts_db;
use crate::model::Scored;
use crate::reconcile::evidence_fact;

/// Routing patterns the scoring consumer binds.
pub const PATTERNS: &[&str] = &[
    "framework.*",
    "org_unit.*",
    "evidence.*",
    "statistic.*",
    "survey.*",
];

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The message can never be applied: it goes to the dead-letter queue with this reason.
    #[error("{0}")]
    Malformed(String),
    /// The database failed; the delivery is retried.
    #[error(transparent)]
    Transient(#[from] DbErr),
    /// Another service needed for a check could not be asked; the delivery is retried.
    #[error("{0}")]
    Unavailable(String),
}

fn payload<M: Message + Default>(env: &Envelope) -> Result<M, EventError> {
    M::decode(env.payload.as_slice()).map_err(|e| {
        EventError::Malformed(format!(
            "{} payload of event {} cannot be decoded: {e}",
            env.r#type, env.event_id
        ))
    })
}

/// A fact an event carries, decoded and checked.
#[derive(Debug, Clone)]
pub enum Fact {
    Framework {
        framework_id: String,
        edition: String,
        document: String,
    },
    OrgUnit(cezone_domain::org::OrgUnit, u64),
    Evidence(cezone_domain::facts::EvidenceFact),
    Stat(StatFact),
    Tally(cezone_domain::facts::SurveyTally),
}

/// Decodes an event into the facts scoring keeps (none for events of other frameworks or of
/// types scoring does not use). A malformed event is an error naming why.
pub fn decode(env: &Envelope, framework_id: &str, edition: &str) -> Result<Vec<Fact>, EventError> {
    let id = env.event_id.as_str();
    let bad = |what: String| EventError::Malformed(format!("{} event {id}: {what}", env.r#type));
    Ok(match env.r#type.as_str() {
        "framework.published" => {
            let p: ev::FrameworkPublished = payload(env)?;
            if p.framework_id == framework_id && (edition.is_empty() || p.edition == edition) {
                vec![Fact::Framework {
                    framework_id: p.framework_id,
                    edition: p.edition,
                    document: p.document_json,
                }]
            } else {
                Vec::new()
            }
        }
        t if t.starts_with("org_unit.") => {
            let p: ev::OrgUnitChanged = payload(env)?;
            let unit = p.unit.ok_or_else(|| bad("it carries no unit".into()))?;
            let domain = org_unit_from_proto(&unit).map_err(|e| bad(e.message))?;
            vec![Fact::OrgUnit(domain, unit.revision)]
        }
        t if t.starts_with("evidence.") => {
            let p: ev::EvidenceChanged = payload(env)?;
            let e = p
                .evidence
                .ok_or_else(|| bad("it carries no evidence".into()))?;
            if e.framework_id != framework_id {
                return Ok(Vec::new());
            }
            let fact =
                evidence_fact(&e).ok_or_else(|| bad(format!("unreadable evidence {}", e.id)))?;
            checks::evidence(&fact).map_err(|e| bad(e.to_string()))?;
            vec![Fact::Evidence(fact)]
        }
        "statistic.recorded" | "statistic.reviewed" => {
            // Both carry the filing as it stands; a review ranks after its filing.
            let s = if env.r#type == "statistic.recorded" {
                payload::<ev::StatisticRecorded>(env)?.statistic
            } else {
                payload::<ev::StatisticReviewed>(env)?.statistic
            }
            .ok_or_else(|| bad("it carries no statistic".into()))?;
            vec![Fact::Stat(stat_fact(&s).map_err(bad)?)]
        }
        "statistic.imported" => {
            // A part of an imported return: each statistic as `statistic.recorded` carries it.
            let p: ev::StatisticsImported = payload(env)?;
            p.statistics
                .iter()
                .map(|s| stat_fact(s).map(Fact::Stat).map_err(&bad))
                .collect::<Result<_, _>>()?
        }
        "survey.batch_aggregated" => {
            let p: ev::SurveyBatchAggregated = payload(env)?;
            let mut out = Vec::with_capacity(p.tallies.len());
            for t in p.tallies {
                let fact = cezone_domain::facts::SurveyTally {
                    org_unit: OrgUnitId::parse(&t.org_unit).map_err(bad)?,
                    question: QuestionId::parse(&t.question).map_err(bad)?,
                    period: t.period,
                    responses: t.responses,
                    positive: t.positive,
                    source: t.survey_id,
                    version: t.version,
                    pending_responses: t.pending_responses,
                    pending_positive: t.pending_positive,
                };
                checks::tally(&fact).map_err(|e| bad(e.to_string()))?;
                out.push(Fact::Tally(fact));
            }
            out
        }
        other => {
            tracing::debug!(
                event_type = other,
                event_id = id,
                "event type not used by scoring"
            );
            Vec::new()
        }
    })
}

/// A filed statistic as scoring keeps it, checked; or why it cannot be.
fn stat_fact(s: &cezone_proto::surveys::v1::StatisticReturn) -> Result<StatFact, String> {
    let fact = StatFact {
        org_unit: OrgUnitId::parse(&s.org_unit)?,
        metric: MetricId::parse(&s.metric)?,
        period: s.period,
        value: s.value,
        version: s.version,
        state: stat_state(s.state),
    };
    checks::statistic(&fact).map_err(|e| e.to_string())?;
    Ok(fact)
}

/// Applies checked events in one transaction: the event ids (a duplicate is skipped), the facts
/// they change (each only if newer than what is stored), and one change record per fact that
/// changed, for the scorer. On PostgreSQL the transaction holds the shared side of the rebuild
/// lock, so a rebuild's replacement is either before it or after it, never across it.
/// Returns whether any stored fact changed.
pub async fn apply_batch(
    db: &DatabaseConnection,
    events: &[(&Envelope, Vec<Fact>)],
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        txn.execute(facts_db::stmt(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock_shared(?)",
            vec![crate::store::REPLACE_LOCK.into()],
        ))
        .await?;
    }
    let ids: Vec<(&str, &str)> = events
        .iter()
        .map(|(env, _)| (env.event_id.as_str(), env.r#type.as_str()))
        .collect();
    let mut fresh = facts_db::mark_processed_many(&txn, &ids).await?;
    let mut records: Vec<(Change, &str)> = Vec::new();
    let mut stats = Vec::new();
    for (env, facts) in events {
        // Removed as it is applied: the same event twice in one batch is applied once.
        if !fresh.remove(env.event_id.as_str()) {
            continue;
        }
        let id = env.event_id.as_str();
        for f in facts {
            match f {
                Fact::Framework {
                    framework_id,
                    edition,
                    document,
                } => {
                    if facts_db::set_framework(&txn, framework_id, edition, document).await? {
                        records.push((
                            Change::Framework {
                                framework_id: framework_id.clone(),
                                edition: edition.clone(),
                            },
                            id,
                        ));
                    }
                }
                Fact::OrgUnit(u, rev) => {
                    if facts_db::upsert_org_unit(&txn, u, *rev).await? {
                        records.push((
                            Change::OrgUnit {
                                id: u.id.to_string(),
                                revision: *rev,
                            },
                            id,
                        ));
                    }
                }
                Fact::Evidence(e) => {
                    if facts_db::upsert_evidence(&txn, e).await? {
                        records.push((Change::Evidence { fact: e.clone() }, id));
                    }
                }
                Fact::Stat(s) => stats.push((s, id)),
                Fact::Tally(t) => {
                    if facts_db::upsert_tally(&txn, t).await? {
                        records.push((Change::Tally { fact: t.clone() }, id));
                    }
                }
            }
        }
    }
    for (s, id) in facts_db::upsert_stats(&txn, &stats).await? {
        records.push((Change::Statistic { fact: s.clone() }, id));
    }
    changes::append(&txn, &records).await?;
    txn.commit().await?;
    Ok(!records.is_empty())
}

/// The `scores.changed` event of a committed recomputation (none when nothing changed).
pub fn scores_changed(
    scored: &Scored,
    units: &[(usize, Cell)],
    recomputed: usize,
    caused_by: &[String],
) -> Option<Envelope> {
    if units.is_empty() {
        return None;
    }
    let p = ev::ScoresChanged {
        framework_id: scored.inputs.framework_id.clone(),
        edition: scored.framework().meta.edition.clone(),
        period: scored.inputs.period,
        computed_at: scored.computed_at.clone(),
        district_total: Some(score(scored.total())),
        units: units
            .iter()
            .map(|(i, c)| ev::UnitTotal {
                org_unit: scored.tree().unit(*i).id.to_string(),
                total: Some(score(*c)),
            })
            .collect(),
        cells_recomputed: recomputed as u32,
        caused_by: caused_by.to_vec(),
    };
    Some(cezone_bus::envelope("scores.changed", "scoring", &p, None))
}

pub fn snapshot_frozen(
    s: &cezone_proto::scoring::v1::Snapshot,
    close_submissions: bool,
) -> Envelope {
    let p = ev::SnapshotFrozen {
        snapshot_id: s.id.clone(),
        checkpoint: s.checkpoint.clone(),
        framework_id: s.framework_id.clone(),
        edition: s.edition.clone(),
        period: s.period,
        frozen_at: s.frozen_at.clone(),
        district_total: s.district_total.clone(),
        content_hash: s.content_hash.clone(),
        close_submissions,
    };
    cezone_bus::envelope("snapshot.frozen", "scoring", &p, None)
}

/// A statistic's review state as a producer sends it; filings from before reviews existed
/// (no state) were accepted as filed.
pub fn stat_state(state: i32) -> StatState {
    use cezone_proto::surveys::v1::StatisticState as S;
    match S::try_from(state) {
        Ok(S::Pending) => StatState::Pending,
        Ok(S::Returned) => StatState::Returned,
        _ => StatState::Accepted,
    }
}
