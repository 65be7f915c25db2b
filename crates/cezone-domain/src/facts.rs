//! The facts scores are computed from: statistics filed per org unit, metric and year; survey
//! tallies per org unit and question; evidence records per criterion, unit and org unit.

use serde::{Deserialize, Serialize};

use crate::code::ItemCode;
use crate::org::OrgUnitId;
use crate::rules::{MetricId, QuestionId};
use crate::units::UnitId;

/// One filed statistic. For a (org unit, metric, period) filed several times, the highest
/// `version` counts; this keeps redelivered and out-of-order filings harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFact {
    pub org_unit: OrgUnitId,
    pub metric: MetricId,
    pub period: i32,
    /// Counts as they are; money in fen.
    pub value: i64,
    #[serde(default)]
    pub version: u64,
    /// Where the filing stands in its review; facts written before reviews existed were
    /// accepted as filed.
    #[serde(default, skip_serializing_if = "StatState::is_accepted")]
    pub state: StatState,
}

impl StatFact {
    /// Total order used to pick one filing among same-key duplicates, independent of arrival:
    /// the newest version, then the further review (a decision after the pending filing), then
    /// the larger value.
    pub fn precedence(&self) -> (u64, u8, i64) {
        (self.version, self.state.rank(), self.value)
    }
}

/// A filed statistic's review: pending until the level above accepts or returns it. Confirmed
/// scores count accepted figures; projected scores count pending ones too; a returned figure
/// counts nowhere until it is filed again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatState {
    Pending,
    #[default]
    Accepted,
    Returned,
}

impl StatState {
    pub const ALL: [StatState; 3] = [StatState::Pending, StatState::Accepted, StatState::Returned];

    pub fn is_accepted(&self) -> bool {
        *self == StatState::Accepted
    }

    /// A decision ranks above the filing it decides on.
    pub fn rank(self) -> u8 {
        match self {
            StatState::Pending => 0,
            StatState::Returned => 1,
            StatState::Accepted => 2,
        }
    }

    pub fn from_rank(rank: u8) -> Option<StatState> {
        StatState::ALL.into_iter().find(|s| s.rank() == rank)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatState::Pending => "pending",
            StatState::Accepted => "accepted",
            StatState::Returned => "returned",
        }
    }

    pub fn parse(text: &str) -> Result<StatState, String> {
        StatState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("'{text}' is not a review state (pending, accepted, returned)"))
    }

    /// Whether the figure counts in the projected score.
    pub fn counts_projected(self) -> bool {
        self != StatState::Returned
    }

    /// Whether the figure counts in the confirmed score.
    pub fn counts_confirmed(self) -> bool {
        self == StatState::Accepted
    }
}

/// Survey answers to one question in one org unit, already judged: `positive` of `responses`
/// were yes / satisfied. Tallies of different sources (surveys) add up; for one source, org
/// unit, question and period the highest `version` counts, like statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyTally {
    pub org_unit: OrgUnitId,
    pub question: QuestionId,
    pub period: i32,
    pub responses: u64,
    pub positive: u64,
    /// The survey the answers come from; empty when tallies are already summed over surveys.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default)]
    pub version: u64,
    /// Of `responses` and `positive`, those in survey batches still pending review: they count
    /// in the projected score only (a returned batch is no longer in the tally at all).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_responses: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_positive: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SurveyTally {
    /// Total order used to pick one tally among same-key duplicates.
    pub fn precedence(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.version,
            self.responses,
            self.positive,
            self.pending_responses,
            self.pending_positive,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EvidenceState {
    /// Waiting for review; counts in the projected score only.
    Submitted,
    /// Accepted with the reviewer's grade, 0–100.
    Accepted { grade: u8 },
    /// Returned with comments; counts nowhere until resubmitted.
    Returned,
}

impl EvidenceState {
    fn rank(self) -> (u8, u8) {
        match self {
            EvidenceState::Returned => (0, 0),
            EvidenceState::Submitted => (1, 0),
            EvidenceState::Accepted { grade } => (2, grade),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EvidenceState::Submitted => "submitted",
            EvidenceState::Accepted { .. } => "accepted",
            EvidenceState::Returned => "returned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceFact {
    /// Evidence record id; versions of one record share it and the highest version counts.
    pub id: String,
    pub criterion: ItemCode,
    pub unit: UnitId,
    pub org_unit: OrgUnitId,
    /// Material kind when the rule asks for several; none otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    #[serde(flatten)]
    pub state: EvidenceState,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
}

impl EvidenceFact {
    /// Total order used to pick one record among same-id duplicates, independent of arrival.
    pub fn precedence(&self) -> (u64, (u8, u8)) {
        (self.version, self.state.rank())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    #[serde(default)]
    pub statistics: Vec<StatFact>,
    #[serde(default)]
    pub surveys: Vec<SurveyTally>,
    #[serde(default)]
    pub evidence: Vec<EvidenceFact>,
}
