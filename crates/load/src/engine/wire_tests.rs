//! The HTTP/1.1 codec against responses cut at every byte, each framing,
//! and bad input (an error, never a panic).

use super::*;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// Hands out the given pieces, one per read, then the end of the stream.
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    /// `bytes` cut into pieces of `size`.
    fn cut(bytes: &[u8], size: usize) -> Self {
        Self(bytes.chunks(size.max(1)).map(<[u8]>::to_vec).collect())
    }
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

const ALL: Wanted = Wanted {
    head_request: false,
    headers: true,
    body: true,
};

fn read(bytes: &[u8], piece: usize, wanted: Wanted) -> Result<Response, WireError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut io = Pieces::cut(bytes, piece);
        Inbox::default().read_response(&mut io, wanted).await
    })
}

/// Reads `bytes` cut at every size from 1 byte to whole, and checks that
/// each reading gives the same response.
fn read_cut_everywhere(bytes: &[u8], wanted: Wanted) -> Response {
    let whole = read(bytes, bytes.len(), wanted).expect("whole response");
    for size in 1..bytes.len() {
        let cut = read(bytes, size, wanted).unwrap_or_else(|e| panic!("cut at {size}: {e}"));
        assert_eq!(cut.status, whole.status, "cut at {size}");
        assert_eq!(cut.body, whole.body, "cut at {size}");
        assert_eq!(cut.body_bytes, whole.body_bytes, "cut at {size}");
        assert_eq!(cut.reusable, whole.reusable, "cut at {size}");
        assert_eq!(cut.headers, whole.headers, "cut at {size}");
    }
    whole
}

#[test]
fn content_length_body_in_any_pieces() {
    let response = read_cut_everywhere(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Id: 7\r\n\r\nhello",
        ALL,
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.body_bytes, 5);
    assert!(response.reusable);
    assert_eq!(response.headers["x-id"], "7");
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let response = read_cut_everywhere(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
          5;name=value\r\nhello\r\n1\r\n!\r\n0;last\r\nTrailer-One: a\r\nTrailer-Two: b\r\n\r\n",
        ALL,
    );
    assert_eq!(response.body, b"hello!");
    assert_eq!(response.body_bytes, 6);
    assert!(response.reusable);
}

#[test]
fn no_body_for_head_204_304_and_interim_responses_are_skipped() {
    let head = Wanted {
        head_request: true,
        ..ALL
    };
    let response = read_cut_everywhere(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", head);
    assert_eq!((response.body_bytes, response.reusable), (0, true));
    for status in [204, 304] {
        let bytes = format!("HTTP/1.1 {status} X\r\nContent-Length: 3\r\n\r\n");
        let response = read_cut_everywhere(bytes.as_bytes(), ALL);
        assert_eq!((response.status, response.body_bytes), (status, 0));
    }
    let response = read_cut_everywhere(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        ALL,
    );
    assert_eq!(
        (response.status, response.body.as_slice()),
        (201, &b"ok"[..])
    );
}

#[test]
fn connection_close_and_unframed_bodies_end_the_connection() {
    let response = read_cut_everywhere(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        ALL,
    );
    assert!(!response.reusable);
    let response = read_cut_everywhere(b"HTTP/1.1 200 OK\r\n\r\nto the end", ALL);
    assert_eq!(response.body, b"to the end");
    assert!(!response.reusable);
    let response = read_cut_everywhere(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", ALL);
    assert!(!response.reusable);
    let response = read_cut_everywhere(
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        ALL,
    );
    assert!(response.reusable);
}

#[test]
fn bytes_after_the_response_make_the_connection_unusable() {
    let response = read(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1",
        1000,
        ALL,
    )
    .expect("response");
    assert_eq!(response.body, b"ok");
    assert!(!response.reusable);
}

#[test]
fn body_and_headers_kept_only_when_wanted_and_capped() {
    let nothing = Wanted {
        head_request: false,
        headers: false,
        body: false,
    };
    let response = read(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok",
        1000,
        nothing,
    )
    .expect("response");
    assert!(response.body.is_empty() && response.headers.is_empty());
    assert_eq!(response.body_bytes, 2);
    let big = MAX_KEPT_BODY + 10;
    let mut bytes = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n").into_bytes();
    bytes.resize(bytes.len() + big, b'x');
    let response = read(&bytes, 4096, ALL).expect("big response");
    assert_eq!(response.body.len(), MAX_KEPT_BODY);
    assert_eq!(response.body_bytes, big as u64);
}

#[test]
fn bad_and_truncated_input_is_an_error() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Len",
    ];
    for bytes in cases {
        for size in [1, 3, bytes.len()] {
            assert!(
                read(bytes, size, ALL).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    assert!(matches!(
        read(b"", 1, ALL),
        Err(WireError::ClosedBeforeResponse)
    ));
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    huge.resize(MAX_HEAD + 100, b'a');
    assert!(read(&huge, 8192, ALL).is_err());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap fuzz: deterministic pseudo-random mutations of a valid
    // chunked response, each read whole and cut small.
    let valid: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
                         3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n";
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2_000 {
        let mut bytes = valid.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, b"\r\n0;:9 "[(next() % 7) as usize]),
            }
        }
        let piece = (next() % 7 + 1) as usize;
        let _ = read(&bytes, piece, ALL);
        let _ = read(&bytes, bytes.len(), ALL);
    }
}

#[test]
fn requests_are_encoded_with_host_and_framing() {
    let mut out = Vec::new();
    let name = HeaderName::from_static("x-key");
    encode_request(
        &mut out,
        &Method::GET,
        "/a?b=1",
        b"example.com:8080",
        [(&name, &b"v"[..])].into_iter(),
        b"",
    );
    assert_eq!(
        out,
        b"GET /a?b=1 HTTP/1.1\r\nhost: example.com:8080\r\nx-key: v\r\n\r\n"
    );
    out.clear();
    encode_request(
        &mut out,
        &Method::POST,
        "/",
        b"h",
        std::iter::empty(),
        b"{}",
    );
    assert_eq!(
        out,
        b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\n\r\n{}"
    );
    out.clear();
    encode_request(&mut out, &Method::PUT, "/", b"h", std::iter::empty(), b"");
    assert!(out.ends_with(b"content-length: 0\r\n\r\n"));
}
