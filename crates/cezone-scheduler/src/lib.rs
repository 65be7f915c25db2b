//! The checkpoint scheduler. From the scored framework's phase calendar it plans a run at each
//! lead time before each checkpoint (`scheduler.lead_hours`, e.g. 72 h and 24 h); a run has the
//! scoring service rebuild its read model from every service (reconciliation) and recompute,
//! freezes an immutable snapshot with its readiness report (which publishes `snapshot.frozen`),
//! and records the missing and late evidence of that moment.
//!
//! - Runs missed while nothing was running are done once at start (one run per checkpoint
//!   stands for the missed ones), unless the checkpoint itself has passed.
//! - A run is recorded in the same transaction that holds the checkpoint's lock (a PostgreSQL
//!   advisory transaction lock), so with several replicas exactly one does each run, a restart
//!   does not repeat a recorded run, and a run cut short is done again.
//! - Time comes through [`Clock`], so tests drive it without sleeping.

mod api;
mod app;
pub mod clock;
mod mail;
mod reminders;
mod scheduler;
mod store;

pub use app::Application;
pub use clock::{Clock, ManualClock, SystemClock};
pub use scheduler::{Look, Scheduler};
