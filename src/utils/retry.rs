//! Bounded retry with exponential backoff for transient database errors ([`Error::Busy`]: busy, locked,
//! deadlock, serialization failure).

use std::future::Future;
use std::time::Duration;

use super::error::{Error, Result};

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included. At least 1.
    pub attempts: u32,
    /// Delay before the second attempt; doubled each time.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 5, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(500) }
    }
}

/// Runs `op` until it succeeds, fails with anything but [`Error::Busy`], or `policy.attempts` are spent.
///
/// # Errors
/// The first non-transient error, or [`Error::Busy`] carrying the number of attempts made.
pub(crate) async fn retry_busy<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let attempts = policy.attempts.max(1);
    let mut delay = policy.base_delay;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(Error::Busy { message, .. }) => {
                if attempt >= attempts {
                    return Err(Error::Busy { attempts: attempt, message });
                }
                tracing::debug!(attempt, ?delay, "database busy, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_delay);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_busy_then_gives_up_and_passes_other_errors_through() {
        let policy = RetryPolicy { attempts: 3, ..RetryPolicy::default() };
        let mut calls = 0;
        let r: Result<()> = retry_busy(policy, || {
            calls += 1;
            async { Err(Error::Busy { attempts: 1, message: "database is locked".into() }) }
        })
        .await;
        assert!(matches!(r, Err(Error::Busy { attempts: 3, .. })));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<()> = retry_busy(policy, || {
            calls += 1;
            async { Err(Error::InvalidRequest("x".into())) }
        })
        .await;
        assert!(matches!(r, Err(Error::InvalidRequest(_))));
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r = retry_busy(policy, || {
            calls += 1;
            let c = calls;
            async move { if c < 2 { Err(Error::Busy { attempts: 1, message: String::new() }) } else { Ok(c) } }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
