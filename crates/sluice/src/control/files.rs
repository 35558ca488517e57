//! Pipe files (`--pipes-dir`, GitOps): load every `*.json`, `*.yaml` and `*.yml` of a directory and
//! reconcile the store with them at start.
//!
//! - A file whose pipe is not in the store creates it.
//! - A file whose definition differs from the stored one replaces it whole (the file is the source
//!   of truth for its pipe, so even fields the API treats as immutable may change) and takes the
//!   pipe over if it came from the API. Its `DesiredState` (default RUNNING) applies.
//! - A file whose definition is unchanged changes nothing: a pipe stopped through the API stays
//!   stopped across restarts.
//! - A pipe that came from a file that is gone is deleted. Pipes created through the API are never
//!   touched by the directory.
//!
//! Any invalid file stops the reconciliation before it changes anything, so a typo cannot delete a
//! pipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ControlError, PipeManager};
use crate::model::{self, LoadError, PipeDefinition, ValidationError};
use crate::store::{DesiredState, Origin};

/// Why the directory could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The directory could not be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file is invalid; nothing was changed.
    #[error("{path}: invalid pipe definition: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// Every field error.
        error: ValidationError,
    },
    /// Two files define the same pipe.
    #[error("{first} and {second} both define pipe {name}")]
    Duplicate {
        /// The pipe.
        name: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// Applying a file failed.
    #[error("{path}: {source}")]
    Apply {
        /// The file.
        path: String,
        /// The error.
        source: ControlError,
    },
}

impl FilesError {
    /// The files are the operator's to fix (store failures aside).
    pub fn is_user_error(&self) -> bool {
        match self {
            FilesError::Apply { source, .. } => source.is_user_error(),
            _ => true,
        }
    }

    /// Retrying the same files cannot help, except after store hiccups.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FilesError::Apply { source, .. } if source.is_retryable())
    }
}

/// What a reconciliation did, by pipe name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Pipes created from files.
    pub created: Vec<String>,
    /// Pipes whose definition a file replaced.
    pub updated: Vec<String>,
    /// Pipes deleted because their file is gone.
    pub deleted: Vec<String>,
}

/// Every pipe file of `dir`, by pipe name, each validated.
pub fn load_dir(
    dir: &Path,
    manager: &PipeManager,
) -> Result<BTreeMap<String, (PathBuf, PipeDefinition)>, FilesError> {
    let io = |source| FilesError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "yaml" | "yml")
                )
        })
        .collect();
    paths.sort();
    let mut out: BTreeMap<String, (PathBuf, PipeDefinition)> = BTreeMap::new();
    for path in paths {
        let invalid = |error| FilesError::Invalid {
            path: path.display().to_string(),
            error,
        };
        let checked = model::load_and_check(&path, |d| manager.compile(d).map(|_| d.clone()));
        let def = match checked {
            Ok(d) => d,
            Err(LoadError::Invalid(e)) => return Err(invalid(e)),
            Err(LoadError::Io { source, .. }) => {
                return Err(FilesError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let name = def.name.clone().unwrap_or_default();
        if let Some((first, _)) = out.get(&name) {
            return Err(FilesError::Duplicate {
                name,
                first: first.display().to_string(),
                second: path.display().to_string(),
            });
        }
        out.insert(name, (path, def));
    }
    Ok(out)
}

/// Reconcile the manager's pipes with the files of `dir` (see the module docs). Several instances
/// reconciling the same directory converge: the writes are conditional, a create that another
/// instance won is compared with the winner's pipe, and an unchanged pipe is not written.
pub async fn reconcile(dir: &Path, manager: &PipeManager) -> Result<Reconciled, FilesError> {
    let files = load_dir(dir, manager)?;
    let mut done = Reconciled::default();
    for (name, (path, def)) in &files {
        let origin = Origin::File {
            path: path.display().to_string(),
        };
        let applied = apply_file(manager, name, def, origin)
            .await
            .map_err(|source| FilesError::Apply {
                path: path.display().to_string(),
                source,
            })?;
        match applied {
            Some(Applied::Created) => done.created.push(name.clone()),
            Some(Applied::Updated) => done.updated.push(name.clone()),
            None => {}
        }
    }
    let in_dir = |source| FilesError::Apply {
        path: dir.display().to_string(),
        source,
    };
    for view in manager.list().await.map_err(in_dir)? {
        let rec = view.record;
        if matches!(rec.origin, Origin::File { .. })
            && !files.contains_key(&rec.name)
            && rec.desired_state != DesiredState::Deleted
        {
            match manager.delete(&rec.name).await {
                Ok(_) => done.deleted.push(rec.name),
                // Another instance deleted it first.
                Err(ControlError::NotFound(_) | ControlError::Conflict { .. }) => {}
                Err(e) => return Err(in_dir(e)),
            }
        }
    }
    Ok(done)
}

enum Applied {
    Created,
    Updated,
}

/// Bring one pipe to its file's definition.
async fn apply_file(
    manager: &PipeManager,
    name: &str,
    def: &PipeDefinition,
    origin: Origin,
) -> Result<Option<Applied>, ControlError> {
    let mut lost_create = false;
    loop {
        match manager.get(name).await {
            Err(ControlError::NotFound(_)) if !lost_create => {
                match manager.create(name, def.clone(), origin.clone()).await {
                    Ok(_) => return Ok(Some(Applied::Created)),
                    // Another instance created it meanwhile: compare with its pipe.
                    Err(ControlError::Conflict { .. }) => lost_create = true,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
            Ok(view) if view.record.definition == *def && view.record.origin == origin => {
                return Ok(None)
            }
            Ok(view) => {
                let desired = super::desired_of(def);
                let before = view.record.version;
                let after = manager
                    .replace(name, def.clone(), Some(origin), Some(desired))
                    .await?;
                let changed = after.record.version != before;
                return Ok(changed.then_some(Applied::Updated));
            }
        }
    }
}
