//! What every cezone service shares, in three parts: serving (at the crate root), access
//! ([`access`]) and the domain's glue to the wire ([`glue`]).
//!
//! **Serving** — how a process runs: [`settings`] (one typed tree, checked at start),
//! [`telemetry`], [`db`] (connections and migrations), [`grpc`] (serving with health,
//! reflection, limits), [`tls`], [`channel`] (dialing a service), [`service`] (the kernel
//! every service is built on), [`error`] (the one error-code → status mapping), [`paging`],
//! [`time`], and [`scratch`] (throwaway deployments for the benchmarks and the chaos harness).
//!
//! **Access** ([`access`]) — who may do what, and the record of what they did:
//! [`access::auth`] (bearer tokens, keys, `permit`), [`access::audit`] (the hash-chained log
//! each service keeps) and [`access::audit_list`] (reading it).
//!
//! **Domain glue** ([`glue`]) — the domain's types on the wire: [`glue::convert`] (proto ↔
//! domain) and [`glue::registry_view`] (the framework and org tree other services read from
//! the registry).
//!
//! Test support (`testing`) exists only with the `testing` feature, which dev-dependencies
//! and the test kit turn on.

// Serving.
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

// Who may do what, and what they did.
pub mod access;
// The domain's types on the wire.
pub mod glue;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, ErrorCode};
pub use settings::Settings;
