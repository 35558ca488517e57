//! The embedded default store: one [redb](https://docs.rs/redb) database file, for one instance.
//! redb is a pure-Rust, ACID, copy-on-write B-tree store: a committed write transaction is durable
//! (fsync) and a crash at any point leaves the last committed state, which is what "no
//! half-written definition" needs. The file is locked, so two engines cannot share one data
//! directory by accident. Heartbeats and observations live in memory ([`Board`]): only this
//! process reports them. Calls run on tokio's blocking threads (a commit waits for fsync).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::broadcast;

use super::board::Board;
use super::{
    decode, encode, Change, DesiredState, Observation, Observed, PipeRecord, PipeStore, StoreError,
    StoreEvent, EVENT_CAPACITY,
};

/// Pipe name -> record as JSON. The version is in the table name so a new format can live
/// beside the old one during a migration.
const PIPES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipes_v2");
/// The first format: the current state was stored, there was no version. Migrated at open.
const PIPES_V1: TableDefinition<&str, &[u8]> = TableDefinition::new("pipes_v1");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "pipes.redb";

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into().to_string())
}

/// A redb database at `<data dir>/pipes.redb`.
#[derive(Debug)]
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    board: Arc<Board>,
    events: broadcast::Sender<StoreEvent>,
}

impl RedbStore {
    /// Open (or create) the store in `dir`, creating the directory if needed, and migrate
    /// records of the first format.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| {
            StoreError::Database(format!(
                "cannot open {}: {}",
                path.display(),
                redb::Error::from(e)
            ))
        })?;
        migrate(&db)?;
        Ok(RedbStore {
            db: Arc::new(db),
            path,
            board: Arc::default(),
            events: broadcast::channel(EVENT_CAPACITY).0,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a blocking thread with the database.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Database(format!("store task failed: {e}")))?
    }

    fn announce(&self, name: &str) {
        let _ = self.events.send(StoreEvent::Changed(name.to_string()));
    }
}

/// Create the table up front (so readers never see "table does not exist") and move records of
/// the first format into it, in one transaction.
fn migrate(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(db_err)?;
    let has_v1 = tx
        .list_tables()
        .map_err(db_err)?
        .any(|t| t.name() == PIPES_V1.name());
    {
        let mut table = tx.open_table(PIPES).map_err(db_err)?;
        if has_v1 {
            let old = tx.open_table(PIPES_V1).map_err(db_err)?;
            for entry in old.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                let record = from_v1(k.value(), v.value())?;
                table
                    .insert(k.value(), encode(&record)?.as_slice())
                    .map_err(db_err)?;
            }
        }
    }
    if has_v1 {
        tx.delete_table(PIPES_V1).map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

/// A record of the first format: its stored current state says what the last change was.
fn from_v1(name: &str, bytes: &[u8]) -> Result<PipeRecord, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        name: name.to_string(),
        message,
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let change = match value["CurrentState"].as_str().unwrap_or("") {
        "CREATING" | "CREATE_FAILED" => Change::Create,
        "UPDATING" | "UPDATE_FAILED" => Change::Update,
        "STOPPING" | "STOPPED" | "STOP_FAILED" => Change::Stop,
        "DELETING" | "DELETE_FAILED" => Change::Delete,
        _ => Change::Start,
    };
    let object = value
        .as_object_mut()
        .ok_or_else(|| corrupt("not a JSON object".into()))?;
    object.remove("CurrentState");
    object.remove("StateReason");
    object.insert(
        "Change".into(),
        serde_json::to_value(change).unwrap_or_default(),
    );
    object.insert("Version".into(), 1.into());
    object.insert("LaunchVersion".into(), 1.into());
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

fn read(db: &Database, name: &str) -> Result<Option<PipeRecord>, StoreError> {
    let tx = db.begin_read().map_err(db_err)?;
    let table = tx.open_table(PIPES).map_err(db_err)?;
    let value = table.get(name).map_err(db_err)?;
    value.map(|v| decode(name, v.value())).transpose()
}

/// Write `record` in one transaction if `allowed` says so, given the stored one.
fn write_if(
    db: &Database,
    record: &PipeRecord,
    allowed: impl FnOnce(Option<&PipeRecord>) -> bool,
) -> Result<bool, StoreError> {
    let bytes = encode(record)?;
    let tx = db.begin_write().map_err(db_err)?;
    let written = {
        let mut table = tx.open_table(PIPES).map_err(db_err)?;
        let current = table
            .get(record.name.as_str())
            .map_err(db_err)?
            .map(|v| decode(&record.name, v.value()))
            .transpose()?;
        if allowed(current.as_ref()) {
            table
                .insert(record.name.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            true
        } else {
            false
        }
    };
    if written {
        tx.commit().map_err(db_err)?;
    } else {
        tx.abort().map_err(db_err)?;
    }
    Ok(written)
}

#[async_trait::async_trait]
impl PipeStore for RedbStore {
    async fn list(&self) -> Result<Vec<PipeRecord>, StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            let table = tx.open_table(PIPES).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                out.push(decode(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn get(&self, name: &str) -> Result<Option<PipeRecord>, StoreError> {
        let name = name.to_string();
        self.blocking(move |db| read(db, &name)).await
    }

    async fn insert(&self, record: &PipeRecord) -> Result<bool, StoreError> {
        let r = record.clone();
        let written = self
            .blocking(move |db| write_if(db, &r, |current| current.is_none()))
            .await?;
        if written {
            self.announce(&record.name);
        }
        Ok(written)
    }

    async fn replace(&self, record: &PipeRecord) -> Result<bool, StoreError> {
        let r = record.clone();
        let written = self
            .blocking(move |db| {
                let version = r.version;
                write_if(db, &r, |c| c.is_some_and(|c| c.version + 1 == version))
            })
            .await?;
        if written {
            self.announce(&record.name);
        }
        Ok(written)
    }

    async fn remove(&self, name: &str, live: Duration) -> Result<bool, StoreError> {
        let owned = name.to_string();
        let board = self.board.clone();
        let removed = self
            .blocking(move |db| {
                let tx = db.begin_write().map_err(db_err)?;
                let removed = {
                    let mut table = tx.open_table(PIPES).map_err(db_err)?;
                    let deleted = table
                        .get(owned.as_str())
                        .map_err(db_err)?
                        .map(|v| decode(&owned, v.value()))
                        .transpose()?
                        .is_some_and(|r| r.desired_state == DesiredState::Deleted);
                    let removable = deleted && !board.any_active(&owned, live);
                    if removable {
                        table.remove(owned.as_str()).map_err(db_err)?;
                    }
                    removable
                };
                tx.commit().map_err(db_err)?;
                if removed {
                    board.forget_pipe(&owned);
                }
                Ok(removed)
            })
            .await?;
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
        if self.get(&observation.pipe).await?.is_some() {
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
    use crate::store::{contract, sample};

    #[tokio::test]
    async fn redb_store_keeps_the_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            contract::records(&store).await;
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let all = store.list().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].name.as_str(), all[1].version), ("b", 2));
        let other = tempfile::tempdir().unwrap();
        contract::observations(&RedbStore::open(other.path()).unwrap()).await;
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[tokio::test]
    async fn records_of_the_first_format_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = serde_json::to_value(sample("a")).unwrap();
        let o = old.as_object_mut().unwrap();
        o.remove("Change");
        o.remove("Version");
        o.remove("LaunchVersion");
        o.insert("CurrentState".into(), "STOPPED".into());
        o.insert("StateReason".into(), "r".into());
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(PIPES_V1)
                .unwrap()
                .insert("a", serde_json::to_vec(&old).unwrap().as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let a = store.get("a").await.unwrap().unwrap();
        assert_eq!((a.change, a.version), (Change::Stop, 1));
        assert_eq!(a.definition, sample("a").definition);
        drop(store);
        // Migrated once: the old table is gone.
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn stored_records_hold_secret_references_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.insert(&sample("a")).await.unwrap();
        drop(store);
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("arn:aws:secretsmanager:us-east-1:123456789012:secret:s"));
    }
}
