//! Where notifications go: a signed HTTP webhook and the log.
//!
//! Webhook contract: `POST` of the event's JSON body with
//! `Content-Type: application/json`, `Reliable-Event-Id` (receivers
//! de-duplicate on it), `Reliable-Event-Type` (the subject),
//! `Reliable-Signature: sha256=<hex HMAC-SHA256 of the body with the shared
//! secret>` and a `traceparent`. Any 2xx is success; 408, 429 and 5xx (and
//! timeouts, connection errors) are retried; other 4xx are permanent and go
//! straight to the dead-letter store.
//!
//! Each webhook call is a CLIENT span (OpenTelemetry HTTP client
//! conventions), a child of the delivery's span, and its `traceparent` is
//! the one the receiver gets. The span's `url.full` hides the path and the
//! query values: many webhook URLs are themselves the credential (Slack,
//! Discord and Teams put the token in the path).

use crate::config::{Secret, WebhookConfig};
use async_trait::async_trait;
use bus::Event;
use hmac::{Hmac, Mac};
use kit::telemetry::Hop;
use kit::trace_context::TraceParent;
use resilience::{ClientSettings, HttpClient};
use sha2::Sha256;
use std::time::Duration;

pub const EVENT_ID_HEADER: &str = "reliable-event-id";
pub const EVENT_TYPE_HEADER: &str = "reliable-event-type";
pub const SIGNATURE_HEADER: &str = "reliable-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt later.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time.
    #[error("{0}")]
    Permanent(String),
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn wants(&self, event: &Event) -> bool;
    async fn send(&self, event: &Event) -> Result<(), DeliveryError>;
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct WebhookChannel {
    client: HttpClient,
    timeout: Duration,
    config: WebhookConfig,
    events: Vec<String>,
    /// `url.full` of the spans: the URL with its path and query values
    /// redacted.
    traced_url: String,
}

/// `url` with its path and the value of every query parameter replaced by
/// `REDACTED`, and without a fragment (never sent). Credentials cannot be
/// there: the target refuses them.
fn traced_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_fragment(None);
    if url.path() != "/" {
        shown.set_path("/REDACTED");
    }
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "REDACTED")));
    }
    shown.to_string()
}

impl WebhookChannel {
    pub fn new(
        config: WebhookConfig,
        timeout: Duration,
        events: Vec<String>,
    ) -> Result<Self, resilience::TlsError> {
        // The shared client: rustls with the webpki roots, no proxy, no
        // redirects followed (a redirect is a non-2xx answer). Names are
        // checked on every connection, so one that later resolves to a
        // private address (DNS rebinding) is refused too.
        let client = HttpClient::new(&ClientSettings {
            connect_timeout: timeout,
            address_filter: (!config.allow_private)
                .then_some(crate::target::is_public as fn(_) -> _),
            ..ClientSettings::default()
        })?;
        Ok(Self {
            client,
            timeout,
            traced_url: traced_url(config.target.url()),
            config,
            events,
        })
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn wants(&self, event: &Event) -> bool {
        self.events.is_empty() || self.events.contains(&event.subject)
    }

    async fn send(&self, event: &Event) -> Result<(), DeliveryError> {
        let url = self.config.target.url();
        let span = tracing::info_span!(
            "webhook",
            otel.name = "POST",
            otel.kind = "client",
            http.request.method = "POST",
            server.address = url.host_str().unwrap_or_default(),
            server.port = url.port_or_known_default(),
            url.full = %self.traced_url,
            http.response.status_code = tracing::field::Empty,
        );
        let published_by = event.traceparent.as_deref().and_then(TraceParent::parse);
        let hop = Hop::outgoing(span, crate::SERVICE, published_by);
        let request = http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, &event.id)
            .header(EVENT_TYPE_HEADER, &event.subject)
            .header(
                SIGNATURE_HEADER,
                signature(&self.config.secret, &event.payload),
            )
            .header("traceparent", hop.traceparent().header_value())
            .body(resilience::body::full(event.payload.clone()))
            // Only an event id or subject that is no header value gets
            // here; sending it again will not fix it.
            .map_err(|e| DeliveryError::Permanent(format!("webhook request not built: {e}")))?;
        let sent = self.client.send_within(request, self.timeout);
        let response = hop.run(sent).await.map_err(|e| {
            hop.fail(match e {
                resilience::ClientError::Timeout(_) => "timeout",
                resilience::ClientError::Connect(_) => "connect",
                resilience::ClientError::Tls(_) => "tls",
                _ => "request",
            });
            // The error names no URL: it may carry a token in its path or
            // query. A certificate no trusted CA signed is retried too: the
            // receiver may fix it before the attempts run out.
            DeliveryError::Retryable(format!(
                "webhook request failed: {}",
                kit::telemetry::error_chain(&e)
            ))
        })?;
        let status = response.status();
        hop.span()
            .record("http.response.status_code", status.as_u16());
        if status.is_success() {
            return Ok(());
        }
        hop.fail(status.as_u16().to_string());
        let message = format!("webhook answered {}", status.as_u16());
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(DeliveryError::Retryable(message))
        } else {
            Err(DeliveryError::Permanent(message))
        }
    }
}

/// Writes each notification as a structured log line.
pub struct LogChannel;

#[async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    fn wants(&self, _: &Event) -> bool {
        true
    }

    async fn send(&self, event: &Event) -> Result<(), DeliveryError> {
        tracing::info!(
            event_id = %event.id,
            subject = %event.subject,
            order_id = %event.key,
            traceparent = event.traceparent.as_deref().unwrap_or(""),
            "notification"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traced_urls_hide_the_path_and_query_values() {
        let url = |s: &str| url::Url::parse(s).expect("url");
        assert_eq!(
            traced_url(&url("https://hooks.example.com/in?token=s3cret&v=2#frag")),
            "https://hooks.example.com/REDACTED?token=REDACTED&v=REDACTED"
        );
        assert_eq!(
            traced_url(&url("https://hooks.slack.com/services/T0/B0/s3cret")),
            "https://hooks.slack.com/REDACTED"
        );
        assert_eq!(
            traced_url(&url("http://127.0.0.1:9000/")),
            "http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn signature_matches_rfc4231_test_case_2() {
        let secret = Secret::new("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
