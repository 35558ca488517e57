//! Pipe execution logs (`LogConfiguration`, `observability.md`): a record for every step of an
//! execution at the pipe's level, shipped to its destinations off the delivery path.
//!
//! - [`config`]: the validated configuration (level, execution data, destinations), pure.
//! - [`record`]: the steps, the record in AWS's shape, truncation and output formats, pure.
//! - [`shipper`]: the bounded buffer per destination and the task that empties it.
//! - [`recent`]: the last errors of each pipe, in memory, for the console.
//! - one file per destination: [`stdout`], [`file`], and behind `aws-targets` `cloudwatch`,
//!   `firehose`, `s3`.
//!
//! The runtime holds an [`ExecutionLog`] per pipe (when the level is not `OFF`) and opens an
//! [`Execution`] per attempt at a batch; [`Execution::log`] is one comparison when the step is
//! below the level, and never waits for a destination. Steps at level `ERROR` are also kept in the
//! pipe's [`recent::ErrorRing`].

#[cfg(feature = "aws-targets")]
mod cloudwatch;
pub mod config;
pub mod file;
#[cfg(feature = "aws-targets")]
mod firehose;
pub mod recent;
pub mod record;
#[cfg(feature = "aws-targets")]
mod s3;
pub mod shipper;
pub mod stdout;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::metrics::PipeMetrics;
use crate::targets::TargetError;
pub use config::{DestinationConfig, ExecutionLogConfig, Level};
use recent::{ErrorRing, RecentError};
pub use record::{LogError, LogRecord, Step};
use shipper::{Buffer, Entry, ShipError, Sink};

/// How long stopping a pipe waits for its last records to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pipe's execution logging: its level and the buffers of its destinations.
#[derive(Debug)]
pub struct ExecutionLog {
    level: Level,
    include_data: bool,
    arn: Arc<str>,
    buffers: Vec<Arc<Buffer>>,
    /// Where the `ERROR` steps are also kept, for the console.
    errors: Arc<ErrorRing>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stop: CancellationToken,
}

impl ExecutionLogConfig {
    /// Open the destinations of pipe `name` (`arn`) and start their shippers; drops are counted
    /// on `metrics`, and the `ERROR` steps also kept in `errors`. Fails only for a destination
    /// this build cannot write to.
    pub async fn build(
        &self,
        name: &str,
        arn: &str,
        metrics: &PipeMetrics,
        errors: Arc<ErrorRing>,
    ) -> Result<ExecutionLog, ShipError> {
        let stop = CancellationToken::new();
        let mut buffers = Vec::new();
        let mut tasks = Vec::new();
        for d in &self.destinations {
            let sink = sink(d, name).await?;
            let buffer = Arc::new(Buffer::new(metrics.execution_log_dropped(d.kind())));
            tasks.push(tokio::spawn(shipper::run(
                buffer.clone(),
                sink,
                d.kind().to_string(),
                stop.clone(),
            )));
            buffers.push(buffer);
        }
        Ok(ExecutionLog {
            level: self.level,
            include_data: self.include_data,
            arn: arn.into(),
            buffers,
            errors,
            tasks: Mutex::new(tasks),
            stop,
        })
    }
}

/// The sink of one destination.
async fn sink(d: &DestinationConfig, pipe: &str) -> Result<Box<dyn Sink>, ShipError> {
    Ok(match d {
        DestinationConfig::Stdout => Box::new(stdout::Stdout),
        DestinationConfig::File(path) => Box::new(file::File::new(path.clone())),
        #[cfg(feature = "aws-targets")]
        DestinationConfig::CloudWatch {
            group,
            region,
            endpoint,
        } => {
            Box::new(cloudwatch::CloudWatch::build(group, region, endpoint.as_deref(), pipe).await)
        }
        #[cfg(feature = "aws-targets")]
        DestinationConfig::Firehose {
            stream,
            region,
            endpoint,
        } => Box::new(firehose::Firehose::build(stream, region, endpoint.as_deref()).await),
        #[cfg(feature = "aws-targets")]
        DestinationConfig::S3 {
            bucket,
            owner,
            format,
            prefix,
            region,
            endpoint,
        } => {
            let place = s3::S3Place {
                bucket,
                owner,
                format: *format,
                prefix,
            };
            Box::new(s3::S3::build(place, region, endpoint.as_deref(), pipe).await)
        }
        #[cfg(not(feature = "aws-targets"))]
        other => {
            let _ = pipe;
            return Err(ShipError::Unsupported(format!(
                "this build of Sluice has no AWS support (cargo feature aws-targets); cannot write execution logs to {}",
                other.kind()
            )));
        }
    })
}

impl ExecutionLog {
    /// A new execution (one attempt at a batch) with a fresh id.
    pub fn begin(&self) -> Execution<'_> {
        Execution {
            log: Some(self),
            id: uuid::Uuid::new_v4().to_string().into(),
        }
    }

    /// Stop the shippers after they wrote what is waiting (bounded by a timeout).
    pub async fn close(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(CLOSE_TIMEOUT, t).await.is_err() {
                abort.abort();
            }
        }
    }

    /// A log with one destination that nothing empties, and that destination's buffer: for
    /// tests of what is logged.
    #[cfg(test)]
    pub fn recording(level: Level, include_data: bool) -> (ExecutionLog, Arc<Buffer>) {
        let buffer = Arc::new(Buffer::new(Default::default()));
        let log = ExecutionLog {
            level,
            include_data,
            arn: "arn:aws:pipes:us-east-1:000000000000:pipe/p".into(),
            buffers: vec![buffer.clone()],
            errors: Arc::default(),
            tasks: Mutex::default(),
            stop: CancellationToken::new(),
        };
        (log, buffer)
    }

    fn push(&self, record: LogRecord) {
        if record.message_type.level() == Level::Error {
            self.errors.push(RecentError::of(&record));
        }
        let entry = Arc::new(Entry::new(record));
        for b in &self.buffers {
            b.push(entry.clone());
        }
    }
}

impl Drop for ExecutionLog {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What a step's record carries with `IncludeExecutionData`.
#[derive(Debug, Default)]
pub struct Data {
    /// The step's events, as JSON text.
    pub payload: Option<String>,
    /// The request body.
    pub request: Option<String>,
    /// The response.
    pub response: Option<String>,
}

/// One execution being logged; [`Execution::off`] logs nothing.
#[derive(Debug)]
pub struct Execution<'a> {
    log: Option<&'a ExecutionLog>,
    id: Arc<str>,
}

impl Execution<'_> {
    /// An execution of a pipe without execution logs.
    pub fn off() -> Self {
        Execution {
            log: None,
            id: Arc::from(""),
        }
    }

    /// Whether `step` is logged at the pipe's level.
    pub fn logs(&self, step: Step) -> bool {
        self.log.is_some_and(|l| step.level() <= l.level)
    }

    /// Log `step`, with `error` when it failed; `data` is asked for only when the step is
    /// logged and the pipe includes execution data.
    pub fn log(&self, step: Step, error: Option<&TargetError>, data: impl FnOnce() -> Data) {
        let Some(log) = self.log.filter(|l| step.level() <= l.level) else {
            return;
        };
        let data = if log.include_data {
            data()
        } else {
            Data::default()
        };
        log.push(LogRecord {
            execution_id: self.id.clone(),
            timestamp: now_ms(),
            message_type: step,
            resource_arn: log.arn.clone(),
            log_level: log.level,
            payload: data.payload,
            aws_request: data.request,
            aws_response: data.response,
            truncated_fields: Vec::new(),
            error: error.map(LogError::of),
        });
    }

    /// Log `step` without data.
    pub fn step(&self, step: Step) {
        self.log(step, None, Data::default);
    }
}

/// The step that ends an execution: success, a partial failure, or how the attempt failed.
pub fn end_step(error: Option<&TargetError>, partial: bool) -> Step {
    match error {
        _ if partial => Step::ExecutionPartiallyFailed,
        None => Step::ExecutionSucceeded,
        Some(e) if e.is_throttle() => Step::ExecutionThrottled,
        Some(e) if e.is_timeout() => Step::ExecutionTimeout,
        Some(_) => Step::ExecutionFailed,
    }
}

/// JSON lines of `entries`, each ending with a newline.
fn lines(entries: &[Arc<Entry>]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(e.fitted().1);
        out.push('\n');
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The SDK configuration of AWS destinations (the targets' credentials chain and HTTPS client).
#[cfg(feature = "aws-targets")]
async fn sdk_client_config(region: &str) -> aws_config::SdkConfig {
    crate::secrets::aws::sdk_config(region).await
}

/// A failed AWS call: the service's code and message (never a record's content).
#[cfg(feature = "aws-targets")]
fn aws_failure<E, R>(
    call: &'static str,
    e: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> ShipError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let message = match &e {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or_default()
        ),
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    };
    ShipError::Service { call, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_an_execution_names_how_it_ended() {
        let status = |s| TargetError::Status {
            status: s,
            retry_after: None,
            detail: String::new(),
        };
        assert_eq!(end_step(None, false), Step::ExecutionSucceeded);
        assert_eq!(end_step(None, true), Step::ExecutionPartiallyFailed);
        assert_eq!(
            end_step(Some(&status(429)), false),
            Step::ExecutionThrottled
        );
        assert_eq!(
            end_step(Some(&TargetError::Timeout(Duration::from_secs(1))), false),
            Step::ExecutionTimeout
        );
        assert_eq!(end_step(Some(&status(500)), false), Step::ExecutionFailed);
    }

    #[test]
    fn error_steps_are_also_kept_for_the_console() {
        let (log, _buffer) = ExecutionLog::recording(Level::Trace, true);
        let failed = TargetError::Status {
            status: 500,
            retry_after: None,
            detail: String::new(),
        };
        let execution = log.begin();
        execution.step(Step::ExecutionStarted);
        execution.log(Step::TargetInvocationFailed, Some(&failed), || Data {
            payload: Some("the payload".into()),
            ..Data::default()
        });
        execution.step(Step::TargetInvocationSucceeded);
        let kept = log.errors.newest_first();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].message_type, Step::TargetInvocationFailed);
        assert_eq!(kept[0].execution_id, execution.id);
        let error = kept[0].error.as_ref().unwrap();
        assert_eq!(error.http_status_code, Some(500));
    }

    #[test]
    fn an_execution_without_a_log_logs_nothing() {
        let off = Execution::off();
        assert!(!off.logs(Step::ExecutionFailed));
        off.log(Step::ExecutionFailed, None, || {
            unreachable!("no data without a log")
        });
    }
}
