//! The `stdout` destination (`SluiceParameters.LogDestination: stdout`): JSON lines on the
//! process's standard output, which holds nothing else (Sluice's own logs go to stderr).

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::lines;
use super::shipper::{Entry, ShipError, Sink};

/// Writes to standard output.
#[derive(Debug, Default)]
pub struct Stdout;

impl Sink for Stdout {
    fn write<'a>(&'a self, entries: &'a [Arc<Entry>]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            let io = |source| ShipError::Io {
                what: "stdout".into(),
                source,
            };
            let mut out = tokio::io::stdout();
            out.write_all(lines(entries).as_bytes()).await.map_err(io)?;
            out.flush().await.map_err(io)
        })
    }
}
