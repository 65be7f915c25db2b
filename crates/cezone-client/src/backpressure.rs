//! A write a service refuses with RESOURCE_EXHAUSTED and a retry hint (its outbox is past
//! `bus.outbox_backlog_limit`: the broker is away or slower than the writes) changed nothing
//! and is to be sent again after the hint. Loaders call through [`patiently`] so that a burst
//! of writes slows down to what the broker takes instead of failing half way.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::{Code, Status};

/// How long a call keeps being tried again before its refusal is returned.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The longest single wait, whatever the hint says.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// `call` until it is not refused for backpressure, waiting as the refusal says, for at most
/// [`PATIENCE`].
pub async fn patiently<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match call().await {
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                let wait = cezone_platform::error::retry_after(&s)
                    .unwrap_or(Duration::from_secs(1))
                    .min(LONGEST_WAIT);
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn backpressure_is_waited_out_and_other_refusals_are_not() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, Status> = patiently(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(Status::from(cezone_platform::ApiError::exhausted(
                        "51 events are waiting",
                        Duration::from_millis(10),
                    )))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let r: Result<(), Status> = patiently(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Status::invalid_argument("bad")) }
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
