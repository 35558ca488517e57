//! Request bodies under the listener's limits: [`DeadlineBody`] gives a body a total deadline
//! (set by the listener on every request, whatever route reads it), and [`read_limited`] reads
//! one up to a size limit, never past it.
//!
//! Hand-written rather than tower-http's `RequestBodyTimeoutLayer`: that timeout restarts with
//! every frame, so a client trickling a byte at a time holds the connection forever.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::StreamExt;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// A body that fails once its deadline passes before its end.
pub struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    /// `inner`, which must be complete within `timeout` from now.
    pub fn new(inner: Body, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl std::fmt::Debug for DeadlineBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineBody")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimedOut(pub Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(self.timeout).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit (by its `Content-Length` or by what arrived).
    #[error(
        "The request body is larger than this endpoint's limit of {limit} bytes \
         (listener.max_body_bytes)."
    )]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Not complete before the deadline.
    #[error("{0}; the connection is closed (listener.body_read_timeout_ms).")]
    TimedOut(BodyTimedOut),
    /// The connection broke, or the framing was wrong.
    #[error("The request body could not be read: {0}")]
    Broken(String),
}

impl BodyError {
    /// A body that was too slow or broken may arrive whole next time.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, BodyError::TooLarge { .. })
    }

    /// A body over the limit is the caller's to shrink.
    pub fn is_user_error(&self) -> bool {
        matches!(self, BodyError::TooLarge { .. })
    }
}

/// Read `body` whole if it has at most `limit` bytes; stops reading at the first byte over.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(BodyError::TooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(classify)?;
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

fn classify(e: axum::Error) -> BodyError {
    let inner = e.into_inner();
    match inner.downcast::<BodyTimedOut>() {
        Ok(t) => BodyError::TimedOut(*t),
        Err(other) => BodyError::Broken(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trickle(chunks: Vec<&'static [u8]>, gap: Duration) -> Body {
        let stream = futures::stream::iter(chunks).then(move |c| async move {
            tokio::time::sleep(gap).await;
            Ok::<_, std::io::Error>(Bytes::from_static(c))
        });
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_fails_at_its_total_deadline() {
        // Every gap is shorter than the timeout, the total is not.
        let body = trickle(vec![b"a"; 10], Duration::from_millis(300));
        let body = Body::new(DeadlineBody::new(body, Duration::from_secs(1)));
        let err = read_limited(body, 100).await.unwrap_err();
        assert!(matches!(err, BodyError::TimedOut(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "the request body did not arrive within 1000 ms; the connection is closed \
             (listener.body_read_timeout_ms)."
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_and_within_the_limit_is_read_whole() {
        let body = trickle(vec![b"ab", b"cd"], Duration::from_millis(100));
        let body = Body::new(DeadlineBody::new(body, Duration::from_secs(1)));
        assert_eq!(read_limited(body, 4).await.unwrap(), Bytes::from("abcd"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_names_the_limit() {
        let err = read_limited(Body::from("12345"), 4).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "The request body is larger than this endpoint's limit of 4 bytes \
             (listener.max_body_bytes)."
        );
        let streamed = trickle(vec![b"12", b"345"], Duration::ZERO);
        let err = read_limited(streamed, 4).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 4 }), "{err}");
    }
}
