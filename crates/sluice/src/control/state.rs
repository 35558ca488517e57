//! Pure rules between what is stored and what is shown: a pipe's `CurrentState` and
//! `StateReason` derived from its record and the observations of the live instances
//! ([`derive`]), and the [`Phase`] a runtime report means ([`phase_of`]).

use crate::runtime::PipeStatus;
use crate::store::{Change, CurrentState, DesiredState, Observed, Phase, PipeRecord};

/// A pipe's `CurrentState` and `StateReason`:
///
/// - desired DELETED: DELETING (until the record is removed);
/// - a live instance that failed at the version asked for: the failure state of the change
///   (CREATE_FAILED, START_FAILED, UPDATE_FAILED), or STOPPED when its runtime had been running,
///   as AWS stops a pipe that fails for a reason only the user can fix; the reason is that
///   instance's (the first by id, so every instance shows the same);
/// - desired RUNNING: RUNNING once every live instance runs the version asked for; before that
///   the change's transitional state (CREATING, UPDATING, STARTING), or STARTING when the only
///   instances still on their way are ones that (re)started; the reason is then what the first
///   of those instances (by id) waits for, if it says (brokers that do not answer, a topic not
///   created yet);
/// - desired STOPPED: STOPPED once no live instance has a runtime of it; before that STOPPING
///   (CREATING or UPDATING when that was the change).
pub fn derive(record: &PipeRecord, observed: &Observed) -> (CurrentState, Option<String>) {
    let v = record.version;
    if record.desired_state == DesiredState::Deleted {
        return (CurrentState::Deleting, None);
    }
    let mut mine: Vec<_> = observed.of(&record.name).collect();
    mine.sort_by(|a, b| a.instance.cmp(&b.instance));
    let failure = mine
        .iter()
        .filter(|o| o.version == v)
        .find_map(|o| match &o.phase {
            Phase::Failed {
                reason,
                after_running,
            } => Some((reason.clone(), *after_running)),
            _ => None,
        });
    if let Some((reason, after_running)) = failure {
        let state = if after_running {
            CurrentState::Stopped
        } else {
            record.change.failed()
        };
        return (state, Some(reason));
    }
    if record.desired_state == DesiredState::Stopped {
        let state = if !mine.iter().any(|o| o.phase.is_active()) {
            CurrentState::Stopped
        } else {
            match record.change {
                Change::Create => CurrentState::Creating,
                Change::Update => CurrentState::Updating,
                _ => CurrentState::Stopping,
            }
        };
        return (state, None);
    }
    let at_v = |id: &String| mine.iter().find(|o| &o.instance == id && o.version == v);
    let pending: Vec<_> = observed
        .live
        .keys()
        .filter(|id| at_v(id).is_none_or(|o| o.phase != Phase::Running))
        .collect();
    if pending.is_empty() && !observed.live.is_empty() {
        return (CurrentState::Running, None);
    }
    let rebooting = !pending.is_empty()
        && pending.iter().all(|id| {
            at_v(id).is_some_and(|o| matches!(o.phase, Phase::Starting { booted: true, .. }))
        });
    let state = match record.change {
        _ if rebooting => CurrentState::Starting,
        Change::Create => CurrentState::Creating,
        Change::Update => CurrentState::Updating,
        _ => CurrentState::Starting,
    };
    let waiting = pending
        .iter()
        .find_map(|id| match at_v(id).map(|o| &o.phase) {
            Some(Phase::Starting {
                waiting: Some(reason),
                ..
            }) => Some(reason.clone()),
            _ => None,
        });
    (state, waiting)
}

/// The phase a runtime report puts the runtime in `current` in (`None`: no change).
///
/// - Joining the group (`Running`) ends the start.
/// - While starting, `Waiting` says why (brokers that do not answer, a topic still missing: the
///   `StateReason` [`derive`] shows) and `Starting` clears it again; the phase stays starting.
/// - A failure keeps whether the runtime had reached `Running` (then the pipe shows STOPPED).
pub fn phase_of(status: &PipeStatus, current: &Phase) -> Option<Phase> {
    let was_running = *current == Phase::Running;
    match (status, current) {
        (PipeStatus::Starting, Phase::Starting { booted, .. }) => Some(Phase::starting(*booted)),
        (PipeStatus::Waiting { reason }, Phase::Starting { booted, .. }) => Some(Phase::Starting {
            booted: *booted,
            waiting: Some(truncate_reason(reason)),
        }),
        (PipeStatus::Starting | PipeStatus::Waiting { .. }, _) => None,
        (PipeStatus::Running { .. }, _) => Some(Phase::Running),
        (PipeStatus::Failed { reason }, _) => Some(failed(reason, was_running)),
        (PipeStatus::Stopped, _) => Some(Phase::Stopped),
    }
}

/// A failed phase with the reason cut to AWS's length.
pub fn failed(reason: &str, was_running: bool) -> Phase {
    Phase::Failed {
        reason: truncate_reason(reason),
        after_running: was_running,
    }
}

/// `StateReason` is at most 512 characters.
pub fn truncate_reason(reason: &str) -> String {
    const MAX: usize = 512;
    if reason.chars().count() <= MAX {
        reason.to_string()
    } else {
        let mut s: String = reason.chars().take(MAX - 3).collect();
        s.push_str("...");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sample, Observation};
    use std::time::Duration;

    fn record(desired: DesiredState, change: Change, version: u64) -> PipeRecord {
        PipeRecord {
            desired_state: desired,
            change,
            version,
            ..sample("p")
        }
    }

    fn seen(live: &[&str], obs: &[(&str, u64, Phase)]) -> Observed {
        Observed {
            live: live
                .iter()
                .map(|s| (s.to_string(), Duration::ZERO))
                .collect(),
            observations: obs
                .iter()
                .filter(|(i, _, _)| live.contains(i))
                .map(|(i, v, p)| Observation {
                    pipe: "p".into(),
                    instance: i.to_string(),
                    version: *v,
                    phase: p.clone(),
                    partitions: Vec::new(),
                })
                .collect(),
        }
    }

    use CurrentState as C;
    use DesiredState as D;
    const RUN: Phase = Phase::Running;
    const START: Phase = Phase::Starting {
        booted: false,
        waiting: None,
    };
    const BOOT: Phase = Phase::Starting {
        booted: true,
        waiting: None,
    };

    #[test]
    fn running_needs_every_live_instance_at_the_version_asked_for() {
        let r = record(D::Running, Change::Update, 3);
        let all = seen(&["a", "b"], &[("a", 3, RUN), ("b", 3, RUN)]);
        assert_eq!(derive(&r, &all), (C::Running, None));
        let one_behind = seen(&["a", "b"], &[("a", 3, RUN), ("b", 2, RUN)]);
        assert_eq!(derive(&r, &one_behind).0, C::Updating);
        let one_silent = seen(&["a", "b"], &[("a", 3, RUN)]);
        assert_eq!(derive(&r, &one_silent).0, C::Updating);
        // A dead instance (not live) no longer counts.
        let b_dead = seen(&["a"], &[("a", 3, RUN), ("b", 2, START)]);
        assert_eq!(derive(&r, &b_dead), (C::Running, None));
        // Nobody live: not RUNNING.
        assert_eq!(derive(&r, &seen(&[], &[])).0, C::Updating);
        let created = record(D::Running, Change::Create, 1);
        assert_eq!(
            derive(&created, &seen(&["a"], &[("a", 1, START)])).0,
            C::Creating
        );
        let started = record(D::Running, Change::Start, 4);
        assert_eq!(derive(&started, &seen(&["a"], &[])).0, C::Starting);
    }

    #[test]
    fn instances_that_restart_show_starting() {
        let r = record(D::Running, Change::Create, 1);
        let rebooting = seen(&["a", "b"], &[("a", 1, RUN), ("b", 1, BOOT)]);
        assert_eq!(derive(&r, &rebooting).0, C::Starting);
        let new_change = seen(&["a", "b"], &[("a", 1, START), ("b", 1, BOOT)]);
        assert_eq!(derive(&r, &new_change).0, C::Creating);
    }

    #[test]
    fn a_failure_at_the_version_asked_for_names_its_reason() {
        let failed_early = Phase::Failed {
            reason: "authentication failed".into(),
            after_running: false,
        };
        let failed_late = Phase::Failed {
            reason: "the source topic t does not exist".into(),
            after_running: true,
        };
        for (change, state) in [
            (Change::Create, C::CreateFailed),
            (Change::Start, C::StartFailed),
            (Change::Update, C::UpdateFailed),
        ] {
            let r = record(D::Running, change, 2);
            let s = seen(
                &["a", "b"],
                &[("a", 2, RUN), ("b", 2, failed_early.clone())],
            );
            assert_eq!(
                derive(&r, &s),
                (state, Some("authentication failed".to_string()))
            );
        }
        let r = record(D::Running, Change::Create, 2);
        let s = seen(&["a"], &[("a", 2, failed_late)]);
        assert_eq!(derive(&r, &s).0, C::Stopped);
        // A failure at an older version is history.
        let s = seen(&["a"], &[("a", 1, failed_early)]);
        assert_eq!(derive(&r, &s), (C::Creating, None));
    }

    #[test]
    fn stopped_once_no_live_instance_runs_it() {
        let r = record(D::Stopped, Change::Stop, 5);
        assert_eq!(
            derive(
                &r,
                &seen(&["a", "b"], &[("a", 5, Phase::Stopped), ("b", 4, RUN)])
            )
            .0,
            C::Stopping
        );
        assert_eq!(
            derive(&r, &seen(&["a", "b"], &[("a", 5, Phase::Stopped)])),
            (C::Stopped, None)
        );
        let created = record(D::Stopped, Change::Create, 1);
        assert_eq!(derive(&created, &seen(&["a"], &[])).0, C::Stopped);
        let updated = record(D::Stopped, Change::Update, 2);
        assert_eq!(
            derive(&updated, &seen(&["a"], &[("a", 1, RUN)])).0,
            C::Updating
        );
        let deleted = record(D::Deleted, Change::Delete, 6);
        assert_eq!(
            derive(&deleted, &seen(&["a"], &[("a", 5, RUN)])).0,
            C::Deleting
        );
    }

    #[test]
    fn a_waiting_pipe_says_why_and_keeps_its_state() {
        let waiting = PipeStatus::Waiting {
            reason: "cannot reach the Kafka cluster at 127.0.0.1:1".into(),
        };
        let phase = phase_of(&waiting, &START).unwrap();
        assert!(matches!(
            &phase,
            Phase::Starting { booted: false, waiting: Some(r) } if r.contains("127.0.0.1:1")
        ));
        let r = record(D::Running, Change::Create, 1);
        let (state, reason) = derive(&r, &seen(&["a"], &[("a", 1, phase.clone())]));
        assert_eq!(state, C::Creating);
        assert!(reason.unwrap().contains("127.0.0.1:1"));
        // Another instance that runs does not hide why this one waits.
        let s = seen(&["a", "b"], &[("a", 1, phase.clone()), ("b", 1, RUN)]);
        assert!(derive(&r, &s).1.unwrap().contains("127.0.0.1:1"));
        // A restarted instance keeps showing STARTING while it waits.
        let booted = phase_of(&waiting, &BOOT).unwrap();
        let started = record(D::Running, Change::Start, 4);
        assert_eq!(
            derive(&started, &seen(&["a"], &[("a", 4, booted)])).0,
            C::Starting
        );
        // `Starting` clears the reason; a running or stopped runtime ignores both.
        assert_eq!(phase_of(&PipeStatus::Starting, &phase), Some(START));
        assert_eq!(
            derive(&r, &seen(&["a"], &[("a", 1, START)])),
            (C::Creating, None)
        );
        assert_eq!(phase_of(&waiting, &RUN), None);
        assert_eq!(phase_of(&waiting, &Phase::Stopped), None);
        // A waiting reason at an older version is history, and a stopping pipe shows none.
        let updated = record(D::Running, Change::Update, 2);
        assert_eq!(
            derive(&updated, &seen(&["a"], &[("a", 1, phase.clone())])),
            (C::Updating, None)
        );
        let stopping = record(D::Stopped, Change::Stop, 2);
        assert_eq!(
            derive(&stopping, &seen(&["a"], &[("a", 2, phase)])),
            (C::Stopping, None)
        );
    }

    #[test]
    fn runtime_reports_map_to_phases() {
        assert_eq!(phase_of(&PipeStatus::Starting, &START), Some(START));
        assert_eq!(phase_of(&PipeStatus::Starting, &RUN), None);
        let running = PipeStatus::Running {
            partitions: vec![1],
        };
        assert_eq!(phase_of(&running, &START), Some(Phase::Running));
        let failed = PipeStatus::Failed {
            reason: "x".repeat(600),
        };
        match phase_of(&failed, &RUN) {
            Some(Phase::Failed {
                reason,
                after_running: true,
            }) => assert_eq!(reason.chars().count(), 512),
            other => panic!("{other:?}"),
        }
    }
}
