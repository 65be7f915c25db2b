//! Scoring: a read model holding copies of the facts it needs (frameworks, org units,
//! statistics, survey tallies, evidence states), rebuilt from the other services over gRPC;
//! every criterion × org unit score with explanations; readiness; immutable snapshots.

mod api;
mod app;
mod entities;
mod migration;
mod model;
mod reconcile;
mod snapshots;
mod store;

pub use app::Application;
