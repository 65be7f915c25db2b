//! What every cezone service shares: typed settings, telemetry, database connections and
//! migrations, gRPC serving with health and reflection, the error-code mapping, pagination.

pub mod audit;
pub mod audit_list;
pub mod auth;
pub mod channel;
pub mod convert;
pub mod db;
pub mod error;
pub mod grpc;
pub mod paging;
pub mod registry_view;
pub mod scratch;
pub mod service;
pub mod settings;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod tls;

pub use error::{ApiError, ErrorCode};
pub use settings::Settings;
