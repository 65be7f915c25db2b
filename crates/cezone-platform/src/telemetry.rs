//! One telemetry init per process: human-readable or JSON logs, filter from settings or
//! RUST_LOG.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// lapin logs every returned (unroutable) message in full at warn level; cezone reports the
/// ones that matter itself, without message bodies.
const QUIET_RETURNS: &str = "lapin::returned_messages=error";

/// Installs the global subscriber; a second call (as in tests) is a no-op.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(QUIET_RETURNS.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// For tests: logs go to the test harness's captured output, filtered by RUST_LOG or "warn".
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn"))
        .add_directive(QUIET_RETURNS.parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
