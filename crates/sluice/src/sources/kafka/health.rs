//! Whether a source keeps failing for a reason only the user can fix, judged from what the
//! runtime's periodic check of the source sees (`runtime::watch_source`): the topic's metadata, or,
//! when nothing answers at all, a probe of which protocol the listeners speak ([`super::probe`]).
//!
//! Pure: [`SourceHealth::observe`] takes an [`Observation`] and the time, and says when the pipe
//! must fail:
//! - **missing topic**: the cluster answers but has no such topic, still after the grace period
//!   (topics are often created just after the pipe). A topic seen again resets the clock; a
//!   cluster that cannot be reached meanwhile neither resets it nor fails the pipe (only an answer
//!   "no such topic" after the grace period does).
//! - **TLS / plaintext mismatch**: nothing connects, and a probe shows the listener speaks the other
//!   protocol, again and again for `mismatch_grace`. An unreachable broker (refused, timed out,
//!   answering neither way) is never fatal: the consumer keeps retrying.
//!
//! Meanwhile [`SourceHealth::waiting_reason`] says what a pipe that is not running yet waits for
//! (brokers that do not answer, a topic that does not exist yet), for its `StateReason`.

use std::time::{Duration, Instant};

/// A problem of the source that retrying cannot fix. Messages name what to change, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceProblem {
    /// The topic does not exist on the cluster.
    #[error(
        "the source topic {topic} does not exist on the Kafka cluster (still missing after \
         {waited_secs} s): create it, or fix TopicName"
    )]
    TopicMissing {
        /// The pipe's topic.
        topic: String,
        /// How long it was seen missing.
        waited_secs: u64,
    },
    /// The pipe connects with TLS, the listener speaks plaintext.
    #[error(
        "TLS handshake with the Kafka cluster failed: is the listener plaintext? {address} answers \
         Kafka requests without TLS; use the cluster's TLS listener, or SluiceParameters.KafkaTls: \
         false for a cluster without TLS"
    )]
    PlaintextListener {
        /// The broker address probed.
        address: String,
    },
    /// The pipe connects in plaintext, the listener speaks TLS.
    #[error(
        "cannot connect to the Kafka cluster in plaintext: is the listener TLS? {address} speaks \
         TLS; give ServerRootCaCertificate or SluiceParameters.KafkaTls: true, or use the \
         cluster's plaintext listener"
    )]
    TlsListener {
        /// The broker address probed.
        address: String,
    },
}

impl SourceProblem {
    /// Retrying with the same definition does not help.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// The user must change the pipe or the cluster.
    pub fn is_user_error(&self) -> bool {
        true
    }
}

/// What one check of the source saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The cluster answered and has the topic.
    TopicExists,
    /// The cluster answered that the topic does not exist.
    TopicMissing,
    /// No broker answered; `Some` when a probe showed the listener speaks the other protocol
    /// ([`SourceProblem::PlaintextListener`] / [`SourceProblem::TlsListener`]).
    Unreachable(Option<SourceProblem>),
}

/// The judgement over successive observations of one source.
#[derive(Debug, Clone)]
pub struct SourceHealth {
    topic: String,
    topic_grace: Duration,
    mismatch_grace: Duration,
    missing_since: Option<Instant>,
    mismatch_since: Option<(Instant, SourceProblem)>,
    unreachable_since: Option<Instant>,
}

impl SourceHealth {
    /// A source of `topic`: a missing topic fails after `topic_grace`, a protocol mismatch after
    /// `mismatch_grace`.
    pub fn new(topic: &str, topic_grace: Duration, mismatch_grace: Duration) -> Self {
        Self {
            topic: topic.to_string(),
            topic_grace,
            mismatch_grace,
            missing_since: None,
            mismatch_since: None,
            unreachable_since: None,
        }
    }

    /// Since when no broker has answered, while none does.
    pub fn unreachable_since(&self) -> Option<Instant> {
        self.unreachable_since
    }

    /// What the pipe waits for, in words for `StateReason`: brokers that do not answer (at
    /// `servers`), or a topic that does not exist yet; `None` when it waits on neither.
    pub fn waiting_reason(&self, servers: &[String]) -> Option<String> {
        if self.unreachable_since.is_some() {
            return Some(format!(
                "cannot reach the Kafka cluster at {}: no broker answers; still trying (check the \
                 bootstrap servers, in Source or SluiceParameters.BootstrapServers, and that the \
                 broker listens there)",
                servers.join(",")
            ));
        }
        self.missing_since.map(|_| {
            format!(
                "the source topic {} does not exist; waiting up to {} s for it to be created, \
                 then the pipe fails (create it, or fix TopicName)",
                self.topic,
                self.topic_grace.as_secs()
            )
        })
    }

    /// Whether the topic was last seen missing.
    pub fn topic_missing(&self) -> bool {
        self.missing_since.is_some()
    }

    /// Whether a protocol mismatch is suspected (seen, not yet for long enough to fail).
    pub fn mismatch_suspected(&self) -> bool {
        self.mismatch_since.is_some()
    }

    /// Take one observation made at `now`; `Some` when the pipe must fail.
    pub fn observe(&mut self, observation: Observation, now: Instant) -> Option<SourceProblem> {
        if matches!(observation, Observation::Unreachable(_)) {
            self.unreachable_since.get_or_insert(now);
        } else {
            self.unreachable_since = None;
        }
        match observation {
            Observation::TopicExists => {
                self.missing_since = None;
                self.mismatch_since = None;
                None
            }
            Observation::TopicMissing => {
                self.mismatch_since = None;
                let since = *self.missing_since.get_or_insert(now);
                let waited = now.saturating_duration_since(since);
                (waited >= self.topic_grace).then(|| SourceProblem::TopicMissing {
                    topic: self.topic.clone(),
                    waited_secs: waited.as_secs(),
                })
            }
            Observation::Unreachable(None) => {
                self.mismatch_since = None;
                None
            }
            Observation::Unreachable(Some(problem)) => match &self.mismatch_since {
                Some((since, seen)) if *seen == problem => (now.saturating_duration_since(*since)
                    >= self.mismatch_grace)
                    .then_some(problem),
                _ => {
                    self.mismatch_since = Some((now, problem));
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn plaintext() -> SourceProblem {
        SourceProblem::PlaintextListener {
            address: "127.0.0.1:9092".into(),
        }
    }

    #[test]
    fn a_missing_topic_fails_after_the_grace_period_unless_it_appears() {
        let t0 = Instant::now();
        let mut h = SourceHealth::new("orders", 10 * S, 10 * S);
        assert_eq!(h.observe(Observation::TopicMissing, t0), None);
        assert!(h.topic_missing());
        assert_eq!(h.observe(Observation::TopicMissing, t0 + 9 * S), None);
        // The topic appears: the clock starts again when it goes missing.
        assert_eq!(h.observe(Observation::TopicExists, t0 + 9 * S), None);
        assert!(!h.topic_missing());
        assert_eq!(h.observe(Observation::TopicMissing, t0 + 12 * S), None);
        assert_eq!(h.observe(Observation::TopicMissing, t0 + 21 * S), None);
        let p = h.observe(Observation::TopicMissing, t0 + 22 * S).unwrap();
        assert_eq!(
            p,
            SourceProblem::TopicMissing {
                topic: "orders".into(),
                waited_secs: 10
            }
        );
        assert!(p.to_string().contains("orders") && p.to_string().contains("10 s"));
        assert!(p.is_user_error() && !p.is_retryable());
    }

    #[test]
    fn an_unreachable_cluster_neither_fails_nor_excuses_a_missing_topic() {
        let t0 = Instant::now();
        let mut h = SourceHealth::new("orders", 10 * S, 10 * S);
        for i in 0..100 {
            assert_eq!(h.observe(Observation::Unreachable(None), t0 + i * S), None);
        }
        assert_eq!(h.observe(Observation::TopicMissing, t0 + 100 * S), None);
        assert_eq!(
            h.observe(Observation::Unreachable(None), t0 + 200 * S),
            None
        );
        // Still missing once the cluster answers again: its absence was confirmed long ago.
        assert!(h.observe(Observation::TopicMissing, t0 + 201 * S).is_some());
        // A zero grace period fails at the first answer.
        let mut h = SourceHealth::new("orders", Duration::ZERO, 10 * S);
        assert!(h.observe(Observation::TopicMissing, t0).is_some());
    }

    #[test]
    fn the_reason_to_wait_names_the_servers_or_the_topic_until_it_is_over() {
        let t0 = Instant::now();
        let servers = ["127.0.0.1:1".to_string()];
        let mut h = SourceHealth::new("orders", 60 * S, 10 * S);
        assert_eq!(h.waiting_reason(&servers), None);
        h.observe(Observation::Unreachable(None), t0);
        h.observe(Observation::Unreachable(None), t0 + 5 * S);
        assert_eq!(h.unreachable_since(), Some(t0));
        let r = h.waiting_reason(&servers).unwrap();
        assert!(
            r.starts_with("cannot reach the Kafka cluster at 127.0.0.1:1"),
            "{r}"
        );
        h.observe(Observation::TopicMissing, t0 + 6 * S);
        assert_eq!(h.unreachable_since(), None);
        let r = h.waiting_reason(&servers).unwrap();
        assert!(
            r.contains("orders does not exist; waiting up to 60 s"),
            "{r}"
        );
        h.observe(Observation::TopicExists, t0 + 7 * S);
        assert_eq!(h.waiting_reason(&servers), None);
    }

    #[test]
    fn a_protocol_mismatch_must_persist_without_interruption() {
        let t0 = Instant::now();
        let mut h = SourceHealth::new("orders", 10 * S, 10 * S);
        let seen = || Observation::Unreachable(Some(plaintext()));
        assert_eq!(h.observe(seen(), t0), None);
        assert!(h.mismatch_suspected());
        assert_eq!(h.observe(seen(), t0 + 5 * S), None);
        // An inconclusive probe (broker down) starts the count again.
        assert_eq!(h.observe(Observation::Unreachable(None), t0 + 6 * S), None);
        assert!(!h.mismatch_suspected());
        assert_eq!(h.observe(seen(), t0 + 7 * S), None);
        assert_eq!(h.observe(seen(), t0 + 16 * S), None);
        assert_eq!(h.observe(seen(), t0 + 17 * S), Some(plaintext()));
        // A successful connection clears the suspicion.
        let mut h = SourceHealth::new("orders", 10 * S, 10 * S);
        assert_eq!(h.observe(seen(), t0), None);
        assert_eq!(h.observe(Observation::TopicExists, t0 + 5 * S), None);
        assert_eq!(h.observe(seen(), t0 + 11 * S), None);
        let tls = SourceProblem::TlsListener {
            address: "b:9093".into(),
        };
        assert!(tls.to_string().contains("ServerRootCaCertificate"));
        assert!(plaintext().to_string().starts_with(
            "TLS handshake with the Kafka cluster failed: is the listener plaintext?"
        ));
    }
}
