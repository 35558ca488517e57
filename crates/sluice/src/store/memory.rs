//! An in-memory [`PipeStore`], for tests: same contract, nothing durable. Several managers may
//! share one, as several instances share a database.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::broadcast;

use super::board::Board;
use super::{
    decode, encode, DesiredState, Observation, Observed, PipeRecord, PipeStore, StoreError,
    StoreEvent, EVENT_CAPACITY,
};

/// Records in a map, serialized as the durable store would (so encoding bugs show here too).
#[derive(Debug)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<String, Vec<u8>>>,
    board: Board,
    events: broadcast::Sender<StoreEvent>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            records: Mutex::default(),
            board: Board::default(),
            events: broadcast::channel(EVENT_CAPACITY).0,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce(&self, name: &str) {
        let _ = self.events.send(StoreEvent::Changed(name.to_string()));
    }
}

#[async_trait::async_trait]
impl PipeStore for MemoryStore {
    async fn list(&self) -> Result<Vec<PipeRecord>, StoreError> {
        self.lock().iter().map(|(k, v)| decode(k, v)).collect()
    }

    async fn get(&self, name: &str) -> Result<Option<PipeRecord>, StoreError> {
        self.lock().get(name).map(|v| decode(name, v)).transpose()
    }

    async fn insert(&self, record: &PipeRecord) -> Result<bool, StoreError> {
        let bytes = encode(record)?;
        let inserted = {
            let mut records = self.lock();
            if records.contains_key(&record.name) {
                false
            } else {
                records.insert(record.name.clone(), bytes);
                true
            }
        };
        if inserted {
            self.announce(&record.name);
        }
        Ok(inserted)
    }

    async fn replace(&self, record: &PipeRecord) -> Result<bool, StoreError> {
        let bytes = encode(record)?;
        let replaced = {
            let mut records = self.lock();
            let current = records
                .get(&record.name)
                .map(|v| decode(&record.name, v))
                .transpose()?;
            match current {
                Some(c) if c.version + 1 == record.version => {
                    records.insert(record.name.clone(), bytes);
                    true
                }
                _ => false,
            }
        };
        if replaced {
            self.announce(&record.name);
        }
        Ok(replaced)
    }

    async fn remove(&self, name: &str, live: Duration) -> Result<bool, StoreError> {
        let removed = {
            let mut records = self.lock();
            let deleted = records
                .get(name)
                .map(|v| decode(name, v))
                .transpose()?
                .is_some_and(|r| r.desired_state == DesiredState::Deleted);
            if deleted && !self.board.any_active(name, live) {
                records.remove(name);
                self.board.forget_pipe(name);
                true
            } else {
                false
            }
        };
        if removed {
            self.announce(name);
        }
        Ok(removed)
    }

    async fn heartbeat(&self, instance: &str) -> Result<(), StoreError> {
        self.board.heartbeat(instance);
        Ok(())
    }

    async fn observe(&self, observation: &Observation) -> Result<(), StoreError> {
        let records = self.lock();
        if records.contains_key(&observation.pipe) {
            self.board.observe(observation);
        }
        Ok(())
    }

    async fn observed(&self, pipe: Option<&str>, live: Duration) -> Result<Observed, StoreError> {
        Ok(self.board.observed(pipe, live))
    }

    async fn leave(&self, instance: &str) -> Result<(), StoreError> {
        self.board.leave(instance);
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        super::super::contract::records(&MemoryStore::new()).await;
        super::super::contract::observations(&MemoryStore::new()).await;
    }
}
