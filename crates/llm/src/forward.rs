//! Calling backends: pick a deployment, call it, and on a failure before
//! the first token try the next deployment or the next fallback model.
//!
//! What may be retried: a refused connection, a 5xx, a 429, a broken
//! exchange or a timeout before the first byte, and (for streams) a
//! backend whose first event is garbage or an error. Never anything after
//! a token went to the client. Attempts are bounded by `retry.max_retries`
//! and by the retry budget every request shares, so an outage of every
//! backend does not triple the load on them. A 4xx other than 429 is the
//! client's (a prompt over the context window): it is passed back as the
//! backend said it, and the deployment counts as healthy.

use crate::admission::Ticket;
use crate::catalog::{Deployment, ServedModel};
use crate::error::LlmError;
use crate::metrics::{self as m, InFlightGauge};
use crate::relay::{self, Committed, StreamContext};
use crate::service::Service;
use crate::settle::{Outcome, Settlement};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use openai::request::{Endpoint, Request};
use openai::response::Usage;
use openai::sse::SseParser;
use resilience::ResponseBody;
use resilience::{Endpoint as PoolEndpoint, InFlight};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::time::{timeout_at, Instant};

/// One request on its way to a backend.
pub struct Call {
    pub endpoint: Endpoint,
    pub request: Request,
    pub model: Arc<ServedModel>,
    pub ticket: Ticket,
    pub started: Instant,
}

/// Why one attempt failed.
enum Failure {
    /// Try elsewhere: `reason` is the metric label; `blame` opens the
    /// deployment's breaker.
    Retry {
        reason: &'static str,
        blame: bool,
        error: LlmError,
    },
    /// The backend's own answer to pass back (a 4xx), or our final error.
    Final(Response),
}

fn path_of(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::ChatCompletions => "/chat/completions",
        Endpoint::Completions => "/completions",
        Endpoint::Embeddings => "/embeddings",
    }
}

impl Service {
    /// Calls backends until one answers (or the attempts run out), and
    /// returns the client's response.
    pub(crate) async fn forward(self: &Arc<Self>, call: Call) -> Response {
        self.retry_budget.deposit();
        let mut plan: Vec<Arc<ServedModel>> = vec![call.model.clone()];
        for name in &call.model.fallbacks {
            if let Some(model) = self.catalog.find(name) {
                plan.push(model);
            }
        }
        let max_attempts = 1 + self.max_retries;
        let mut attempts = 0;
        let mut last_error = LlmError::NoBackend;
        for model in &plan {
            let mut tried: Vec<Arc<PoolEndpoint<Deployment>>> = Vec::new();
            while attempts < max_attempts {
                if attempts > 0 {
                    if !self.retry_budget.try_withdraw() {
                        return self.fail(call, last_error);
                    }
                    tokio::time::sleep(resilience::backoff(self.retry_backoff, attempts)).await;
                }
                let Some(slot) = model.pick(tried.last()) else {
                    break;
                };
                if tried.iter().any(|t| Arc::ptr_eq(t, slot.endpoint())) {
                    break;
                }
                tried.push(slot.endpoint().clone());
                attempts += 1;
                match self.attempt(&call, model, slot, attempts > 1).await {
                    Ok(response) => return response,
                    Err(Failure::Final(response)) => return response,
                    Err(Failure::Retry {
                        reason,
                        blame,
                        error,
                    }) => {
                        if let Some(endpoint) = tried.last() {
                            if blame {
                                endpoint.record(false);
                            }
                        }
                        metrics::counter!(m::FALLBACKS, "gen_ai_request_model" => call.model.name, "reason" => reason)
                            .increment(1);
                        tracing::info!(
                            model = call.model.name,
                            reason,
                            "attempt failed; trying elsewhere"
                        );
                        last_error = error;
                    }
                }
            }
        }
        self.fail(call, last_error)
    }

    /// No backend answered: the reservation goes back.
    fn fail(&self, call: Call, error: LlmError) -> Response {
        self.settler.refused(Some(call.model.name), "backend-error");
        self.settler.release(call.ticket);
        error.into_response()
    }

    async fn attempt(
        self: &Arc<Self>,
        call: &Call,
        model: &Arc<ServedModel>,
        slot: InFlight<Deployment>,
        after_failure: bool,
    ) -> Result<Response, Failure> {
        let deployment = &slot.endpoint().target;
        let backend = deployment.backend.clone();
        let gauge = InFlightGauge::new(backend.name);
        let stream = call.request.stream();
        let body = call
            .request
            .to_backend_body(&deployment.model, Some(model.max_tokens), stream);
        let span = tracing::info_span!(
            "llm.backend",
            otel.name = %format!("chat {}", deployment.model),
            otel.kind = "client",
            gen_ai.request.model = %deployment.model,
            server.address = backend.name,
            http.response.status_code = tracing::field::Empty,
        );
        let hop = kit::telemetry::Hop::outgoing(span, crate::SERVICE, None);
        let request = backend.request(
            Method::POST,
            path_of(call.endpoint),
            Some(Bytes::from(body)),
            hop.traceparent().header_value(),
        );
        let timeouts = model.timeouts;
        let total_deadline = call.started + timeouts.total;
        let head_deadline = if stream {
            (Instant::now() + timeouts.first_token).min(total_deadline)
        } else {
            total_deadline
        };
        let sent = hop
            .run(timeout_at(head_deadline, backend.client.send(request)))
            .await;
        let response = match sent {
            Err(_) => {
                hop.fail("timeout");
                return Err(Failure::Retry {
                    reason: "timeout",
                    blame: true,
                    error: LlmError::BackendTimeout,
                });
            }
            Ok(Err(e)) => {
                hop.fail("connect");
                tracing::warn!(
                    backend = backend.name,
                    error = &e as &dyn std::error::Error,
                    "backend call failed"
                );
                return Err(Failure::Retry {
                    reason: "connect",
                    blame: true,
                    error: LlmError::Backend("the backend could not be reached"),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        hop.span()
            .record("http.response.status_code", status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            hop.fail(status.as_str().to_string());
            return Err(Failure::Retry {
                reason: if status == StatusCode::TOO_MANY_REQUESTS {
                    "429"
                } else {
                    "5xx"
                },
                // A busy backend is healthy; a failing one is not.
                blame: status.is_server_error(),
                error: if status == StatusCode::TOO_MANY_REQUESTS {
                    LlmError::NoBackend
                } else {
                    LlmError::Backend("the backend answered with an error")
                },
            });
        }
        if !status.is_success() {
            // The client's fault, as the backend says it.
            slot.endpoint().record(true);
            let body = self.read_body(response.into_body(), total_deadline).await;
            self.settler
                .refused(Some(call.model.name), "backend-rejected");
            self.settler.release(call.ticket.clone());
            let mut passed = (status, body.unwrap_or_default()).into_response();
            passed
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Err(Failure::Final(passed));
        }
        if stream {
            let committed = self
                .first_event(response.into_body(), slot, gauge, head_deadline)
                .await?;
            return Ok(self.stream(call, model, committed, total_deadline, after_failure));
        }
        let body = match self.read_body(response.into_body(), total_deadline).await {
            Ok(body) => body,
            Err(error) => {
                return Err(Failure::Retry {
                    reason: "read",
                    blame: true,
                    error,
                })
            }
        };
        // A 200 whose body is not JSON is a broken backend, not an answer.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(Failure::Retry {
                reason: "malformed",
                blame: true,
                error: LlmError::Backend("the backend's answer is not JSON"),
            });
        }
        slot.endpoint().record(true);
        drop(gauge);
        let (usage, estimated) = match openai::response::response_usage(&body) {
            Some(usage) => (usage, false),
            None => {
                let prompt = call.request.estimated_prompt_tokens();
                let completion = (body.len() as u64).div_ceil(4);
                (
                    Usage {
                        prompt_tokens: prompt,
                        completion_tokens: completion,
                        total_tokens: prompt + completion,
                    },
                    true,
                )
            }
        };
        self.settler.settle(Settlement {
            ticket: call.ticket.clone(),
            model: call.model.name,
            backend: backend.name,
            usage,
            estimated,
            outcome: if after_failure {
                Outcome::Fallback
            } else {
                Outcome::Ok
            },
            duration: call.started.elapsed(),
        });
        let mut answer = (StatusCode::OK, body).into_response();
        answer
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(answer)
    }

    /// Reads a whole (non-streamed) answer, bounded in size and time.
    async fn read_body(
        &self,
        mut body: ResponseBody,
        deadline: Instant,
    ) -> Result<Bytes, LlmError> {
        let mut out = BytesMut::new();
        loop {
            match timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(LlmError::BackendTimeout),
                Ok(None) => return Ok(out.freeze()),
                Ok(Some(Err(_))) => {
                    return Err(LlmError::Backend("the backend's answer broke off"))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if out.len() + data.len() > self.max_response_bytes {
                            return Err(LlmError::Backend(
                                "the backend's answer is over the size limit",
                            ));
                        }
                        out.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Waits for a stream's first event (within the first-token deadline):
    /// until then the call may still be retried elsewhere.
    async fn first_event(
        &self,
        mut body: ResponseBody,
        slot: InFlight<Deployment>,
        gauge: InFlightGauge,
        deadline: Instant,
    ) -> Result<Committed, Failure> {
        let retry = |reason, error| Failure::Retry {
            reason,
            blame: true,
            error,
        };
        let mut parser = SseParser::new(self.max_response_bytes);
        let mut pending = VecDeque::new();
        while pending.is_empty() {
            let frame = match timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(retry("timeout", LlmError::BackendTimeout)),
                Ok(None) => {
                    return Err(retry(
                        "malformed",
                        LlmError::Backend("the backend's stream ended before its first event"),
                    ))
                }
                Ok(Some(Err(_))) => {
                    return Err(retry(
                        "read",
                        LlmError::Backend("the backend's stream broke off"),
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            parser.push(&data);
            while let Some(event) = parser.next_event() {
                match event {
                    Ok(event) => pending.push_back(event),
                    Err(_) => {
                        return Err(retry(
                            "malformed",
                            LlmError::Backend("the backend's stream is not valid SSE"),
                        ))
                    }
                }
            }
        }
        // A first event that is garbage or an error is a failed attempt,
        // not a stream to relay.
        if let Some(first) = pending.front() {
            if !first.is_done() {
                match openai::response::chunk_usage(&first.data) {
                    Ok(info) if !info.is_error => {}
                    _ => {
                        return Err(retry(
                            "malformed",
                            LlmError::Backend(
                                "the backend's first event is not a completion chunk",
                            ),
                        ))
                    }
                }
            }
        }
        Ok(Committed {
            body,
            parser,
            pending,
            slot,
            _in_flight: gauge,
        })
    }

    fn stream(
        self: &Arc<Self>,
        call: &Call,
        model: &Arc<ServedModel>,
        committed: Committed,
        total_deadline: Instant,
        after_failure: bool,
    ) -> Response {
        let context = StreamContext {
            settler: self.settler.clone(),
            ticket: call.ticket.clone(),
            model: call.model.name,
            client_wants_usage: call.request.client_wants_usage(),
            prompt_estimate: call.request.estimated_prompt_tokens(),
            started: call.started,
            idle: model.timeouts.idle,
            total_deadline,
            fallback: after_failure,
            stop: self.stop.clone(),
        };
        relay::respond(committed, context, &self.streams)
    }
}
