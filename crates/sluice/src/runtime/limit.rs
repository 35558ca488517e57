//! How many target calls of a pipe are in flight at once (`concurrency.md`, "Respect for the
//! target"): a limit shared by all the pipe's lanes and sub-lanes, additive increase,
//! multiplicative decrease. It halves when the target says it is overloaded (429, 503, AWS
//! throttling, timeouts) and grows by one after a run of successes as long as the limit; never
//! below 1, never above `MaximumConcurrency`. Until the first overload there is no limit but
//! `MaximumConcurrency` (AWS behaviour for a target that never throttles).
//!
//! Two refinements keep the throttled share small once the limit has found the target's capacity:
//! calls already in flight when the limit dropped cannot drop it again (one decrease per
//! overload, not per throttled call), and after a decrease the limit grows past the level that was
//! throttled only after a long run of successes (8 x the limit), probing slowly for more capacity.

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::metrics::PipeMetrics;

/// The limiter's state; the rules are pure functions of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    /// Calls allowed in flight; `None` before the first overload (then `max` only).
    pub limit: Option<usize>,
    /// `MaximumConcurrency`.
    pub max: Option<usize>,
    /// `AdaptiveConcurrency`.
    pub adaptive: bool,
    /// Calls in flight.
    pub inflight: usize,
    /// Successes since the limit last changed.
    pub successes: usize,
    /// The limit stays below this until a long run of successes (the level that was throttled).
    pub ceiling: Option<usize>,
    /// Bumped on each decrease: calls started before it cannot decrease the limit again.
    pub generation: u64,
}

impl LimitState {
    /// A limiter with `MaximumConcurrency` `max`.
    pub fn new(max: Option<usize>, adaptive: bool) -> Self {
        Self {
            limit: None,
            max,
            adaptive,
            inflight: 0,
            successes: 0,
            ceiling: None,
            generation: 0,
        }
    }

    /// The limit in force.
    pub fn effective(&self) -> Option<usize> {
        match (self.limit, self.max) {
            (Some(l), Some(m)) => Some(l.min(m)),
            (l, m) => l.or(m),
        }
    }

    /// Whether another call may start.
    pub fn has_room(&self) -> bool {
        self.effective().is_none_or(|l| self.inflight < l)
    }

    /// A call that started in `generation` ended; `overloaded` when the target said so.
    pub fn finish(&mut self, generation: u64, overloaded: bool) {
        self.inflight = self.inflight.saturating_sub(1);
        if !self.adaptive {
            return;
        }
        if overloaded {
            if generation < self.generation {
                return;
            }
            // Before any limit, the calls in flight (this one included) were the level.
            let level = self.effective().unwrap_or(self.inflight + 1);
            self.limit = Some((level / 2).max(1));
            self.ceiling = Some(level.saturating_sub(1).max(1));
            self.successes = 0;
            self.generation += 1;
            return;
        }
        let Some(limit) = self.limit else { return };
        self.successes += 1;
        let probing = self.ceiling.is_some_and(|c| limit >= c);
        let needed = if probing { 8 * limit } else { limit };
        if self.successes >= needed && self.max.is_none_or(|m| limit < m) {
            self.limit = Some(limit + 1);
            if probing {
                self.ceiling = Some(limit + 1);
            }
            self.successes = 0;
        }
    }
}

/// The shared limiter of one pipe.
#[derive(Debug)]
pub(crate) struct CallLimit {
    state: Mutex<LimitState>,
    room: Notify,
    metrics: PipeMetrics,
}

/// Leave to make one call; give it back with [`CallPermit::finish`].
#[derive(Debug)]
pub(crate) struct CallPermit<'a> {
    limit: &'a CallLimit,
    generation: u64,
    done: bool,
}

impl CallLimit {
    pub fn new(max: Option<usize>, adaptive: bool, metrics: PipeMetrics) -> Self {
        let me = Self {
            state: Mutex::new(LimitState::new(max, adaptive)),
            room: Notify::new(),
            metrics,
        };
        me.publish(&me.lock());
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, s: &LimitState) {
        let m = &self.metrics;
        m.target_concurrency_limit
            .set(s.effective().map_or(0, |l| l as i64));
        m.target_inflight.set(s.inflight as i64);
    }

    /// Wait until a call may start.
    pub async fn acquire(&self) -> CallPermit<'_> {
        loop {
            let wait = self.room.notified();
            {
                let mut s = self.lock();
                if s.has_room() {
                    s.inflight += 1;
                    self.publish(&s);
                    return CallPermit {
                        limit: self,
                        generation: s.generation,
                        done: false,
                    };
                }
            }
            wait.await;
        }
    }

    fn release(&self, generation: u64, overloaded: bool) {
        let mut s = self.lock();
        s.finish(generation, overloaded);
        self.publish(&s);
        drop(s);
        if overloaded {
            self.metrics.target_throttled.inc();
        }
        self.room.notify_waiters();
    }
}

impl CallPermit<'_> {
    /// The call ended; `overloaded` when the target said it is overloaded.
    pub fn finish(mut self, overloaded: bool) {
        self.done = true;
        self.limit.release(self.generation, overloaded);
    }
}

impl Drop for CallPermit<'_> {
    fn drop(&mut self) {
        // A call abandoned mid-way (the lane stopping) says nothing about the target.
        if !self.done {
            self.limit.release(self.generation, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `n` calls that start together, then end with `overloaded(i)`.
    fn burst(s: &mut LimitState, n: usize, overloaded: impl Fn(usize) -> bool) -> usize {
        let mut started = Vec::new();
        while started.len() < n && s.has_room() {
            s.inflight += 1;
            started.push(s.generation);
        }
        for (i, g) in started.iter().enumerate() {
            s.finish(*g, overloaded(i));
        }
        started.len()
    }

    #[test]
    fn there_is_no_limit_until_the_target_throttles() {
        let mut s = LimitState::new(None, true);
        assert_eq!(burst(&mut s, 50, |_| false), 50);
        assert_eq!(s.effective(), None);
        let mut capped = LimitState::new(Some(8), true);
        assert_eq!(burst(&mut capped, 50, |_| false), 8);
    }

    #[test]
    fn an_overload_halves_the_level_once_per_burst() {
        let mut s = LimitState::new(None, true);
        // 16 in flight, all throttled: one decrease, to 8, not 16 -> 8 -> 4 -> 2 -> 1.
        burst(&mut s, 16, |_| true);
        assert_eq!(s.limit, Some(8));
        burst(&mut s, 16, |_| true);
        assert_eq!(s.limit, Some(4));
        for _ in 0..5 {
            burst(&mut s, 16, |_| true);
        }
        assert_eq!(s.limit, Some(1));
    }

    #[test]
    fn successes_grow_the_limit_by_one_per_run_as_long_as_the_limit() {
        let mut s = LimitState::new(None, true);
        burst(&mut s, 20, |_| true);
        assert_eq!(s.limit, Some(10));
        // Below the throttled level (19 is its ceiling) the limit grows quickly.
        burst(&mut s, 10, |_| false);
        assert_eq!(s.limit, Some(11));
        burst(&mut s, 11, |_| false);
        assert_eq!(s.limit, Some(12));
    }

    #[test]
    fn it_converges_below_the_targets_capacity_and_probes_slowly() {
        // A target that throttles every call beyond 8 in flight.
        let mut s = LimitState::new(None, true);
        let (mut calls, mut throttled) = (0, 0);
        for round in 0..2_000 {
            let n = burst(&mut s, 100, |i| i >= 8);
            calls += n;
            throttled += n.saturating_sub(8);
            if round == 1_000 {
                (calls, throttled) = (0, 0);
            }
        }
        let limit = s.effective().unwrap();
        assert!((4..=9).contains(&limit), "{limit}");
        assert!(
            (throttled as f64) < 0.05 * calls as f64,
            "{throttled} of {calls} throttled after convergence"
        );
    }

    #[test]
    fn the_maximum_is_never_passed_and_non_adaptive_limits_stay() {
        let mut s = LimitState::new(Some(4), true);
        burst(&mut s, 4, |_| true);
        assert_eq!(s.effective(), Some(2));
        for _ in 0..200 {
            burst(&mut s, 10, |_| false);
        }
        assert_eq!(s.effective(), Some(4));
        let mut fixed = LimitState::new(Some(3), false);
        burst(&mut fixed, 3, |_| true);
        assert_eq!(fixed.effective(), Some(3));
    }
}
