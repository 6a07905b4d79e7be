//! Waiting for a condition, bounded.
//!
//! Tests wait on what they need to see (a delivery recorded, a counter
//! reached, a pool ejected), never for time to pass: the condition is
//! checked at a short interval and the test fails with `what` once the
//! limit is reached. One helper so every test waits the same way.

use std::time::Duration;

/// How often a condition is checked.
const EVERY: Duration = Duration::from_millis(20);

/// Checks `check` until it returns `Some`, for at most `limit`; panics
/// with `what` after that.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(EVERY).await;
    }
}
