//! The page's data, built from the services' gRPC answers: the scoring summary, evidence
//! completeness per responsible unit, the registry's calendar and the frozen snapshots. Times
//! people read are given in the district's zone (`scheduler.utc_offset_hours`) with the
//! offset, beside the RFC 3339 ones the page computes with.

use std::collections::BTreeMap;

use cezone_platform::access::auth::AuthChannel;
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
    /// The district's zone, hours east of UTC.
    utc_offset_hours: i32,
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
    /// The end of the due day in the district's zone, RFC 3339 with the offset
    /// (`2014-04-10T23:59:59+08:00`): the due day itself is still in time.
    pub deadline: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalendarView {
    /// The district's date (in its zone), YYYY-MM-DD.
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
    /// `frozen_at` in the district's zone with the offset (`2026-12-01 18:30:05 +08:00`).
    pub frozen_at_local: String,
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
    /// The district's zone (`scheduler.utc_offset_hours`), which the page shows times in.
    pub utc_offset_hours: i32,
    /// The zone as shown: `UTC+08:00`.
    pub zone: String,
    /// When this document was made (RFC 3339, UTC), and in the district's zone with the offset.
    pub updated_at: String,
    pub updated_at_local: String,
}

/// `UTC+08:00` for 8 hours east of UTC; UTC itself for an offset no zone has.
pub fn zone_name(utc_offset_hours: i32) -> String {
    format!("UTC{}", zone(utc_offset_hours))
}

fn zone(utc_offset_hours: i32) -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(utc_offset_hours * 3600)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("UTC is an offset"))
}

impl Backends {
    pub fn new(
        scoring: AuthChannel,
        registry: AuthChannel,
        evidence: AuthChannel,
        framework_id: String,
        edition: String,
        utc_offset_hours: i32,
        max: usize,
    ) -> Backends {
        Backends {
            scoring: ScoringServiceClient::new(scoring).max_decoding_message_size(max),
            registry: RegistryServiceClient::new(registry).max_decoding_message_size(max),
            evidence: EvidenceServiceClient::new(evidence).max_decoding_message_size(max),
            framework_id,
            edition,
            utc_offset_hours,
        }
    }

    /// The district's zone, hours east of UTC.
    pub fn utc_offset_hours(&self) -> i32 {
        self.utc_offset_hours
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
        let updated_at = cezone_platform::time::now_rfc3339();
        Ok(ScoreboardData {
            summary: summary?,
            completeness,
            calendar,
            snapshots,
            problems,
            utc_offset_hours: self.utc_offset_hours,
            zone: zone_name(self.utc_offset_hours),
            updated_at_local: cezone_platform::time::local(&updated_at, self.utc_offset_hours),
            updated_at,
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

    /// The registry's public token keys as a JSON Web Key Set.
    pub async fn jwks(&self) -> Result<String, Status> {
        let keys = self
            .registry
            .clone()
            .get_signing_keys(pr::GetSigningKeysRequest {})
            .await?
            .into_inner()
            .keys
            .into_iter()
            .map(|k| cezone_platform::access::auth::keyset::PublicKey {
                kid: k.kid,
                x: k.public_key,
                active_from: 0,
            })
            .collect::<Vec<_>>();
        Ok(cezone_platform::access::auth::keyset::to_jwks(&keys))
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
        // The district's date: a checkpoint due "today" is due in the district's today.
        let zone = zone(self.utc_offset_hours);
        let today = chrono::Utc::now()
            .with_timezone(&zone)
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();
        let mut checkpoints: Vec<CheckpointView> = cal
            .checkpoints
            .into_iter()
            .map(|c| CheckpointView {
                id: c.id,
                name: c.name,
                deadline: format!("{}T23:59:59{zone}", c.due),
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
                    frozen_at_local: cezone_platform::time::local(
                        &s.frozen_at,
                        self.utc_offset_hours,
                    ),
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
