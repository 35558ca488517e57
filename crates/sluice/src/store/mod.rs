//! The durable pipe store: what a pipe is ([`PipeRecord`]: definition as written, desired and
//! current state ([`DesiredState`], [`CurrentState`]), times, where it came from), behind the [`PipeStore`] trait so that a shared store
//! for several instances can be added later. [`RedbStore`] is the embedded default (one file in
//! `--data DIR`); [`MemoryStore`] is for tests.
//!
//! A record is written whole in one transaction, so a crash (even SIGKILL) leaves either the old or
//! the new record, never half of one. Definitions hold references to secrets (ARNs, names), never
//! secret values.

mod memory;
mod redb_store;
mod state;

use serde::{Deserialize, Serialize};

use crate::model::PipeDefinition;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use state::{CurrentState, DesiredState};

/// Where a pipe came from, which decides what the pipe-file reconciliation may do to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Kind")]
pub enum Origin {
    /// Created through the API; pipe files never delete it.
    Api,
    /// Loaded from a file of `--pipes-dir`; deleted when the file disappears.
    File {
        /// The file's path as it was loaded.
        #[serde(rename = "Path")]
        path: String,
    },
}

/// One stored pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PipeRecord {
    /// The pipe's name (the key).
    pub name: String,
    /// The definition as written (tags included), with `Name`.
    pub definition: PipeDefinition,
    /// What the user asked for.
    pub desired_state: DesiredState,
    /// Where the pipe was last seen.
    pub current_state: CurrentState,
    /// Why it is in that state, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// Creation time, milliseconds since the epoch.
    pub creation_time_ms: u64,
    /// Last change of the definition or desired state, milliseconds since the epoch.
    pub last_modified_time_ms: u64,
    /// API or pipe file.
    pub origin: Origin,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, locked by another process).
    #[error("pipe store: {0}")]
    Database(String),
    /// A stored record could not be read back.
    #[error("pipe store: record {name:?} is unreadable: {message}")]
    Corrupt {
        /// The record's key.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// Whether trying again may help (I/O hiccups).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Database(_))
    }

    /// Store errors are the operator's, not the API user's.
    pub fn is_user_error(&self) -> bool {
        false
    }
}

/// Durable storage of pipe records. Each call is atomic and durable when it returns.
pub trait PipeStore: Send + Sync + std::fmt::Debug {
    /// Every stored record, ordered by name.
    fn load_all(&self) -> Result<Vec<PipeRecord>, StoreError>;
    /// Insert or replace a record.
    fn put(&self, record: &PipeRecord) -> Result<(), StoreError>;
    /// Remove a record; removing a missing one is not an error.
    fn delete(&self, name: &str) -> Result<(), StoreError>;
}

fn encode(record: &PipeRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
        name: record.name.clone(),
        message: e.to_string(),
    })
}

fn decode(name: &str, bytes: &[u8]) -> Result<PipeRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        name: name.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) fn sample(name: &str) -> PipeRecord {
    PipeRecord {
        name: name.into(),
        definition: crate::model::parse_definition(
            &format!(
                r#"{{"Name":"{name}","Source":"smk://h:9092","Target":"http://x/",
                "SourceParameters":{{"SelfManagedKafkaParameters":{{"TopicName":"t",
                "Credentials":{{"SaslScram512Auth":"arn:aws:secretsmanager:us-east-1:123456789012:secret:s"}}}}}},
                "Tags":{{"team":"a"}}}}"#
            ),
            false,
        )
        .unwrap(),
        desired_state: DesiredState::Running,
        current_state: CurrentState::Creating,
        state_reason: None,
        creation_time_ms: 1_700_000_000_123,
        last_modified_time_ms: 1_700_000_000_456,
        origin: Origin::Api,
    }
}
