//! The page's data, built from the services' gRPC answers: the scoring summary, evidence
//! completeness per responsible unit, the registry's calendar and the frozen snapshots.

use std::collections::BTreeMap;

use cezone_platform::auth::AuthChannel;
use cezone_proto::common::v1::PageRequest;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::evidence::v1::evidence_service_client::EvidenceServiceClient;
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use futures::Stream;
use serde::Serialize;
use tonic::Status;

/// The gRPC clients the page's data comes from.
#[derive(Debug, Clone)]
pub struct Backends {
    scoring: ScoringServiceClient<AuthChannel>,
    registry: RegistryServiceClient<AuthChannel>,
    evidence: EvidenceServiceClient<AuthChannel>,
    framework_id: String,
    edition: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitCompleteness {
    pub unit: String,
    pub name: String,
    pub required: u32,
    pub accepted: u32,
    pub submitted: u32,
    pub missing: u32,
    pub late: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointView {
    pub id: String,
    pub name: String,
    pub due: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalendarView {
    /// The server's date (UTC), YYYY-MM-DD.
    pub today: String,
    pub checkpoints: Vec<CheckpointView>,
    /// The first checkpoint due today or later; none when every one is past.
    pub next: Option<CheckpointView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotPoint {
    pub id: String,
    pub label: String,
    pub checkpoint: String,
    pub frozen_at: String,
    pub confirmed: String,
    pub projected: String,
}

/// Everything the page shows, in one document.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreboardData {
    /// The "cezone.summary.v1" document of the district.
    pub summary: serde_json::Value,
    pub completeness: Option<Vec<UnitCompleteness>>,
    pub calendar: Option<CalendarView>,
    pub snapshots: Option<Vec<SnapshotPoint>>,
    /// Why a part is missing, when one is.
    pub problems: Vec<String>,
}

impl Backends {
    pub fn new(
        scoring: AuthChannel,
        registry: AuthChannel,
        evidence: AuthChannel,
        framework_id: String,
        edition: String,
        max: usize,
    ) -> Backends {
        Backends {
            scoring: ScoringServiceClient::new(scoring).max_decoding_message_size(max),
            registry: RegistryServiceClient::new(registry).max_decoding_message_size(max),
            evidence: EvidenceServiceClient::new(evidence).max_decoding_message_size(max),
            framework_id,
            edition,
        }
    }

    /// The district's totals now and at every change.
    pub async fn watch(
        &self,
    ) -> Result<impl Stream<Item = Result<ps::ScoresUpdate, Status>> + Send + 'static, Status> {
        Ok(self
            .scoring
            .clone()
            .watch_scores(ps::WatchScoresRequest::default())
            .await?
            .into_inner())
    }

    pub async fn scoreboard(&self) -> Result<ScoreboardData, Status> {
        let (summary, completeness, calendar, snapshots) = tokio::join!(
            self.summary(),
            self.completeness(),
            self.calendar(),
            self.snapshots()
        );
        let mut problems = Vec::new();
        let completeness = part(&mut problems, "evidence completeness", completeness);
        let calendar = part(&mut problems, "calendar", calendar);
        let snapshots = part(&mut problems, "snapshots", snapshots);
        Ok(ScoreboardData {
            summary: summary?,
            completeness,
            calendar,
            snapshots,
            problems,
        })
    }

    async fn summary(&self) -> Result<serde_json::Value, Status> {
        let s = self
            .scoring
            .clone()
            .get_summary(ps::GetSummaryRequest {
                org_unit: String::new(),
                weak_links: 8,
            })
            .await?
            .into_inner();
        serde_json::from_str(&s.summary_json)
            .map_err(|e| Status::internal(format!("the summary is unreadable: {e}")))
    }

    async fn completeness(&self) -> Result<Vec<UnitCompleteness>, Status> {
        let c = self
            .evidence
            .clone()
            .get_completeness(pe::GetCompletenessRequest {
                framework_id: self.framework_id.clone(),
                edition: self.edition.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        // One line per responsible unit, over every org unit it files for.
        let mut by_unit: BTreeMap<String, UnitCompleteness> = BTreeMap::new();
        for u in c.units {
            let e = by_unit
                .entry(u.responsible_unit.clone())
                .or_insert_with(|| UnitCompleteness {
                    unit: u.responsible_unit.clone(),
                    name: u.name.clone(),
                    required: 0,
                    accepted: 0,
                    submitted: 0,
                    missing: 0,
                    late: 0,
                });
            e.required += u.required;
            e.accepted += u.accepted;
            e.submitted += u.submitted;
            e.missing += u.missing;
            e.late += u.late;
        }
        Ok(by_unit.into_values().collect())
    }

    async fn calendar(&self) -> Result<CalendarView, Status> {
        let cal = self
            .registry
            .clone()
            .get_calendar(pr::FrameworkRef {
                framework_id: self.framework_id.clone(),
                edition: self.edition.clone(),
            })
            .await?
            .into_inner();
        let today = chrono::Utc::now()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();
        let mut checkpoints: Vec<CheckpointView> = cal
            .checkpoints
            .into_iter()
            .map(|c| CheckpointView {
                id: c.id,
                name: c.name,
                due: c.due,
            })
            .collect();
        checkpoints.sort_by(|a, b| a.due.cmp(&b.due));
        // Dates are YYYY-MM-DD, so text order is date order.
        let next = checkpoints.iter().find(|c| c.due >= today).cloned();
        Ok(CalendarView {
            today,
            checkpoints,
            next,
        })
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotPoint>, Status> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let r = self
                .scoring
                .clone()
                .list_snapshots(ps::ListSnapshotsRequest {
                    page: Some(PageRequest {
                        page_size: 1000,
                        page_token: token.clone(),
                    }),
                })
                .await?
                .into_inner();
            out.extend(r.snapshots.into_iter().map(|s| {
                let t = s.district_total.unwrap_or_default();
                SnapshotPoint {
                    id: s.id,
                    label: s.label,
                    checkpoint: s.checkpoint,
                    frozen_at: s.frozen_at,
                    confirmed: t.confirmed,
                    projected: t.projected,
                }
            }));
            token = r.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() {
                return Ok(out);
            }
        }
    }
}

/// A part of the page: its value, or why it is missing.
fn part<T>(problems: &mut Vec<String>, name: &str, r: Result<T, Status>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(s) => {
            problems.push(format!("{name}: {}", s.message()));
            None
        }
    }
}
