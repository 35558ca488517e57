//! Sluice's integration tests, as one test binary so the engine is linked once: a module per area,
//! the harness they share in `support`. Most start real brokers (`scripts/broker`), HTTP receivers,
//! moto servers and the `sluice` binary; every one of them is stopped when its guard drops.
//!
//! Filter by area with the module path: `cargo test -p sluice --test it -- targets::kafka`.

mod support;

mod api;
mod auth;
mod broker_flavours;
mod cli;
mod cluster;
mod concurrency;
mod console;
mod enrichment;
mod failure_handling;
mod hardening;
mod msk;
mod observability;
mod pipe_semantics;
mod source_failures;
mod stuck_pipes;
mod targets;
