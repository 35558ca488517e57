//! The console's live figures: a ring buffer of [`Metrics::sample`]s taken every
//! [`SAMPLE_INTERVAL`] for the last 15 minutes, and the rates and lags the pages show, computed
//! from it (pure: samples and times are passed in). The sampler is the only I/O here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, PipeSample};

/// How often the metrics are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// How far back the figures go.
pub const HISTORY: Duration = Duration::from_secs(15 * 60);
/// The window of the Pipes page's records/s.
pub const RATE_WINDOW_MS: u64 = 60_000;

/// The samples of the last [`HISTORY`], oldest first.
#[derive(Debug, Default)]
pub struct Figures {
    samples: VecDeque<(u64, Vec<PipeSample>)>,
}

/// One point of a pipe's charts: per-second rates since the sample before, and lags now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Milliseconds since the epoch.
    pub t: u64,
    /// Records delivered per second.
    pub delivered: f64,
    /// Records filtered out per second.
    pub filtered: f64,
    /// Failed attempts per second.
    pub failed: f64,
    /// Records dead-lettered per second.
    pub dead_lettered: f64,
    /// Lag per partition (`topic-partition`).
    pub lag: Vec<(String, i64)>,
}

/// A pipe's figures for the Pipes page.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Records delivered per second over the last minute.
    pub records_per_second: f64,
    /// Total lag over the pipe's partitions, when known.
    pub lag: Option<i64>,
}

fn capacity() -> usize {
    (HISTORY.as_millis() / SAMPLE_INTERVAL.as_millis()) as usize + 1
}

fn per_second(now: u64, before: u64, dt_ms: u64) -> f64 {
    if dt_ms == 0 {
        return 0.0;
    }
    // A counter that went back (the pipe restarted here) counts from zero.
    let delta = if now >= before { now - before } else { now };
    delta as f64 * 1000.0 / dt_ms as f64
}

impl Figures {
    /// Add a sample taken at `t_ms`; the oldest beyond [`HISTORY`] goes.
    pub fn push(&mut self, t_ms: u64, sample: Vec<PipeSample>) {
        self.samples.push_back((t_ms, sample));
        while self.samples.len() > capacity() {
            self.samples.pop_front();
        }
    }

    fn of<'a>(sample: &'a [PipeSample], pipe: &str) -> Option<&'a PipeSample> {
        sample.iter().find(|s| s.pipe == pipe)
    }

    /// The Pipes page's figures of `pipe`.
    pub fn summary(&self, pipe: &str) -> Summary {
        let Some((t1, last)) = self
            .samples
            .back()
            .and_then(|(t, s)| Some((*t, Self::of(s, pipe)?)))
        else {
            return Summary::default();
        };
        let first = self
            .samples
            .iter()
            .filter(|(t, _)| t1.saturating_sub(*t) <= RATE_WINDOW_MS)
            .find_map(|(t, s)| Some((*t, Self::of(s, pipe)?)));
        let records_per_second = match first {
            Some((t0, f)) if t0 < t1 => per_second(last.delivered, f.delivered, t1 - t0),
            _ => 0.0,
        };
        let lag = (!last.partition_lag.is_empty())
            .then(|| last.partition_lag.iter().map(|(_, l)| *l).sum());
        Summary {
            records_per_second,
            lag,
        }
    }

    /// The points of `pipe`'s charts, oldest first.
    pub fn series(&self, pipe: &str) -> Vec<Point> {
        let mut out = Vec::new();
        let mut prev: Option<(u64, &PipeSample)> = None;
        for (t, sample) in &self.samples {
            let Some(s) = Self::of(sample, pipe) else {
                prev = None;
                continue;
            };
            if let Some((t0, p)) = prev {
                let dt = t.saturating_sub(t0);
                out.push(Point {
                    t: *t,
                    delivered: per_second(s.delivered, p.delivered, dt),
                    filtered: per_second(s.filtered, p.filtered, dt),
                    failed: per_second(s.failed, p.failed, dt),
                    dead_lettered: per_second(s.dead_lettered, p.dead_lettered, dt),
                    lag: s.partition_lag.clone(),
                });
            }
            prev = Some((*t, s));
        }
        out
    }
}

/// Sample `metrics` into `figures` every [`SAMPLE_INTERVAL`] until `shutdown`.
pub fn spawn_sampler(
    metrics: Arc<Metrics>,
    figures: Arc<Mutex<Figures>>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let sample = metrics.sample();
            let now = crate::control::now_ms();
            figures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(now, sample);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pipe: &str, delivered: u64, lag: &[(&str, i64)]) -> PipeSample {
        PipeSample {
            pipe: pipe.into(),
            delivered,
            filtered: delivered / 2,
            partition_lag: lag.iter().map(|(p, l)| (p.to_string(), *l)).collect(),
            ..PipeSample::default()
        }
    }

    #[test]
    fn records_per_second_is_over_the_last_minute() {
        let mut f = Figures::default();
        f.push(0, vec![sample("p", 0, &[])]);
        f.push(40_000, vec![sample("p", 100, &[])]);
        f.push(100_000, vec![sample("p", 700, &[("t-0", 3), ("t-1", 4)])]);
        // The window starts at the sample of 40 s: 600 records in 60 s.
        let s = f.summary("p");
        assert_eq!(s.records_per_second, 10.0);
        assert_eq!(s.lag, Some(7));
        assert_eq!(f.summary("other"), Summary::default());
    }

    #[test]
    fn series_are_rates_between_samples_and_lag_per_partition() {
        let mut f = Figures::default();
        f.push(0, vec![sample("p", 10, &[("t-0", 9)])]);
        f.push(2_000, vec![sample("p", 30, &[("t-0", 5)])]);
        // The pipe restarted: its counter went back to 4.
        f.push(4_000, vec![sample("p", 4, &[("t-0", 1)])]);
        let s = f.series("p");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].t, s[0].delivered, s[0].filtered), (2_000, 10.0, 5.0));
        assert_eq!(s[0].lag, vec![("t-0".to_string(), 5)]);
        assert_eq!(s[1].delivered, 2.0);
    }

    #[test]
    fn history_is_fifteen_minutes() {
        let mut f = Figures::default();
        let step = SAMPLE_INTERVAL.as_millis() as u64;
        for i in 0..1000 {
            f.push(i * step, vec![sample("p", i, &[])]);
        }
        assert_eq!(f.samples.len(), capacity());
        let first = f.samples.front().map(|(t, _)| *t).unwrap();
        assert_eq!(999 * step - first, HISTORY.as_millis() as u64);
    }
}
