//! The embedded default store: one [redb](https://docs.rs/redb) database file. redb is a pure-Rust,
//! ACID, copy-on-write B-tree store: a committed write transaction is durable (fsync) and a crash at
//! any point leaves the last committed state, which is what "no half-written definition" needs.
//! The file is locked, so two engines cannot share one data directory by accident.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{decode, encode, PipeRecord, PipeStore, StoreError};

/// Pipe name -> record as JSON. The version is in the table name so a future format can live
/// beside this one during a migration.
const PIPES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipes_v1");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "pipes.redb";

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into().to_string())
}

/// A redb database at `<data dir>/pipes.redb`.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Open (or create) the store in `dir`, creating the directory if needed.
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
        // Create the table up front so readers never see "table does not exist".
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(PIPES).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(RedbStore { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl PipeStore for RedbStore {
    fn load_all(&self) -> Result<Vec<PipeRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(PIPES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn put(&self, record: &PipeRecord) -> Result<(), StoreError> {
        let bytes = encode(record)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(PIPES).map_err(db_err)?;
            table
                .insert(record.name.as_str(), bytes.as_slice())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(PIPES).map_err(db_err)?;
            table.remove(name).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sample, MemoryStore, Origin};
    use crate::store::{CurrentState, DesiredState};

    fn round_trip(store: &dyn PipeStore) {
        let a = sample("a");
        let mut b = sample("b");
        b.desired_state = DesiredState::Stopped;
        b.current_state = CurrentState::StartFailed;
        b.state_reason = Some("authentication with the Kafka cluster failed".into());
        b.origin = Origin::File {
            path: "/etc/pipes/b.yaml".into(),
        };
        store.put(&b).unwrap();
        store.put(&a).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![a.clone(), b.clone()]);
        b.current_state = CurrentState::Stopped;
        store.put(&b).unwrap();
        store.delete("a").unwrap();
        store.delete("missing").unwrap();
        assert_eq!(store.load_all().unwrap(), vec![b]);
    }

    #[test]
    fn memory_store_round_trips() {
        round_trip(&MemoryStore::new());
    }

    #[test]
    fn redb_store_round_trips_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            round_trip(&store);
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let all = store.load_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "b");
        assert_eq!(all[0].current_state, CurrentState::Stopped);
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[test]
    fn stored_records_hold_secret_references_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.put(&sample("a")).unwrap();
        drop(store);
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("arn:aws:secretsmanager:us-east-1:123456789012:secret:s"));
    }
}
