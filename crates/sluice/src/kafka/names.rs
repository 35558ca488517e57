//! What Kafka accepts as a topic name and as a broker address, decided once for the source and
//! the Kafka target, the way Kafka itself decides.

/// The longest topic name Kafka accepts.
pub const TOPIC_MAX_CHARS: usize = 249;

/// The topic rule, for messages.
pub const TOPIC_RULE: &str = "1-249 characters of [a-zA-Z0-9._-], not . or ..";

/// Whether Kafka accepts `name` as a topic name (`org.apache.kafka.common.internals.Topic
/// .validate`): 1-249 characters of `[a-zA-Z0-9._-]`, and neither `.` nor `..`. A leading `.` is
/// legal in Kafka; AWS's `TopicName` pattern refuses it, which the source checks on its own.
pub fn is_valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_MAX_CHARS
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `s` is a broker address, `host:port`: a host without `/` or spaces and a port of
/// 1-65535 (an IPv6 host in brackets: `[::1]:9092`).
pub fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !host.contains(['/', ' ']) && port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_kafkas_rule() {
        for ok in [
            "t",
            "orders.v1",
            "a_b-c",
            ".hidden",
            "...",
            &"x".repeat(249),
        ] {
            assert!(is_valid_topic(ok), "{ok:?}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(250)] {
            assert!(!is_valid_topic(bad), "{bad:?}");
        }
    }

    #[test]
    fn broker_addresses_are_host_and_a_port_of_1_to_65535() {
        for ok in ["h:9092", "b-1.example:1", "10.0.0.1:65535", "[::1]:9092"] {
            assert!(is_host_port(ok), "{ok:?}");
        }
        for bad in [
            "h", ":9092", "h:", "h:0", "h:65536", "h:x", "a/b:9092", "a b:9092",
        ] {
            assert!(!is_host_port(bad), "{bad:?}");
        }
    }
}
