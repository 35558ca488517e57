//! EventBridge event patterns for Sluice: parse, validate and match. Pure: no I/O.
//!
//! The crate implements the pattern language of `shared/spec/filtering.md` (a superset of what AWS
//! documents for Pipes: see the crate README). A pipe's filters are compiled once into a
//! [`Matcher`]; matching makes one pass over the event bytes, reads only the fields the patterns
//! name and skips (while validating) everything else, without building a tree.
//!
//! ```
//! use sluice_pattern::Matcher;
//! let m = Matcher::compile(r#"{"detail": {"qty": [{"numeric": [">", 0, "<=", 5]}]}}"#).unwrap();
//! assert!(m.matches_json(br#"{"detail": {"qty": 5.0}}"#).unwrap());
//! assert!(!m.matches_json(br#"{"detail": {"qty": "5"}}"#).unwrap());
//! ```
//!
//! Modules: `json` reads JSON text, `number` compares decimals exactly, `cond` holds operator
//! semantics on one value, `compile` turns pattern text into conjunctions (and owns the error
//! messages), `eval` builds the path trie and runs the one-pass scan.

mod compile;
mod complexity;
mod cond;
mod error;
mod eval;
mod json;
mod number;
#[cfg(test)]
mod spec_tests;

pub use error::{EventError, PatternError, MAX_COMBINATIONS, MAX_FILTERS, MAX_PATTERN_CHARS};

use compile::Program;
use eval::{FilterSet, Trie};

/// A compiled set of patterns (a pipe's `FilterCriteria`: up to 5 filters, ORed).
///
/// Cheap to share between threads (`Send + Sync`); matching never mutates it.
#[derive(Debug)]
pub struct Matcher {
    inner: Inner,
    filters: usize,
    conjunctions: usize,
}

/// The trie, specialised on how many 64-bit words one bit per conjunction needs.
#[derive(Debug)]
enum Inner {
    W1(Trie<1>),
    W4(Trie<4>),
    W16(Box<Trie<16>>),
    /// 5 filters x 1,000 combinations = 5,000 conjunctions at most: 79 words.
    W79(Box<Trie<79>>),
}

/// One Kafka record as the filter sees it (the record format of `kafka-source.md`, before base64).
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition; the record JSON holds it as a string (`"0"`), so patterns match it as one.
    pub partition: i32,
    /// Offset (a JSON number).
    pub offset: i64,
    /// Timestamp in ms (a JSON number).
    pub timestamp: i64,
    /// `CREATE_TIME` or `LOG_APPEND_TIME`.
    pub timestamp_type: &'a str,
    /// Key bytes; `None` (a null key) means the field is absent.
    pub key: Option<&'a [u8]>,
    /// Value bytes; `None` (a tombstone) is JSON `null`.
    pub value: Option<&'a [u8]>,
    /// Headers in record order; values are matched as arrays of signed bytes (`None`: `null`).
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    /// Self-managed Kafka: the bootstrap servers (`eventSource` is then `SelfManagedKafka`).
    pub bootstrap_servers: Option<&'a str>,
    /// MSK: the cluster ARN (not filterable under [`Matcher::compile_kafka`]).
    pub event_source_arn: Option<&'a str>,
}

impl Matcher {
    /// Compiles one pattern (JSON text).
    pub fn compile(pattern: &str) -> Result<Matcher, PatternError> {
        let mut p = Program::default();
        p.add(pattern, false)?;
        Ok(Matcher::build(p))
    }

    /// Compiles all filters of a pipe (at most 5, each at most 4,096 characters); a record
    /// passes if any filter matches. An empty list matches nothing (callers treat an empty
    /// `Filters` list as "no filtering" and need no matcher).
    pub fn compile_all<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        Matcher::compile_many(patterns, false)
    }

    /// Like [`Matcher::compile_all`], with the Kafka-source rules: patterns naming
    /// `eventSource`, `eventSourceArn`, `eventSourceKey` or `awsRegion` are rejected.
    pub fn compile_kafka<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        Matcher::compile_many(patterns, true)
    }

    fn compile_many<S: AsRef<str>>(patterns: &[S], kafka: bool) -> Result<Matcher, PatternError> {
        if patterns.len() > MAX_FILTERS {
            return Err(PatternError::TooManyFilters {
                count: patterns.len(),
            });
        }
        let mut p = Program::default();
        for (i, pat) in patterns.iter().enumerate() {
            p.add(pat.as_ref(), kafka)
                .map_err(|e| PatternError::InFilter {
                    number: i + 1,
                    inner: Box::new(e),
                })?;
        }
        Ok(Matcher::build(p))
    }

    fn build(p: Program) -> Matcher {
        let n = p.conjs.len();
        let inner = if n <= 64 {
            Inner::W1(Trie::build(&p))
        } else if n <= 256 {
            Inner::W4(Trie::build(&p))
        } else if n <= 1024 {
            Inner::W16(Box::new(Trie::build(&p)))
        } else {
            Inner::W79(Box::new(Trie::build(&p)))
        };
        Matcher {
            inner,
            filters: p.filters,
            conjunctions: n,
        }
    }

    /// Number of filters compiled in.
    pub fn filter_count(&self) -> usize {
        self.filters
    }

    /// Number of `$or`-free alternatives across all filters (a measure of matching cost).
    pub fn conjunction_count(&self) -> usize {
        self.conjunctions
    }

    /// Matches a JSON event given as text (as `aws events test-event-pattern` does).
    /// `Err` only if the event is not valid JSON (the whole event is validated).
    pub fn matches_json(&self, event: &[u8]) -> Result<bool, EventError> {
        Ok(self.matching_filters_json(event)? != 0)
    }

    /// Like [`Matcher::matches_json`], returning a bit mask of the filters that match
    /// (bit `i` for the `i`-th filter, in compile order).
    pub fn matching_filters_json(&self, event: &[u8]) -> Result<u8, EventError> {
        let r: Result<FilterSet, _> = match &self.inner {
            Inner::W1(t) => t.match_json(event),
            Inner::W4(t) => t.match_json(event),
            Inner::W16(t) => t.match_json(event),
            Inner::W79(t) => t.match_json(event),
        };
        Ok(r?.0)
    }

    /// Like [`Matcher::matches_json`], but trusts the event to be JSON: it reads only as far as
    /// the patterns need (stopping once every named field has been seen) and skips the rest
    /// without validating it, as quamina does. On valid JSON the answer is always the same as
    /// [`Matcher::matches_json`]'s; on invalid JSON it may be `Ok` where that one says `Err`.
    /// For events that were already validated (or produced by trusted code).
    pub fn matches_json_lenient(&self, event: &[u8]) -> Result<bool, EventError> {
        let r: Result<FilterSet, _> = match &self.inner {
            Inner::W1(t) => t.match_json_lenient(event),
            Inner::W4(t) => t.match_json_lenient(event),
            Inner::W16(t) => t.match_json_lenient(event),
            Inner::W79(t) => t.match_json_lenient(event),
        };
        Ok(r?.0 != 0)
    }

    /// Matches a Kafka record, decoding `key` and `value` as `filtering.md` says: UTF-8 text that
    /// is valid JSON is matched as JSON, other text as a plain string. When the record's format
    /// and the pattern's disagree (a JSON object or array where the pattern has a plain-string
    /// leaf; plain text where the pattern has fields under `value`), or the bytes are not UTF-8,
    /// every condition on that field fails, `{"exists": false}` included (the field is there,
    /// just unreadable: claiming it absent would let garbage through), so only conditions on
    /// other fields (topic, partition, offset, timestamp, ...) can still match, e.g. in another
    /// `$or` branch or another filter.
    pub fn matches_kafka(&self, record: &KafkaRecord<'_>) -> bool {
        self.matching_filters_kafka(record) != 0
    }

    /// Like [`Matcher::matches_kafka`], returning the bit mask of matching filters.
    pub fn matching_filters_kafka(&self, record: &KafkaRecord<'_>) -> u8 {
        let r = match &self.inner {
            Inner::W1(t) => t.match_kafka(record),
            Inner::W4(t) => t.match_kafka(record),
            Inner::W16(t) => t.match_kafka(record),
            Inner::W79(t) => t.match_kafka(record),
        };
        r.0
    }
}

/// Checks one pattern without keeping the matcher (for validation at create/update time).
pub fn validate(pattern: &str) -> Result<(), PatternError> {
    Matcher::compile(pattern).map(|_| ())
}

/// True if `bytes` is one complete, valid JSON text (the check the Kafka decoding applies).
pub fn is_valid_json(bytes: &[u8]) -> bool {
    json::is_valid_json(bytes)
}
