//! What happens to a batch that failed, as a pure function (`failure-handling.md`): the pipe's
//! [`RetryPolicy`], the batch's failure history ([`RetryState`], kept by the lane and stored in the
//! offset commit's metadata, not by the consumer) and the error decide between retrying the batch
//! whole after a backoff, splitting it in two (bisection), and giving it up. The age of the
//! batch's oldest record is checked before every attempt, the first included.
//!
//! AWS semantics (nothing set): retry the whole batch forever with capped exponential backoff.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::dead_letter::Condition;
pub use crate::model::failure::FailureSettings;
use crate::targets::TargetError;

/// What the lane does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the same batch again after this wait.
    Retry(Duration),
    /// After this wait, send the first `ceil(n/2)` records as a batch of their own, then the rest,
    /// each with a fresh failure history.
    Split(Duration),
    /// Stop trying: dead-letter (or discard) the batch and move on.
    GiveUp(Condition),
}

/// The failure history of the batch a lane is working on, as stored in the commit metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// Failed attempts so far.
    #[serde(rename = "a")]
    pub attempts: u32,
    /// When the first attempt failed (ms since the epoch; 0 before).
    #[serde(rename = "t")]
    pub first_failure_ms: i64,
}

impl RetryState {
    /// Count a failed attempt that ended at `now_ms`.
    pub fn record_failure(&mut self, now_ms: i64) {
        if self.attempts == 0 {
            self.first_failure_ms = now_ms;
        }
        self.attempts += 1;
    }
}

/// The retry policy of one pipe.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First backoff.
    pub initial_backoff: Duration,
    /// Ceiling of the backoff.
    pub max_backoff: Duration,
    /// Growth factor per failed attempt.
    pub multiplier: f64,
    /// When batches are given up.
    pub settings: FailureSettings,
}

impl RetryPolicy {
    /// AWS-like backoff (start at 100 ms, double, cap at `max_backoff`) with `settings`.
    pub fn new(max_backoff: Duration, settings: FailureSettings) -> Self {
        Self {
            initial_backoff: Duration::from_millis(100).min(max_backoff),
            max_backoff,
            multiplier: 2.0,
            settings,
        }
    }

    /// Before an attempt starts: a batch whose oldest record (`oldest_timestamp_ms`) is older than
    /// `MaximumRecordAgeInSeconds` at `now_ms` is given up unsent.
    pub fn check_age(&self, oldest_timestamp_ms: i64, now_ms: i64) -> Option<Condition> {
        let max = self.settings.max_record_age?;
        let age_ms = now_ms.saturating_sub(oldest_timestamp_ms);
        (age_ms > max.as_millis() as i64).then_some(Condition::RecordAgeExceeded)
    }

    /// What follows a failed attempt at a batch of `len` records, `state` already counting it.
    /// `err` is the failure (`None`: the target accepted the call but named failed records).
    pub fn decide(&self, state: &RetryState, len: usize, err: Option<&TargetError>) -> Decision {
        let s = &self.settings;
        if let Some(condition) = err.and_then(deterministic) {
            // It would fail the same way every time; without a dead letter, AWS retries anyway.
            if s.dead_letter && len == 1 {
                return Decision::GiveUp(condition);
            }
        }
        if s.bisect && len > 1 {
            return Decision::Split(self.backoff(1, err));
        }
        match s.max_retries {
            Some(max) if state.attempts > max => {
                Decision::GiveUp(Condition::RetryAttemptsExhausted)
            }
            _ => Decision::Retry(self.backoff(state.attempts, err)),
        }
    }

    /// The wait before the next attempt after `attempts` failures: capped exponential, with full
    /// jitter in its upper half (lanes that failed together do not retry together), never shorter
    /// than a `Retry-After` the target sent.
    pub fn backoff(&self, attempts: u32, err: Option<&TargetError>) -> Duration {
        let exp = self.initial_backoff.as_secs_f64()
            * self
                .multiplier
                .powi(attempts.saturating_sub(1).min(63) as i32);
        let capped = exp.min(self.max_backoff.as_secs_f64());
        let jittered = capped * rand::rng().random_range(0.5..=1.0);
        let wait = Duration::from_secs_f64(jittered);
        match err.and_then(TargetError::retry_after) {
            // The target said when; waiting less would only be throttled again.
            Some(asked) => wait.max(asked),
            None => wait,
        }
    }
}

/// The condition of a failure that would repeat on every attempt.
fn deterministic(err: &TargetError) -> Option<Condition> {
    match err {
        TargetError::PayloadTooLarge { .. } => Some(Condition::PayloadTooLarge),
        _ => None,
    }
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

    fn failed(attempts: u32) -> RetryState {
        let mut s = RetryState::default();
        for i in 0..attempts {
            s.record_failure(1_000 + i as i64);
        }
        s
    }

    fn policy(settings: FailureSettings) -> RetryPolicy {
        RetryPolicy::new(Duration::from_secs(30), settings)
    }

    fn wait(p: &RetryPolicy, attempts: u32, e: &TargetError) -> Duration {
        match p.decide(&failed(attempts), 1, Some(e)) {
            Decision::Retry(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(Duration::from_secs(2), FailureSettings::default());
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
        let p = RetryPolicy::new(Duration::from_secs(1), FailureSettings::default());
        let d = wait(&p, 1, &status(429, Some(Duration::from_secs(3))));
        assert_eq!(d, Duration::from_secs(3));
    }

    #[test]
    fn without_settings_a_batch_is_retried_forever() {
        let p = policy(FailureSettings::default());
        for attempts in [1, 10, 10_000, u32::MAX / 2] {
            assert!(matches!(
                p.decide(&failed(attempts.min(20_000)), 100, Some(&status(500, None))),
                Decision::Retry(_)
            ));
        }
        assert_eq!(p.check_age(0, i64::MAX), None);
    }

    #[test]
    fn a_batch_is_given_up_after_one_plus_maximum_retry_attempts_failures() {
        let p = policy(FailureSettings {
            max_retries: Some(3),
            ..Default::default()
        });
        let e = status(500, None);
        for attempts in 1..=3 {
            assert!(matches!(
                p.decide(&failed(attempts), 5, Some(&e)),
                Decision::Retry(_)
            ));
        }
        assert_eq!(
            p.decide(&failed(4), 5, Some(&e)),
            Decision::GiveUp(Condition::RetryAttemptsExhausted)
        );
        // Zero retries: the first failure gives up.
        let p = policy(FailureSettings {
            max_retries: Some(0),
            ..Default::default()
        });
        assert_eq!(
            p.decide(&failed(1), 5, Some(&e)),
            Decision::GiveUp(Condition::RetryAttemptsExhausted)
        );
    }

    #[test]
    fn bisection_splits_a_batch_of_two_or_more_and_retries_a_single_record() {
        let p = policy(FailureSettings {
            max_retries: Some(2),
            bisect: true,
            ..Default::default()
        });
        let e = status(500, None);
        assert!(matches!(
            p.decide(&failed(1), 100, Some(&e)),
            Decision::Split(_)
        ));
        assert!(matches!(
            p.decide(&failed(1), 2, Some(&e)),
            Decision::Split(_)
        ));
        // Even with attempts left over from before the split, more than one record splits.
        assert!(matches!(
            p.decide(&failed(9), 2, Some(&e)),
            Decision::Split(_)
        ));
        assert!(matches!(
            p.decide(&failed(2), 1, Some(&e)),
            Decision::Retry(_)
        ));
        assert_eq!(
            p.decide(&failed(3), 1, Some(&e)),
            Decision::GiveUp(Condition::RetryAttemptsExhausted)
        );
    }

    #[test]
    fn the_age_check_gives_up_before_the_first_attempt() {
        let p = policy(FailureSettings {
            max_record_age: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        let now = 1_000_000_000;
        assert_eq!(p.check_age(now - 60_000, now), None);
        assert_eq!(
            p.check_age(now - 60_001, now),
            Some(Condition::RecordAgeExceeded)
        );
        // A record from the future (clock skew) is young.
        assert_eq!(p.check_age(now + 5_000, now), None);
    }

    #[test]
    fn deterministic_failures_are_given_up_at_once_only_with_a_dead_letter() {
        let too_large = TargetError::PayloadTooLarge {
            entry: 0,
            size: 300_000,
            limit: 262_144,
        };
        let with = policy(FailureSettings {
            dead_letter: true,
            max_retries: Some(10),
            ..Default::default()
        });
        assert_eq!(
            with.decide(&failed(1), 1, Some(&too_large)),
            Decision::GiveUp(Condition::PayloadTooLarge)
        );
        let without = policy(FailureSettings::default());
        assert!(matches!(
            without.decide(&failed(1), 1, Some(&too_large)),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn a_reported_item_failure_counts_like_a_failed_attempt() {
        let p = policy(FailureSettings {
            max_retries: Some(1),
            report_item_failures: true,
            ..Default::default()
        });
        assert!(matches!(p.decide(&failed(1), 3, None), Decision::Retry(_)));
        assert_eq!(
            p.decide(&failed(2), 3, None),
            Decision::GiveUp(Condition::RetryAttemptsExhausted)
        );
    }

    #[test]
    fn state_records_the_first_failure_time_once() {
        let mut s = RetryState::default();
        s.record_failure(5);
        s.record_failure(9);
        assert_eq!(s.attempts, 2);
        assert_eq!(s.first_failure_ms, 5);
    }
}
