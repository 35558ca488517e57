//! An in-memory [`PipeStore`], for tests: same contract, nothing durable.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{decode, encode, PipeRecord, PipeStore, StoreError};

/// Records in a map, serialized as the durable store would (so encoding bugs show here too).
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PipeStore for MemoryStore {
    fn load_all(&self) -> Result<Vec<PipeRecord>, StoreError> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.iter().map(|(k, v)| decode(k, v)).collect()
    }

    fn put(&self, record: &PipeRecord) -> Result<(), StoreError> {
        let bytes = encode(record)?;
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.name.clone(), bytes);
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }
}
