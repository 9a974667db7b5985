//! Waiting for a state, with a bound generous enough for a busy 2-core machine. A wait
//! ends as soon as its condition holds, so the bound costs nothing when things work; it
//! is there to turn a hang into a failure that says what never happened.

use std::future::Future;
use std::time::Duration;

/// The bound of every wait.
pub const GENEROUS: Duration = Duration::from_secs(180);

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(200);

/// Poll `check` until it returns `Ok`, panicking with `what` and the last `Err` (what was
/// seen instead, for the failure message) after [`GENEROUS`].
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {GENEROUS:?} waiting for {what}{}{last}",
                if last.is_empty() { "" } else { "; last seen: " }
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Poll `check` until it returns `Some`, panicking with `what` after [`GENEROUS`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until(what, || {
        let check = check();
        async move { check.await.ok_or_else(String::new) }
    })
    .await
}

/// [`eventually`] for synchronous tests.
pub fn eventually_blocking<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + GENEROUS;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {GENEROUS:?} waiting for {what}");
        std::thread::sleep(POLL);
    }
}
