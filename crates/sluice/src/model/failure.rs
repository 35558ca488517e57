//! The failure-handling part of a pipe definition (`failure-handling.md`), validated:
//! `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`, `OnPartialBatchItemFailure`,
//! `ReportBatchItemFailures` and `DeadLetterConfig`, all in `SluiceParameters`. Nothing set means
//! AWS behaviour: a failed batch is retried whole, forever.

use std::time::Duration;

use super::definition::PipeDefinition;
use crate::dead_letter::{DeadLetterConfig, SourceView};
use crate::field_error::FieldError;
use crate::targets::TargetsConfig;

/// The failure settings of one pipe, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureSettings {
    /// Retries after the first failed attempt; `None` retries forever.
    pub max_retries: Option<u32>,
    /// A batch whose oldest record is older than this when an attempt would start is given up.
    pub max_record_age: Option<Duration>,
    /// `OnPartialBatchItemFailure: AUTOMATIC_BISECT`.
    pub bisect: bool,
    /// `ReportBatchItemFailures`: targets may name the records that failed.
    pub report_item_failures: bool,
    /// A `DeadLetterConfig` is set (deterministic failures are then given up at once).
    pub dead_letter: bool,
}

impl FailureSettings {
    /// Whether a batch can ever be given up (so its failure history is worth storing).
    pub fn bounded(&self) -> bool {
        self.max_retries.is_some() || self.max_record_age.is_some() || self.dead_letter
    }
}

/// Lambda's default retry bound once a dead-letter destination exists.
const RETRIES_WITH_DEAD_LETTER: u32 = 10;
const MAX_RETRY_ATTEMPTS: i64 = 10_000;
const RECORD_AGE_SECS: std::ops::RangeInclusive<i64> = 60..=604_800;

/// `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`, `OnPartialBatchItemFailure`,
/// `ReportBatchItemFailures` and `DeadLetterConfig` (`failure-handling.md`).
pub(crate) fn validate_failure_handling(
    def: &PipeDefinition,
    source: SourceView<'_>,
    targets: &TargetsConfig,
    errs: &mut Vec<FieldError>,
) -> (FailureSettings, Option<DeadLetterConfig>) {
    let Some(ext) = &def.sluice_parameters else {
        return (FailureSettings::default(), None);
    };
    let dead_letter = ext
        .dead_letter_config
        .as_ref()
        .and_then(|d| crate::dead_letter::validate(d.arn.as_deref(), source, targets, errs));
    let max_retries = match ext.maximum_retry_attempts {
        None | Some(-1) if ext.dead_letter_config.is_some() => Some(RETRIES_WITH_DEAD_LETTER),
        None | Some(-1) => None,
        Some(n) if (0..=MAX_RETRY_ATTEMPTS).contains(&n) => Some(n as u32),
        Some(n) => {
            errs.push(FieldError::new(
                "SluiceParameters.MaximumRetryAttempts",
                format!(
                    "must be -1 (retry forever) or between 0 and {MAX_RETRY_ATTEMPTS}, not {n}"
                ),
            ));
            None
        }
    };
    let max_record_age = match ext.maximum_record_age_in_seconds {
        None | Some(-1) => None,
        Some(n) if RECORD_AGE_SECS.contains(&n) => Some(Duration::from_secs(n as u64)),
        Some(n) => {
            errs.push(FieldError::new(
                "SluiceParameters.MaximumRecordAgeInSeconds",
                format!(
                    "must be -1 (no limit) or between {} and {}, not {n}",
                    RECORD_AGE_SECS.start(),
                    RECORD_AGE_SECS.end()
                ),
            ));
            None
        }
    };
    let bisect = match ext.on_partial_batch_item_failure.as_deref() {
        None => false,
        Some("AUTOMATIC_BISECT") => true,
        Some(other) => {
            errs.push(FieldError::new(
                "SluiceParameters.OnPartialBatchItemFailure",
                format!("must be AUTOMATIC_BISECT, not {other:?}"),
            ));
            false
        }
    };
    let settings = FailureSettings {
        max_retries,
        max_record_age,
        bisect,
        report_item_failures: ext.report_batch_item_failures.unwrap_or(false),
        dead_letter: dead_letter.is_some(),
    };
    (settings, dead_letter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;

    fn check(ext: &str) -> Result<(FailureSettings, Option<DeadLetterConfig>), Vec<FieldError>> {
        let def = parse_definition(&format!(r#"{{"SluiceParameters":{ext}}}"#), false).unwrap();
        let mut errs = Vec::new();
        let servers = vec!["h:9092".to_string()];
        let source = SourceView {
            topic: "orders",
            bootstrap_servers: &servers,
        };
        let out = validate_failure_handling(&def, source, &TargetsConfig::default(), &mut errs);
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(errs)
        }
    }

    #[test]
    fn nothing_set_is_aws_behaviour() {
        let (s, dl) = check("{}").unwrap();
        assert_eq!(s, FailureSettings::default());
        assert!(!s.bounded());
        assert!(dl.is_none());
    }

    #[test]
    fn minus_one_with_a_dead_letter_destination_means_ten() {
        let dl = r#""DeadLetterConfig":{"Arn":"kafka://orders-dlq"}"#;
        for retries in ["", r#""MaximumRetryAttempts":-1,"#] {
            let (s, d) = check(&format!("{{{retries}{dl}}}")).unwrap();
            assert_eq!(s.max_retries, Some(10));
            assert!(s.dead_letter);
            assert!(matches!(
                d,
                Some(DeadLetterConfig::Kafka { producer, on_source_cluster: true })
                    if producer.topic == "orders-dlq" && producer.bootstrap_servers == ["h:9092"]
                        && producer.mirror_value && producer.mirror_timestamp
            ));
        }
        let (s, _) = check(&format!(r#"{{"MaximumRetryAttempts":3,{dl}}}"#)).unwrap();
        assert_eq!(s.max_retries, Some(3));
        let (s, _) = check(r#"{"MaximumRetryAttempts":-1}"#).unwrap();
        assert_eq!(s.max_retries, None);
    }

    #[test]
    fn ranges_are_checked_on_both_sides() {
        for ok in [0, 1, 10_000] {
            let (s, _) = check(&format!(r#"{{"MaximumRetryAttempts":{ok}}}"#)).unwrap();
            assert_eq!(s.max_retries, Some(ok as u32));
        }
        for bad in [-2, 10_001] {
            let errs = check(&format!(r#"{{"MaximumRetryAttempts":{bad}}}"#)).unwrap_err();
            assert_eq!(errs[0].name, "SluiceParameters.MaximumRetryAttempts");
            assert!(errs[0].message.contains("between 0 and 10000"), "{errs:?}");
        }
        for ok in [60, 604_800] {
            let (s, _) = check(&format!(r#"{{"MaximumRecordAgeInSeconds":{ok}}}"#)).unwrap();
            assert_eq!(s.max_record_age, Some(Duration::from_secs(ok)));
        }
        for bad in [0, 59, 604_801] {
            let errs = check(&format!(r#"{{"MaximumRecordAgeInSeconds":{bad}}}"#)).unwrap_err();
            assert_eq!(errs[0].name, "SluiceParameters.MaximumRecordAgeInSeconds");
        }
        let errs = check(r#"{"OnPartialBatchItemFailure":"BISECT"}"#).unwrap_err();
        assert_eq!(errs[0].name, "SluiceParameters.OnPartialBatchItemFailure");
        let (s, _) = check(
            r#"{"OnPartialBatchItemFailure":"AUTOMATIC_BISECT","ReportBatchItemFailures":true}"#,
        )
        .unwrap();
        assert!(s.bisect && s.report_item_failures);
    }

    #[test]
    fn dead_letter_destinations_are_checked() {
        let arn = |a: &str| check(&format!(r#"{{"DeadLetterConfig":{{"Arn":"{a}"}}}}"#));
        let errs = arn("kafka://orders").unwrap_err();
        assert_eq!(errs[0].name, "SluiceParameters.DeadLetterConfig.Arn");
        assert!(errs[0]
            .message
            .contains("cannot be its own dead-letter topic"));
        assert!(arn("kafka://nowhere/dlq").unwrap_err()[0]
            .message
            .contains("which is not declared"));
        assert!(arn("kafka://bad topic").is_err());
        assert!(arn("arn:aws:lambda:us-east-1:1:function:f").is_err());
        assert!(arn("").is_err());
        assert!(matches!(
            arn("arn:aws:sqs:us-east-1:123456789012:dlq").unwrap().1,
            Some(DeadLetterConfig::Sqs { .. })
        ));
        assert!(matches!(
            arn("arn:aws:sns:us-east-1:123456789012:dlq").unwrap().1,
            Some(DeadLetterConfig::Sns { .. })
        ));
        assert!(matches!(
            arn("arn:aws:s3:::failures").unwrap().1,
            Some(DeadLetterConfig::S3 { bucket, .. }) if bucket == "failures"
        ));
        assert!(arn("arn:aws:s3:::").is_err());
    }
}
