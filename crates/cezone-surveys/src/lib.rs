//! Survey aggregation: survey definitions, responses ingested in bulk (all or nothing per call,
//! written in batches — COPY on PostgreSQL), statistical returns with versions, and aggregates
//! per org unit with Wilson intervals and population-weighted roll-ups.

mod aggregates;
mod api;
mod app;
mod batches;
mod definitions;
mod entities;
mod freezes;
mod ingest;
mod locks;
mod migration;
mod obligations;
mod review;
mod statistics;

pub use app::Application;
pub use freezes::{CONSUMER, PATTERNS};
/// PostgreSQL COPY text-format escaping, as the ingest writes rows.
pub use ingest::copy_field;
pub use locks::period_guard;
pub use statistics::responsible_for;

/// Checks a survey definition as `DefineSurvey` does (ids, title, period, questions), storing
/// nothing: what a dry run of defining it can tell before the call.
pub fn check_definition(
    survey: &cezone_proto::surveys::v1::Survey,
) -> Result<(), cezone_platform::ApiError> {
    definitions::from_proto(survey).map(|_| ())
}

/// The surveys service's outbox table.
pub const OUTBOX: &str = "surveys_outbox";
