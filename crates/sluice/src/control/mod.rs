//! The control plane's core: the [`PipeManager`] owns every pipe of a `sluice serve` process, its
//! stored record ([`crate::store`]) and a supervisor task per pipe that runs [`run_pipe`] and maps
//! what the runtime reports ([`PipeStatus`]) to the pipe's `CurrentState` ([`state`]).
//!
//! Requests change the record first (desired state, a transitional current state such as STOPPING),
//! write it to the store, and then hand a command to the pipe's supervisor. Each such change bumps
//! the pipe's *epoch*; a supervisor applies a runtime report only if no newer request came since
//! the command it is carrying out, so a late report of an old runtime never overwrites a newer
//! state. Also here: the `serve` configuration ([`config`]) and pipe files ([`files`]).

pub mod config;
pub mod files;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::model::update::{self, with_tag_extensions};
use crate::model::{validate, PipeDefinition, PipeSpec, ValidationContext, ValidationError};
use crate::runtime::{run_pipe, PipeStatus, RuntimeError, RuntimeOptions};
use crate::store::{CurrentState, DesiredState, Origin, PipeRecord, PipeStore, StoreError};

/// Why a control-plane request failed. Each maps to one AWS error.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No pipe of that name (`NotFoundException`).
    #[error("Pipe {0} does not exist.")]
    NotFound(String),
    /// The request conflicts with the pipe's state or existence (`ConflictException`).
    #[error("{message}")]
    Conflict {
        /// The pipe's name.
        name: String,
        /// What conflicts.
        message: String,
    },
    /// The request is invalid (`ValidationException`).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The store failed (`InternalException`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ControlError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ControlError::Store(e) => e.is_retryable(),
            ControlError::Conflict { .. } => true,
            _ => false,
        }
    }

    /// Whether the caller must change the request.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ControlError::Store(_))
    }
}

enum Command {
    Run { spec: Box<PipeSpec>, epoch: u64 },
    Stop { epoch: u64 },
    Delete { epoch: u64 },
}

struct Entry {
    record: PipeRecord,
    epoch: u64,
    tx: mpsc::UnboundedSender<Command>,
}

struct Inner {
    store: Arc<dyn PipeStore>,
    ctx: ValidationContext,
    metrics: Arc<Metrics>,
    options: RuntimeOptions,
    pipes: Mutex<BTreeMap<String, Entry>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Owns the pipes of one engine: their records, their runtimes, their states.
#[derive(Clone)]
pub struct PipeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PipeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeManager")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl PipeManager {
    /// Load every stored pipe and bring each to its desired state: RUNNING pipes are started
    /// (STARTING, or CREATING if they never ran), pipes whose deletion was cut short are deleted.
    /// Must be called inside a tokio runtime.
    pub fn open(
        store: Arc<dyn PipeStore>,
        ctx: ValidationContext,
        metrics: Arc<Metrics>,
        options: RuntimeOptions,
    ) -> Result<PipeManager, StoreError> {
        let records = store.load_all()?;
        let manager = PipeManager {
            inner: Arc::new(Inner {
                store,
                ctx,
                metrics,
                options,
                pipes: Mutex::new(BTreeMap::new()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        for mut record in records {
            if record.desired_state == DesiredState::Deleted
                || record.current_state == CurrentState::Deleting
            {
                manager.inner.store.delete(&record.name)?;
                tracing::info!(pipe = %record.name, "finished deleting pipe");
                continue;
            }
            record.current_state = state::on_boot(record.desired_state, record.current_state);
            let mut command = None;
            if record.desired_state == DesiredState::Running {
                match manager.compile(&record.definition) {
                    Ok(spec) => {
                        record.state_reason = None;
                        command = Some(Command::Run {
                            spec: Box::new(spec),
                            epoch: 1,
                        });
                    }
                    Err(e) => {
                        record.current_state = CurrentState::StartFailed;
                        record.state_reason = Some(state::truncate_reason(&format!(
                            "the stored definition is not valid for this version of Sluice: {e}"
                        )));
                    }
                }
            } else {
                record.state_reason = None;
            }
            manager.put(&record)?;
            let tx = manager.spawn_supervisor(&record.name);
            if let Some(c) = command {
                let _ = tx.send(c);
            }
            manager.lock().insert(
                record.name.clone(),
                Entry {
                    record,
                    epoch: 1,
                    tx,
                },
            );
        }
        Ok(manager)
    }

    /// The region and account ARNs are minted with.
    pub fn context(&self) -> &ValidationContext {
        &self.inner.ctx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner.pipes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validate a definition as the engine will run it (`sluice:` tags applied).
    pub fn compile(&self, def: &PipeDefinition) -> Result<PipeSpec, ValidationError> {
        validate(&with_tag_extensions(def)?, &self.inner.ctx)
    }

    /// The ARN of a pipe.
    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:pipes:{}:{}:pipe/{}",
            self.inner.ctx.region, self.inner.ctx.account, name
        )
    }

    /// A pipe's record.
    pub fn get(&self, name: &str) -> Result<PipeRecord, ControlError> {
        self.lock()
            .get(name)
            .map(|e| e.record.clone())
            .ok_or_else(|| ControlError::NotFound(name.to_string()))
    }

    /// Every pipe, ordered by name.
    pub fn list(&self) -> Vec<PipeRecord> {
        self.lock().values().map(|e| e.record.clone()).collect()
    }

    /// Create a pipe. It answers CREATING and moves on to RUNNING, STOPPED (if so desired) or
    /// CREATE_FAILED.
    pub fn create(
        &self,
        name: &str,
        mut def: PipeDefinition,
        origin: Origin,
    ) -> Result<PipeRecord, ControlError> {
        def.name = Some(name.to_string());
        let spec = self.compile(&def)?;
        let desired = desired_of(&def);
        let mut pipes = self.lock();
        if pipes.contains_key(name) {
            return Err(ControlError::Conflict {
                name: name.to_string(),
                message: format!("Pipe {name} already exists."),
            });
        }
        let now = now_ms();
        let record = PipeRecord {
            name: name.to_string(),
            definition: def,
            desired_state: desired,
            current_state: CurrentState::Creating,
            state_reason: None,
            creation_time_ms: now,
            last_modified_time_ms: now,
            origin,
        };
        self.put(&record)?;
        let tx = self.spawn_supervisor(name);
        let _ = tx.send(match desired {
            DesiredState::Running => Command::Run {
                spec: Box::new(spec),
                epoch: 1,
            },
            _ => Command::Stop { epoch: 1 },
        });
        tracing::info!(pipe = %name, desired = desired.as_str(), "pipe created");
        pipes.insert(
            name.to_string(),
            Entry {
                record: record.clone(),
                epoch: 1,
                tx,
            },
        );
        Ok(record)
    }

    /// Apply an `UpdatePipe` body: merged by [`update::merge_update`], validated, stored; a pipe
    /// that should run is restarted with the new definition (UPDATING -> RUNNING).
    pub fn update(&self, name: &str, body: &PipeDefinition) -> Result<PipeRecord, ControlError> {
        let stored = self.get(name)?;
        let merged = update::merge_update(&stored.definition, body)?;
        let desired = body.desired_state.as_deref().and_then(DesiredState::parse);
        self.replace(name, merged, None, desired)
    }

    /// Replace a pipe's definition whole (pipe files are the source of truth for their pipes, so
    /// no field is immutable for them). `origin` and `desired` replace the stored ones when given.
    pub fn replace(
        &self,
        name: &str,
        mut def: PipeDefinition,
        origin: Option<Origin>,
        desired: Option<DesiredState>,
    ) -> Result<PipeRecord, ControlError> {
        def.name = Some(name.to_string());
        let spec = self.compile(&def)?;
        self.change(name, |rec| {
            if let Some(d) = desired {
                rec.desired_state = d;
            }
            rec.definition = def;
            if let Some(o) = origin {
                rec.origin = o;
            }
            rec.current_state = CurrentState::Updating;
            rec.state_reason = None;
            Some(match rec.desired_state {
                DesiredState::Running => Step::Run(Box::new(spec)),
                _ => Step::Stop,
            })
        })
    }

    /// `StartPipe`: STARTING -> RUNNING. Starting a pipe that runs or is on its way changes nothing.
    pub fn start(&self, name: &str) -> Result<PipeRecord, ControlError> {
        let def = self.get(name)?.definition;
        let spec = self.compile(&def)?;
        self.change(name, |rec| {
            if rec.desired_state == DesiredState::Running
                && (rec.current_state == CurrentState::Running || rec.current_state.is_starting())
            {
                return None;
            }
            rec.desired_state = DesiredState::Running;
            rec.current_state = CurrentState::Starting;
            rec.state_reason = None;
            Some(Step::Run(Box::new(spec)))
        })
    }

    /// `StopPipe`: STOPPING -> STOPPED.
    pub fn stop(&self, name: &str) -> Result<PipeRecord, ControlError> {
        self.change(name, |rec| {
            if rec.desired_state == DesiredState::Stopped
                && matches!(
                    rec.current_state,
                    CurrentState::Stopped | CurrentState::Stopping
                )
            {
                return None;
            }
            rec.desired_state = DesiredState::Stopped;
            rec.current_state = CurrentState::Stopping;
            rec.state_reason = None;
            Some(Step::Stop)
        })
    }

    /// `DeletePipe`: DELETING (desired DELETED), then the pipe disappears.
    pub fn delete(&self, name: &str) -> Result<PipeRecord, ControlError> {
        self.change(name, |rec| {
            rec.desired_state = DesiredState::Deleted;
            rec.current_state = CurrentState::Deleting;
            Some(Step::Delete)
        })
    }

    /// `TagResource`: add or replace tags. Changing a `sluice:` tag of a pipe that should run
    /// restarts it with the new extensions (UPDATING).
    pub fn tag(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<PipeRecord, ControlError> {
        update::check_tags("tags", tags)?;
        let mut def = self.get(name)?.definition;
        let mut all = def.tags.clone().unwrap_or_default();
        all.extend(tags.clone());
        update::check_tags("tags", &all)?;
        def.tags = Some(all);
        self.retag(name, def)
    }

    /// `UntagResource`: remove tags (missing keys are ignored).
    pub fn untag(&self, name: &str, keys: &[String]) -> Result<PipeRecord, ControlError> {
        let mut def = self.get(name)?.definition;
        let mut all = def.tags.clone().unwrap_or_default();
        for k in keys {
            all.remove(k);
        }
        def.tags = (!all.is_empty()).then_some(all);
        self.retag(name, def)
    }

    fn retag(&self, name: &str, def: PipeDefinition) -> Result<PipeRecord, ControlError> {
        let spec = self.compile(&def)?;
        self.change(name, |rec| {
            let restart = !update::same_extensions(&rec.definition, &def)
                && rec.desired_state == DesiredState::Running;
            rec.definition = def;
            if restart {
                rec.current_state = CurrentState::Updating;
                rec.state_reason = None;
                Some(Step::Run(Box::new(spec)))
            } else {
                Some(Step::Persist)
            }
        })
    }

    /// Change a record under the lock: `f` edits it and says what the supervisor must do (`None`:
    /// nothing changed). The record is stored before the supervisor hears of it.
    fn change(
        &self,
        name: &str,
        f: impl FnOnce(&mut PipeRecord) -> Option<Step>,
    ) -> Result<PipeRecord, ControlError> {
        let mut pipes = self.lock();
        let entry = pipes
            .get_mut(name)
            .ok_or_else(|| ControlError::NotFound(name.to_string()))?;
        if entry.record.current_state == CurrentState::Deleting {
            return Err(ControlError::Conflict {
                name: name.to_string(),
                message: format!("Pipe {name} is being deleted."),
            });
        }
        let mut record = entry.record.clone();
        let Some(step) = f(&mut record) else {
            return Ok(record);
        };
        record.last_modified_time_ms = now_ms().max(record.last_modified_time_ms);
        self.put(&record)?;
        entry.record = record.clone();
        let epoch = entry.epoch + 1;
        let command = match step {
            Step::Persist => None,
            Step::Run(spec) => Some(Command::Run { spec, epoch }),
            Step::Stop => Some(Command::Stop { epoch }),
            Step::Delete => Some(Command::Delete { epoch }),
        };
        if let Some(c) = command {
            entry.epoch = epoch;
            let _ = entry.tx.send(c);
        }
        Ok(record)
    }

    /// Store a record, and show its state in `sluice_pipe_state`.
    fn put(&self, record: &PipeRecord) -> Result<(), StoreError> {
        self.inner.store.put(record)?;
        self.inner
            .metrics
            .set_pipe_state(&record.name, record.current_state.as_str());
        Ok(())
    }

    /// Apply a runtime report if no newer request came since `epoch`.
    fn settle(&self, name: &str, epoch: u64, f: impl FnOnce(&mut PipeRecord) -> bool) {
        let mut pipes = self.lock();
        let Some(entry) = pipes.get_mut(name) else {
            return;
        };
        if entry.epoch != epoch {
            return;
        }
        let mut record = entry.record.clone();
        if !f(&mut record) {
            return;
        }
        tracing::info!(pipe = %name, state = %record.current_state,
            reason = record.state_reason.as_deref().unwrap_or(""), "pipe state");
        match self.put(&record) {
            Ok(()) => entry.record = record,
            Err(e) => tracing::error!(pipe = %name, error = %e, "cannot store the pipe's state"),
        }
    }

    fn finish_delete(&self, name: &str, epoch: u64) {
        let mut pipes = self.lock();
        if pipes.get(name).is_none_or(|e| e.epoch != epoch) {
            return;
        }
        match self.inner.store.delete(name) {
            Ok(()) => {
                pipes.remove(name);
                self.inner.metrics.remove_pipe(name);
                tracing::info!(pipe = %name, "pipe deleted");
            }
            Err(e) => {
                tracing::error!(pipe = %name, error = %e, "cannot delete the pipe from the store");
                if let Some(entry) = pipes.get_mut(name) {
                    self.inner
                        .metrics
                        .set_pipe_state(name, CurrentState::DeleteFailed.as_str());
                    entry.record.current_state = CurrentState::DeleteFailed;
                    entry.record.state_reason = Some(state::truncate_reason(&e.to_string()));
                }
            }
        }
    }

    fn spawn_supervisor(&self, name: &str) -> mpsc::UnboundedSender<Command> {
        let (tx, rx) = mpsc::unbounded_channel();
        let manager = self.clone();
        let name = name.to_string();
        self.inner
            .tasks
            .spawn(async move { manager.supervise(name, rx).await });
        tx
    }

    async fn supervise(self, name: String, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut running: Option<Running> = None;
        loop {
            tokio::select! {
                biased;
                _ = self.inner.shutdown.cancelled() => {
                    // Process shutdown: stop the runtime, keep the stored states as they are.
                    stop_runtime(running.take()).await;
                    return;
                }
                cmd = rx.recv() => match cmd {
                    None => {
                        stop_runtime(running.take()).await;
                        return;
                    }
                    Some(Command::Run { spec, epoch }) => {
                        stop_runtime(running.take()).await;
                        running = Some(self.launch(*spec, epoch));
                    }
                    Some(Command::Stop { epoch }) => {
                        stop_runtime(running.take()).await;
                        self.settle(&name, epoch, |r| {
                            r.current_state = CurrentState::Stopped;
                            true
                        });
                    }
                    Some(Command::Delete { epoch }) => {
                        stop_runtime(running.take()).await;
                        self.finish_delete(&name, epoch);
                        return;
                    }
                },
                event = next_event(&mut running) => {
                    let epoch = running.as_ref().map(|r| r.epoch).unwrap_or_default();
                    match event {
                        RuntimeEvent::Status(status) => self.settle(&name, epoch, |r| {
                            apply(r, state::on_status(r.current_state, &status))
                        }),
                        RuntimeEvent::Ended(result) => {
                            running = None;
                            if let Err(reason) = result {
                                self.settle(&name, epoch, |r| {
                                    apply(r, state::on_failure(r.current_state, &reason))
                                });
                            }
                        }
                    }
                }
            }
        }
    }

    fn launch(&self, spec: PipeSpec, epoch: u64) -> Running {
        let token = self.inner.shutdown.child_token();
        let (tx, rx) = watch::channel(PipeStatus::Starting);
        let options = RuntimeOptions {
            client_id: format!("sluice-{}", spec.name),
            ..self.inner.options.clone()
        };
        let join = tokio::spawn(run_pipe(
            spec,
            self.inner.metrics.clone(),
            options,
            token.clone(),
            tx,
        ));
        Running {
            token,
            join: Some(join),
            status: rx,
            epoch,
        }
    }

    /// Stop every runtime (each finishes its batches in flight, bounded by the runtime's shutdown
    /// timeout) and wait up to `timeout` for them. Stored states are left as they are, so the next
    /// start brings every pipe back to its desired state.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(timeout, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("pipes did not stop within {timeout:?}");
        }
    }
}

enum Step {
    Persist,
    Run(Box<PipeSpec>),
    Stop,
    Delete,
}

pub(crate) fn desired_of(def: &PipeDefinition) -> DesiredState {
    def.desired_state
        .as_deref()
        .and_then(DesiredState::parse)
        .unwrap_or(DesiredState::Running)
}

/// Apply a change of state and reason; `false` (nothing to store) when it changes nothing.
fn apply(r: &mut PipeRecord, change: Option<(CurrentState, Option<String>)>) -> bool {
    match change {
        Some((state, reason)) if state == r.current_state && reason == r.state_reason => false,
        Some((state, reason)) => {
            r.current_state = state;
            r.state_reason = reason;
            true
        }
        None => false,
    }
}

struct Running {
    token: CancellationToken,
    join: Option<JoinHandle<Result<(), RuntimeError>>>,
    status: watch::Receiver<PipeStatus>,
    epoch: u64,
}

enum RuntimeEvent {
    Status(PipeStatus),
    Ended(Result<(), String>),
}

async fn next_event(running: &mut Option<Running>) -> RuntimeEvent {
    let Some(r) = running.as_mut() else {
        return std::future::pending().await;
    };
    let Some(join) = r.join.as_mut() else {
        return std::future::pending().await;
    };
    let result = tokio::select! {
        biased;
        changed = r.status.changed() => match changed {
            Ok(()) => return RuntimeEvent::Status(r.status.borrow_and_update().clone()),
            // The runtime dropped its status sender: it ended.
            Err(_) => None,
        },
        result = &mut *join => Some(result),
    };
    let result = match result {
        Some(r) => r,
        None => join.await,
    };
    r.join = None;
    RuntimeEvent::Ended(flatten(result))
}

fn flatten(result: Result<Result<(), RuntimeError>, tokio::task::JoinError>) -> Result<(), String> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the pipe's runtime crashed: {e}")),
    }
}

async fn stop_runtime(running: Option<Running>) {
    let Some(mut r) = running else { return };
    r.token.cancel();
    if let Some(join) = r.join.take() {
        let _ = join.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;
    use crate::store::MemoryStore;

    fn def(name: &str, desired: &str) -> PipeDefinition {
        parse_definition(
            &format!(
                r#"{{"Name":"{name}","DesiredState":"{desired}","Source":"smk://127.0.0.1:1","Target":"http://127.0.0.1:1/",
                "RoleArn":"arn:aws:iam::123456789012:role/r",
                "SourceParameters":{{"SelfManagedKafkaParameters":{{"TopicName":"t"}}}}}}"#
            ),
            false,
        )
        .unwrap()
    }

    fn manager(store: Arc<dyn PipeStore>) -> PipeManager {
        PipeManager::open(
            store,
            ValidationContext::default(),
            Arc::new(Metrics::new()),
            RuntimeOptions::default(),
        )
        .unwrap()
    }

    async fn wait_state(m: &PipeManager, name: &str, want: CurrentState) {
        for _ in 0..200 {
            if m.get(name).map(|r| r.current_state).ok() == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never reached {want}: {:?}", m.get(name).ok());
    }

    #[tokio::test]
    async fn stopped_pipes_move_through_their_states_and_survive_reopening() {
        let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
        let m = manager(store.clone());
        let rec = m.create("a", def("a", "STOPPED"), Origin::Api).unwrap();
        assert_eq!(rec.current_state, CurrentState::Creating);
        wait_state(&m, "a", CurrentState::Stopped).await;
        assert!(matches!(
            m.create("a", def("a", "STOPPED"), Origin::Api),
            Err(ControlError::Conflict { .. })
        ));
        // Start: the broker is unreachable, so the pipe stays STARTING.
        assert_eq!(m.start("a").unwrap().current_state, CurrentState::Starting);
        assert_eq!(m.get("a").unwrap().desired_state, DesiredState::Running);
        assert_eq!(m.stop("a").unwrap().current_state, CurrentState::Stopping);
        wait_state(&m, "a", CurrentState::Stopped).await;
        m.shutdown(Duration::from_secs(10)).await;

        let m = manager(store.clone());
        let rec = m.get("a").unwrap();
        assert_eq!(rec.desired_state, DesiredState::Stopped);
        assert_eq!(rec.current_state, CurrentState::Stopped);
        let del = m.delete("a").unwrap();
        assert_eq!(
            (del.desired_state, del.current_state),
            (DesiredState::Deleted, CurrentState::Deleting)
        );
        assert!(matches!(m.start("a"), Err(ControlError::Conflict { .. })));
        for _ in 0..200 {
            if m.get("a").is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(m.get("a"), Err(ControlError::NotFound(_))));
        assert!(store.load_all().unwrap().is_empty());
        m.shutdown(Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn an_interrupted_delete_finishes_at_boot_and_running_pipes_restart() {
        let store: Arc<dyn PipeStore> = Arc::new(MemoryStore::new());
        let mut gone = crate::store::sample("gone");
        gone.desired_state = DesiredState::Deleted;
        gone.current_state = CurrentState::Deleting;
        store.put(&gone).unwrap();
        let mut run = crate::store::sample("run");
        run.current_state = CurrentState::Running;
        store.put(&run).unwrap();
        let m = manager(store.clone());
        assert!(m.get("gone").is_err());
        assert_eq!(m.get("run").unwrap().current_state, CurrentState::Starting);
        m.shutdown(Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn tags_change_extensions_and_invalid_ones_are_refused() {
        let m = manager(Arc::new(MemoryStore::new()));
        m.create("a", def("a", "STOPPED"), Origin::Api).unwrap();
        let bad = BTreeMap::from([("sluice:HttpDelivery".to_string(), "SOMETIMES".to_string())]);
        assert!(matches!(m.tag("a", &bad), Err(ControlError::Validation(_))));
        let good = BTreeMap::from([("sluice:HttpDelivery".to_string(), "BATCH".to_string())]);
        let rec = m.tag("a", &good).unwrap();
        assert_eq!(rec.definition.tags.unwrap()["sluice:HttpDelivery"], "BATCH");
        let rec = m.untag("a", &["sluice:HttpDelivery".to_string()]).unwrap();
        assert_eq!(rec.definition.tags, None);
        m.shutdown(Duration::from_secs(10)).await;
    }
}
