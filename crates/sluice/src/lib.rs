//! Sluice: EventBridge Pipes for Kafka, self-hosted.
//!
//! A record's path, folder by folder: [`sources`] (Kafka poll) -> [`runtime`] (per-partition lanes,
//! batching, retries, offset commits) -> [`transforms`] (filter, input templates, the record's JSON)
//! -> [`enrichment`] (optional) -> [`targets`]. [`record`] is the record they all carry.
//! [`model`] holds pipe definitions and their validation; [`metrics`], [`telemetry`],
//! [`traces`] (OpenTelemetry) and [`execution_log`] (`LogConfiguration`) what the engine reports
//! about itself and about each execution. [`kafka`] is what the Kafka source and the Kafka target share
//! (client security settings, refusals, topic and broker address rules); [`field_error`] the one
//! shape of a validation error, used by every layer. [`api`] serves the AWS Pipes API over
//! [`control`], [`console`] the web console beside it.

pub mod api;
pub mod console;
pub mod control;
pub mod dead_letter;
pub mod enrichment;
pub mod execution_log;
pub mod field_error;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod record;
pub mod runtime;
pub mod secrets;
pub mod sources;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod traces;
pub mod transforms;
