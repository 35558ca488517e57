//! The `file://` destination (`SluiceParameters.LogDestination: file:///path`): JSON lines
//! appended to a file. The file is opened (created when missing) for every write, so a file that
//! the user's tools rotated away is created again.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::lines;
use super::shipper::{Entry, ShipError, Sink};

/// Appends to one file.
#[derive(Debug)]
pub struct File {
    path: PathBuf,
}

impl File {
    /// The destination writing to `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl Sink for File {
    fn write<'a>(&'a self, entries: &'a [Arc<Entry>]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            let io = |source| ShipError::Io {
                what: self.path.display().to_string(),
                source,
            };
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(io)?;
            f.write_all(lines(entries).as_bytes()).await.map_err(io)?;
            f.flush().await.map_err(io)
        })
    }
}
