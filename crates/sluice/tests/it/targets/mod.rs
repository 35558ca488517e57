//! Targets: AWS services (moto and local JSON-protocol servers), API destinations with connection
//! authorization, and Kafka clusters.

mod aws;
mod aws_limits;
mod http_auth;
mod kafka;
