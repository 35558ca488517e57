//! Response bodies of HTTP targets, enrichments and token endpoints read up to a limit: reading
//! stops at the first chunk past it, so an endless or huge answer costs at most the limit plus
//! one chunk, never the whole body.

use bytes::{Bytes, BytesMut};

/// What a bounded read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Bounded {
    /// The whole body, at most the limit.
    Whole(Bytes),
    /// The body is larger than the limit (by its `Content-Length` or by what arrived); the rest
    /// was not read.
    TooLarge,
}

/// The pure part: chunks gathered until they pass the limit.
#[derive(Debug)]
pub struct BoundedBody {
    buf: BytesMut,
    limit: usize,
}

impl BoundedBody {
    /// Room for `content_length` bytes when announced (capped at the limit: the header is the
    /// peer's word).
    pub fn new(limit: usize, content_length: Option<u64>) -> BoundedBody {
        let announced = content_length.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        BoundedBody {
            buf: BytesMut::with_capacity(announced.min(limit)),
            limit,
        }
    }

    /// Add a chunk; `false` once the body is larger than the limit (the chunk is not kept).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if chunk.len() > self.limit - self.buf.len() {
            return false;
        }
        self.buf.extend_from_slice(chunk);
        true
    }

    /// The body gathered.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Read `resp`'s body, stopping as soon as it is larger than `limit` bytes (a `Content-Length`
/// above it is refused before reading). Dropping the response then closes the connection.
pub async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Bounded, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(Bounded::TooLarge);
    }
    let mut body = BoundedBody::new(limit, resp.content_length());
    while let Some(chunk) = resp.chunk().await? {
        if !body.push(&chunk) {
            return Ok(Bounded::TooLarge);
        }
    }
    Ok(Bounded::Whole(body.finish()))
}

/// Read at most `limit` bytes of `resp`'s body, cutting the rest (for error details, which are
/// shortened anyway); a failure to read gives what arrived.
pub async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() == limit {
            break;
        }
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_responses_were_read_whole_before_the_size_check() {
        let mut b = BoundedBody::new(10, None);
        assert!(b.push(b"12345"));
        assert!(b.push(b"67890"));
        // The 11th byte stops the read: nothing more is gathered.
        assert!(!b.push(b"x"));
        assert_eq!(b.finish(), Bytes::from_static(b"1234567890"));
    }

    #[test]
    fn an_announced_length_reserves_at_most_the_limit() {
        let b = BoundedBody::new(10, Some(u64::MAX));
        assert!(b.buf.capacity() <= 64, "{}", b.buf.capacity());
        let mut b = BoundedBody::new(10, Some(4));
        assert!(b.push(b"abcd"));
        assert!(b.push(b""));
        assert_eq!(b.finish(), Bytes::from_static(b"abcd"));
    }
}
