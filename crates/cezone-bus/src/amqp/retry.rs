//! Retrying transient broker failures with backoff until a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BusError;
use crate::backoff::Backoff;

/// How long a publish (or the first declaration of a subscription) keeps retrying while the
/// broker is unreachable before the error is returned.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `op` until it succeeds, fails permanently, the deadline passes or the bus is closed.
/// Waits 100 ms, 200 ms … up to 5 s between attempts.
pub(crate) async fn retry<T, F, Fut>(
    what: &'static str,
    closed: &CancellationToken,
    mut op: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let deadline = Instant::now() + DEADLINE;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut attempt: u32 = 0;
    loop {
        if closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        attempt += 1;
        let error = match op().await {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(what, attempt, "amqp operation succeeded after retrying");
                }
                return Ok(value);
            }
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        let delay = backoff.next_delay();
        if Instant::now() + delay > deadline {
            tracing::error!(what, attempt, error = %error, "amqp operation failed; giving up");
            return Err(BusError::Unavailable(format!(
                "{what} failed {attempt} times over {DEADLINE:?}; last error: {error}"
            )));
        }
        tracing::warn!(what, attempt, error = %error, delay_ms = delay.as_millis() as u64, "amqp operation failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = closed.cancelled() => return Err(BusError::Closed),
        }
    }
}
