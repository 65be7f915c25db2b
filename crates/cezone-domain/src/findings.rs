//! Validation findings: what is wrong or noteworthy in an imported file, and exactly where.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Stable machine-readable kinds; the JSON output and the gRPC API carry these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    PointsMismatch,
    TotalMismatch,
    DuplicateCode,
    MalformedCode,
    OrphanItem,
    CodeOutOfPlace,
    UnitAlias,
    UnknownUnit,
    DuplicateUnit,
    SameAsAbove,
    EmptyField,
    MalformedPoints,
    MalformedHeader,
    RuleForUnknownItem,
    RuleOnGroup,
    UnknownMetric,
    UnknownQuestion,
    InvalidRule,
    InvalidDate,
    MistypedYear,
    DateMismatch,
    CalendarOrder,
    UnknownPhase,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::PointsMismatch => "points_mismatch",
            FindingKind::TotalMismatch => "total_mismatch",
            FindingKind::DuplicateCode => "duplicate_code",
            FindingKind::MalformedCode => "malformed_code",
            FindingKind::OrphanItem => "orphan_item",
            FindingKind::CodeOutOfPlace => "code_out_of_place",
            FindingKind::UnitAlias => "unit_alias",
            FindingKind::UnknownUnit => "unknown_unit",
            FindingKind::DuplicateUnit => "duplicate_unit",
            FindingKind::SameAsAbove => "same_as_above",
            FindingKind::EmptyField => "empty_field",
            FindingKind::MalformedPoints => "malformed_points",
            FindingKind::MalformedHeader => "malformed_header",
            FindingKind::RuleForUnknownItem => "rule_for_unknown_item",
            FindingKind::RuleOnGroup => "rule_on_group",
            FindingKind::UnknownMetric => "unknown_metric",
            FindingKind::UnknownQuestion => "unknown_question",
            FindingKind::InvalidRule => "invalid_rule",
            FindingKind::InvalidDate => "invalid_date",
            FindingKind::MistypedYear => "mistyped_year",
            FindingKind::DateMismatch => "date_mismatch",
            FindingKind::CalendarOrder => "calendar_order",
            FindingKind::UnknownPhase => "unknown_phase",
        }
    }
}

/// Where a finding points: a file, a source row (1-based, header is row 1; the line in a TOML
/// file), a column, an item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

impl Location {
    pub fn row(row: u32) -> Self {
        Location {
            row: Some(row),
            ..Default::default()
        }
    }

    pub fn item(code: impl fmt::Display) -> Self {
        Location {
            item: Some(code.to_string()),
            ..Default::default()
        }
    }

    pub fn with_item(mut self, code: impl fmt::Display) -> Self {
        self.item = Some(code.to_string());
        self
    }

    pub fn with_row(mut self, row: Option<u32>) -> Self {
        self.row = row;
        self
    }

    pub fn with_column(mut self, column: &str) -> Self {
        self.column = Some(column.to_string());
        self
    }

    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(file.clone());
        }
        if let Some(row) = self.row {
            // A table has rows; a settings file has lines.
            let toml = self
                .file
                .as_deref()
                .is_some_and(|f| f.to_ascii_lowercase().ends_with(".toml"));
            parts.push(format!("{} {row}", if toml { "line" } else { "row" }));
        }
        if let Some(col) = &self.column {
            parts.push(format!("column {col}"));
        }
        if let Some(item) = &self.item {
            parts.push(format!("item {item}"));
        }
        if parts.is_empty() {
            f.write_str("(whole file)")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    pub location: Location,
    pub message: String,
}

impl Finding {
    pub fn new(
        severity: Severity,
        kind: FindingKind,
        location: Location,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            severity,
            kind,
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<7} {} [{}]: {}",
            self.severity,
            self.location,
            self.kind.as_str(),
            self.message
        )
    }
}

/// The findings of one validation run, with helpers to ask whether anything blocks publication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    pub fn push(&mut self, finding: Finding) {
        self.0.push(finding);
    }

    pub fn extend(&mut self, other: Findings) {
        self.0.extend(other.0);
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.0.iter().filter(|f| f.severity == severity).count()
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.0.iter().filter(move |f| f.kind == kind)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
