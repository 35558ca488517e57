//! The states of a stored pipe: [`DesiredState`] (what the user asked for) and [`CurrentState`]
//! (where the pipe is) with their AWS wire names, the [`Change`] the last write asked for, and the
//! [`Phase`] an instance reports for its runtime of a pipe. Stored data, so the store owns them;
//! deriving `CurrentState` from them is the control plane's (`control::state`).

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

/// What the last write of a pipe asked of the instances' runtimes. Names the transitional state
/// (`CREATING`, `UPDATING`, ...) and the failure state of a runtime that fails at that version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    /// `CreatePipe` (or a pipe file that created the pipe).
    Create,
    /// `UpdatePipe`, a pipe file's new definition, or a `sluice:` tag change of a running pipe.
    Update,
    /// `StartPipe`.
    Start,
    /// `StopPipe`.
    Stop,
    /// `DeletePipe`.
    Delete,
}

impl Change {
    /// The state a pipe shows while the instances carry the change out.
    pub fn transitional(self) -> CurrentState {
        match self {
            Change::Create => CurrentState::Creating,
            Change::Update => CurrentState::Updating,
            Change::Start => CurrentState::Starting,
            Change::Stop => CurrentState::Stopping,
            Change::Delete => CurrentState::Deleting,
        }
    }

    /// The state of a pipe whose runtime failed before it ran, after this change.
    pub fn failed(self) -> CurrentState {
        match self {
            Change::Create => CurrentState::CreateFailed,
            Change::Update => CurrentState::UpdateFailed,
            Change::Start => CurrentState::StartFailed,
            Change::Stop => CurrentState::StopFailed,
            Change::Delete => CurrentState::DeleteFailed,
        }
    }
}

/// Where one instance's runtime of one pipe is, as that instance reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Phase", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Connecting and joining the consumer group.
    Starting {
        /// Started because the instance started (not because of a change): shows as STARTING.
        #[serde(rename = "Booted", default)]
        booted: bool,
        /// What it waits for, outside the pipe (brokers that do not answer, a topic not created
        /// yet), in words for `StateReason`; `None` while it waits on nothing the user should
        /// hear about.
        #[serde(rename = "Waiting", default, skip_serializing_if = "Option::is_none")]
        waiting: Option<String>,
    },
    /// In the group, delivering.
    Running,
    /// Not running (stopped, or never started here).
    Stopped,
    /// Ended on an error only the user can fix.
    Failed {
        /// What to fix, without secrets.
        #[serde(rename = "Reason")]
        reason: String,
        /// Whether it had reached `Running` first (then the pipe shows STOPPED with the reason).
        #[serde(rename = "AfterRunning", default)]
        after_running: bool,
    },
}

impl Phase {
    /// A runtime starting, waiting on nothing yet.
    pub fn starting(booted: bool) -> Phase {
        Phase::Starting {
            booted,
            waiting: None,
        }
    }

    /// Whether a runtime exists (a deleted pipe waits until no live instance has one).
    pub fn is_active(&self) -> bool {
        matches!(self, Phase::Starting { .. } | Phase::Running)
    }

    /// The name stored beside the observation, for queries.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Starting { .. } => "STARTING",
            Phase::Running => "RUNNING",
            Phase::Stopped => "STOPPED",
            Phase::Failed { .. } => "FAILED",
        }
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

    #[test]
    fn phases_round_trip_and_say_whether_a_runtime_exists() {
        for p in [
            Phase::Starting {
                booted: true,
                waiting: None,
            },
            Phase::Starting {
                booted: false,
                waiting: Some("the source topic t does not exist".into()),
            },
            Phase::Running,
            Phase::Stopped,
            Phase::Failed {
                reason: "r".into(),
                after_running: true,
            },
        ] {
            let text = serde_json::to_string(&p).unwrap();
            assert!(text.contains(p.as_str()), "{text}");
            assert_eq!(serde_json::from_str::<Phase>(&text).unwrap(), p);
        }
        assert!(Phase::Running.is_active() && !Phase::Stopped.is_active());
        assert_eq!(Change::Start.failed(), CurrentState::StartFailed);
        assert_eq!(Change::Update.transitional(), CurrentState::Updating);
    }
}
