//! Heartbeats and observations kept in memory, for the stores of one process ([`super::RedbStore`]
//! and [`super::MemoryStore`]): they describe running processes, so they need not outlive them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Observation, Observed};

/// Who is alive and what each instance observes.
#[derive(Debug, Default)]
pub(crate) struct Board {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    heartbeats: BTreeMap<String, Instant>,
    /// By (pipe, instance).
    observations: BTreeMap<(String, String), Observation>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn heartbeat(&self, instance: &str) {
        self.lock()
            .heartbeats
            .insert(instance.to_string(), Instant::now());
    }

    pub fn observe(&self, o: &Observation) {
        self.lock()
            .observations
            .insert((o.pipe.clone(), o.instance.clone()), o.clone());
    }

    pub fn observed(&self, pipe: Option<&str>, live: Duration) -> Observed {
        let inner = self.lock();
        let alive: BTreeMap<String, Duration> = inner
            .heartbeats
            .iter()
            .map(|(id, at)| (id.clone(), at.elapsed()))
            .filter(|(_, age)| *age < live)
            .collect();
        let observations = inner
            .observations
            .values()
            .filter(|o| pipe.is_none_or(|p| o.pipe == p) && alive.contains_key(&o.instance))
            .cloned()
            .collect();
        Observed {
            live: alive,
            observations,
        }
    }

    /// Whether a live instance still has a runtime of `pipe`.
    pub fn any_active(&self, pipe: &str, live: Duration) -> bool {
        self.observed(Some(pipe), live)
            .observations
            .iter()
            .any(|o| o.phase.is_active())
    }

    /// Forget every observation of a removed pipe.
    pub fn forget_pipe(&self, pipe: &str) {
        self.lock().observations.retain(|(p, _), _| p != pipe);
    }

    pub fn leave(&self, instance: &str) {
        let mut inner = self.lock();
        inner.heartbeats.remove(instance);
        inner.observations.retain(|(_, i), _| i != instance);
    }
}
