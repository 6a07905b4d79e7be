//! Metric names of the module: the OpenTelemetry GenAI semantic
//! conventions where they name the thing (time to first token, time per
//! output token, request duration), `llm_*` where they do not. Labels are
//! bounded: `gen_ai_request_model` is a configured or discovered model
//! (discovery is capped per backend), `server_address` a configured
//! backend name, `outcome`/`reason`/`gen_ai_token_type` fixed lists,
//! `key` an API key's name: keys are issued by an administrator, and only
//! the gateway in front names one (it drops any `X-Api-Key-Name` a client
//! sent), so the set is as bounded as the key store.

/// Histogram: from the request's arrival to its first token leaving.
pub const TIME_TO_FIRST_TOKEN: &str = "gen_ai_server_time_to_first_token_seconds";
/// Histogram: per streamed request, (last token - first token) / (tokens - 1).
pub const TIME_PER_OUTPUT_TOKEN: &str = "gen_ai_server_time_per_output_token_seconds";
/// Histogram: the whole request, by `outcome`.
pub const REQUEST_DURATION: &str = "gen_ai_server_request_duration_seconds";
/// Counter: tokens by `gen_ai_token_type` (`input`, `output`), as the
/// backend reported them (or as estimated when it reported none).
pub const TOKENS: &str = "llm_tokens_total";
/// Counter: tokens by API `key` (`anonymous` without one), model and
/// `gen_ai_token_type`: what `reliable cost --aggregate key` and the
/// budget alerts of `reliable slo generate --pricing` price.
pub const KEY_TOKENS: &str = "llm_key_tokens_total";
/// Counter: requests by `outcome`: `ok`, `fallback` (served after a
/// failed attempt), `client-cancel`, `backend-error`, `budget-exceeded`
/// (any key limit), `rejected` (bad input, unknown model, no key).
pub const REQUESTS: &str = "llm_requests_total";
/// Gauge: calls in flight per backend.
pub const BACKEND_IN_FLIGHT: &str = "llm_backend_in_flight_requests";
/// Counter: streams ended by an error event after tokens were sent, by
/// `reason` (`backend-error`, `malformed`, `truncated`, `idle-timeout`,
/// `total-timeout`).
pub const STREAM_ABORTS: &str = "llm_stream_aborts_total";
/// Counter: failed attempts that were retried elsewhere, by `reason`.
pub const FALLBACKS: &str = "llm_fallbacks_total";
/// Counter: requests whose usage was estimated (the backend sent none).
pub const USAGE_ESTIMATED: &str = "llm_usage_estimated_total";

pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        TIME_TO_FIRST_TOKEN,
        Unit::Seconds,
        "Time from a request's arrival to its first token"
    );
    describe_histogram!(
        TIME_PER_OUTPUT_TOKEN,
        Unit::Seconds,
        "Time per output token after the first, per streamed request"
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "LLM requests from arrival to the last byte"
    );
    describe_counter!(TOKENS, "Input and output tokens");
    describe_counter!(KEY_TOKENS, "Input and output tokens by API key and model");
    describe_counter!(REQUESTS, "LLM requests by outcome");
    describe_gauge!(BACKEND_IN_FLIGHT, "Backend calls in flight");
    describe_counter!(STREAM_ABORTS, "Streams ended by an error event");
    describe_counter!(FALLBACKS, "Failed attempts retried on another deployment");
    describe_counter!(
        USAGE_ESTIMATED,
        "Requests whose usage the gateway estimated"
    );
}

/// Counts one call in flight on a backend while it lives.
pub(crate) struct InFlightGauge(&'static str);

impl InFlightGauge {
    pub fn new(backend: &'static str) -> Self {
        metrics::gauge!(BACKEND_IN_FLIGHT, "server_address" => backend).increment(1.0);
        Self(backend)
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        metrics::gauge!(BACKEND_IN_FLIGHT, "server_address" => self.0).decrement(1.0);
    }
}
