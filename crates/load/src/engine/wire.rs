//! HTTP/1.1 on the wire, without hyper: the request written as bytes in
//! one `write`, the response head parsed by `httparse` from a read buffer
//! kept for the connection's life, the body read by its framing.
//!
//! This is what wrk does, and what keeps the generator's CPU per request
//! near wrk's: hyper's client spends about a third of the generator's
//! user time per request on its dispatch channel, `http::Request` and
//! `http::Response` building and body frames, none of which a load
//! generator needs. One request is in flight per connection at a time (no
//! pipelining), so a response is whatever the server sent after the
//! request, and bytes left over after it make the connection unusable.
//!
//! Framing follows RFC 9112 section 6.3: no body after a HEAD request or
//! for 1xx, 204 and 304; a `Transfer-Encoding` ending in `chunked` is read
//! chunk by chunk (extensions and trailers skipped); any other
//! `Transfer-Encoding`, or neither header, reads to the end of the
//! connection; `Content-Length` otherwise. Interim 1xx responses are
//! skipped. Malformed input is an error (counted as a transport error by
//! the caller), never a panic.

use super::client::MAX_KEPT_BODY;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most header lines in a response head.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with extensions) or trailer section.
const MAX_CHUNK_META: usize = 64 * 1024;
/// The read buffer's starting size; it grows for a large head.
const INITIAL_BUFFER: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("reading the response: {0}")]
    Io(#[from] std::io::Error),
    /// The connection ended before any byte of the response: a kept-alive
    /// connection the server had closed, worth one retry on a new one.
    #[error("the connection closed before the response")]
    ClosedBeforeResponse,
    #[error("the connection closed in the middle of the response")]
    Truncated,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// A response as the checks need it.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    /// Filled only when asked for (checks or captures may read them).
    pub headers: HeaderMap,
    /// Kept only when asked for, at most [`MAX_KEPT_BODY`].
    pub body: Vec<u8>,
    pub body_bytes: u64,
    /// The connection may carry the next request.
    pub reusable: bool,
}

/// What the caller wants from a response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    /// The request was a HEAD: the response has no body.
    pub head_request: bool,
    pub headers: bool,
    pub body: bool,
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A connection's read buffer: bytes `start..end` are read and not yet
/// consumed.
pub(crate) struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Self {
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }
}

impl Inbox {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads once more from `io`; `Ok(0)` at the end of the stream.
    async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<usize, WireError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = io.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Consumes up to `max` pending bytes into `body`; returns how many.
    fn take(&mut self, max: u64, body: &mut BodySink) -> u64 {
        let n = (self.end - self.start).min(usize::try_from(max).unwrap_or(usize::MAX));
        body.push(&self.buf[self.start..self.start + n]);
        self.start += n;
        n as u64
    }

    /// Reads one response from `io` (whose request was just sent).
    pub(crate) async fn read_response<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        wanted: Wanted,
    ) -> Result<Response, WireError> {
        let mut received = self.start < self.end;
        let head = loop {
            match parse_head(self.pending(), wanted.headers)? {
                Some(head) if (100..200).contains(&head.status) => {
                    if head.status == 101 {
                        return Err(WireError::Malformed("101 Switching Protocols"));
                    }
                    self.start += head.len;
                }
                Some(head) => break head,
                None => {
                    if self.end - self.start >= MAX_HEAD {
                        return Err(WireError::Malformed("response head over 64 KiB"));
                    }
                    let read = match self.fill(io).await {
                        Err(WireError::Io(e)) if !received && is_reset(&e) => {
                            return Err(WireError::ClosedBeforeResponse)
                        }
                        read => read?,
                    };
                    if read == 0 {
                        return Err(if received {
                            WireError::Truncated
                        } else {
                            WireError::ClosedBeforeResponse
                        });
                    }
                    received = true;
                }
            }
        };
        self.start += head.len;
        let framing = if wanted.head_request || matches!(head.status, 204 | 304) {
            Framing::None
        } else {
            head.framing
        };
        let mut body = BodySink::new(wanted.body);
        match framing {
            Framing::None => {}
            Framing::Length(mut left) => {
                while left > 0 {
                    if self.start == self.end && self.fill(io).await? == 0 {
                        return Err(WireError::Truncated);
                    }
                    left -= self.take(left, &mut body);
                }
            }
            Framing::Chunked => self.read_chunked(io, &mut body).await?,
            Framing::UntilClose => loop {
                self.take(u64::MAX, &mut body);
                if self.fill(io).await? == 0 {
                    break;
                }
            },
        }
        // Bytes after the response, unasked for: the connection is out of
        // step with its requests.
        let reusable = head.keep_alive && framing != Framing::UntilClose && self.start == self.end;
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body: body.kept,
            body_bytes: body.bytes,
            reusable,
        })
    }

    async fn read_chunked<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        body: &mut BodySink,
    ) -> Result<(), WireError> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(self.pending()) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill_meta(io).await?,
                    Err(_) => return Err(WireError::Malformed("bad chunk size")),
                }
            };
            if size == 0 {
                return self.skip_trailers(io).await;
            }
            let mut left = size;
            while left > 0 {
                if self.start == self.end && self.fill(io).await? == 0 {
                    return Err(WireError::Truncated);
                }
                left -= self.take(left, body);
            }
            while self.end - self.start < 2 {
                self.fill_meta(io).await?;
            }
            if self.pending()[..2] != *b"\r\n" {
                return Err(WireError::Malformed("chunk not followed by CRLF"));
            }
            self.start += 2;
        }
    }

    /// Skips the trailer section up to and with its empty line.
    async fn skip_trailers<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<(), WireError> {
        loop {
            match self.pending().windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(line) => self.start += line + 2,
                None => self.fill_meta(io).await?,
            }
        }
    }

    /// Reads more for a chunk-size line or a trailer, which must end soon.
    async fn fill_meta<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<(), WireError> {
        if self.end - self.start >= MAX_CHUNK_META {
            return Err(WireError::Malformed(
                "chunk size line or trailer over 64 KiB",
            ));
        }
        if self.fill(io).await? == 0 {
            return Err(WireError::Truncated);
        }
        Ok(())
    }
}

/// Sends `request` on `io` and reads its response.
pub(crate) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    inbox: &mut Inbox,
    request: &[u8],
    wanted: Wanted,
) -> Result<Response, WireError> {
    let written = async {
        io.write_all(request).await?;
        io.flush().await
    };
    match written.await {
        Ok(()) => inbox.read_response(io, wanted).await,
        Err(e) if is_reset(&e) => Err(WireError::ClosedBeforeResponse),
        Err(e) => Err(WireError::Io(e)),
    }
}

/// The peer had closed the connection.
fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted)
}

/// Where body bytes go: counted, and kept up to [`MAX_KEPT_BODY`] if asked.
struct BodySink {
    keep: bool,
    kept: Vec<u8>,
    bytes: u64,
}

impl BodySink {
    fn new(keep: bool) -> Self {
        Self {
            keep,
            kept: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.keep && self.kept.len() < MAX_KEPT_BODY {
            let room = MAX_KEPT_BODY - self.kept.len();
            self.kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}

/// A parsed response head.
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
    headers: HeaderMap,
    /// Bytes of the head, with its empty line.
    len: usize,
}

/// Parses a complete head at the start of `buf`; `None` if it is not all
/// there yet.
fn parse_head(buf: &[u8], want_headers: bool) -> Result<Option<Head>, WireError> {
    // Uninitialised slots: zeroing 100 of them per response showed in the
    // profile; httparse writes each one it hands back.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(WireError::Malformed("more than 100 header lines"))
        }
        Err(_) => return Err(WireError::Malformed("bad status line or header")),
    };
    let status = response
        .code
        .ok_or(WireError::Malformed("no status code"))?;
    let mut keep_alive = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None;
    let mut headers = HeaderMap::new();
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            for value in header.value.split(|&b| b == b',') {
                let n = parse_length(value)?;
                if length.is_some_and(|seen| seen != n) {
                    return Err(WireError::Malformed("conflicting Content-Length"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            transfer_encoding = Some(trim(last).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && response.version == Some(0) {
                    keep_alive = true;
                }
            }
        }
        if want_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| WireError::Malformed("bad header name"))?;
            let value = HeaderValue::from_bytes(header.value)
                .map_err(|_| WireError::Malformed("bad header value"))?;
            headers.append(name, value);
        }
    }
    let framing = match (transfer_encoding, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::UntilClose,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::UntilClose,
    };
    Ok(Some(Head {
        status,
        framing,
        keep_alive,
        headers,
        len,
    }))
}

fn parse_length(value: &[u8]) -> Result<u64, WireError> {
    let digits = trim(value);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(WireError::Malformed("bad Content-Length"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

/// Appends an HTTP/1.1 request to `out`. `headers` are the request's own
/// (already valid header values); `Host` comes first, and a
/// `Content-Length` is added when there is a body or the method usually
/// carries one, unless the request sets its own framing.
pub(crate) fn encode_request<'a>(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    host: &[u8],
    headers: impl Iterator<Item = (&'a HeaderName, &'a [u8])>,
    body: &[u8],
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    let mut framed = false;
    for (name, value) in headers {
        framed |= name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let carries_body = !matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::DELETE
            | Method::OPTIONS
            | Method::CONNECT
            | Method::TRACE
    );
    if !framed && (!body.is_empty() || carries_body) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
