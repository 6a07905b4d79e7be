//! One keep-alive HTTP/1.1 connection and the requests it sends.
//!
//! The hyper connection future is polled by the same task that sends the
//! requests, rather than spawned: a request then costs no cross-task
//! wake-ups, which keeps the generator's CPU per request close to wrk's.

use crate::report::Tally;
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// In the closed model a connection whose request failed waits this long
/// before the next, rather than spinning on refused connections.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// The request every connection sends, prepared once.
#[derive(Debug)]
pub(crate) struct RequestTemplate {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) host: HeaderValue,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl RequestTemplate {
    fn build(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        request
    }
}

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Status(u16),
    /// Connect, write or read failed, or the connection closed early.
    TransportError,
    /// No complete response within the spec's timeout.
    Timeout,
}

/// When and how a connection stops and what it measures.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Requests intended before this are warmup: sent, not measured.
    pub measure_from: Instant,
    /// Requests intended from here on are not measured.
    pub end: Instant,
    pub timeout: Duration,
    /// Set when the run is over; checked between requests.
    pub stop: Arc<AtomicBool>,
}

type Io = TokioIo<TcpStream>;
type Driver = Pin<Box<http1::Connection<Io, Empty<Bytes>>>>;

pub(crate) struct Connection {
    addr: Arc<str>,
    template: Arc<RequestTemplate>,
    live: Option<(SendRequest<Empty<Bytes>>, Driver)>,
}

impl Connection {
    /// Connects now, so that a wrong address fails the run before it starts.
    pub(crate) async fn open(
        addr: Arc<str>,
        template: Arc<RequestTemplate>,
    ) -> std::io::Result<Self> {
        let live = Some(connect(&addr).await?);
        Ok(Self {
            addr,
            template,
            live,
        })
    }

    /// Open model: one request per job, each job being the request's due
    /// time, from which its latency counts.
    pub(crate) async fn drive_open(mut self, jobs: flume::Receiver<Instant>, w: Window) -> Tally {
        let mut tally = Tally::default();
        while !w.stop.load(Ordering::Relaxed) {
            let Ok(due) = jobs.recv_async().await else {
                break;
            };
            let outcome = self.send(w.timeout).await;
            if (w.measure_from..w.end).contains(&due) {
                tally.record(outcome, Instant::now().saturating_duration_since(due));
            }
        }
        tally
    }

    /// Closed model: back to back, each request timed from its own start.
    pub(crate) async fn drive_closed(mut self, w: Window) -> Tally {
        let mut tally = Tally::default();
        while !w.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let outcome = self.send(w.timeout).await;
            if (w.measure_from..w.end).contains(&started) {
                tally.record(outcome, started.elapsed());
            }
            if outcome == Outcome::TransportError {
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
        tally
    }

    async fn send(&mut self, timeout: Duration) -> Outcome {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let (mut sender, driver) = match self.live.take() {
            Some(live) => live,
            None => tokio::select! {
                connected = connect(&self.addr) => match connected {
                    Ok(live) => live,
                    Err(_) => return Outcome::TransportError,
                },
                () = &mut deadline => return Outcome::Timeout,
            },
        };
        let (outcome, driver) = {
            let exchange = exchange(&mut sender, self.template.build());
            tokio::pin!(exchange);
            let mut driver = driver;
            let first = tokio::select! {
                biased;
                result = &mut exchange => First::Answered(result),
                _ = driver.as_mut() => First::Closed,
                () = &mut deadline => First::TimedOut,
            };
            match first {
                First::Answered(result) => (
                    result.map_or(Outcome::TransportError, Outcome::Status),
                    Some(driver),
                ),
                First::TimedOut => (Outcome::Timeout, None),
                First::Closed => {
                    // The server closed the connection, perhaps right after
                    // answering (`Connection: close`). Dropping the driver
                    // settles the exchange either way: with the response it
                    // already read, or with an error.
                    drop(driver);
                    let outcome = tokio::select! {
                        result = &mut exchange => result.map_or(Outcome::TransportError, Outcome::Status),
                        () = &mut deadline => Outcome::Timeout,
                    };
                    (outcome, None)
                }
            }
        };
        // Keep the connection only while it is known to be clean: after a
        // timeout or an error its state is unknown, so the next request
        // starts a fresh one.
        if let (Outcome::Status(_), Some(driver)) = (outcome, driver) {
            if !sender.is_closed() {
                self.live = Some((sender, driver));
            }
        }
        outcome
    }
}

enum First {
    Answered(Result<u16, hyper::Error>),
    Closed,
    TimedOut,
}

async fn connect(addr: &str) -> std::io::Result<(SendRequest<Empty<Bytes>>, Driver)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    Ok((sender, Box::pin(driver)))
}

/// Sends one request and reads the whole response, discarding the body.
async fn exchange(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> Result<u16, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(status)
}
