//! Rules of the pipe definition that only the control-plane API applies: what `CreatePipe` and
//! `UpdatePipe` require beyond a pipe file (`RoleArn`), how an `UpdatePipe` body merges into the
//! stored definition (immutable fields, parameter blocks replaced whole), tag limits of
//! `TagResource`, and the `sluice:`-prefixed tags through which API users reach
//! [`SluiceParameters`] (AWS clients validate requests against AWS's model, so they cannot send
//! our extension block).

use std::collections::BTreeMap;

use super::definition::{
    DeadLetterConfig, KafkaParameters, PipeDefinition, SluiceParameters, StartingTimestamp,
};
use super::{FieldError, ValidationError};

/// Tags whose key starts with this set a [`SluiceParameters`] field (`sluice:HttpDelivery`).
pub const EXTENSION_TAG_PREFIX: &str = "sluice:";

/// The [`SluiceParameters`] fields reachable through tags, in the order they are documented.
pub const EXTENSION_TAGS: &[&str] = &[
    "BootstrapServers",
    "MskBrokerAccess",
    "StartingPositionTimestamp",
    "HttpDelivery",
    "HttpTimeoutSeconds",
    "MaximumRetryBackoffSeconds",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "OnPartialBatchItemFailure",
    "ReportBatchItemFailures",
    "DeadLetterArn",
    "ParallelizationFactor",
    "MaximumConcurrency",
    "AdaptiveConcurrency",
    "LogDestination",
    "OffsetCommitIntervalSeconds",
];

const MAX_TAGS: usize = 50;

/// Why `BootstrapServers` (field or tag) is refused on a self-managed source.
pub(crate) const SMK_BOOTSTRAP_SERVERS: &str = "applies only to an MSK cluster source (Source an MSK cluster ARN); a self-managed source's brokers are its Source (and AdditionalBootstrapServers), which cannot change";

fn invalid(fields: Vec<FieldError>) -> Result<(), ValidationError> {
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { fields })
    }
}

/// Checks of a `CreatePipe` body that a pipe file does not need: `RoleArn` is required by the API.
pub fn check_create_request(def: &PipeDefinition) -> Result<(), ValidationError> {
    let mut errs = Vec::new();
    if def.role_arn.as_deref().is_none_or(str::is_empty) {
        errs.push(FieldError::new("RoleArn", "is required"));
    }
    invalid(errs)
}

/// Merge an `UpdatePipe` body into the stored definition.
///
/// `RoleArn` is required. `Source`, and of the Kafka block `TopicName`, `StartingPosition`,
/// `ConsumerGroupID` and `AdditionalBootstrapServers`, cannot change: giving them with a different
/// value is a field error, giving the stored value is accepted. A parameter block that is given
/// (`FilterCriteria`, the Kafka block, `TargetParameters`, `EnrichmentParameters`,
/// `LogConfiguration`, `SluiceParameters`) replaces the stored one whole; one that is absent is
/// kept. `Enrichment: ""` removes the enrichment. `Tags` are changed with `TagResource`.
///
/// The result still has to pass [`super::validate`].
pub fn merge_update(
    stored: &PipeDefinition,
    update: &PipeDefinition,
) -> Result<PipeDefinition, ValidationError> {
    let mut errs = Vec::new();
    let mut out = stored.clone();
    if update.role_arn.as_deref().is_none_or(str::is_empty) {
        errs.push(FieldError::new("RoleArn", "is required"));
    }
    if let Some(name) = &update.name {
        if Some(name) != stored.name.as_ref() {
            errs.push(FieldError::new("Name", "cannot be changed"));
        }
    }
    if let Some(source) = &update.source {
        if Some(source) != stored.source.as_ref() {
            errs.push(FieldError::new(
                "Source",
                "cannot be changed after the pipe was created; create a new pipe instead",
            ));
        }
    }
    if update.tags.is_some() {
        errs.push(FieldError::new(
            "Tags",
            "cannot be changed by UpdatePipe; use TagResource and UntagResource",
        ));
    }
    if let Some(sp) = &update.source_parameters {
        let stored_sp = stored.source_parameters.clone().unwrap_or_default();
        let mut merged = stored_sp.clone();
        if sp.filter_criteria.is_some() {
            merged.filter_criteria = sp.filter_criteria.clone();
        }
        if let Some(k) = &sp.self_managed_kafka_parameters {
            merged.self_managed_kafka_parameters = Some(merge_kafka(
                stored_sp.self_managed_kafka_parameters.as_ref(),
                k,
                "SourceParameters.SelfManagedKafkaParameters",
                &mut errs,
            ));
        }
        if let Some(k) = &sp.managed_streaming_kafka_parameters {
            merged.managed_streaming_kafka_parameters = Some(merge_kafka(
                stored_sp.managed_streaming_kafka_parameters.as_ref(),
                k,
                "SourceParameters.ManagedStreamingKafkaParameters",
                &mut errs,
            ));
        }
        // Other source kinds are kept so that validation names them.
        merged.other.extend(sp.other.clone());
        out.source_parameters = Some(merged);
    }
    if let Some(d) = &update.description {
        out.description = Some(d.clone());
    }
    if let Some(d) = &update.desired_state {
        out.desired_state = Some(d.clone());
    }
    match update.enrichment.as_deref() {
        Some("") => {
            out.enrichment = None;
            out.enrichment_parameters = None;
        }
        Some(e) => out.enrichment = Some(e.to_string()),
        None => {}
    }
    if update.enrichment_parameters.is_some() {
        out.enrichment_parameters = update.enrichment_parameters.clone();
    }
    if let Some(t) = &update.target {
        out.target = Some(t.clone());
    }
    if update.target_parameters.is_some() {
        out.target_parameters = update.target_parameters.clone();
    }
    if update.role_arn.is_some() {
        out.role_arn = update.role_arn.clone();
    }
    if update.log_configuration.is_some() {
        out.log_configuration = update.log_configuration.clone();
    }
    if update.kms_key_identifier.is_some() {
        out.kms_key_identifier = update.kms_key_identifier.clone();
    }
    if update.sluice_parameters.is_some() {
        out.sluice_parameters = update.sluice_parameters.clone();
    }
    invalid(errs)?;
    check_fixed_extensions(stored, &out)?;
    Ok(out)
}

/// The extensions that, like `StartingPosition`, cannot change after creation
/// (`StartingPositionTimestamp`, in `SluiceParameters` or its `sluice:` tag): a different value in
/// `new` (an update, or the pipe's tags after `TagResource`/`UntagResource`) is a field error.
/// Definitions whose tags do not parse are left to validation.
pub fn check_fixed_extensions(
    stored: &PipeDefinition,
    new: &PipeDefinition,
) -> Result<(), ValidationError> {
    let timestamp = |d: &PipeDefinition| -> Option<Option<StartingTimestamp>> {
        let d = with_tag_extensions(d).ok()?;
        Some(
            d.sluice_parameters
                .and_then(|s| s.starting_position_timestamp),
        )
    };
    let (Some(before), Some(after)) = (timestamp(stored), timestamp(new)) else {
        return Ok(());
    };
    // The same instant written another way (a number, digits, RFC 3339) is the same value.
    let ms = |t: &Option<StartingTimestamp>| {
        t.as_ref()
            .map(|t| super::timestamp::starting_timestamp_ms(t, i64::MAX).map_err(|_| t.clone()))
    };
    if ms(&before) == ms(&after) {
        return Ok(());
    }
    let tag = format!("{EXTENSION_TAG_PREFIX}StartingPositionTimestamp");
    let by_tag = |d: &PipeDefinition| d.tags.as_ref().is_some_and(|t| t.contains_key(&tag));
    let field = if by_tag(stored) || by_tag(new) {
        format!("Tags.{tag}")
    } else {
        super::timestamp::FIELD.to_string()
    };
    invalid(vec![FieldError::new(
        field,
        "cannot be changed after the pipe was created; create a new pipe instead",
    )])
}

/// The Kafka block of an update: mutable fields from `new`, immutable ones from `stored` (a
/// differing immutable value is a field error).
fn merge_kafka(
    stored: Option<&KafkaParameters>,
    new: &KafkaParameters,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> KafkaParameters {
    let stored = stored.cloned().unwrap_or_default();
    let immutable = |field: &str, errs: &mut Vec<FieldError>| {
        errs.push(FieldError::new(
            format!("{path}.{field}"),
            "cannot be changed after the pipe was created; create a new pipe instead",
        ));
    };
    if new.topic_name.is_some() && new.topic_name != stored.topic_name {
        immutable("TopicName", errs);
    }
    let position = |p: &Option<String>| p.clone().unwrap_or_else(|| "LATEST".into());
    if new.starting_position.is_some()
        && position(&new.starting_position) != position(&stored.starting_position)
    {
        immutable("StartingPosition", errs);
    }
    if new.consumer_group_id.is_some() && new.consumer_group_id != stored.consumer_group_id {
        immutable("ConsumerGroupID", errs);
    }
    if new.additional_bootstrap_servers.is_some()
        && new.additional_bootstrap_servers != stored.additional_bootstrap_servers
    {
        immutable("AdditionalBootstrapServers", errs);
    }
    KafkaParameters {
        topic_name: stored.topic_name,
        starting_position: stored.starting_position,
        consumer_group_id: stored.consumer_group_id,
        additional_bootstrap_servers: stored.additional_bootstrap_servers,
        batch_size: new.batch_size,
        maximum_batching_window_in_seconds: new.maximum_batching_window_in_seconds,
        credentials: new.credentials.clone(),
        server_root_ca_certificate: new.server_root_ca_certificate.clone(),
        vpc: new.vpc.clone(),
    }
}

/// Check the tags of a `TagResource` request (and the pipe's tags after it): 1-50 entries, keys
/// 1-128 characters, values at most 256.
pub fn check_tags(field: &str, tags: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let mut errs = Vec::new();
    if tags.len() > MAX_TAGS {
        errs.push(FieldError::new(
            field,
            format!("must have at most {MAX_TAGS} entries"),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            errs.push(FieldError::new(
                format!("{field}.{k}"),
                "tag keys must be 1-128 characters",
            ));
        }
        if v.chars().count() > 256 {
            errs.push(FieldError::new(
                format!("{field}.{k}"),
                "tag values must be at most 256 characters",
            ));
        }
    }
    invalid(errs)
}

/// The definition the engine runs: `SluiceParameters` as written, overridden field by field by
/// `sluice:`-prefixed tags (`sluice:BootstrapServers` is a comma-separated `host:port` list; the
/// numeric ones are numbers of seconds). An unknown `sluice:` key or a value of the wrong type is
/// a field error naming the tag.
pub fn with_tag_extensions(def: &PipeDefinition) -> Result<PipeDefinition, ValidationError> {
    let Some(tags) = &def.tags else {
        return Ok(def.clone());
    };
    let mut errs = Vec::new();
    let mut ext = def.sluice_parameters.clone().unwrap_or_default();
    let mut any = false;
    for (key, value) in tags {
        let Some(field) = key.strip_prefix(EXTENSION_TAG_PREFIX) else {
            continue;
        };
        any = true;
        let seconds = |errs: &mut Vec<FieldError>| match value.trim().parse::<f64>() {
            Ok(s) if s.is_finite() => Some(s),
            _ => {
                errs.push(FieldError::new(
                    format!("Tags.{key}"),
                    format!("must be a number of seconds, not {value:?}"),
                ));
                None
            }
        };
        let integer = |errs: &mut Vec<FieldError>| match value.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(FieldError::new(
                    format!("Tags.{key}"),
                    format!("must be a whole number, not {value:?}"),
                ));
                None
            }
        };
        let boolean = |errs: &mut Vec<FieldError>| match value.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                errs.push(FieldError::new(
                    format!("Tags.{key}"),
                    format!("must be true or false, not {value:?}"),
                ));
                None
            }
        };
        match field {
            // On a self-managed source it would add brokers to the immutable `Source`.
            "BootstrapServers" if def.source.as_deref().is_some_and(|s| s.starts_with("smk://")) => {
                errs.push(FieldError::new(format!("Tags.{key}"), SMK_BOOTSTRAP_SERVERS))
            }
            "BootstrapServers" => {
                ext.bootstrap_servers = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "MskBrokerAccess" => ext.msk_broker_access = Some(value.clone()),
            "StartingPositionTimestamp" => {
                ext.starting_position_timestamp = Some(StartingTimestamp::Text(value.clone()))
            }
            "HttpDelivery" => ext.http_delivery = Some(value.clone()),
            "HttpTimeoutSeconds" => ext.http_timeout_seconds = seconds(&mut errs),
            "MaximumRetryBackoffSeconds" => ext.maximum_retry_backoff_seconds = seconds(&mut errs),
            "MaximumRetryAttempts" => ext.maximum_retry_attempts = integer(&mut errs),
            "MaximumRecordAgeInSeconds" => ext.maximum_record_age_in_seconds = integer(&mut errs),
            "OnPartialBatchItemFailure" => ext.on_partial_batch_item_failure = Some(value.clone()),
            "ReportBatchItemFailures" => ext.report_batch_item_failures = boolean(&mut errs),
            "ParallelizationFactor" => ext.parallelization_factor = integer(&mut errs),
            "MaximumConcurrency" => ext.maximum_concurrency = integer(&mut errs),
            "AdaptiveConcurrency" => ext.adaptive_concurrency = boolean(&mut errs),
            "LogDestination" => ext.log_destination = Some(value.clone()),
            "OffsetCommitIntervalSeconds" => {
                ext.offset_commit_interval_seconds = seconds(&mut errs)
            }
            "DeadLetterArn" => {
                ext.dead_letter_config = Some(DeadLetterConfig {
                    arn: Some(value.clone()),
                })
            }
            _ => errs.push(FieldError::new(
                format!("Tags.{key}"),
                format!(
                    "unknown Sluice extension; tags starting with {EXTENSION_TAG_PREFIX:?} set SluiceParameters and must be one of {}",
                    EXTENSION_TAGS
                        .iter()
                        .map(|t| format!("{EXTENSION_TAG_PREFIX}{t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    invalid(errs)?;
    let mut out = def.clone();
    if any {
        out.sluice_parameters = Some(ext);
    }
    Ok(out)
}

/// Whether two definitions differ in what the engine runs (used to skip restarts on tag changes
/// that do not touch extensions).
pub fn same_extensions(a: &PipeDefinition, b: &PipeDefinition) -> bool {
    let ext = |d: &PipeDefinition| -> Option<SluiceParameters> {
        with_tag_extensions(d)
            .ok()
            .and_then(|d| d.sluice_parameters)
    };
    ext(a) == ext(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_definition;

    fn def(json: &str) -> PipeDefinition {
        parse_definition(json, false).unwrap()
    }

    const STORED: &str = r#"{"Name":"p","Source":"smk://h:9092","Target":"http://x/","RoleArn":"arn:aws:iam::123456789012:role/r",
        "SourceParameters":{"FilterCriteria":{"Filters":[{"Pattern":"{\"value\":{\"a\":[1]}}"}]},
          "SelfManagedKafkaParameters":{"TopicName":"t","StartingPosition":"TRIM_HORIZON","BatchSize":10,"ConsumerGroupID":"g"}}}"#;

    #[test]
    fn batch_size_changes_and_immutables_are_kept() {
        let merged = merge_update(
            &def(STORED),
            &def(r#"{"RoleArn":"arn:aws:iam::123456789012:role/r","SourceParameters":{"SelfManagedKafkaParameters":{"BatchSize":50}}}"#),
        )
        .unwrap();
        let sp = merged.source_parameters.unwrap();
        let k = sp.self_managed_kafka_parameters.unwrap();
        assert_eq!(k.batch_size, Some(50));
        assert_eq!(k.topic_name.as_deref(), Some("t"));
        assert_eq!(k.starting_position.as_deref(), Some("TRIM_HORIZON"));
        assert_eq!(k.consumer_group_id.as_deref(), Some("g"));
        assert!(sp.filter_criteria.is_some(), "absent block is kept");
    }

    #[test]
    fn log_configuration_is_replaced_whole_and_kept_when_absent() {
        let mut stored = def(STORED);
        stored.log_configuration =
            def(r#"{"LogConfiguration":{"Level":"ERROR","IncludeExecutionData":["ALL"]}}"#)
                .log_configuration;
        let role = r#""RoleArn":"arn:aws:iam::123456789012:role/r""#;
        let kept = merge_update(&stored, &def(&format!("{{{role}}}"))).unwrap();
        assert_eq!(kept.log_configuration, stored.log_configuration);
        let changed = merge_update(
            &stored,
            &def(&format!(
                r#"{{{role},"LogConfiguration":{{"Level":"INFO"}}}}"#
            )),
        )
        .unwrap();
        let lc = changed.log_configuration.unwrap();
        assert_eq!(lc.level.as_deref(), Some("INFO"));
        assert_eq!(lc.include_execution_data, None);
    }

    #[test]
    fn immutable_fields_are_rejected_by_name() {
        let err = merge_update(
            &def(STORED),
            &def(r#"{"RoleArn":"arn:aws:iam::123456789012:role/r","Source":"smk://other:9092",
                "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"u","StartingPosition":"LATEST","ConsumerGroupID":"h"}}}"#),
        )
        .unwrap_err();
        let names: Vec<&str> = err.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "Source",
                "SourceParameters.SelfManagedKafkaParameters.TopicName",
                "SourceParameters.SelfManagedKafkaParameters.StartingPosition",
                "SourceParameters.SelfManagedKafkaParameters.ConsumerGroupID",
            ]
        );
    }

    #[test]
    fn same_immutable_values_are_accepted() {
        merge_update(
            &def(STORED),
            &def(r#"{"RoleArn":"arn:aws:iam::123456789012:role/r","Source":"smk://h:9092",
                "SourceParameters":{"SelfManagedKafkaParameters":{"TopicName":"t","StartingPosition":"TRIM_HORIZON"}}}"#),
        )
        .unwrap();
    }

    #[test]
    fn role_arn_is_required_and_empty_enrichment_removes_it() {
        let err = merge_update(&def(STORED), &def("{}")).unwrap_err();
        assert_eq!(err.fields[0].name, "RoleArn");
        let mut stored = def(STORED);
        stored.enrichment = Some("http://e/".into());
        let merged = merge_update(
            &stored,
            &def(r#"{"RoleArn":"arn:aws:iam::123456789012:role/r","Enrichment":""}"#),
        )
        .unwrap();
        assert_eq!(merged.enrichment, None);
        assert!(check_create_request(&def(r#"{"Source":"smk://h:1"}"#)).is_err());
    }

    #[test]
    fn failure_handling_tags_set_extensions() {
        let def = crate::model::parse_definition(
            r#"{"Tags":{"sluice:MaximumRetryAttempts":"3","sluice:MaximumRecordAgeInSeconds":"120","sluice:OnPartialBatchItemFailure":"AUTOMATIC_BISECT","sluice:ReportBatchItemFailures":"true","sluice:DeadLetterArn":"kafka://dlq"}}"#,
            false,
        )
        .unwrap();
        let ext = with_tag_extensions(&def)
            .unwrap()
            .sluice_parameters
            .unwrap();
        assert_eq!(ext.maximum_retry_attempts, Some(3));
        assert_eq!(ext.maximum_record_age_in_seconds, Some(120));
        assert_eq!(
            ext.on_partial_batch_item_failure.as_deref(),
            Some("AUTOMATIC_BISECT")
        );
        assert_eq!(ext.report_batch_item_failures, Some(true));
        assert_eq!(
            ext.dead_letter_config.and_then(|d| d.arn).as_deref(),
            Some("kafka://dlq")
        );
        let bad = crate::model::parse_definition(
            r#"{"Tags":{"sluice:MaximumRetryAttempts":"three","sluice:ReportBatchItemFailures":"yes"}}"#,
            false,
        )
        .unwrap();
        let err = with_tag_extensions(&bad).unwrap_err();
        assert_eq!(err.fields[0].name, "Tags.sluice:MaximumRetryAttempts");
        assert_eq!(err.fields[1].name, "Tags.sluice:ReportBatchItemFailures");
    }

    #[test]
    fn regression_bootstrap_servers_tag_added_brokers_to_a_self_managed_source() {
        let mut d = def(r#"{"Tags":{"sluice:BootstrapServers":"evil:9092"}}"#);
        d.source = Some("smk://good:9092".into());
        let err = with_tag_extensions(&d).unwrap_err();
        assert_eq!(err.fields.len(), 1);
        assert_eq!(err.fields[0].name, "Tags.sluice:BootstrapServers");
        assert!(err.fields[0]
            .message
            .contains("only to an MSK cluster source"));
        d.source = Some("arn:aws:kafka:us-east-1:123456789012:cluster/c/abc-1".into());
        assert!(with_tag_extensions(&d).is_ok());
    }

    #[test]
    fn sluice_tags_set_extensions() {
        let d = def(
            r#"{"Tags":{"team":"a","sluice:HttpDelivery":"BATCH","sluice:BootstrapServers":"a:1, b:2","sluice:HttpTimeoutSeconds":"2.5","sluice:LogDestination":"stdout","sluice:OffsetCommitIntervalSeconds":"1"}}"#,
        );
        let ext = with_tag_extensions(&d).unwrap().sluice_parameters.unwrap();
        assert_eq!(ext.http_delivery.as_deref(), Some("BATCH"));
        assert_eq!(
            ext.bootstrap_servers,
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        assert_eq!(ext.http_timeout_seconds, Some(2.5));
        assert_eq!(ext.log_destination.as_deref(), Some("stdout"));
        assert_eq!(ext.offset_commit_interval_seconds, Some(1.0));
        let err = with_tag_extensions(&def(
            r#"{"Tags":{"sluice:Nope":"1","sluice:HttpTimeoutSeconds":"soon"}}"#,
        ))
        .unwrap_err();
        assert_eq!(err.fields.len(), 2);
        assert_eq!(err.fields[0].name, "Tags.sluice:HttpTimeoutSeconds");
        assert_eq!(err.fields[1].name, "Tags.sluice:Nope");
        assert!(same_extensions(&def(r#"{"Tags":{"a":"1"}}"#), &def("{}")));
    }

    #[test]
    fn the_starting_timestamp_cannot_change_after_creation() {
        let role = r#""RoleArn":"arn:aws:iam::123456789012:role/r""#;
        let stored = def(&STORED.replace(
            "\"RoleArn\"",
            "\"SluiceParameters\":{\"StartingPositionTimestamp\":1714564800},\"RoleArn\"",
        ));
        // The same instant in another form is no change; another instant is.
        let same = format!(
            r#"{{{role},"SluiceParameters":{{"StartingPositionTimestamp":"2024-05-01T12:00:00Z"}}}}"#
        );
        merge_update(&stored, &def(&same)).unwrap();
        let other = format!(
            r#"{{{role},"SluiceParameters":{{"StartingPositionTimestamp":"2024-05-01T12:00:01Z"}}}}"#
        );
        let err = merge_update(&stored, &def(&other)).unwrap_err();
        assert_eq!(
            err.fields[0].name,
            "SluiceParameters.StartingPositionTimestamp"
        );
        assert!(err.fields[0].message.contains("cannot be changed"));
        let dropped = format!(r#"{{{role},"SluiceParameters":{{}}}}"#);
        assert!(merge_update(&stored, &def(&dropped)).is_err());
        // Through tags: set at creation, then changed with TagResource.
        let tagged = def(r#"{"Tags":{"sluice:StartingPositionTimestamp":"1714564800"}}"#);
        let retagged = def(r#"{"Tags":{"sluice:StartingPositionTimestamp":"1714564801"}}"#);
        let err = check_fixed_extensions(&tagged, &retagged).unwrap_err();
        assert_eq!(err.fields[0].name, "Tags.sluice:StartingPositionTimestamp");
        check_fixed_extensions(&tagged, &tagged).unwrap();
        let ext = with_tag_extensions(&tagged)
            .unwrap()
            .sluice_parameters
            .unwrap();
        assert_eq!(
            ext.starting_position_timestamp,
            Some(StartingTimestamp::Text("1714564800".into()))
        );
    }
}
