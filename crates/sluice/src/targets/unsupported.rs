//! AWS target kinds that AWS Pipes offers and Sluice does not deliver to (ECS tasks, Batch jobs,
//! Redshift Data, SageMaker pipelines, Timestream, Inspector, API Gateway). Their definitions
//! validate, so a pipe written for AWS can be stored and listed; starting it fails with a reason
//! saying exactly which target kind is missing.

use super::{TargetConfig, TargetContext, TargetKind};
use crate::model::{FieldError, PipeDefinition};

/// Registered in [`super::kinds`], last: it only accepts what no real kind did.
pub const KIND: TargetKind = TargetKind {
    name: "unsupported AWS target",
    accepts: |t| service_of(t).is_some(),
    validate,
};

/// ARN service prefixes and what AWS calls the target.
const SERVICES: &[(&str, &str)] = &[
    ("arn:aws:ecs:", "ECS task"),
    ("arn:aws:batch:", "Batch job queue"),
    ("arn:aws:redshift:", "Redshift cluster"),
    (
        "arn:aws:redshift-serverless:",
        "Redshift Serverless workgroup",
    ),
    ("arn:aws:sagemaker:", "SageMaker pipeline"),
    ("arn:aws:timestream:", "Timestream table"),
    ("arn:aws:inspector:", "Inspector assessment template"),
    ("arn:aws:execute-api:", "API Gateway"),
];

fn service_of(target: &str) -> Option<&'static str> {
    SERVICES
        .iter()
        .find(|(p, _)| target.starts_with(p))
        .map(|(_, what)| *what)
}

/// A target Sluice accepts in definitions but cannot deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedTarget {
    /// What AWS calls the target kind.
    pub what: &'static str,
}

impl UnsupportedTarget {
    /// The pipe's failure reason.
    pub fn reason(&self) -> String {
        format!(
            "{} targets are not supported by Sluice; the pipe cannot run (supported: HTTP, API \
             destinations, Kafka, Lambda, SQS, SNS, EventBridge event buses, Kinesis, Firehose, \
             Step Functions, CloudWatch Logs)",
            self.what
        )
    }
}

fn validate(
    def: &PipeDefinition,
    _ctx: &TargetContext<'_>,
    _errs: &mut Vec<FieldError>,
) -> Option<TargetConfig> {
    let what = service_of(def.target.as_deref().unwrap_or_default())?;
    Some(TargetConfig::Unsupported(UnsupportedTarget { what }))
}
