//! The offset commit part of a pipe definition, validated: `OffsetCommitIntervalSeconds` in
//! `SluiceParameters`. Nothing set means AWS behaviour: every batch's offsets are committed, and
//! the commit awaited, before the partition's next batch.

use std::time::Duration;

use super::definition::PipeDefinition;
use crate::field_error::FieldError;

const FIELD: &str = "SluiceParameters.OffsetCommitIntervalSeconds";
const MAX_SECS: f64 = 300.0;

/// The least time between two offset commits of a partition; zero commits after every batch.
pub(crate) fn validate_commit_interval(
    def: &PipeDefinition,
    errs: &mut Vec<FieldError>,
) -> Duration {
    let secs = def
        .sluice_parameters
        .as_ref()
        .and_then(|s| s.offset_commit_interval_seconds);
    match secs {
        None => Duration::ZERO,
        Some(s) if !(0.0..=MAX_SECS).contains(&s) => {
            errs.push(FieldError::new(
                FIELD,
                format!("must be between 0 and {MAX_SECS} seconds, not {s}"),
            ));
            Duration::ZERO
        }
        Some(s) => Duration::from_secs_f64(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;

    fn check(ext: &str) -> Result<Duration, Vec<FieldError>> {
        let def = parse_definition(&format!(r#"{{"SluiceParameters":{ext}}}"#), false).unwrap();
        let mut errs = Vec::new();
        let interval = validate_commit_interval(&def, &mut errs);
        if errs.is_empty() {
            Ok(interval)
        } else {
            Err(errs)
        }
    }

    #[test]
    fn no_interval_commits_after_every_batch() {
        assert_eq!(check("{}"), Ok(Duration::ZERO));
        assert_eq!(
            check(r#"{"OffsetCommitIntervalSeconds":0}"#),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn an_interval_in_range_is_taken() {
        assert_eq!(
            check(r#"{"OffsetCommitIntervalSeconds":2.5}"#),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(
            check(r#"{"OffsetCommitIntervalSeconds":300}"#),
            Ok(Duration::from_secs(300))
        );
    }

    #[test]
    fn an_interval_out_of_range_names_the_field_and_the_range() {
        for bad in ["-1", "300.5", "1e9"] {
            let errs = check(&format!(r#"{{"OffsetCommitIntervalSeconds":{bad}}}"#)).unwrap_err();
            assert_eq!(errs[0].name, FIELD);
            assert!(
                errs[0].message.contains("between 0 and 300"),
                "{bad}: {}",
                errs[0].message
            );
        }
    }
}
