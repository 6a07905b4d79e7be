//! The request path, from the raw request to a backend call: who calls,
//! is the body what an OpenAI client sends, which model, may the caller
//! spend what it may cost. Everything that can be refused here is refused
//! before any backend is asked.

use crate::admission::Admission;
use crate::catalog::Catalog;
use crate::error::LlmError;
use crate::forward::Call;
use crate::settle::Settler;
use crate::usage::UsageStore;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use openai::request::Endpoint;
use resilience::RetryBudget;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Service {
    pub catalog: Arc<Catalog>,
    pub admission: Arc<Admission>,
    pub settler: Settler,
    pub usage: Arc<dyn UsageStore>,
    pub retry_budget: RetryBudget,
    /// Attempts after the first.
    pub max_retries: u32,
    /// Base of the jittered backoff before an attempt after a failure.
    pub retry_backoff: std::time::Duration,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    /// Fraction of requests whose shape is logged at debug level.
    pub debug_sample: f64,
    /// Stream relays.
    pub streams: TaskTracker,
    /// Cancelled at shutdown: open streams end with an error event.
    pub stop: CancellationToken,
    pub stopping: AtomicBool,
}

impl Service {
    /// Serves one OpenAI request.
    pub async fn handle(
        self: &Arc<Self>,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: Body,
    ) -> Response {
        match self.admit(endpoint, headers, body).await {
            Ok(call) => self.forward(call).await,
            Err((model, error)) => {
                let outcome = match error {
                    LlmError::RateLimited { .. }
                    | LlmError::BudgetExhausted { .. }
                    | LlmError::OverLimit { .. } => "budget-exceeded",
                    LlmError::LimiterUnavailable | LlmError::Stopping => "unavailable",
                    _ => "rejected",
                };
                self.settler.refused(model, outcome);
                error.into_response()
            }
        }
    }

    async fn admit(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Call, (Option<&'static str>, LlmError)> {
        let started = Instant::now();
        if self.stopping.load(Ordering::Relaxed) {
            return Err((None, LlmError::Stopping));
        }
        let caller = self.admission.caller(headers).map_err(|e| (None, e))?;
        let bytes = read_limited(body, self.max_request_bytes)
            .await
            .map_err(|e| (None, e))?;
        let request = openai::request::parse(endpoint, &bytes).map_err(|e| (None, e.into()))?;
        let model = self
            .catalog
            .find(request.model())
            .ok_or_else(|| (None, LlmError::UnknownModel(request.model().to_string())))?;
        let name = Some(model.name);
        let mut names: Vec<&str> = vec![model.name];
        names.extend(model.aliases.iter().map(String::as_str));
        if !self.admission.may_call(&caller, &names) {
            return Err((name, LlmError::ModelNotAllowed(request.model().to_string())));
        }
        if let Some(asked) = request.max_tokens() {
            if asked > model.max_tokens {
                return Err((
                    name,
                    LlmError::MaxTokensAboveCap {
                        asked,
                        cap: model.max_tokens,
                    },
                ));
            }
        }
        let reserve = match endpoint {
            Endpoint::Embeddings => request.estimated_prompt_tokens(),
            _ => request.reserved_tokens(model.max_tokens),
        };
        if self.debug_sample > 0.0 && rand::random::<f64>() < self.debug_sample {
            tracing::debug!(
                key = caller.as_str(),
                model = model.name,
                body_bytes = bytes.len(),
                stream = request.stream(),
                max_tokens = ?request.max_tokens(),
                estimated_prompt_tokens = request.estimated_prompt_tokens(),
                "sampled request (content redacted)"
            );
        }
        let ticket = self
            .admission
            .admit(caller, reserve)
            .await
            .map_err(|e| (name, e))?;
        Ok(Call {
            endpoint,
            request,
            model,
            ticket,
            started,
        })
    }
}

/// Reads a request body of at most `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, LlmError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(LlmError::BodyTooLarge { limit })
        }
        Err(_) => Err(LlmError::BodyUnreadable),
    }
}
