//! Bodies on the client side: streamed, size-limited, and replayable
//! only when that is cheap.
//!
//! A streamed body can be sent once. Retrying a request needs its body
//! again, so [`RequestBody::read_ahead`] keeps a small body whole (it can
//! be sent on every attempt) and streams a larger one after the part
//! already read (one attempt only). Either way the size limit counts
//! every byte: a body over it is refused while being kept, or cut off
//! while streaming, and [`is_over_limit`] recognises that failure by
//! type wherever it surfaces (a client error, a body error).

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full, LengthLimitError, Limited, StreamBody};
use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn Error + Send + Sync>;

/// The body type the [`crate::HttpClient`] sends.
pub type ClientBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> ClientBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: Bytes) -> ClientBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Any body as a [`ClientBody`], streamed as it comes.
pub fn streaming<B>(body: B) -> ClientBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Whether `error` (or any error it wraps) is a body that went over its
/// size limit.
pub fn is_over_limit(error: &(dyn Error + 'static)) -> bool {
    crate::failure::causes(error).any(|cause| cause.is::<LengthLimitError>())
}

/// Why a request body could not be read ahead.
#[derive(Debug, thiserror::Error)]
pub enum ReadAheadError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the body failed")]
    Read(#[source] BoxError),
}

/// A request body after read-ahead: kept whole or streaming.
pub struct RequestBody(Kept);

enum Kept {
    Whole(Bytes),
    Stream(ClientBody),
    /// A stream already handed to an attempt.
    Sent,
}

impl RequestBody {
    /// Reads up to `keep` bytes of `body`. A body that ends within them is
    /// kept whole; a longer one streams (what was read first, then the
    /// rest), cut off once the whole passes `limit` bytes. A body over
    /// `limit` found while reading ahead is refused here.
    pub async fn read_ahead<B>(
        mut body: B,
        keep: usize,
        limit: usize,
    ) -> Result<Self, ReadAheadError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut read = BytesMut::new();
        loop {
            match body.frame().await {
                None => return Ok(Self(Kept::Whole(read.freeze()))),
                Some(Err(e)) => {
                    let e: BoxError = e.into();
                    return Err(if is_over_limit(&*e) {
                        ReadAheadError::TooLarge(limit)
                    } else {
                        ReadAheadError::Read(e)
                    });
                }
                Some(Ok(frame)) => {
                    // Trailers are not forwarded (nor were they before
                    // bodies streamed).
                    if let Ok(data) = frame.into_data() {
                        read.extend_from_slice(&data);
                    }
                    if read.len() > limit {
                        return Err(ReadAheadError::TooLarge(limit));
                    }
                    if read.len() > keep {
                        break;
                    }
                }
            }
        }
        let first = read.freeze();
        let rest = BodyStream::new(Limited::new(body, limit - first.len()));
        let whole =
            futures::stream::once(async move { Ok::<_, BoxError>(Frame::data(first)) }).chain(rest);
        Ok(Self(Kept::Stream(StreamBody::new(whole).boxed_unsync())))
    }

    /// A body kept whole (an empty one included).
    pub fn whole(bytes: Bytes) -> Self {
        Self(Kept::Whole(bytes))
    }

    /// Whether every attempt can send this body.
    pub fn is_replayable(&self) -> bool {
        matches!(self.0, Kept::Whole(_))
    }

    /// The body for the next attempt: a copy of a kept body, or the
    /// stream itself the first time; `None` once a stream was sent.
    pub fn next_attempt(&mut self) -> Option<ClientBody> {
        match std::mem::replace(&mut self.0, Kept::Sent) {
            // Most requests carry none: an empty body boxes nothing (a
            // `Full` of no bytes is an allocation a request).
            Kept::Whole(bytes) if bytes.is_empty() => {
                self.0 = Kept::Whole(bytes);
                Some(empty())
            }
            Kept::Whole(bytes) => {
                self.0 = Kept::Whole(bytes.clone());
                Some(full(bytes))
            }
            Kept::Stream(body) => Some(body),
            Kept::Sent => None,
        }
    }
}

/// A body that keeps `guard` alive until the body ends or is dropped (an
/// endpoint's in-flight slot held for as long as its response streams).
pub struct Guarded<B, G> {
    body: B,
    guard: Option<G>,
}

impl<B, G> Guarded<B, G> {
    pub fn new(body: B, guard: G) -> Self {
        Self {
            body,
            guard: Some(guard),
        }
    }
}

impl<B: Body + Unpin, G: Unpin> Body for Guarded<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> ClientBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    async fn collect(body: ClientBody) -> Result<Bytes, BoxError> {
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn a_small_body_is_kept_and_sent_on_every_attempt() {
        let mut body = RequestBody::read_ahead(chunks(&["ab", "cd"]), 8, 16)
            .await
            .expect("read");
        assert!(body.is_replayable());
        for _ in 0..2 {
            let sent = body.next_attempt().expect("body");
            assert_eq!(collect(sent).await.expect("bytes"), "abcd");
        }
    }

    #[tokio::test]
    async fn an_empty_body_is_sent_empty_on_every_attempt() {
        let mut body = RequestBody::read_ahead(chunks(&[]), 8, 16)
            .await
            .expect("read");
        assert!(body.is_replayable());
        for _ in 0..2 {
            let sent = body.next_attempt().expect("body");
            assert!(sent.is_end_stream(), "nothing to send");
            assert_eq!(sent.size_hint().exact(), Some(0));
            assert_eq!(collect(sent).await.expect("bytes"), "");
        }
    }

    #[tokio::test]
    async fn a_larger_body_streams_once_and_whole() {
        let mut body = RequestBody::read_ahead(chunks(&["abc", "def", "gh"]), 2, 16)
            .await
            .expect("read");
        assert!(!body.is_replayable());
        let sent = body.next_attempt().expect("body");
        assert_eq!(collect(sent).await.expect("bytes"), "abcdefgh");
        assert!(body.next_attempt().is_none(), "a stream goes once");
    }

    #[tokio::test]
    async fn the_limit_holds_while_reading_ahead_and_while_streaming() {
        let early = RequestBody::read_ahead(chunks(&["abcdef"]), 8, 4).await;
        assert!(matches!(early, Err(ReadAheadError::TooLarge(4))));
        let mut late = RequestBody::read_ahead(chunks(&["abc", "def", "ghi"]), 2, 8)
            .await
            .expect("within the limit so far");
        let error = collect(late.next_attempt().expect("body"))
            .await
            .expect_err("cut off");
        assert!(is_over_limit(&*error), "{error}");
    }

    #[tokio::test]
    async fn a_guard_lives_until_the_body_ends() {
        let guard = std::sync::Arc::new(());
        let body = Guarded::new(chunks(&["a", "b"]), guard.clone());
        assert_eq!(std::sync::Arc::strong_count(&guard), 2);
        let mut body = std::pin::pin!(body);
        while body.frame().await.is_some() {}
        assert_eq!(std::sync::Arc::strong_count(&guard), 1);
    }
}
