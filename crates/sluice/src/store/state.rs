//! The states of a stored pipe as the AWS API names them: [`DesiredState`] (what the user asked
//! for) and [`CurrentState`] (where the pipe is), with their wire names. Stored data, so the store
//! owns them; the transitions between them are the control plane's (`control::state`).

use std::fmt;

use serde::{Deserialize, Serialize};

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
}
