//! The concurrency part of a pipe definition (`concurrency.md`), validated: key-ordered parallelism
//! within a partition (`ParallelizationFactor`) and the limit of target calls in flight
//! (`MaximumConcurrency`, `AdaptiveConcurrency`), all in `SluiceParameters`. Nothing set means AWS
//! behaviour: one batch in flight per partition; the limit only acts once the target throttles.

use super::definition::PipeDefinition;
use crate::field_error::FieldError;

/// The concurrency settings of one pipe, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySettings {
    /// Sub-lanes per partition (1: one batch in flight per partition).
    pub parallelization: usize,
    /// Most target calls of the pipe in flight at once; `None`: lanes x sub-lanes.
    pub max_concurrency: Option<usize>,
    /// Halve the limit when the target throttles, grow it back after successes.
    pub adaptive: bool,
}

impl Default for ConcurrencySettings {
    fn default() -> Self {
        Self {
            parallelization: 1,
            max_concurrency: None,
            adaptive: true,
        }
    }
}

const FACTOR: std::ops::RangeInclusive<i64> = 1..=100;
const CONCURRENCY: std::ops::RangeInclusive<i64> = 1..=10_000;

/// `ParallelizationFactor`, `MaximumConcurrency` and `AdaptiveConcurrency`.
pub(crate) fn validate_concurrency(
    def: &PipeDefinition,
    errs: &mut Vec<FieldError>,
) -> ConcurrencySettings {
    let mut out = ConcurrencySettings::default();
    let Some(ext) = &def.sluice_parameters else {
        return out;
    };
    match ext.parallelization_factor {
        None => {}
        Some(n) if FACTOR.contains(&n) => out.parallelization = n as usize,
        Some(n) => errs.push(FieldError::new(
            "SluiceParameters.ParallelizationFactor",
            format!("must be between 1 and 100, not {n}"),
        )),
    }
    match ext.maximum_concurrency {
        None => {}
        Some(n) if CONCURRENCY.contains(&n) => out.max_concurrency = Some(n as usize),
        Some(n) => errs.push(FieldError::new(
            "SluiceParameters.MaximumConcurrency",
            format!("must be between 1 and 10000, not {n}"),
        )),
    }
    if let Some(a) = ext.adaptive_concurrency {
        out.adaptive = a;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;

    fn check(ext: &str) -> Result<ConcurrencySettings, Vec<FieldError>> {
        let def = parse_definition(&format!(r#"{{"SluiceParameters":{ext}}}"#), false).unwrap();
        let mut errs = Vec::new();
        let out = validate_concurrency(&def, &mut errs);
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(errs)
        }
    }

    #[test]
    fn nothing_set_is_one_batch_per_partition_with_an_adaptive_limit() {
        assert_eq!(check("{}").unwrap(), ConcurrencySettings::default());
    }

    #[test]
    fn ranges_are_checked_on_both_sides() {
        for ok in [1, 100] {
            let s = check(&format!(r#"{{"ParallelizationFactor":{ok}}}"#)).unwrap();
            assert_eq!(s.parallelization, ok as usize);
        }
        for bad in [0, 101, -1] {
            let errs = check(&format!(r#"{{"ParallelizationFactor":{bad}}}"#)).unwrap_err();
            assert_eq!(errs[0].name, "SluiceParameters.ParallelizationFactor");
        }
        assert_eq!(
            check(r#"{"MaximumConcurrency":8}"#)
                .unwrap()
                .max_concurrency,
            Some(8)
        );
        let errs = check(r#"{"MaximumConcurrency":0}"#).unwrap_err();
        assert_eq!(errs[0].name, "SluiceParameters.MaximumConcurrency");
        assert!(!check(r#"{"AdaptiveConcurrency":false}"#).unwrap().adaptive);
    }
}
