//! Evidence storage: files kept once per SHA-256 under a configured root, metadata per
//! criterion, responsible unit and org unit, the review workflow with its history, and
//! completeness per unit against the calendar's deadlines.

mod api;
mod app;
mod blobs;
mod closures;
mod completeness;
mod content;
mod entities;
mod metadata;
mod migration;
mod period_locks;
mod records;

pub use app::Application;

/// The evidence service's consumer of other services' events and the patterns it binds.
pub use closures::{CONSUMER, PATTERNS};

/// Whether a file name is a plain name (no directories, no control characters, at most 255
/// bytes): the check every upload passes.
pub use metadata::safe_file_name;

/// The evidence service's outbox table.
pub const OUTBOX: &str = "evidence_outbox";
