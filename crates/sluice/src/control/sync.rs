//! Keeps this instance in step with the store: its heartbeat, and every record written by any
//! instance handed to the pipe's supervisor here, from the store's announcements and from a full
//! re-read every `resync_interval` (so a missed announcement delays a change, never loses it).
//! Deleted pipes are removed here once no live instance runs them. While the store cannot be
//! reached nothing changes: the runtimes go on as they were.

use std::collections::BTreeSet;

use tokio::sync::broadcast::{self, error::RecvError};

use super::PipeManager;
use crate::store::{DesiredState, StoreError, StoreEvent};

/// Start the heartbeat and follower tasks of `manager`.
pub(super) fn spawn(manager: &PipeManager, events: broadcast::Receiver<StoreEvent>) {
    let tasks = &manager.inner.tasks;
    tasks.spawn(heartbeat(manager.clone()));
    tasks.spawn(follow(manager.clone(), events));
}

/// Logs the first failure of an outage and the recovery, not every failed try.
#[derive(Default)]
struct Outage(bool);

impl Outage {
    fn record(&mut self, what: &str, result: Result<(), StoreError>) {
        match result {
            Ok(()) if std::mem::take(&mut self.0) => {
                tracing::info!("{what}: the pipe store is reachable again")
            }
            Ok(()) => {}
            Err(e) if !std::mem::replace(&mut self.0, true) => {
                tracing::warn!(error = %e, "{what} failed; pipes keep running, retrying")
            }
            Err(_) => {}
        }
    }
}

async fn heartbeat(m: PipeManager) {
    let mut tick = tokio::time::interval(m.inner.cluster.heartbeat_interval);
    let mut outage = Outage::default();
    loop {
        tokio::select! {
            _ = m.inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = m.inner.store.heartbeat(m.instance_id()).await;
        outage.record("heartbeat", result);
    }
}

async fn follow(m: PipeManager, mut events: broadcast::Receiver<StoreEvent>) {
    let mut tick = tokio::time::interval(m.inner.cluster.resync_interval);
    let mut outage = Outage::default();
    let mut closed = false;
    loop {
        let event = tokio::select! {
            _ = m.inner.shutdown.cancelled() => return,
            e = events.recv(), if !closed => e,
            _ = tick.tick() => Ok(StoreEvent::Resync),
        };
        let result = match event {
            Ok(StoreEvent::Changed(name)) => sync_one(&m, &name).await,
            Ok(StoreEvent::Resync) | Err(RecvError::Lagged(_)) => sync_all(&m).await,
            Err(RecvError::Closed) => {
                closed = true;
                Ok(())
            }
        };
        outage.record("reading the pipe store", result);
    }
}

/// Hand one pipe's record to its supervisor, or stop the supervisor if the pipe is gone.
async fn sync_one(m: &PipeManager, name: &str) -> Result<(), StoreError> {
    match m.inner.store.get(name).await? {
        Some(record) => m.carry_out(record, false),
        None => m.forget(name),
    }
    Ok(())
}

/// Hand every record to its supervisor, try to remove deleted ones, and check the pipes this
/// instance runs that the list lacked (they may have been created after it was read).
async fn sync_all(m: &PipeManager) -> Result<(), StoreError> {
    let store = &m.inner.store;
    let records = store.list().await?;
    let names: BTreeSet<String> = records.iter().map(|r| r.name.clone()).collect();
    for record in records {
        if record.desired_state == DesiredState::Deleted
            && store
                .remove(&record.name, m.inner.cluster.live_window)
                .await?
        {
            tracing::info!(pipe = %record.name, "pipe deleted");
            m.forget(&record.name);
            continue;
        }
        m.carry_out(record, false);
    }
    let missing: Vec<String> = m
        .local()
        .keys()
        .filter(|n| !names.contains(*n))
        .cloned()
        .collect();
    for name in missing {
        sync_one(m, &name).await?;
    }
    Ok(())
}
