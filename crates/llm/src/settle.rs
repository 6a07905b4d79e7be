//! The end of a request: what it cost and how it went, recorded once.
//!
//! A [`Settlement`] is built on the request path (or when a stream ends,
//! or when its client goes away) and handed to [`Settler::settle`], which
//! updates the metrics at once (tokens by backend, and by the caller's key
//! for cost: `llm_key_tokens_total`) and then, on a tracked task, charges the
//! key's limits and writes the usage ledger, so neither the client nor a
//! dropped stream waits on Redis or the database.

use crate::admission::{Admission, Ticket};
use crate::metrics as m;
pub use crate::usage::Outcome;
use crate::usage::{Ledger, UsageRecord};
use kit::Clock;
use openai::response::Usage;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// What one request that reached a backend cost.
pub struct Settlement {
    pub ticket: Ticket,
    pub model: &'static str,
    pub backend: &'static str,
    pub usage: Usage,
    /// The backend reported no usage: `usage` is the gateway's estimate.
    pub estimated: bool,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// Records settlements: metrics now, limits and ledger on a tracked task.
#[derive(Clone)]
pub struct Settler {
    pub admission: Arc<Admission>,
    pub ledger: Ledger,
    pub tasks: TaskTracker,
    pub clock: Arc<dyn Clock>,
}

impl Settler {
    pub fn settle(&self, settlement: Settlement) {
        let Settlement {
            ticket,
            model,
            backend,
            usage,
            estimated,
            outcome,
            duration,
        } = settlement;
        let outcome_label = outcome.as_str();
        metrics::counter!(m::REQUESTS, "gen_ai_request_model" => model, "outcome" => outcome_label)
            .increment(1);
        metrics::histogram!(m::REQUEST_DURATION, "gen_ai_request_model" => model, "server_address" => backend, "outcome" => outcome_label)
            .record(duration.as_secs_f64());
        for (kind, count) in [
            ("input", usage.prompt_tokens),
            ("output", usage.completion_tokens),
        ] {
            metrics::counter!(m::TOKENS, "gen_ai_request_model" => model, "server_address" => backend, "gen_ai_token_type" => kind)
                .increment(count);
            metrics::counter!(m::KEY_TOKENS, "key" => ticket.caller.as_str().to_string(), "gen_ai_request_model" => model, "gen_ai_token_type" => kind)
                .increment(count);
        }
        if estimated {
            metrics::counter!(m::USAGE_ESTIMATED, "gen_ai_request_model" => model, "server_address" => backend)
                .increment(1);
        }
        let record = UsageRecord {
            at: self.clock.now(),
            key: ticket.caller.as_str().to_string(),
            model: model.to_string(),
            backend: backend.to_string(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            estimated,
            outcome,
        };
        let admission = self.admission.clone();
        let ledger = self.ledger.clone();
        self.tasks.spawn(async move {
            admission
                .settle(&ticket, usage.prompt_tokens + usage.completion_tokens)
                .await;
            ledger.record(record).await;
        });
    }

    /// A request refused before any backend was asked (bad input, limits).
    /// `model` is `None` when the request named none that is served (the
    /// label stays bounded).
    pub fn refused(&self, model: Option<&'static str>, outcome: &'static str) {
        let model = model.unwrap_or("unknown");
        metrics::counter!(m::REQUESTS, "gen_ai_request_model" => model, "outcome" => outcome)
            .increment(1);
    }

    /// Gives back what `ticket` reserved, on a tracked task.
    pub fn release(&self, ticket: Ticket) {
        let admission = self.admission.clone();
        self.tasks
            .spawn(async move { admission.release(&ticket).await });
    }
}
