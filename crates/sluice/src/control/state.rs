//! The pure transitions between pipe states (the stored [`DesiredState`] and [`CurrentState`],
//! which [`crate::store`] owns): what a request moves a pipe to, and what a report of its runtime
//! ([`PipeStatus`]) moves it to.

use crate::runtime::PipeStatus;
use crate::store::{CurrentState, DesiredState};

/// What a runtime report does to a pipe in `current`: the new state and its reason, or `None`
/// when the report changes nothing.
///
/// - Joining the group (`Running`) completes CREATING/STARTING/UPDATING.
/// - While CREATING/STARTING/UPDATING, `Waiting` shows why in `StateReason` (brokers that do not
///   answer, a topic still missing) and `Starting` clears it again; the state stays.
/// - A failure (`Failed`, or the runtime ending with an error) during CREATING/STARTING/UPDATING is
///   CREATE_FAILED/START_FAILED/UPDATE_FAILED; a failure of a RUNNING pipe stops it (STOPPED) with
///   the reason, as AWS does for errors only the user can fix.
pub fn on_status(
    current: CurrentState,
    status: &PipeStatus,
) -> Option<(CurrentState, Option<String>)> {
    match status {
        PipeStatus::Running if current.is_starting() => Some((CurrentState::Running, None)),
        PipeStatus::Waiting { reason } if current.is_starting() => {
            Some((current, Some(truncate_reason(reason))))
        }
        PipeStatus::Starting if current.is_starting() => Some((current, None)),
        PipeStatus::Failed { reason } => on_failure(current, reason),
        _ => None,
    }
}

/// What the runtime ending with an error does to a pipe in `current`.
pub fn on_failure(current: CurrentState, reason: &str) -> Option<(CurrentState, Option<String>)> {
    let next = match current {
        CurrentState::Creating => CurrentState::CreateFailed,
        CurrentState::Starting => CurrentState::StartFailed,
        CurrentState::Updating => CurrentState::UpdateFailed,
        CurrentState::Running => CurrentState::Stopped,
        _ => return None,
    };
    Some((next, Some(truncate_reason(reason))))
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

/// The state a pipe is put in when the engine starts, from what was stored.
pub fn on_boot(desired: DesiredState, stored: CurrentState) -> CurrentState {
    match desired {
        DesiredState::Running => match stored {
            CurrentState::Creating | CurrentState::CreateFailed => CurrentState::Creating,
            CurrentState::Updating | CurrentState::UpdateFailed => CurrentState::Updating,
            _ => CurrentState::Starting,
        },
        DesiredState::Stopped => CurrentState::Stopped,
        DesiredState::Deleted => CurrentState::Deleting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_the_group_completes_transitions() {
        for c in [
            CurrentState::Creating,
            CurrentState::Starting,
            CurrentState::Updating,
        ] {
            assert_eq!(
                on_status(c, &PipeStatus::Running),
                Some((CurrentState::Running, None))
            );
        }
        assert_eq!(
            on_status(CurrentState::Stopping, &PipeStatus::Running),
            None
        );
        assert_eq!(
            on_status(CurrentState::Running, &PipeStatus::Starting),
            None
        );
    }

    #[test]
    fn a_waiting_pipe_says_why_and_keeps_its_state() {
        let waiting = PipeStatus::Waiting {
            reason: "cannot reach the Kafka cluster at 127.0.0.1:1".into(),
        };
        let (state, reason) = on_status(CurrentState::Creating, &waiting).unwrap();
        assert_eq!(state, CurrentState::Creating);
        assert!(reason.unwrap().contains("127.0.0.1:1"));
        assert_eq!(
            on_status(CurrentState::Starting, &PipeStatus::Starting),
            Some((CurrentState::Starting, None))
        );
        assert_eq!(on_status(CurrentState::Running, &waiting), None);
        assert_eq!(on_status(CurrentState::Stopping, &waiting), None);
    }

    #[test]
    fn failures_name_the_step_that_failed() {
        let failed = PipeStatus::Failed {
            reason: "authentication with the Kafka cluster failed".into(),
        };
        let cases = [
            (CurrentState::Creating, CurrentState::CreateFailed),
            (CurrentState::Starting, CurrentState::StartFailed),
            (CurrentState::Updating, CurrentState::UpdateFailed),
            (CurrentState::Running, CurrentState::Stopped),
        ];
        for (from, to) in cases {
            let (next, reason) = on_status(from, &failed).unwrap();
            assert_eq!(next, to);
            assert!(reason.unwrap().contains("authentication"));
        }
        assert_eq!(on_failure(CurrentState::Stopping, "x"), None);
        assert_eq!(truncate_reason(&"x".repeat(600)).chars().count(), 512);
    }

    #[test]
    fn boot_restores_the_desired_state() {
        use CurrentState as C;
        assert_eq!(on_boot(DesiredState::Running, C::Running), C::Starting);
        assert_eq!(on_boot(DesiredState::Running, C::Creating), C::Creating);
        assert_eq!(on_boot(DesiredState::Running, C::Stopping), C::Starting);
        assert_eq!(on_boot(DesiredState::Stopped, C::Stopping), C::Stopped);
        assert_eq!(on_boot(DesiredState::Deleted, C::Deleting), C::Deleting);
    }
}
