//! Self-evaluation reports built from the scoring engine: the self-score explanation
//! (评估指标体系自评分说明) of any org unit, and the responsible-unit checklist of materials still
//! missing or late. Both export as XLSX (a sheet per first-level area plus a summary sheet) and
//! as self-contained HTML that prints to PDF. Plain data and plain functions; no I/O.

pub mod html;
pub mod model;
pub mod xlsx;

pub use model::{
    Checklist, ChecklistGroup, ChecklistItem, EvidenceCatalog, EvidenceLine, EvidenceMeta,
    GroupKind, ReportMeta, ReportSource, SelfScore,
};

/// What can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// 自评分说明: every criterion with its score, rule, facts, evidence and points lost.
    SelfScore,
    /// 责任单位清单: per department and per town, the materials still missing or late.
    Checklist,
}

impl ReportKind {
    pub fn parse(text: &str) -> Result<ReportKind, ReportError> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "self-score" | "selfscore" => Ok(ReportKind::SelfScore),
            "checklist" => Ok(ReportKind::Checklist),
            _ => Err(ReportError::UnknownKind(text.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::SelfScore => "self-score",
            ReportKind::Checklist => "checklist",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Xlsx,
    Html,
}

impl ReportFormat {
    pub fn parse(text: &str) -> Result<ReportFormat, ReportError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "xlsx" => Ok(ReportFormat::Xlsx),
            "html" => Ok(ReportFormat::Html),
            _ => Err(ReportError::UnknownFormat(text.to_string())),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::Html => "html",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            ReportFormat::Html => "text/html; charset=utf-8",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("'{0}' is not a report kind (self-score, checklist)")]
    UnknownKind(String),
    #[error("'{0}' is not a report format (xlsx, html)")]
    UnknownFormat(String),
    #[error("'{0}' is not a checkpoint of the calendar (known: {1})")]
    UnknownCheckpoint(String, String),
    #[error("the workbook cannot be written: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

/// Renders a self-score explanation in `format`.
pub fn render_self_score(r: &SelfScore, format: ReportFormat) -> Result<Vec<u8>, ReportError> {
    match format {
        ReportFormat::Xlsx => xlsx::self_score(r),
        ReportFormat::Html => Ok(html::self_score(r).into_bytes()),
    }
}

/// Renders a checklist in `format`.
pub fn render_checklist(c: &Checklist, format: ReportFormat) -> Result<Vec<u8>, ReportError> {
    match format {
        ReportFormat::Xlsx => xlsx::checklist(c),
        ReportFormat::Html => Ok(html::checklist(c).into_bytes()),
    }
}

#[cfg(test)]
mod tests;
