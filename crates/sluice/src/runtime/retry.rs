//! What to do after a failed batch. The policy is a pure function of the failure history
//! ([`RetryState`], kept by the lane, not by the consumer) and the error; it answers with a
//! [`Decision`]. AWS semantics (the default): retry the whole batch forever with capped
//! exponential backoff. The `beyond-aws.md` policies (attempt and age limits, dead-lettering,
//! partial-batch retry, bisection) become further fields here and further `Decision` variants.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::targets::TargetError;

/// Retry settings of one pipe.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First backoff.
    pub initial_backoff: Duration,
    /// Ceiling of the backoff.
    pub max_backoff: Duration,
    /// Growth factor per failed attempt.
    pub multiplier: f64,
}

impl RetryPolicy {
    /// AWS-like: start at 100 ms, double, cap at `max_backoff`.
    pub fn new(max_backoff: Duration) -> Self {
        Self {
            initial_backoff: Duration::from_millis(100).min(max_backoff),
            max_backoff,
            multiplier: 2.0,
        }
    }

    /// Decide what follows the failure recorded last in `state`.
    pub fn decide(&self, state: &RetryState, err: &TargetError) -> Decision {
        let exp = self.initial_backoff.as_secs_f64()
            * self
                .multiplier
                .powi(state.attempts.saturating_sub(1).min(63) as i32);
        let capped = exp.min(self.max_backoff.as_secs_f64());
        // Full jitter in the upper half keeps lanes that failed together from retrying together.
        let jittered = capped * rand::rng().random_range(0.5..=1.0);
        let mut wait = Duration::from_secs_f64(jittered);
        if let Some(asked) = err.retry_after() {
            // The target said when; waiting less would only be throttled again.
            wait = wait.max(asked);
        }
        Decision::RetryAfter(wait)
    }
}

/// The failure history of the batch a lane is working on.
#[derive(Debug, Clone)]
pub struct RetryState {
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failure: Option<Instant>,
}

impl RetryState {
    /// A batch that has not failed yet.
    pub fn new() -> Self {
        Self {
            attempts: 0,
            first_failure: None,
        }
    }

    /// Record a failed attempt.
    pub fn record_failure(&mut self) {
        self.attempts += 1;
        self.first_failure.get_or_insert_with(Instant::now);
    }
}

impl Default for RetryState {
    fn default() -> Self {
        Self::new()
    }
}

/// What the lane does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Retry the whole batch after this wait.
    RetryAfter(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<Duration>) -> TargetError {
        TargetError::Status {
            status: code,
            retry_after,
            detail: String::new(),
        }
    }

    fn wait(p: &RetryPolicy, attempts: u32, e: &TargetError) -> Duration {
        let mut s = RetryState::new();
        for _ in 0..attempts {
            s.record_failure();
        }
        match p.decide(&s, e) {
            Decision::RetryAfter(d) => d,
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(Duration::from_secs(2));
        let e = status(500, None);
        let first = wait(&p, 1, &e);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let fourth = wait(&p, 4, &e);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(800));
        for attempts in [10, 40, 1000] {
            let d = wait(&p, attempts, &e);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::new(Duration::from_secs(1));
        let d = wait(&p, 1, &status(429, Some(Duration::from_secs(3))));
        assert_eq!(d, Duration::from_secs(3));
    }
}
