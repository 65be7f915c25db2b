//! Looking at the calendar and doing what is due: recompute with reconciliation, freeze a
//! snapshot (which keeps its readiness report), count missing and late evidence, record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cezone_domain::access::{Principal, Role};
use cezone_domain::framework::Framework;
use cezone_domain::schedule::{self, DueRun, PlannedRun, RunState, SchedulePolicy};
use cezone_platform::ApiError;
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_platform::channel;
use cezone_platform::glue::registry_view::RegistryView;
use cezone_platform::settings::Settings;
use cezone_platform::time::rfc3339;
use cezone_proto::common::v1::Score;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::evidence::v1::evidence_service_client::EvidenceServiceClient;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use cezone_proto::scheduler::v1 as psch;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use cezone_proto::surveys::v1::survey_service_client::SurveyServiceClient;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, DatabaseConnection, IntoActiveModel, TransactionTrait};

use crate::clock::Clock;
use crate::store::{self, run};

#[derive(Debug, Clone)]
pub struct Scheduler {
    db: DatabaseConnection,
    registry: RegistryView,
    scoring: ScoringServiceClient<AuthChannel>,
    evidence: EvidenceServiceClient<AuthChannel>,
    surveys: SurveyServiceClient<AuthChannel>,
    /// Whom reminders are e-mailed to.
    recipients: RegistryServiceClient<AuthChannel>,
    /// None without `notify.smtp_url`.
    mailer: Option<crate::mail::Mailer>,
    pub clock: Arc<dyn Clock>,
    policy: SchedulePolicy,
    framework_id: String,
    edition: String,
}

/// What one look at the calendar did, and when to look again.
#[derive(Debug, Clone, Default)]
pub struct Look {
    /// The time looked at.
    pub at: DateTime<Utc>,
    pub ran: Vec<psch::RunRecord>,
    pub next_due: Option<DateTime<Utc>>,
}

fn upstream(what: &str, s: tonic::Status) -> ApiError {
    ApiError::unavailable(format!("{what} failed: {} {}", s.code(), s.message()))
}

impl Scheduler {
    /// The scheduler's own database (its runs and its audit log).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn new(
        settings: &Settings,
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        bearer: &Bearer,
    ) -> Result<Scheduler, ApiError> {
        let max = settings.grpc.max_message_bytes;
        let s = &settings.services;
        Ok(Scheduler {
            db,
            registry: RegistryView::new(&s.registry_url, max, bearer)?,
            scoring: ScoringServiceClient::new(channel::lazy(&s.scoring_url, bearer)?)
                .max_decoding_message_size(max),
            evidence: EvidenceServiceClient::new(channel::lazy(&s.evidence_url, bearer)?)
                .max_decoding_message_size(max),
            surveys: SurveyServiceClient::new(channel::lazy(&s.surveys_url, bearer)?)
                .max_decoding_message_size(max),
            recipients: RegistryServiceClient::new(channel::lazy(&s.registry_url, bearer)?),
            mailer: crate::mail::Mailer::from_settings(&settings.notify)?,
            clock,
            policy: settings
                .scheduler
                .policy()
                .map_err(|reason| ApiError::invalid("scheduler.utc_offset_hours", reason))?,
            framework_id: settings.scoring.framework_id.clone(),
            edition: settings.scoring.edition.clone(),
        })
    }

    async fn framework(&self) -> Result<(Arc<Framework>, String), ApiError> {
        self.registry
            .framework(&self.framework_id, &self.edition)
            .await
    }

    /// Planned runs of the scored framework's calendar.
    pub async fn plan(&self) -> Result<(String, Vec<PlannedRun>), ApiError> {
        let (fw, edition) = self.framework().await?;
        Ok((edition, schedule::plan(&fw.calendar, &self.policy)))
    }

    async fn done(&self) -> Result<BTreeMap<String, run::Model>, ApiError> {
        Ok(store::all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect())
    }

    /// E-mails the reminders waiting for it (none without an SMTP server); how many were sent.
    pub async fn send_reminders(&self) -> Result<usize, ApiError> {
        match &self.mailer {
            None => Ok(0),
            Some(mailer) => {
                crate::mail::send_pending(
                    &self.db,
                    mailer,
                    &mut self.recipients.clone(),
                    self.clock.now(),
                )
                .await
            }
        }
    }

    /// Runs what is due now, once each, and says when the next run falls due.
    pub async fn look(&self) -> Result<Look, ApiError> {
        let (_, runs) = self.plan().await?;
        let now = self.clock.now();
        let done: BTreeSet<String> = self.done().await?.into_keys().collect();
        let mut look = Look::default();
        for due in schedule::due(&runs, now, &done) {
            if let Some(record) = self.execute_due(&due).await? {
                look.ran.push(record);
            }
        }
        // Relative to the moment looked at: a run falling due while this look worked is
        // before the next wake-up, which is then already past.
        let done: BTreeSet<String> = self.done().await?.into_keys().collect();
        look.next_due = schedule::next_due(&runs, now, &done);
        look.at = now;
        Ok(look)
    }

    async fn execute_due(&self, due: &DueRun) -> Result<Option<psch::RunRecord>, ApiError> {
        self.execute(
            &due.run.key,
            &due.run.checkpoint,
            &due.covers,
            "schedule",
            "scheduler",
            &Principal::new("scheduler", Role::Service, None, None).expect("a valid principal"),
        )
        .await
    }

    /// Recompute and freeze for `checkpoint` now, outside the plan.
    pub async fn run_now(
        &self,
        checkpoint: &str,
        requested_by: &str,
        who: &Principal,
    ) -> Result<psch::RunRecord, ApiError> {
        let (fw, _) = self.framework().await?;
        if fw.calendar.checkpoint(checkpoint).is_none() {
            let known: Vec<&str> = fw
                .calendar
                .checkpoints
                .iter()
                .map(|c| c.id.as_str())
                .collect();
            return Err(ApiError::invalid(
                "checkpoint",
                format!(
                    "'{checkpoint}' is not a checkpoint of the calendar (known: {})",
                    known.join(", ")
                ),
            ));
        }
        let by = requested_by.trim();
        if by.chars().count() > 100 || by.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "requested_by",
                "must be at most 100 printable characters",
            ));
        }
        let key = format!(
            "{checkpoint}@manual-{}",
            self.clock.now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let by = if by.is_empty() { "operator" } else { by };
        self.execute(&key, checkpoint, std::slice::from_ref(&key), "manual", by, who)
            .await?
            .ok_or_else(|| {
                ApiError::precondition(format!(
                    "a run for checkpoint '{checkpoint}' is in progress elsewhere; try again when it is done"
                ))
            })
    }

    /// One run under the checkpoint's lock; None when another replica holds it or has done
    /// these runs already. Nothing is recorded unless the snapshot was frozen.
    async fn execute(
        &self,
        key: &str,
        checkpoint: &str,
        covers: &[String],
        trigger: &str,
        by: &str,
        who: &Principal,
    ) -> Result<Option<psch::RunRecord>, ApiError> {
        let txn = self.db.begin().await?;
        if !store::try_lock_checkpoint(&txn, checkpoint).await? {
            tracing::info!(run = key, "another scheduler is running this checkpoint");
            return Ok(None);
        }
        let recorded = store::all(&txn).await?;
        if recorded.iter().any(|r| covers.contains(&r.key)) {
            return Ok(None);
        }
        let started_at = self.clock.now();
        tracing::info!(
            run = key,
            checkpoint,
            trigger,
            "recompute and freeze starting"
        );
        let mut scoring = self.scoring.clone();
        let recomputed = scoring
            .recompute(ps::RecomputeRequest {
                framework_id: self.framework_id.clone(),
                edition: self.edition.clone(),
                period: 0,
            })
            .await
            .map_err(|s| upstream("recompute", s))?
            .into_inner();
        let snapshot = scoring
            .freeze_snapshot(ps::FreezeSnapshotRequest {
                checkpoint: checkpoint.to_string(),
                label: key.to_string(),
                frozen_by: by.to_string(),
                // A run before a checkpoint is a preview; closing is the office's decision.
                close_submissions: false,
            })
            .await
            .map_err(|s| upstream("freezing the snapshot", s))?
            .into_inner();
        let as_of = started_at
            .with_timezone(&self.policy.utc_offset)
            .date_naive()
            .to_string();
        let completeness = self
            .evidence
            .clone()
            .get_completeness(pe::GetCompletenessRequest {
                framework_id: self.framework_id.clone(),
                edition: recomputed.edition.clone(),
                checkpoint: checkpoint.to_string(),
                as_of,
                ..Default::default()
            })
            .await
            .map_err(|s| upstream("reading evidence completeness", s))?
            .into_inner();
        // The units that still owe something are reminded, once: with the run's record.
        let reminders = if trigger == "schedule" {
            let (fw, _) = self.framework().await?;
            let tree = self.registry.org_tree(true).await?;
            crate::reminders::gather(
                &fw,
                &tree,
                &completeness,
                &mut self.surveys.clone(),
                &crate::reminders::Question {
                    checkpoint,
                    period: recomputed.period,
                    as_of: &completeness.as_of,
                },
            )
            .await?
        } else {
            Vec::new()
        };
        let readiness: serde_json::Value =
            serde_json::from_str(&snapshot.readiness_json).unwrap_or_default();
        let count = |field: &str| {
            readiness
                .get(field)
                .and_then(|v| v.as_array())
                .map_or(0, |a| a.len() as i32)
        };
        let total = snapshot.district_total.clone().unwrap_or_default();
        let finished_at = rfc3339(self.clock.now());
        let mut first = None;
        for covered in covers {
            let row = run::Model {
                key: covered.clone(),
                done_by: key.to_string(),
                checkpoint: checkpoint.to_string(),
                trigger: trigger.to_string(),
                snapshot_id: snapshot.id.clone(),
                total_confirmed: total.confirmed.clone(),
                total_projected: total.projected.clone(),
                started_at: rfc3339(started_at),
                finished_at: finished_at.clone(),
                key_short: count("key_short"),
                units_owing: count("units"),
                slots_missing: completeness.units.iter().map(|u| u.missing as i32).sum(),
                slots_late: completeness.units.iter().map(|u| u.late as i32).sum(),
            };
            first.get_or_insert_with(|| row.clone());
            row.into_active_model().insert(&txn).await?;
        }
        store::remind(
            &txn,
            key,
            checkpoint,
            &finished_at,
            &reminders,
            self.mailer.is_some(),
        )
        .await?;
        cezone_platform::access::audit::append(
            &txn,
            "scheduler",
            cezone_platform::access::audit::Entry {
                actor: who,
                action: "checkpoint.run",
                target: key,
                details: serde_json::json!({
                    "checkpoint": checkpoint,
                    "trigger": trigger,
                    "covers": covers,
                    "snapshot": snapshot.id,
                    "content_hash": snapshot.content_hash,
                    "total_confirmed": total.confirmed,
                    "reminders": reminders.len(),
                }),
            },
        )
        .await?;
        txn.commit().await?;
        let record = first.map(|r| to_record(&r, covers.to_vec()));
        if let Some(r) = &record {
            tracing::info!(
                run = key,
                checkpoint,
                snapshot = %r.snapshot_id,
                total = %total.confirmed,
                key_short = r.key_short,
                slots_late = r.slots_late,
                "snapshot frozen for checkpoint"
            );
        }
        Ok(record)
    }

    /// The reminders `who` may read: a town its own, a department its unit's, the others all.
    pub async fn notifications(
        &self,
        who: &Principal,
        limit: u32,
    ) -> Result<Vec<psch::Notification>, ApiError> {
        let limit = if limit == 0 { 500 } else { limit.min(500) };
        let unit = match who.role {
            Role::Town | Role::ResponsibleUnit => who.unit.as_ref().map(|u| u.as_str()),
            _ => None,
        };
        let org = match who.role {
            Role::Town => who.org_unit.as_ref().map(|o| o.as_str()),
            _ => None,
        };
        Ok(store::notifications(&self.db, unit, org, limit).await?)
    }

    /// The plan with each run's state and record.
    pub async fn list(&self, pending_only: bool) -> Result<psch::ListRunsResponse, ApiError> {
        let (edition, runs) = self.plan().await?;
        let now = self.clock.now();
        let rows = self.done().await?;
        let done: BTreeSet<String> = rows.keys().cloned().collect();
        let mut covers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in rows.values() {
            covers
                .entry(r.done_by.as_str())
                .or_default()
                .push(r.key.clone());
        }
        let out = runs
            .iter()
            .map(|r| {
                let state = schedule::state(r, now, &done);
                psch::PlannedRun {
                    key: r.key.clone(),
                    checkpoint: r.checkpoint.clone(),
                    checkpoint_name: r.checkpoint_name.clone(),
                    lead_hours: r.lead_hours,
                    due_at: rfc3339(r.due_at),
                    checkpoint_at: rfc3339(r.checkpoint_at),
                    state: match state {
                        RunState::Done => psch::RunState::Done,
                        RunState::Due => psch::RunState::Due,
                        RunState::Upcoming => psch::RunState::Upcoming,
                        RunState::Missed => psch::RunState::Missed,
                    } as i32,
                    record: rows.get(&r.key).map(|row| {
                        to_record(
                            row,
                            covers
                                .get(row.done_by.as_str())
                                .cloned()
                                .unwrap_or_default(),
                        )
                    }),
                }
            })
            .filter(|r| {
                !pending_only
                    || matches!(
                        psch::RunState::try_from(r.state),
                        Ok(psch::RunState::Due | psch::RunState::Upcoming)
                    )
            })
            .collect();
        Ok(psch::ListRunsResponse {
            framework_id: self.framework_id.clone(),
            edition,
            now: rfc3339(now),
            runs: out,
        })
    }
}

fn to_record(r: &run::Model, covers: Vec<String>) -> psch::RunRecord {
    psch::RunRecord {
        key: r.done_by.clone(),
        checkpoint: r.checkpoint.clone(),
        snapshot_id: r.snapshot_id.clone(),
        district_total: Some(Score {
            confirmed: r.total_confirmed.clone(),
            projected: r.total_projected.clone(),
        }),
        started_at: r.started_at.clone(),
        finished_at: r.finished_at.clone(),
        key_short: r.key_short as u32,
        units_owing: r.units_owing as u32,
        slots_missing: r.slots_missing as u32,
        slots_late: r.slots_late as u32,
        covers,
        trigger: r.trigger.clone(),
    }
}
