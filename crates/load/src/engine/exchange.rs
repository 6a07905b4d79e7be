//! One request: render it from its template, send it on a kept-alive
//! connection, read the answer, and apply its checks and captures.
//!
//! Whatever can be built once is built once ([`Prepared`]): a URL, header
//! or body without placeholders is parsed when the scenario starts, so a
//! plain GET costs no rendering and no URL parsing per request.

use super::client::{read_answer, Answer, Body, Connector, Http1, Http2, Origin};
use super::harvest::Harvester;
use super::wire::encode_request;
use crate::plan::RequestPlan;
use crate::results::{Outcome, Stats};
use crate::scenario::{Render, State};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

#[path = "exchange_http1.rs"]
mod http1;

/// A request with everything constant already built.
pub(crate) struct Prepared {
    pub plan: RequestPlan,
    fixed_target: Option<Arc<Target>>,
    fixed_headers: Vec<(HeaderName, HeaderValue)>,
    /// Indexes into `plan.headers` of the templated ones.
    dynamic_headers: Vec<usize>,
    fixed_body: Option<Bytes>,
    keep_body: bool,
    /// Checks or captures may read the response's headers.
    keep_headers: bool,
    /// The whole HTTP/1.1 request, when nothing in it is templated.
    fixed_wire: Option<Vec<u8>>,
}

/// Where a request goes, parsed.
struct Target {
    origin: Origin,
    /// Origin-form (`/path?query`) for HTTP/1.1.
    path: Uri,
    /// Absolute form for HTTP/2 (`:scheme` and `:authority` come from it).
    absolute: Uri,
    host: HeaderValue,
}

impl Target {
    fn path_str(&self) -> &str {
        self.path.path_and_query().map_or("/", |pq| pq.as_str())
    }

    fn parse(url: &[u8]) -> Option<Self> {
        let absolute = Uri::try_from(url).ok()?;
        let origin = Origin::of(&absolute)?;
        let path = absolute
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let host = HeaderValue::from_str(origin.authority.as_str()).ok()?;
        Some(Self {
            origin,
            path,
            absolute,
            host,
        })
    }
}

impl Prepared {
    pub(crate) fn new(plan: &RequestPlan) -> Self {
        let fixed_target = plan
            .url
            .as_literal()
            .and_then(|url| Target::parse(url.as_bytes()))
            .map(Arc::new);
        let mut fixed_headers = Vec::new();
        let mut dynamic_headers = Vec::new();
        for (i, (name, value)) in plan.headers.iter().enumerate() {
            match value
                .as_literal()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                Some(value) => fixed_headers.push((name.clone(), value)),
                None => dynamic_headers.push(i),
            }
        }
        let fixed_body = plan
            .body
            .as_ref()
            .and_then(|b| b.as_literal())
            .map(|b| Bytes::copy_from_slice(b.as_bytes()));
        let fixed_wire = match (&fixed_target, &plan.body, &fixed_body) {
            (Some(target), None, _) | (Some(target), Some(_), Some(_))
                if dynamic_headers.is_empty() =>
            {
                let mut out = Vec::new();
                encode_request(
                    &mut out,
                    &plan.method,
                    target.path_str(),
                    target.host.as_bytes(),
                    fixed_headers.iter().map(|(n, v)| (n, v.as_bytes())),
                    fixed_body.as_deref().unwrap_or_default(),
                );
                Some(out)
            }
            _ => None,
        };
        Self {
            plan: plan.clone(),
            fixed_target,
            fixed_headers,
            dynamic_headers,
            fixed_body,
            keep_body: plan.needs_body(),
            keep_headers: !plan.checks.is_empty() || !plan.captures.is_empty(),
            fixed_wire,
        }
    }

    /// The origin to connect to ahead of the first request, when the URL
    /// is fixed.
    pub(crate) fn fixed_origin(&self) -> Option<&Origin> {
        self.fixed_target.as_ref().map(|t| &t.origin)
    }
}

/// What happened to one request.
pub(crate) enum Executed {
    /// A pool the request picks from was empty: nothing was sent.
    Skipped,
    Sent {
        outcome: Outcome,
        answer: Option<Answer>,
    },
}

/// The HTTP/2 connections a thread's slots share, one per origin.
pub(crate) type SharedHttp2 = Arc<Mutex<Vec<(Origin, Http2)>>>;

/// One slot: at most one request in flight, with its own kept-alive
/// HTTP/1.1 connections (one per origin it has talked to).
pub(crate) struct Slot {
    connector: Connector,
    http1: Vec<(Origin, Http1)>,
    http2: SharedHttp2,
    /// Reads its plain HTTP/1.1 connections when the thread wakes anyway
    /// (the open model), instead of when answers arrive.
    harvester: Option<Arc<Harvester>>,
    scratch: Vec<u8>,
    /// The HTTP/1.1 request being sent, reused from one to the next.
    out: Vec<u8>,
}

impl Slot {
    pub(crate) fn new(
        connector: Connector,
        http2: SharedHttp2,
        harvester: Option<Arc<Harvester>>,
    ) -> Self {
        Self {
            connector,
            http1: Vec::new(),
            http2,
            harvester,
            scratch: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Connects ahead of time, so the first request does not pay for the
    /// handshake. Failures are left for the first request to report.
    pub(crate) async fn warm(&mut self, origin: &Origin) {
        if self.connector.http2() {
            let _ = self.http2_sender(origin).await;
        } else if !self.http1.iter().any(|(o, _)| o == origin) {
            if let Ok(connection) = self.connector.http1(origin, self.harvester.as_ref()).await {
                self.http1.push((origin.clone(), connection));
            }
        }
    }

    /// Renders, sends and reads one request; `deadline` bounds all of it.
    pub(crate) async fn execute(
        &mut self,
        request: &Prepared,
        render: &mut Render<'_>,
        deadline: Instant,
    ) -> Executed {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let built = if self.connector.http2() {
            self.build(request, render).map(|(t, r)| (t, Some(r)))
        } else {
            self.build_http1(request, render, &mut out)
                .map(|t| (t, None))
        };
        let (target, request_http2) = match built {
            Ok(built) => built,
            Err(Unsendable::EmptyPool) => {
                self.out = out;
                return Executed::Skipped;
            }
            Err(Unsendable::BadRequest) => {
                self.out = out;
                return Executed::Sent {
                    outcome: Outcome::TransportError,
                    answer: None,
                };
            }
        };
        let origin = &target.origin;
        let result = tokio::time::timeout_at(deadline, async {
            match request_http2 {
                Some(request_http) => {
                    self.send_http2(origin, request_http, request.keep_body)
                        .await
                }
                None => {
                    let bytes = request.fixed_wire.as_deref().unwrap_or(&out);
                    self.send_http1(origin, bytes, request).await
                }
            }
        })
        .await;
        self.out = out;
        match result {
            Ok(Ok(answer)) => Executed::Sent {
                outcome: Outcome::Status(answer.status),
                answer: Some(answer),
            },
            Ok(Err(())) => Executed::Sent {
                outcome: Outcome::TransportError,
                answer: None,
            },
            Err(_elapsed) => {
                // The connection's state is unknown: start afresh next time.
                self.http1.retain(|(o, _)| o != origin);
                Executed::Sent {
                    outcome: Outcome::Timeout,
                    answer: None,
                }
            }
        }
    }

    /// Builds an HTTP/2 request.
    fn build(
        &mut self,
        request: &Prepared,
        render: &mut Render<'_>,
    ) -> Result<(Arc<Target>, Request<Body>), Unsendable> {
        let plan = &request.plan;
        let target = self.target(request, render)?;
        let body = match (&request.fixed_body, &plan.body) {
            (Some(body), _) => body.clone(),
            (None, Some(template)) => {
                let mut out = Vec::new();
                template
                    .render(render, &mut out)
                    .map_err(|_| Unsendable::EmptyPool)?;
                Bytes::from(out)
            }
            (None, None) => Bytes::new(),
        };
        let uri = target.absolute.clone();
        let mut http_request = Request::new(Body::new(body));
        *http_request.method_mut() = plan.method.clone();
        *http_request.uri_mut() = uri;
        let headers = http_request.headers_mut();
        for (name, value) in &request.fixed_headers {
            headers.append(name.clone(), value.clone());
        }
        for &i in &request.dynamic_headers {
            let (name, value) = self.render_header(request, i, render)?;
            headers.append(name.clone(), value);
        }
        Ok((target, http_request))
    }

    /// Renders the request's `i`-th header, one whose value is templated.
    fn render_header<'p>(
        &mut self,
        request: &'p Prepared,
        i: usize,
        render: &mut Render<'_>,
    ) -> Result<(&'p HeaderName, HeaderValue), Unsendable> {
        let (name, template) = &request.plan.headers[i];
        self.scratch.clear();
        template
            .render(render, &mut self.scratch)
            .map_err(|_| Unsendable::EmptyPool)?;
        let value = HeaderValue::from_bytes(&self.scratch).map_err(|_| Unsendable::BadRequest)?;
        Ok((name, value))
    }

    async fn http2_sender(&self, origin: &Origin) -> Result<Http2, ()> {
        let existing = self.http2.lock().ok().and_then(|c| {
            c.iter()
                .find(|(o, h)| o == origin && !h.sender.is_closed())
                .map(|(_, h)| h.clone())
        });
        if let Some(connection) = existing {
            return Ok(connection);
        }
        let connection = self.connector.http2_connect(origin).await.map_err(|_| ())?;
        if let Ok(mut shared) = self.http2.lock() {
            shared.retain(|(o, h)| o != origin && !h.sender.is_closed());
            shared.push((origin.clone(), connection.clone()));
        }
        Ok(connection)
    }

    async fn send_http2(
        &mut self,
        origin: &Origin,
        request: Request<Body>,
        keep_body: bool,
    ) -> Result<Answer, ()> {
        let mut connection = self.http2_sender(origin).await?;
        connection.sender.ready().await.map_err(|_| ())?;
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|_| ())?;
        read_answer(response, keep_body).await.map_err(|_| ())
    }
}

enum Unsendable {
    EmptyPool,
    /// The rendered URL or a header value is not valid HTTP.
    BadRequest,
}

/// Applies a finished request's checks and captures, and records it.
pub(crate) fn settle(
    request: &Prepared,
    executed: Executed,
    latency: std::time::Duration,
    stats: &mut Stats,
    state: &State,
    measured: bool,
) {
    let Executed::Sent { outcome, answer } = executed else {
        if measured {
            stats.skipped_empty_pool += 1;
        }
        return;
    };
    let plan = &request.plan;
    let ok_status = matches!(outcome, Outcome::Status(code) if plan.expect_status.contains(code));
    if let Some(answer) = &answer {
        if ok_status {
            for capture in &plan.captures {
                if let Some(value) = capture.extract(&answer.headers, &answer.body) {
                    state.push(capture.pool, value);
                }
            }
        }
    }
    if !measured {
        return;
    }
    stats.sent += 1;
    stats.record_outcome(outcome, ok_status, latency);
    if let Some(answer) = &answer {
        stats.bytes_received += answer.body_bytes;
        for check in &plan.checks {
            stats.record_check(
                &check.name,
                check.passes(answer.status, &answer.headers, &answer.body),
            );
        }
    } else {
        // A request without an answer fails every check it has.
        for check in &plan.checks {
            stats.record_check(&check.name, false);
        }
    }
}
