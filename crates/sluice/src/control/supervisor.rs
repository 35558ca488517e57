//! One pipe's supervisor on this instance: it receives each new version of the pipe's record
//! ([`Target`]), brings the pipe's runtime ([`run_pipe`]) to what the record asks, and reports
//! where the runtime is ([`Phase`], with the partitions it owns while running) to the
//! [`Observer`]. Commands are handled one at a time, and a runtime is stopped (its batches in
//! flight finish and commit) before the next one starts, so a late report of a replaced runtime
//! cannot be mistaken for the new one's.
//!
//! It also shows the pipe's state as this instance sees it (its record and its own observation,
//! through [`state::derive`]) in `sluice_pipe_state`, and removes the pipe's metric series and
//! last execution errors once the pipe has left this instance (deleted, or gone from the store)
//! and its runtime stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::observer::{Note, Observer};
use super::state;
use crate::metrics::Metrics;
use crate::model::ValidationContext;
use crate::runtime::{run_pipe, PipeStatus, RuntimeError, RuntimeOptions};
use crate::store::{DesiredState, Observation, Observed, Phase, PipeRecord};

/// What a supervisor is told.
#[derive(Debug)]
pub(super) enum Order {
    /// Carry out a version of the record.
    CarryOut(Box<Target>),
    /// The pipe is gone from the store: stop its runtime, remove its series and end.
    Leave,
}

/// A version of the pipe's record to carry out.
#[derive(Debug)]
pub(super) struct Target {
    /// The record.
    pub record: PipeRecord,
    /// The first target after this instance started (a runtime it starts shows as STARTING).
    pub booted: bool,
}

/// What every supervisor of this instance shares.
#[derive(Debug)]
pub(super) struct Runner {
    pub instance: String,
    /// Consumers join with a `group.instance.id` of this instance and the pipe.
    pub static_membership: bool,
    pub ctx: ValidationContext,
    pub metrics: Arc<Metrics>,
    pub options: RuntimeOptions,
    pub observer: Observer,
    pub shutdown: CancellationToken,
}

/// One pipe's supervisor: its runtime, and what it last carried out.
pub(super) struct Supervisor {
    runner: Arc<Runner>,
    name: String,
    /// The record version carried out.
    version: u64,
    /// The `launch_version` of the running runtime's start.
    launched: Option<u64>,
    running: Option<Running>,
    phase: Phase,
    /// The partitions the running runtime owns (reported with [`Phase::Running`]).
    partitions: Vec<i32>,
    /// The record carried out (what `sluice_pipe_state` is derived from).
    record: Option<PipeRecord>,
}

impl Supervisor {
    pub fn new(runner: Arc<Runner>, name: &str) -> Supervisor {
        Supervisor {
            runner,
            name: name.to_string(),
            version: 0,
            launched: None,
            running: None,
            phase: Phase::Stopped,
            partitions: Vec::new(),
            record: None,
        }
    }

    /// Carry out targets until told to leave (the pipe is gone), the sender is dropped (a new
    /// incarnation of the name has its own supervisor) or the process shuts down; each way the
    /// runtime is stopped. Shutdown reports nothing: the stored states stay as they are for the
    /// next start.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Order>) {
        let leave = loop {
            tokio::select! {
                biased;
                _ = self.runner.shutdown.cancelled() => break false,
                order = rx.recv() => match order {
                    Some(Order::CarryOut(t)) => self.apply(*t).await,
                    Some(Order::Leave) => break true,
                    None => break false,
                },
                event = next_event(&mut self.running) => self.on_event(event),
            }
        };
        stop_runtime(self.running.take()).await;
        if leave {
            self.forget();
        }
    }

    /// The pipe has left this instance: its metric series and its last execution errors go.
    fn forget(&self) {
        self.runner.metrics.remove_pipe(&self.name);
        self.runner.options.recent_errors.remove(&self.name);
    }

    async fn apply(&mut self, t: Target) {
        let record = t.record;
        self.version = record.version;
        self.record = Some(record.clone());
        match record.desired_state {
            DesiredState::Deleted | DesiredState::Stopped => {
                self.stop().await;
                let then_remove = record.desired_state == DesiredState::Deleted;
                if then_remove {
                    // The pipe has left this instance: its series go before the record can.
                    self.forget();
                }
                self.report(Phase::Stopped, then_remove);
            }
            DesiredState::Running if self.launched == Some(record.launch_version) => {
                // Only other tags changed: the runtime goes on, at the new version.
                self.report(self.phase.clone(), false);
            }
            DesiredState::Running => self.start(&record, t.booted).await,
        }
    }

    async fn start(&mut self, record: &PipeRecord, booted: bool) {
        self.stop().await;
        self.launched = Some(record.launch_version);
        match super::compile(&record.definition, &self.runner.ctx) {
            Ok(spec) => {
                self.report(Phase::starting(booted), false);
                self.running = Some(self.launch(spec));
            }
            Err(e) => {
                let reason =
                    format!("the stored definition is not valid for this version of Sluice: {e}");
                self.report(state::failed(&reason, false), false);
            }
        }
    }

    async fn stop(&mut self) {
        stop_runtime(self.running.take()).await;
        self.launched = None;
    }

    fn on_event(&mut self, event: RuntimeEvent) {
        let was_running = self.phase == Phase::Running;
        let owned = match &event {
            RuntimeEvent::Status(PipeStatus::Running { partitions }) => Some(partitions.clone()),
            _ => None,
        };
        let phase = match event {
            RuntimeEvent::Status(status) => state::phase_of(&status, &self.phase),
            RuntimeEvent::Ended(result) => {
                self.running = None;
                match result {
                    // Its failure was reported already (with whether it had been running).
                    _ if matches!(self.phase, Phase::Failed { .. }) => None,
                    Ok(()) => Some(Phase::Stopped),
                    Err(reason) => Some(state::failed(&reason, was_running)),
                }
            }
        };
        // A rebalance while running changes only the partitions: reported too.
        let moved = match owned {
            Some(o) if o != self.partitions => {
                self.partitions = o;
                true
            }
            _ => false,
        };
        if let Some(p) = phase {
            if p != self.phase || moved {
                self.report(p, false);
            }
        }
    }

    fn report(&mut self, phase: Phase, then_remove: bool) {
        if phase != self.phase {
            let reason = match &phase {
                Phase::Failed { reason, .. }
                | Phase::Starting {
                    waiting: Some(reason),
                    ..
                } => reason.as_str(),
                _ => "",
            };
            tracing::info!(pipe = %self.name, version = self.version, phase = phase.as_str(),
                reason, "pipe runtime");
        }
        if phase != Phase::Running {
            self.partitions.clear();
        }
        self.phase = phase.clone();
        let observation = Observation {
            pipe: self.name.clone(),
            instance: self.runner.instance.clone(),
            version: self.version,
            phase,
            partitions: self.partitions.clone(),
        };
        if !then_remove {
            self.show_state(&observation);
        }
        self.runner.observer.send(Note {
            observation,
            then_remove,
        });
    }

    /// Show in `sluice_pipe_state` the state this instance's own observation gives the record.
    fn show_state(&self, observation: &Observation) {
        let Some(record) = &self.record else { return };
        let mine = Observed {
            live: BTreeMap::from([(observation.instance.clone(), Duration::ZERO)]),
            observations: vec![observation.clone()],
        };
        let (current, _) = state::derive(record, &mine);
        self.runner
            .metrics
            .set_pipe_state(&self.name, current.as_str());
    }

    fn launch(&self, spec: crate::model::PipeSpec) -> Running {
        let token = self.runner.shutdown.child_token();
        let (tx, rx) = watch::channel(PipeStatus::Starting);
        let options = RuntimeOptions {
            client_id: format!("sluice-{}-{}", spec.name, self.runner.instance),
            group_instance_id: self
                .runner
                .static_membership
                .then(|| super::group_instance_id(&self.runner.instance, &spec.name)),
            ..self.runner.options.clone()
        };
        let join = tokio::spawn(run_pipe(
            spec,
            self.runner.metrics.clone(),
            options,
            token.clone(),
            tx,
        ));
        Running {
            token,
            join: Some(join),
            status: rx,
        }
    }
}

struct Running {
    token: CancellationToken,
    join: Option<JoinHandle<Result<(), RuntimeError>>>,
    status: watch::Receiver<PipeStatus>,
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
