//! The indicator registry: framework versions (imported, validated, published, immutable once
//! published), org units with populations per year, the responsibility matrix, the calendar,
//! and people's accounts (sign-in with a password, refresh tokens).

mod accounts;
mod api;
mod app;
mod entities;
mod frameworks;
mod migration;
mod org_units;
mod service_tokens;

pub use app::Application;

/// The registry's outbox table.
pub const OUTBOX: &str = "registry_outbox";
