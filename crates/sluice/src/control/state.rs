//! Pipe states as the AWS API names them, and the pure transitions between them: what a request
//! moves a pipe to, and what a report of its runtime ([`PipeStatus`]) moves it to.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runtime::PipeStatus;

/// `DesiredState`: what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredState {
    /// The pipe should run.
    Running,
    /// The pipe should not run.
    Stopped,
    /// The pipe is being deleted.
    Deleted,
}

impl DesiredState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "RUNNING",
            DesiredState::Stopped => "STOPPED",
            DesiredState::Deleted => "DELETED",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<DesiredState> {
        [Self::Running, Self::Stopped, Self::Deleted]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// `CurrentState`: where the pipe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum CurrentState {
    Running,
    Stopped,
    Creating,
    Updating,
    Deleting,
    Starting,
    Stopping,
    CreateFailed,
    UpdateFailed,
    StartFailed,
    StopFailed,
    DeleteFailed,
    CreateRollbackFailed,
    DeleteRollbackFailed,
    UpdateRollbackFailed,
}

const ALL: [CurrentState; 15] = [
    CurrentState::Running,
    CurrentState::Stopped,
    CurrentState::Creating,
    CurrentState::Updating,
    CurrentState::Deleting,
    CurrentState::Starting,
    CurrentState::Stopping,
    CurrentState::CreateFailed,
    CurrentState::UpdateFailed,
    CurrentState::StartFailed,
    CurrentState::StopFailed,
    CurrentState::DeleteFailed,
    CurrentState::CreateRollbackFailed,
    CurrentState::DeleteRollbackFailed,
    CurrentState::UpdateRollbackFailed,
];

impl CurrentState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        use CurrentState::*;
        match self {
            Running => "RUNNING",
            Stopped => "STOPPED",
            Creating => "CREATING",
            Updating => "UPDATING",
            Deleting => "DELETING",
            Starting => "STARTING",
            Stopping => "STOPPING",
            CreateFailed => "CREATE_FAILED",
            UpdateFailed => "UPDATE_FAILED",
            StartFailed => "START_FAILED",
            StopFailed => "STOP_FAILED",
            DeleteFailed => "DELETE_FAILED",
            CreateRollbackFailed => "CREATE_ROLLBACK_FAILED",
            DeleteRollbackFailed => "DELETE_ROLLBACK_FAILED",
            UpdateRollbackFailed => "UPDATE_ROLLBACK_FAILED",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<CurrentState> {
        ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A state the pipe is on its way to RUNNING from (its runtime is starting).
    pub fn is_starting(self) -> bool {
        matches!(
            self,
            CurrentState::Creating | CurrentState::Starting | CurrentState::Updating
        )
    }
}

impl fmt::Display for CurrentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a runtime report does to a pipe in `current`: the new state and its reason, or `None`
/// when the report changes nothing.
///
/// - Joining the group (`Running`) completes CREATING/STARTING/UPDATING.
/// - A failure (`Failed`, or the runtime ending with an error) during CREATING/STARTING/UPDATING is
///   CREATE_FAILED/START_FAILED/UPDATE_FAILED; a failure of a RUNNING pipe stops it (STOPPED) with
///   the reason, as AWS does for errors only the user can fix.
pub fn on_status(
    current: CurrentState,
    status: &PipeStatus,
) -> Option<(CurrentState, Option<String>)> {
    match status {
        PipeStatus::Running if current.is_starting() => Some((CurrentState::Running, None)),
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
    fn wire_names_round_trip() {
        for c in ALL {
            assert_eq!(CurrentState::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!(DesiredState::parse("STOPPED"), Some(DesiredState::Stopped));
        assert_eq!(DesiredState::parse("stopped"), None);
    }

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
