//! The console's security state, pure (the time is always passed in): signed-in sessions that
//! expire after 12 hours, each with its CSRF token, and the limiter of failed sign-ins.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The access key id it signed in with (shown, never the secret).
    pub access_key_id: String,
    /// The token every state-changing request must carry (`X-CSRF-Token`).
    pub csrf: String,
    expires: Instant,
}

/// The live sessions by cookie token.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

/// 32 random bytes, hex: a session or CSRF token.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Start a session for `access_key_id`; its cookie token.
    pub fn open(&mut self, access_key_id: &str, now: Instant) -> String {
        self.by_token.retain(|_, s| s.expires > now);
        let token = new_token();
        let session = Session {
            access_key_id: access_key_id.to_string(),
            csrf: new_token(),
            expires: now + SESSION_TTL,
        };
        self.by_token.insert(token.clone(), session);
        token
    }

    /// The session of a cookie token, unless it expired.
    pub fn get(&self, token: &str, now: Instant) -> Option<&Session> {
        self.by_token.get(token).filter(|s| s.expires > now)
    }

    /// End a session.
    pub fn close(&mut self, token: &str) {
        self.by_token.remove(token);
    }
}

/// Whether a request's CSRF token is the session's (compared in constant time).
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (session.csrf.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failed sign-ins allowed per access key id within [`FAILURE_WINDOW`].
pub const FAILURES_PER_KEY: usize = 5;
/// Failed sign-ins allowed in all within [`FAILURE_WINDOW`].
pub const FAILURES_IN_ALL: usize = 30;
/// The window the failures are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Limits failed sign-ins, per access key id and in all, so keys cannot be guessed quickly.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    per_key: HashMap<String, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

impl SignInLimiter {
    /// Whether a sign-in for `access_key_id` may be tried now.
    pub fn allows(&mut self, access_key_id: &str, now: Instant) -> bool {
        self.forget_old(now);
        self.all.len() < FAILURES_IN_ALL
            && self
                .per_key
                .get(access_key_id)
                .is_none_or(|f| f.len() < FAILURES_PER_KEY)
    }

    /// Count a failed sign-in.
    pub fn failed(&mut self, access_key_id: &str, now: Instant) {
        self.all.push_back(now);
        self.per_key
            .entry(access_key_id.to_string())
            .or_default()
            .push_back(now);
    }

    fn forget_old(&mut self, now: Instant) {
        let old = |t: &Instant| now.duration_since(*t) >= FAILURE_WINDOW;
        while self.all.front().is_some_and(old) {
            self.all.pop_front();
        }
        self.per_key.retain(|_, f| {
            while f.front().is_some_and(old) {
                f.pop_front();
            }
            !f.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_twelve_hours() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let token = s.open("AKID", t0);
        let session = s.get(&token, t0 + SESSION_TTL - Duration::from_secs(1));
        assert_eq!(session.map(|s| s.access_key_id.as_str()), Some("AKID"));
        assert!(s.get(&token, t0 + SESSION_TTL).is_none());
        assert!(s.get("not-a-token", t0).is_none());
    }

    #[test]
    fn a_closed_session_is_gone_and_tokens_differ() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let a = s.open("AKID", t0);
        let b = s.open("AKID", t0);
        assert_ne!(a, b);
        assert_ne!(s.get(&a, t0).unwrap().csrf, s.get(&b, t0).unwrap().csrf);
        s.close(&a);
        assert!(s.get(&a, t0).is_none());
        assert!(s.get(&b, t0).is_some());
    }

    #[test]
    fn csrf_must_be_the_sessions_token() {
        let mut s = Sessions::default();
        let t = s.open("AKID", Instant::now());
        let session = s.get(&t, Instant::now()).unwrap().clone();
        assert!(csrf_ok(&session, Some(&session.csrf)));
        assert!(!csrf_ok(&session, None));
        assert!(!csrf_ok(&session, Some("")));
        assert!(!csrf_ok(&session, Some(&session.csrf[1..])));
    }

    #[test]
    fn failures_are_limited_per_key_and_forgotten_after_the_window() {
        let t0 = Instant::now();
        let mut l = SignInLimiter::default();
        for _ in 0..FAILURES_PER_KEY {
            assert!(l.allows("AKID", t0));
            l.failed("AKID", t0);
        }
        assert!(!l.allows("AKID", t0));
        assert!(l.allows("OTHER", t0), "another key is not blocked");
        assert!(l.allows("AKID", t0 + FAILURE_WINDOW));
    }

    #[test]
    fn failures_are_limited_in_all() {
        let t0 = Instant::now();
        let mut l = SignInLimiter::default();
        for i in 0..FAILURES_IN_ALL {
            l.failed(&format!("K{i}"), t0);
        }
        assert!(!l.allows("NEW", t0));
    }
}
