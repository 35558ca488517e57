//! Writes this instance's observations to the store, in the order the supervisors make them. Only
//! the latest observation of each pipe matters, so while the store is unreachable they are kept
//! (one per pipe) and written once it is back; a supervisor never waits for the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{Observation, PipeStore};

/// How long a failed write waits before the next try.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One observation to write.
#[derive(Debug, Clone)]
pub(super) struct Note {
    /// The observation.
    pub observation: Observation,
    /// Try to remove the (deleted) pipe's record once it is written.
    pub then_remove: bool,
}

/// The sending side; cloned into every supervisor.
#[derive(Debug, Clone)]
pub(super) struct Observer {
    tx: mpsc::UnboundedSender<Note>,
}

impl Observer {
    /// Start the writer task; it ends at `shutdown`. `live` is how recent a heartbeat must be to
    /// count, for the removal of deleted pipes.
    pub fn spawn(
        store: Arc<dyn PipeStore>,
        live: Duration,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Observer {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(write_all(store, live, rx, shutdown));
        Observer { tx }
    }

    /// Queue an observation.
    pub fn send(&self, note: Note) {
        let _ = self.tx.send(note);
    }
}

async fn write_all(
    store: Arc<dyn PipeStore>,
    live: Duration,
    mut rx: mpsc::UnboundedReceiver<Note>,
    shutdown: CancellationToken,
) {
    let mut pending: BTreeMap<String, Note> = BTreeMap::new();
    let mut failing = false;
    loop {
        let pause = if pending.is_empty() {
            None
        } else {
            Some(RETRY_PAUSE)
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            note = rx.recv() => match note {
                Some(n) => { pending.insert(n.observation.pipe.clone(), n); }
                None => return,
            },
            _ = sleep_or_forever(pause) => {}
        }
        while let Ok(n) = rx.try_recv() {
            pending.insert(n.observation.pipe.clone(), n);
        }
        match write_pending(&*store, live, &mut pending).await {
            Ok(()) if std::mem::take(&mut failing) => {
                tracing::info!("pipe store reachable again; observations written")
            }
            Ok(()) => {}
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot write observations; retrying");
                }
            }
        }
    }
}

async fn sleep_or_forever(pause: Option<Duration>) {
    match pause {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Write every pending note, in name order, until one fails.
async fn write_pending(
    store: &dyn PipeStore,
    live: Duration,
    pending: &mut BTreeMap<String, Note>,
) -> Result<(), crate::store::StoreError> {
    while let Some((name, note)) = pending.pop_first() {
        if let Err(e) = store.observe(&note.observation).await {
            pending.insert(name, note);
            return Err(e);
        }
        if note.then_remove {
            match store.remove(&name, live).await {
                Ok(true) => tracing::info!(pipe = %name, "pipe deleted"),
                Ok(false) => {}
                Err(e) => tracing::warn!(pipe = %name, error = %e, "cannot remove the pipe yet"),
            }
        }
    }
    Ok(())
}
