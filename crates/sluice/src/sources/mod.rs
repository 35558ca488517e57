//! Sources: where records come from. Only Kafka (self-managed and MSK) today.

pub mod kafka;
