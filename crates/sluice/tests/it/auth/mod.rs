//! Authentication to the source cluster: SCRAM, TLS, mTLS and Secrets Manager end to end, and MSK
//! IAM tokens.

mod iam;
mod kafka;
