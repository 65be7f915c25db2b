//! What every cezone service shares, in three parts. Each module stays at the crate root (so
//! a path names the concept: `cezone_platform::grpc`, `cezone_platform::auth`); the groups
//! below say where to look.
//!
//! **Serving** — how a process runs: [`settings`] (one typed tree, checked at start),
//! [`telemetry`], [`db`] (connections and migrations), [`grpc`] (serving with health,
//! reflection, limits), [`tls`], [`channel`] (dialing a service), [`service`] (the kernel
//! every service is built on), [`error`] (the one error-code → status mapping), [`paging`],
//! [`time`], and [`scratch`] (throwaway deployments for the benchmarks and the chaos harness).
//!
//! **Access** — who may do what, and the record of what they did: [`auth`] (bearer tokens,
//! keys, `permit`), [`audit`] (the hash-chained log each service keeps) and [`audit_list`]
//! (reading it).
//!
//! **Domain glue** — the domain's types on the wire: [`convert`] (proto ↔ domain) and
//! [`registry_view`] (the framework and org tree other services read from the registry).
//!
//! Test support (`testing`) exists only with the `testing` feature, which dev-dependencies
//! and the test kit turn on.

// Serving
pub mod channel;
pub mod db;
pub mod error;
pub mod grpc;
pub mod paging;
pub mod scratch;
pub mod service;
pub mod settings;
pub mod telemetry;
pub mod time;
pub mod tls;

// Access
pub mod audit;
pub mod audit_list;
pub mod auth;

// Domain glue
pub mod convert;
pub mod registry_view;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, ErrorCode};
pub use settings::Settings;
