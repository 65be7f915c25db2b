//! Survey aggregation: survey definitions, responses ingested in bulk (all or nothing per call,
//! written in batches — COPY on PostgreSQL), statistical returns with versions, and aggregates
//! per org unit with Wilson intervals and population-weighted roll-ups.

mod aggregates;
mod api;
mod app;
mod definitions;
mod entities;
mod ingest;
mod migration;
mod statistics;

pub use app::Application;
/// PostgreSQL COPY text-format escaping, as the ingest writes rows.
pub use ingest::copy_field;
pub use statistics::responsible_for;

/// The surveys service's outbox table.
pub const OUTBOX: &str = "surveys_outbox";
