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

/// What a `Reliable-Signature` header starts with.
pub const SIGNATURE_PREFIX: &str = "sha256=";

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    match body_mac(secret.expose().as_bytes(), body) {
        Some(mac) => format!(
            "{SIGNATURE_PREFIX}{}",
            hex::encode(mac.finalize().into_bytes())
        ),
        None => String::new(),
    }
}

/// Why a `Reliable-Signature` header was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature must start with `{SIGNATURE_PREFIX}`")]
    Scheme,
    #[error("the signature must be 64 hexadecimal digits after `{SIGNATURE_PREFIX}`")]
    Encoding,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// What a receiver runs on each delivery: checks that `header` (the
/// `Reliable-Signature` value) is [`signature`] of `body` under `secret`.
/// The comparison is constant-time (`hmac`'s `verify_slice`), so response
/// timing tells an attacker nothing about how much of a forgery was right.
/// Takes the secret as bytes: a receiver holds it however it likes.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> Result<(), SignatureError> {
    let digits = header
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(SignatureError::Scheme)?;
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(digits, &mut claimed).map_err(|_| SignatureError::Encoding)?;
    body_mac(secret, body)
        .ok_or(SignatureError::Mismatch)?
        .verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

/// HMAC takes keys of any length (longer ones are hashed first), so this
/// is never `None` in practice; the type just does not say so.
fn body_mac(secret: &[u8], body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(mac)
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
            address_filter: (!config.allow_private).then_some(kit::net::is_public as fn(_) -> _),
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

    #[test]
    fn a_receiver_verifies_what_the_sender_signed() {
        let secret = Secret::new("s3cret");
        let body = br#"{"order_id":"o-1"}"#;
        let header = signature(&secret, body);
        assert_eq!(verify(b"s3cret", body, &header), Ok(()));
        // Hex digits are case-insensitive.
        let upper = format!("sha256={}", header["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(verify(b"s3cret", body, &upper), Ok(()));
    }

    #[test]
    fn forgeries_and_malformed_signatures_are_refused() {
        let body = b"{}";
        let header = signature(&Secret::new("s3cret"), body);
        assert_eq!(
            verify(b"other", body, &header),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", b"{ }", &header),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = header.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(
            verify(b"s3cret", body, &flipped),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", body, &header["sha256=".len()..]),
            Err(SignatureError::Scheme)
        );
        assert_eq!(
            verify(b"s3cret", body, &header.replace("sha256=", "sha1=")),
            Err(SignatureError::Scheme)
        );
        for bad in [
            "sha256=",
            "sha256=zz",
            &header[..header.len() - 2],
            &format!("{header}00"),
        ] {
            assert_eq!(
                verify(b"s3cret", body, bad),
                Err(SignatureError::Encoding),
                "{bad}"
            );
        }
    }
}
