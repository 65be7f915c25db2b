//! Scoring: a read model holding copies of the facts it needs (frameworks, org units,
//! statistics, survey tallies, evidence states), rebuilt from the other services over gRPC;
//! every criterion × org unit score with explanations; readiness; immutable snapshots.

mod api;
mod app;
mod changes;
mod consumer;
mod entities;
mod events;
mod facts_db;
mod migration;
mod model;
mod persist;
pub mod reconcile;
mod report;
mod retention;
mod scorer;
mod snapshots;
mod state;
mod store;

pub use app::Application;
pub use events::{EventError, Fact, decode as decode_event};
pub use model::{Inputs, Scored};
pub use retention::purge;

/// The scoring service's outbox table.
pub const OUTBOX: &str = "scoring_outbox";
