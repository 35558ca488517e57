//! The control plane's core: the [`PipeManager`] serves the API's operations on the store
//! ([`crate::store`]) and keeps this instance's supervisors ([`supervisor`]) in step with it.
//!
//! - **Writes are conditional.** An operation reads the pipe's record, applies the API's rules
//!   and writes it back only if its version is still the one read; a lost race is tried again
//!   a few times, then answered `ConflictException`. A create inserts only if the name is free.
//! - **Every instance runs every RUNNING pipe.** Each write is announced to every instance
//!   (store events) and every instance also re-reads all records periodically ([`sync`]); each
//!   new version goes to the pipe's supervisor, which brings the runtime there and reports where
//!   it is ([`observer`]). Kafka's consumer group spreads the partitions over the instances.
//! - **What the API shows is derived**: `CurrentState` and `StateReason` from the record and the
//!   live instances' observations ([`state::derive`]).
//!
//! Also here: the `serve` configuration ([`config`]) and pipe files ([`files`]).

pub mod config;
pub mod files;
mod observer;
pub mod state;
mod supervisor;
mod sync;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::model::update::{self, with_tag_extensions};
use crate::model::{validate, PipeDefinition, PipeSpec, ValidationContext, ValidationError};
use crate::runtime::RuntimeOptions;
use crate::store::{
    Change, CurrentState, DesiredState, Observed, Origin, PipeRecord, PipeStore, StoreError,
};
use observer::Observer;
use supervisor::{Order, Runner, Supervisor, Target};

/// Why a control-plane request failed. Each maps to one AWS error.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No pipe of that name (`NotFoundException`).
    #[error("Pipe {0} does not exist.")]
    NotFound(String),
    /// The request conflicts with the pipe's state or existence, or lost a race with another
    /// request (`ConflictException`).
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
    /// The store already holds `max_pipes` pipes (`ServiceQuotaExceededException`).
    #[error("Pipe {name} cannot be created: the limit of {max} pipes is reached (max_pipes in the serve config).")]
    QuotaExceeded {
        /// The pipe's name.
        name: String,
        /// The limit.
        max: usize,
    },
    /// The store failed or cannot be reached (`InternalException`).
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

    fn conflict(name: &str, message: String) -> ControlError {
        ControlError::Conflict {
            name: name.to_string(),
            message,
        }
    }
}

/// How this instance takes part in the cluster of instances sharing its store (a cluster of one
/// with the embedded store).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// This instance's id (`--instance-id`); it labels observations, metrics and logs.
    pub instance_id: String,
    /// How often this instance tells the store it is alive.
    pub heartbeat_interval: Duration,
    /// An instance whose last heartbeat is older no longer counts.
    pub live_window: Duration,
    /// How often every record is read again, in case an announcement was missed.
    pub resync_interval: Duration,
    /// How many pipes the store may hold (`max_pipes` of the serve config): `CreatePipe` beyond
    /// it is `ServiceQuotaExceededException`. Soft: creates racing on several instances may
    /// pass it by one each.
    pub max_pipes: usize,
    /// Whether pipe consumers are static group members (`static_membership` of the serve
    /// config): `group.instance.id` = instance id + pipe name (see [`group_instance_id`]).
    pub static_membership: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            instance_id: "sluice".into(),
            heartbeat_interval: Duration::from_secs(2),
            live_window: Duration::from_secs(15),
            resync_interval: Duration::from_secs(2),
            max_pipes: DEFAULT_MAX_PIPES,
            static_membership: true,
        }
    }
}

/// A pipe as the API shows it: the record and its derived state.
#[derive(Debug, Clone, PartialEq)]
pub struct PipeView {
    /// What is stored.
    pub record: PipeRecord,
    /// `CurrentState`.
    pub current_state: CurrentState,
    /// `StateReason`, when the pipe failed.
    pub state_reason: Option<String>,
}

/// AWS's quota of pipes per account and region.
pub const DEFAULT_MAX_PIPES: usize = 1000;

/// How many times a write that lost a race to another request is tried.
const WRITE_ATTEMPTS: usize = 5;

/// What this instance's supervisor of one pipe was last sent.
struct Local {
    tx: mpsc::UnboundedSender<Order>,
    /// (creation time, version) of the record sent: a newer incarnation or version replaces it.
    sent: (u64, u64),
}

struct Inner {
    store: Arc<dyn PipeStore>,
    runner: Arc<Runner>,
    cluster: ClusterOptions,
    local: Mutex<BTreeMap<String, Local>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Serves the API on the store and runs this instance's share of the pipes.
#[derive(Clone)]
pub struct PipeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PipeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeManager")
            .field("store", &self.inner.store)
            .field("instance", &self.inner.cluster.instance_id)
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

/// The `group.instance.id` of `pipe`'s consumer on `instance` (KIP-345 static membership): an
/// instance that restarts within the session timeout takes its partitions back, and nobody
/// else's move. Kafka allows `[A-Za-z0-9._-]` and 249 characters: others become `_` (the
/// default instance id holds a `:`).
pub fn group_instance_id(instance: &str, pipe: &str) -> String {
    format!("{instance}-{pipe}")
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .take(249)
        .collect()
}

/// Validate a definition as the engine will run it (`sluice:` tags applied).
pub(crate) fn compile(
    def: &PipeDefinition,
    ctx: &ValidationContext,
) -> Result<PipeSpec, ValidationError> {
    validate(&with_tag_extensions(def)?, ctx)
}

/// What a write does to the record it read: `Some` changes it (the answer shows the change's
/// transitional state when `transitional`), `None` leaves it as it is.
struct Edit {
    record: PipeRecord,
    transitional: bool,
}

impl PipeManager {
    /// Join the store as `cluster.instance_id` and bring every stored pipe to its desired state
    /// on this instance: RUNNING pipes start (STARTING), deletions cut short are finished.
    /// Must be called inside a tokio runtime.
    pub async fn open(
        store: Arc<dyn PipeStore>,
        ctx: ValidationContext,
        metrics: Arc<Metrics>,
        options: RuntimeOptions,
        cluster: ClusterOptions,
    ) -> Result<PipeManager, StoreError> {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        // Observations of an earlier life of this instance id are history.
        store.leave(&cluster.instance_id).await?;
        store.heartbeat(&cluster.instance_id).await?;
        let events = store.events();
        let records = store.list().await?;
        let observer =
            Observer::spawn(store.clone(), cluster.live_window, &tasks, shutdown.clone());
        let runner = Arc::new(Runner {
            instance: cluster.instance_id.clone(),
            static_membership: cluster.static_membership,
            ctx,
            metrics,
            options,
            observer,
            shutdown: shutdown.clone(),
        });
        let manager = PipeManager {
            inner: Arc::new(Inner {
                store,
                runner,
                cluster,
                local: Mutex::new(BTreeMap::new()),
                shutdown,
                tasks,
            }),
        };
        for record in records {
            manager.carry_out(record, true);
        }
        sync::spawn(&manager, events);
        Ok(manager)
    }

    /// The region and account ARNs are minted with.
    pub fn context(&self) -> &ValidationContext {
        &self.inner.runner.ctx
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.inner.cluster.instance_id
    }

    /// The last execution errors of pipe `name` on this instance, newest first (from its
    /// execution log; none when the log is off or the pipe runs elsewhere).
    pub fn recent_errors(&self, name: &str) -> Vec<crate::execution_log::recent::RecentError> {
        self.inner.runner.options.recent_errors.of(name)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Local>> {
        self.inner.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validate a definition as the engine will run it (`sluice:` tags applied).
    pub fn compile(&self, def: &PipeDefinition) -> Result<PipeSpec, ValidationError> {
        compile(def, &self.inner.runner.ctx)
    }

    /// The ARN of a pipe.
    pub fn arn(&self, name: &str) -> String {
        let ctx = &self.inner.runner.ctx;
        format!("arn:aws:pipes:{}:{}:pipe/{}", ctx.region, ctx.account, name)
    }

    fn view(record: PipeRecord, observed: &Observed) -> PipeView {
        let (current_state, state_reason) = state::derive(&record, observed);
        PipeView {
            record,
            current_state,
            state_reason,
        }
    }

    /// A pipe, as the store holds it now.
    pub async fn get(&self, name: &str) -> Result<PipeView, ControlError> {
        let store = &self.inner.store;
        let record = store
            .get(name)
            .await?
            .ok_or_else(|| ControlError::NotFound(name.to_string()))?;
        let observed = store
            .observed(Some(name), self.inner.cluster.live_window)
            .await?;
        Ok(Self::view(record, &observed))
    }

    /// Every pipe, ordered by name.
    pub async fn list(&self) -> Result<Vec<PipeView>, ControlError> {
        let store = &self.inner.store;
        let records = store.list().await?;
        let observed = store.observed(None, self.inner.cluster.live_window).await?;
        Ok(records
            .into_iter()
            .map(|r| Self::view(r, &observed))
            .collect())
    }

    /// The live instances and their observations of the pipes they run (the console's Instances).
    pub async fn observed(&self) -> Result<Observed, ControlError> {
        let live = self.inner.cluster.live_window;
        Ok(self.inner.store.observed(None, live).await?)
    }

    /// Create a pipe. It answers CREATING and moves on to RUNNING, STOPPED (if so desired) or
    /// CREATE_FAILED. Of two creates of one name (on any instances) exactly one succeeds.
    pub async fn create(
        &self,
        name: &str,
        mut def: PipeDefinition,
        origin: Origin,
    ) -> Result<PipeView, ControlError> {
        def.name = Some(name.to_string());
        self.compile(&def)?;
        let max = self.inner.cluster.max_pipes;
        if self.inner.store.list().await?.len() >= max {
            return Err(ControlError::QuotaExceeded {
                name: name.to_string(),
                max,
            });
        }
        let now = now_ms();
        let record = PipeRecord {
            name: name.to_string(),
            desired_state: desired_of(&def),
            definition: def,
            change: Change::Create,
            version: 1,
            launch_version: 1,
            creation_time_ms: now,
            last_modified_time_ms: now,
            origin,
        };
        if !self.inner.store.insert(&record).await? {
            return Err(ControlError::conflict(
                name,
                format!("Pipe {name} already exists."),
            ));
        }
        tracing::info!(pipe = %name, desired = record.desired_state.as_str(), "pipe created");
        self.carry_out(record.clone(), false);
        Ok(PipeView {
            record,
            current_state: CurrentState::Creating,
            state_reason: None,
        })
    }

    /// Apply an `UpdatePipe` body: merged by [`update::merge_update`] into the stored definition,
    /// validated, stored; a pipe that should run restarts with the new definition (UPDATING ->
    /// RUNNING). After a lost race the body is merged into the winner's definition.
    pub async fn update(
        &self,
        name: &str,
        body: &PipeDefinition,
    ) -> Result<PipeView, ControlError> {
        let desired = body.desired_state.as_deref().and_then(DesiredState::parse);
        self.write(name, |view, version| {
            let merged = update::merge_update(&view.record.definition, body)?;
            self.compile(&merged)?;
            Ok(Some(redefine(&view.record, merged, None, desired, version)))
        })
        .await
    }

    /// Replace a pipe's definition whole (pipe files are the source of truth for their pipes, so
    /// no field is immutable for them). `origin` and `desired` replace the stored ones when given.
    pub async fn replace(
        &self,
        name: &str,
        mut def: PipeDefinition,
        origin: Option<Origin>,
        desired: Option<DesiredState>,
    ) -> Result<PipeView, ControlError> {
        def.name = Some(name.to_string());
        self.compile(&def)?;
        self.write(name, |view, version| {
            let stored = &view.record;
            let same = stored.definition == def
                && origin.as_ref().is_none_or(|o| *o == stored.origin)
                && desired.is_none_or(|d| d == stored.desired_state);
            if same {
                // Another instance applied the same file first.
                return Ok(None);
            }
            let r = redefine(stored, def.clone(), origin.clone(), desired, version);
            Ok(Some(r))
        })
        .await
    }

    /// `StartPipe`: STARTING -> RUNNING. Starting a pipe that runs or is on its way changes nothing.
    pub async fn start(&self, name: &str) -> Result<PipeView, ControlError> {
        self.write(name, |view, version| {
            let r = &view.record;
            if r.desired_state == DesiredState::Running
                && (view.current_state == CurrentState::Running || view.current_state.is_starting())
            {
                return Ok(None);
            }
            self.compile(&r.definition)?;
            let mut next = r.clone();
            next.desired_state = DesiredState::Running;
            next.change = Change::Start;
            next.launch_version = version;
            Ok(Some(edit(next, true)))
        })
        .await
    }

    /// `StopPipe`: STOPPING -> STOPPED.
    pub async fn stop(&self, name: &str) -> Result<PipeView, ControlError> {
        self.write(name, |view, _| {
            let r = &view.record;
            if r.desired_state == DesiredState::Stopped
                && matches!(
                    view.current_state,
                    CurrentState::Stopped | CurrentState::Stopping
                )
            {
                return Ok(None);
            }
            let mut next = r.clone();
            next.desired_state = DesiredState::Stopped;
            next.change = Change::Stop;
            Ok(Some(edit(next, true)))
        })
        .await
    }

    /// `DeletePipe`: DELETING (desired DELETED); the pipe disappears once no live instance runs it.
    pub async fn delete(&self, name: &str) -> Result<PipeView, ControlError> {
        self.write(name, |view, _| {
            let mut next = view.record.clone();
            next.desired_state = DesiredState::Deleted;
            next.change = Change::Delete;
            Ok(Some(edit(next, true)))
        })
        .await
    }

    /// `TagResource`: add or replace tags. Changing a `sluice:` tag of a pipe that should run
    /// restarts it with the new extensions (UPDATING).
    pub async fn tag(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<PipeView, ControlError> {
        update::check_tags("tags", tags)?;
        self.retag(name, |all| all.extend(tags.clone())).await
    }

    /// `UntagResource`: remove tags (missing keys are ignored).
    pub async fn untag(&self, name: &str, keys: &[String]) -> Result<PipeView, ControlError> {
        self.retag(name, |all| {
            for k in keys {
                all.remove(k);
            }
        })
        .await
    }

    async fn retag(
        &self,
        name: &str,
        change: impl Fn(&mut BTreeMap<String, String>),
    ) -> Result<PipeView, ControlError> {
        self.write(name, |view, version| {
            let mut def = view.record.definition.clone();
            let mut all = def.tags.clone().unwrap_or_default();
            change(&mut all);
            update::check_tags("tags", &all)?;
            def.tags = (!all.is_empty()).then_some(all);
            update::check_fixed_extensions(&view.record.definition, &def)?;
            self.compile(&def)?;
            let mut next = view.record.clone();
            let restart = !update::same_extensions(&next.definition, &def)
                && next.desired_state == DesiredState::Running;
            next.definition = def;
            if restart {
                next.change = Change::Update;
                next.launch_version = version;
            }
            Ok(Some(edit(next, restart)))
        })
        .await
    }

    /// A conditional write: read the record, let `f` edit it (given the version it will get),
    /// store it if nobody wrote in between, else try again (then `ConflictException`). The
    /// written record goes to this instance's supervisor at once; the others hear of it.
    async fn write(
        &self,
        name: &str,
        mut f: impl FnMut(&PipeView, u64) -> Result<Option<Edit>, ControlError>,
    ) -> Result<PipeView, ControlError> {
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                let jitter = rand::random_range(5..30);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let view = self.get(name).await?;
            if view.current_state == CurrentState::Deleting {
                return Err(ControlError::conflict(
                    name,
                    format!("Pipe {name} is being deleted."),
                ));
            }
            let version = view.record.version + 1;
            let Some(Edit {
                mut record,
                transitional,
            }) = f(&view, version)?
            else {
                return Ok(view);
            };
            record.version = version;
            record.last_modified_time_ms = now_ms().max(view.record.last_modified_time_ms);
            if self.inner.store.replace(&record).await? {
                self.carry_out(record.clone(), false);
                let current_state = if transitional {
                    record.change.transitional()
                } else {
                    view.current_state
                };
                return Ok(PipeView {
                    record,
                    current_state,
                    state_reason: view.state_reason.filter(|_| !transitional),
                });
            }
            tracing::debug!(pipe = %name, attempt, "lost a write race; trying again");
        }
        Err(ControlError::conflict(
            name,
            format!("Pipe {name} was changed by another request at the same time; try again."),
        ))
    }

    /// Hand a record to this instance's supervisor of the pipe (started if needed), unless it
    /// was sent a newer one. A record of a new incarnation of the name replaces the supervisor.
    fn carry_out(&self, record: PipeRecord, booted: bool) {
        let key = (record.creation_time_ms, record.version);
        let mut local = self.local();
        if let Some(l) = local.get(&record.name) {
            if key <= l.sent {
                return;
            }
            if key.0 != l.sent.0 {
                local.remove(&record.name);
            }
        }
        let entry = local.entry(record.name.clone()).or_insert_with(|| Local {
            tx: self.spawn_supervisor(&record.name),
            sent: (0, 0),
        });
        entry.sent = key;
        let _ = entry
            .tx
            .send(Order::CarryOut(Box::new(Target { record, booted })));
    }

    /// The pipe is gone from the store: stop its supervisor (and runtime) here; its metric series
    /// go once the runtime has stopped.
    fn forget(&self, name: &str) {
        if let Some(l) = self.local().remove(name) {
            let _ = l.tx.send(Order::Leave);
            tracing::debug!(pipe = %name, "pipe gone from the store");
        }
    }

    fn spawn_supervisor(&self, name: &str) -> mpsc::UnboundedSender<Order> {
        let (tx, rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(self.inner.runner.clone(), name);
        self.inner.tasks.spawn(supervisor.run(rx));
        tx
    }

    /// Stop every runtime (each finishes its batches in flight, bounded by the runtime's shutdown
    /// timeout), wait up to `timeout` for them, and leave the cluster. Stored records are left as
    /// they are, so the next start brings every pipe back to its desired state.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(timeout, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("pipes did not stop within {timeout:?}");
        }
        if let Err(e) = self.inner.store.leave(self.instance_id()).await {
            tracing::warn!(error = %e, "cannot tell the store this instance left");
        }
    }
}

fn edit(record: PipeRecord, transitional: bool) -> Edit {
    Edit {
        record,
        transitional,
    }
}

/// A record with a new definition (UPDATING), which restarts a pipe that should run.
fn redefine(
    stored: &PipeRecord,
    def: PipeDefinition,
    origin: Option<Origin>,
    desired: Option<DesiredState>,
    version: u64,
) -> Edit {
    let mut next = stored.clone();
    if let Some(d) = desired {
        next.desired_state = d;
    }
    next.definition = def;
    if let Some(o) = origin {
        next.origin = o;
    }
    next.change = Change::Update;
    next.launch_version = version;
    edit(next, true)
}

pub(crate) fn desired_of(def: &PipeDefinition) -> DesiredState {
    def.desired_state
        .as_deref()
        .and_then(DesiredState::parse)
        .unwrap_or(DesiredState::Running)
}

#[cfg(test)]
mod tests;
