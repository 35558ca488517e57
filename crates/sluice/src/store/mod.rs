//! The durable pipe store, shared by every instance that uses it: what the user asked for (a
//! [`PipeRecord`]: definition as written, [`DesiredState`], the [`Change`] the last write asked
//! for, a version, times, where it came from) and what each instance observes (an
//! [`Observation`] per pipe and instance, and each instance's heartbeat), behind the [`PipeStore`]
//! trait. [`RedbStore`] is the embedded default (one file in `--data DIR`, one instance);
//! [`PostgresStore`] lets several instances share the pipes; [`MemoryStore`] is for tests.
//!
//! Writes of records are conditional: [`PipeStore::insert`] only if the name is free,
//! [`PipeStore::replace`] only if the stored version is the one the caller read, so two
//! instances racing on one pipe never mix their changes. Every write of a record is announced on
//! [`PipeStore::events`] to every instance. A record is written whole, so a crash leaves either
//! the old or the new one. Definitions hold references to secrets (ARNs, names), never values.

mod board;
mod memory;
mod postgres;
mod redb_store;
mod state;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::PipeDefinition;

pub use memory::MemoryStore;
pub use postgres::{PostgresConfig, PostgresStore};
pub use redb_store::RedbStore;
pub use state::{Change, CurrentState, DesiredState, Phase};

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

/// One stored pipe: what the user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PipeRecord {
    /// The pipe's name (the key).
    pub name: String,
    /// The definition as written (tags included), with `Name`.
    pub definition: PipeDefinition,
    /// What the user asked for.
    pub desired_state: DesiredState,
    /// What the last write asked of the runtimes.
    pub change: Change,
    /// Bumped by every write; a conditional write names the version it read.
    pub version: u64,
    /// The version whose write last asked the runtimes to (re)start (create, update, start, a
    /// `sluice:` tag change); writes that only change other tags leave runtimes alone.
    pub launch_version: u64,
    /// Creation time, milliseconds since the epoch.
    pub creation_time_ms: u64,
    /// Last change of the definition or desired state, milliseconds since the epoch.
    pub last_modified_time_ms: u64,
    /// API or pipe file.
    pub origin: Origin,
}

/// What one instance reports about its runtime of one pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Observation {
    /// The pipe.
    pub pipe: String,
    /// The reporting instance (`--instance-id`).
    pub instance: String,
    /// The record version the runtime carries out.
    pub version: u64,
    /// Where the runtime is.
    #[serde(flatten)]
    pub phase: Phase,
    /// The partitions of the pipe's topic the runtime owns (empty unless it runs; absent from
    /// observations written before instances reported them, which read as none).
    #[serde(default)]
    pub partitions: Vec<i32>,
}

/// The instances whose heartbeat is recent, and their observations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Live instances, each with how long before the read its last heartbeat was (by the
    /// store's clock: the database's for PostgreSQL, so instances' clocks need not agree).
    pub live: BTreeMap<String, Duration>,
    /// Observations of live instances only.
    pub observations: Vec<Observation>,
}

impl Observed {
    /// The live instances' observations of `pipe`.
    pub fn of<'a>(&'a self, pipe: &'a str) -> impl Iterator<Item = &'a Observation> + 'a {
        self.observations.iter().filter(move |o| o.pipe == pipe)
    }
}

/// What [`PipeStore::events`] announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A record was written or removed (by any instance).
    Changed(String),
    /// Announcements may have been lost (the notification connection was re-established): read
    /// everything again.
    Resync,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (connection refused or lost, pool exhausted, timeout).
    #[error("pipe store unavailable: {0}")]
    Unavailable(String),
    /// The database reported an error (I/O, corruption, locked by another process, a query).
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
    /// Whether trying again may help (lost connections, I/O hiccups).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Database(_))
    }

    /// Store errors are the operator's, not the API user's.
    pub fn is_user_error(&self) -> bool {
        false
    }
}

/// Durable storage of pipe records and instance observations. Each call is atomic and durable
/// when it returns.
#[async_trait::async_trait]
pub trait PipeStore: Send + Sync + std::fmt::Debug {
    /// Every stored record, ordered by name (byte order).
    async fn list(&self) -> Result<Vec<PipeRecord>, StoreError>;
    /// One record.
    async fn get(&self, name: &str) -> Result<Option<PipeRecord>, StoreError>;
    /// Store a new record; `false` (nothing written) when the name is taken.
    async fn insert(&self, record: &PipeRecord) -> Result<bool, StoreError>;
    /// Replace a record whose stored version is `record.version - 1`; `false` (nothing written)
    /// when the stored version differs or the record is gone.
    async fn replace(&self, record: &PipeRecord) -> Result<bool, StoreError>;
    /// Remove a record marked DELETED once no instance whose heartbeat is younger than `live`
    /// still has a runtime of it; whether it was removed.
    async fn remove(&self, name: &str, live: Duration) -> Result<bool, StoreError>;
    /// Record that `instance` is alive now.
    async fn heartbeat(&self, instance: &str) -> Result<(), StoreError>;
    /// Store an instance's observation (replacing its previous one of that pipe); ignored when
    /// the pipe is gone.
    async fn observe(&self, observation: &Observation) -> Result<(), StoreError>;
    /// Instances whose heartbeat is younger than `live`, the age of that heartbeat, and their
    /// observations (of `pipe`, or of every pipe).
    async fn observed(&self, pipe: Option<&str>, live: Duration) -> Result<Observed, StoreError>;
    /// Forget an instance and its observations (it stops counting at once).
    async fn leave(&self, instance: &str) -> Result<(), StoreError>;
    /// Announcements of record writes, by every instance using the store.
    fn events(&self) -> broadcast::Receiver<StoreEvent>;
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

/// Capacity of the announcement channel; a receiver that falls further behind resyncs.
const EVENT_CAPACITY: usize = 1024;

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
        change: Change::Create,
        version: 1,
        launch_version: 1,
        creation_time_ms: 1_700_000_000_123,
        last_modified_time_ms: 1_700_000_000_456,
        origin: Origin::Api,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_stored_before_partitions_were_reported_reads_as_owning_none() {
        let old = r#"{"Pipe":"p","Instance":"i1","Version":3,"Phase":"RUNNING"}"#;
        let o: Observation = serde_json::from_str(old).unwrap();
        assert_eq!((&o.phase, o.partitions.len()), (&Phase::Running, 0));
        let new = Observation {
            partitions: vec![1, 4],
            ..o
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""Partitions":[1,4]"#), "{text}");
        assert_eq!(serde_json::from_str::<Observation>(&text).unwrap(), new);
    }
}

/// The contract every store keeps, run by each store's tests (Postgres: the integration tests).
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    const LIVE: Duration = Duration::from_secs(15);

    fn obs(pipe: &str, instance: &str, version: u64, phase: Phase) -> Observation {
        Observation {
            pipe: pipe.into(),
            instance: instance.into(),
            version,
            phase,
            partitions: Vec::new(),
        }
    }

    /// Conditional writes, ordering, announcements.
    pub async fn records(store: &dyn PipeStore) {
        let mut events = store.events();
        let a = sample("a");
        let mut b = sample("b");
        b.desired_state = DesiredState::Stopped;
        b.origin = Origin::File {
            path: "/etc/pipes/b.yaml".into(),
        };
        assert!(store.insert(&b).await.unwrap());
        assert!(store.insert(&a).await.unwrap());
        assert!(!store.insert(&a).await.unwrap(), "a second create wins");
        assert_eq!(store.list().await.unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(
            events.recv().await.unwrap(),
            StoreEvent::Changed("b".into())
        );

        let mut b2 = b.clone();
        b2.version = 2;
        b2.change = Change::Start;
        assert!(store.replace(&b2).await.unwrap());
        assert!(!store.replace(&b2).await.unwrap(), "a stale version wins");
        let mut gone = sample("gone");
        gone.version = 2;
        assert!(!store.replace(&gone).await.unwrap());
        assert_eq!(store.get("b").await.unwrap(), Some(b2));
        assert_eq!(store.get("missing").await.unwrap(), None);
    }

    /// Observations, liveness and removal of deleted records.
    pub async fn observations(store: &dyn PipeStore) {
        let mut a = sample("a");
        assert!(store.insert(&a).await.unwrap());
        store.heartbeat("i1").await.unwrap();
        store.heartbeat("i2").await.unwrap();
        store
            .observe(&obs("a", "i1", 1, Phase::Running))
            .await
            .unwrap();
        store
            .observe(&obs("a", "i2", 1, Phase::Stopped))
            .await
            .unwrap();
        store
            .observe(&obs("a", "i2", 1, Phase::Running))
            .await
            .unwrap();
        store
            .observe(&obs("nope", "i2", 1, Phase::Running))
            .await
            .unwrap();
        let owning = Observation {
            partitions: vec![0, 2],
            ..obs("a", "i2", 1, Phase::Running)
        };
        store.observe(&owning).await.unwrap();
        let seen = store.observed(Some("a"), LIVE).await.unwrap();
        assert_eq!(seen.live.keys().collect::<Vec<_>>(), ["i1", "i2"]);
        assert_eq!(seen.of("a").count(), 2);
        assert!(seen.of("a").all(|o| o.phase == Phase::Running));
        assert!(seen.of("a").any(|o| o == &owning), "{seen:?}");
        assert!(seen.live.values().all(|age| *age < LIVE), "{seen:?}");
        assert_eq!(
            store.observed(None, LIVE).await.unwrap().observations.len(),
            2
        );
        assert!(store
            .observed(None, Duration::ZERO)
            .await
            .unwrap()
            .live
            .is_empty());

        a.version = 2;
        a.desired_state = DesiredState::Deleted;
        a.change = Change::Delete;
        assert!(store.replace(&a).await.unwrap());
        assert!(!store.remove("a", LIVE).await.unwrap(), "both still run it");
        store
            .observe(&obs("a", "i1", 2, Phase::Stopped))
            .await
            .unwrap();
        assert!(!store.remove("a", LIVE).await.unwrap(), "i2 still runs it");
        store.leave("i2").await.unwrap();
        assert_eq!(store.observed(None, LIVE).await.unwrap().live.len(), 1);
        assert!(store.remove("a", LIVE).await.unwrap());
        assert_eq!(store.get("a").await.unwrap(), None);
        assert!(store
            .observed(None, LIVE)
            .await
            .unwrap()
            .observations
            .is_empty());
        let mut b = sample("b");
        assert!(store.insert(&b).await.unwrap());
        assert!(!store.remove("b", LIVE).await.unwrap(), "b is not deleted");
        b.version = 2;
        b.desired_state = DesiredState::Deleted;
        assert!(store.replace(&b).await.unwrap());
        store
            .observe(&obs("b", "i1", 1, Phase::Running))
            .await
            .unwrap();
        assert!(
            store.remove("b", Duration::ZERO).await.unwrap(),
            "an instance without a recent heartbeat does not count"
        );
    }
}
