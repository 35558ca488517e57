//! `LogConfiguration` (and `SluiceParameters.LogDestination`) validated into an
//! [`ExecutionLogConfig`]: the level, whether records carry execution data, and every destination
//! with what it needs to be opened. Pure: [`ExecutionLogConfig::build`] in `mod.rs` does the I/O.

use std::path::PathBuf;

use crate::field_error::FieldError;
use crate::model::definition::PipeDefinition;
use crate::targets::aws::Arn;
use crate::targets::TargetsConfig;

/// A pipe's log level; each level includes the steps of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error,
    /// Plus the start and end of every execution and stage.
    Info,
    /// Plus every transformation and invocation.
    Trace,
}

impl Level {
    /// The name AWS gives it (`logLevel` of a record).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Info => "INFO",
            Level::Trace => "TRACE",
        }
    }
}

/// How an S3 destination writes its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Format {
    /// JSON lines.
    Json,
    /// One text line per record.
    Plain,
    /// W3C extended log format.
    W3c,
}

/// One destination, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationConfig {
    /// A CloudWatch Logs log group.
    CloudWatch {
        /// The group's name.
        group: String,
        /// Its region.
        region: String,
        /// Endpoint override (`[targets.aws]`, service `logs`).
        endpoint: Option<String>,
    },
    /// A Firehose delivery stream.
    Firehose {
        /// The stream's name.
        stream: String,
        /// Its region.
        region: String,
        /// Endpoint override (`[targets.aws]`, service `firehose`).
        endpoint: Option<String>,
    },
    /// An S3 bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The expected owner (sent as `ExpectedBucketOwner`).
        owner: String,
        /// How objects are written.
        format: S3Format,
        /// Key prefix (may be empty).
        prefix: String,
        /// The pipe's region.
        region: String,
        /// Endpoint override (`[targets.aws]`, service `s3`).
        endpoint: Option<String>,
    },
    /// Our extension: the process's standard output.
    Stdout,
    /// Our extension: a file, appended to.
    File(PathBuf),
}

impl DestinationConfig {
    /// A short name for logs and metrics (`cloudwatch`, `firehose`, `s3`, `stdout`, `file`).
    pub fn kind(&self) -> &'static str {
        match self {
            DestinationConfig::CloudWatch { .. } => "cloudwatch",
            DestinationConfig::Firehose { .. } => "firehose",
            DestinationConfig::S3 { .. } => "s3",
            DestinationConfig::Stdout => "stdout",
            DestinationConfig::File(_) => "file",
        }
    }
}

/// A pipe's execution logging, validated; `None` from [`validate`] means `OFF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionLogConfig {
    /// The level.
    pub level: Level,
    /// `IncludeExecutionData: ["ALL"]`.
    pub include_data: bool,
    /// Where records go (at least one).
    pub destinations: Vec<DestinationConfig>,
}

const PATH: &str = "LogConfiguration";

/// Validate `LogConfiguration` and `SluiceParameters.LogDestination`. `region` is the pipe's
/// (for S3, whose bucket names carry none).
pub fn validate(
    def: &PipeDefinition,
    region: &str,
    targets: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> Option<ExecutionLogConfig> {
    let lc = def.log_configuration.clone().unwrap_or_default();
    let before = errs.len();
    let level = match lc.level.as_deref() {
        None | Some("OFF") => None,
        Some("ERROR") => Some(Level::Error),
        Some("INFO") => Some(Level::Info),
        Some("TRACE") => Some(Level::Trace),
        Some(other) => {
            errs.push(FieldError::new(
                format!("{PATH}.Level"),
                format!("must be OFF, ERROR, INFO or TRACE, not {other:?}"),
            ));
            None
        }
    };
    let include_data = match lc.include_execution_data.as_deref() {
        None | Some([]) => false,
        Some([all]) if all == "ALL" => true,
        Some(_) => {
            errs.push(FieldError::new(
                format!("{PATH}.IncludeExecutionData"),
                "must be [\"ALL\"] or empty",
            ));
            false
        }
    };
    let mut destinations = Vec::new();
    if let Some(cw) = &lc.cloudwatch_logs_log_destination {
        let field = format!("{PATH}.CloudwatchLogsLogDestination.LogGroupArn");
        if let Some((group, region)) = log_group(cw.log_group_arn.as_deref(), &field, errs) {
            destinations.push(DestinationConfig::CloudWatch {
                group,
                region,
                endpoint: targets.aws.endpoint_for("logs"),
            });
        }
    }
    if let Some(fh) = &lc.firehose_log_destination {
        let field = format!("{PATH}.FirehoseLogDestination.DeliveryStreamArn");
        if let Some((stream, region)) =
            delivery_stream(fh.delivery_stream_arn.as_deref(), &field, errs)
        {
            destinations.push(DestinationConfig::Firehose {
                stream,
                region,
                endpoint: targets.aws.endpoint_for("firehose"),
            });
        }
    }
    if let Some(s3) = &lc.s3_log_destination {
        if let Some(d) = s3_destination(s3, region, targets, errs) {
            destinations.push(d);
        }
    }
    let ext = def.sluice_parameters.as_ref();
    if let Some(text) = ext.and_then(|s| s.log_destination.as_deref()) {
        match local_destination(text) {
            Some(d) => destinations.push(d),
            None => errs.push(FieldError::new(
                "SluiceParameters.LogDestination",
                format!("must be stdout or file:///absolute/path, not {text:?}"),
            )),
        }
    }
    let level = level?;
    if destinations.is_empty() && errs.len() == before {
        errs.push(FieldError::new(
            format!("{PATH}.Level"),
            "a level other than OFF needs a destination: CloudwatchLogsLogDestination, FirehoseLogDestination, S3LogDestination or SluiceParameters.LogDestination",
        ));
    }
    (errs.len() == before).then_some(ExecutionLogConfig {
        level,
        include_data,
        destinations,
    })
}

/// `arn:aws:logs:<region>:<account>:log-group:<name>[:*]` -> (name, region).
fn log_group(
    arn: Option<&str>,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<(String, String)> {
    let parsed = arn.and_then(Arn::parse).filter(|a| a.service == "logs");
    let name = parsed.as_ref().and_then(|a| {
        let name = a.resource.strip_prefix("log-group:")?;
        let name = name.strip_suffix(":*").unwrap_or(name);
        (!name.is_empty() && name.len() <= 512).then(|| name.to_string())
    });
    match (parsed, name) {
        (Some(a), Some(name)) => Some((name, a.region)),
        _ => {
            errs.push(FieldError::new(
                field,
                "must look like arn:aws:logs:<region>:<account>:log-group:<name>",
            ));
            None
        }
    }
}

/// `arn:aws:firehose:<region>:<account>:deliverystream/<name>` -> (name, region).
fn delivery_stream(
    arn: Option<&str>,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<(String, String)> {
    let parsed = arn.and_then(Arn::parse).filter(|a| a.service == "firehose");
    let name = parsed.as_ref().and_then(|a| {
        let name = a.resource.strip_prefix("deliverystream/")?;
        (!name.is_empty()).then(|| name.to_string())
    });
    match (parsed, name) {
        (Some(a), Some(name)) => Some((name, a.region)),
        _ => {
            errs.push(FieldError::new(
                field,
                "must look like arn:aws:firehose:<region>:<account>:deliverystream/<name>",
            ));
            None
        }
    }
}

fn s3_destination(
    s3: &crate::model::definition::S3LogDestination,
    region: &str,
    targets: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> Option<DestinationConfig> {
    let path = format!("{PATH}.S3LogDestination");
    let before = errs.len();
    let bucket = s3.bucket_name.clone().unwrap_or_default();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'));
    if !bucket_ok {
        errs.push(FieldError::new(
            format!("{path}.BucketName"),
            "must be an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens",
        ));
    }
    let owner = s3.bucket_owner.clone().unwrap_or_default();
    if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
        errs.push(FieldError::new(
            format!("{path}.BucketOwner"),
            "must be the owner's 12-digit account id",
        ));
    }
    let format = match s3.output_format.as_deref() {
        None | Some("json") => S3Format::Json,
        Some("plain") => S3Format::Plain,
        Some("w3c") => S3Format::W3c,
        Some(other) => {
            errs.push(FieldError::new(
                format!("{path}.OutputFormat"),
                format!("must be json, plain or w3c, not {other:?}"),
            ));
            S3Format::Json
        }
    };
    (errs.len() == before).then(|| DestinationConfig::S3 {
        bucket,
        owner,
        format,
        prefix: s3.prefix.clone().unwrap_or_default(),
        region: region.to_string(),
        endpoint: targets.aws.endpoint_for("s3"),
    })
}

/// `stdout` or `file:///absolute/path`.
fn local_destination(text: &str) -> Option<DestinationConfig> {
    if text == "stdout" {
        return Some(DestinationConfig::Stdout);
    }
    let path = text.strip_prefix("file://")?;
    (path.starts_with('/') && path.len() > 1).then(|| DestinationConfig::File(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;

    fn check(json: &str) -> Result<Option<ExecutionLogConfig>, Vec<FieldError>> {
        let def = parse_definition(json, false).unwrap();
        let mut errs = Vec::new();
        let out = validate(&def, "eu-west-1", &TargetsConfig::default(), &mut errs);
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(errs)
        }
    }

    #[test]
    fn off_or_absent_is_no_logging() {
        assert_eq!(check("{}"), Ok(None));
        assert_eq!(check(r#"{"LogConfiguration":{"Level":"OFF"}}"#), Ok(None));
    }

    #[test]
    fn a_level_needs_a_destination() {
        let errs = check(r#"{"LogConfiguration":{"Level":"INFO"}}"#).unwrap_err();
        assert_eq!(errs[0].name, "LogConfiguration.Level");
        assert!(errs[0].message.contains("needs a destination"), "{errs:?}");
    }

    #[test]
    fn every_destination_is_read() {
        let cfg = check(
            r#"{"LogConfiguration":{"Level":"TRACE","IncludeExecutionData":["ALL"],
                "CloudwatchLogsLogDestination":{"LogGroupArn":"arn:aws:logs:us-east-2:123456789012:log-group:/pipes/p:*"},
                "FirehoseLogDestination":{"DeliveryStreamArn":"arn:aws:firehose:us-east-1:123456789012:deliverystream/logs"},
                "S3LogDestination":{"BucketName":"pipe-logs","BucketOwner":"123456789012","OutputFormat":"w3c","Prefix":"x"}},
               "SluiceParameters":{"LogDestination":"file:///var/log/p.jsonl"}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cfg.level, Level::Trace);
        assert!(cfg.include_data);
        assert_eq!(
            cfg.destinations[0],
            DestinationConfig::CloudWatch {
                group: "/pipes/p".into(),
                region: "us-east-2".into(),
                endpoint: None
            }
        );
        assert!(
            matches!(&cfg.destinations[1], DestinationConfig::Firehose { stream, .. } if stream == "logs")
        );
        assert!(matches!(
            &cfg.destinations[2],
            DestinationConfig::S3 { format: S3Format::W3c, region, .. } if region == "eu-west-1"
        ));
        assert_eq!(
            cfg.destinations[3],
            DestinationConfig::File("/var/log/p.jsonl".into())
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let errs = check(
            r#"{"LogConfiguration":{"Level":"LOUD","IncludeExecutionData":["SOME"],
                "CloudwatchLogsLogDestination":{"LogGroupArn":"arn:aws:sqs:us-east-1:1:q"},
                "S3LogDestination":{"BucketName":"B","BucketOwner":"me","OutputFormat":"xml"}},
               "SluiceParameters":{"LogDestination":"file://relative"}}"#,
        )
        .unwrap_err();
        let names: Vec<&str> = errs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "LogConfiguration.Level",
                "LogConfiguration.IncludeExecutionData",
                "LogConfiguration.CloudwatchLogsLogDestination.LogGroupArn",
                "LogConfiguration.S3LogDestination.BucketName",
                "LogConfiguration.S3LogDestination.BucketOwner",
                "LogConfiguration.S3LogDestination.OutputFormat",
                "SluiceParameters.LogDestination",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_the_shape() {
        let err = parse_definition(r#"{"LogConfiguration":{"Levle":"INFO"}}"#, false).unwrap_err();
        assert_eq!(err.fields[0].name, "LogConfiguration.Levle");
    }
}
