//! Where the partitions of a pipe with `SluiceParameters.StartingPositionTimestamp` start, set on
//! the assignment itself before librdkafka fetches anything: a partition the group has a committed
//! offset for resumes there; any other starts at its first record whose timestamp is at or after
//! the timestamp (Kafka's offsets-for-times lookup), or at its end (the high watermark, read now,
//! so a record produced after the assignment is not skipped) when there is none.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

/// How long each lookup (committed offsets, offsets for times, watermarks) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one partition without a committed offset starts, from the offsets-for-times answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this offset (the first record at or after the timestamp).
    At(i64),
    /// At the partition's end: no record is at or after the timestamp.
    End,
}

impl Start {
    /// The offsets-for-times answer for one partition (`End`, or an offset; librdkafka gives
    /// `End` when no record is at or after the timestamp).
    pub fn from_lookup(found: Offset) -> Start {
        match found {
            Offset::Offset(o) if o >= 0 => Start::At(o),
            _ => Start::End,
        }
    }
}

/// Set the starting offsets of the partitions of `topic` in `assignment` that the group has no
/// committed offset for. Blocks (bounded); an error says which lookup failed, and leaves the
/// assignment as it was (librdkafka then applies `auto.offset.reset`).
pub fn set_starting_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    assignment: &mut TopicPartitionList,
    timestamp_ms: i64,
) -> Result<(), String> {
    let partitions: Vec<i32> = assignment
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect();
    if partitions.is_empty() {
        return Ok(());
    }
    let fresh = without_committed_offset(consumer, topic, &partitions)?;
    if fresh.is_empty() {
        return Ok(());
    }
    let mut wanted = TopicPartitionList::new();
    for &p in &fresh {
        wanted
            .add_partition_offset(topic, p, Offset::Offset(timestamp_ms))
            .map_err(|e| e.to_string())?;
    }
    let found = consumer
        .offsets_for_times(wanted, LOOKUP_TIMEOUT)
        .map_err(|e| format!("the offsets-for-times lookup of topic {topic} failed: {e}"))?;
    for p in fresh {
        let answer = found
            .find_partition(topic, p)
            .map(|e| e.offset())
            .unwrap_or(Offset::End);
        let offset = match Start::from_lookup(answer) {
            Start::At(o) => o,
            Start::End => {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, LOOKUP_TIMEOUT)
                    .map_err(|e| {
                        format!("the end of partition {p} of {topic} could not be read: {e}")
                    })?;
                high
            }
        };
        tracing::info!(topic, partition = p, offset, timestamp_ms,
            "no committed offset: starting at the first record at or after StartingPositionTimestamp");
        assignment
            .set_partition_offset(topic, p, Offset::Offset(offset))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The partitions of `partitions` that the consumer's group has no committed offset for.
fn without_committed_offset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<i32>, String> {
    let mut ask = TopicPartitionList::new();
    for &p in partitions {
        ask.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(ask, LOOKUP_TIMEOUT)
        .map_err(|e| format!("the group's committed offsets of {topic} could not be read: {e}"))?;
    Ok(partitions
        .iter()
        .copied()
        .filter(|&p| {
            !matches!(
                committed.find_partition(topic, p).map(|e| e.offset()),
                Some(Offset::Offset(o)) if o >= 0
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_record_at_or_after_the_timestamp_means_the_end() {
        assert_eq!(Start::from_lookup(Offset::Offset(5)), Start::At(5));
        assert_eq!(Start::from_lookup(Offset::Offset(0)), Start::At(0));
        assert_eq!(Start::from_lookup(Offset::End), Start::End);
        assert_eq!(Start::from_lookup(Offset::Offset(-1)), Start::End);
        assert_eq!(Start::from_lookup(Offset::Invalid), Start::End);
    }
}
