//! The built-in probe of the shortener's redirect path (`reliable up`):
//! the platform seeds one well-known link through the shortener's public
//! API and probes its redirect without following it, so the probe SLO in
//! `slo/probes.yaml` has data from the first minute.
//!
//! The link points at `https://example.com/` (a domain reserved for
//! examples, RFC 2606; the probe never follows it, and the shortener
//! refuses links back at itself); a 409 (it exists from an earlier start)
//! is as good as a 201.

use crate::check::{fetch, HttpClient};
use crate::config::{Check, HttpCheck, ProbeSpec, StatusPattern};
use http::{HeaderName, HeaderValue, Method};
use hyper::body::Bytes;
use std::time::Duration;

/// The seeded link's slug.
pub const SLUG: &str = "status-probe";
/// The built-in probe's name (the SLI's `probe` label).
pub const PROBE: &str = "shortener-redirect";
/// Where the seeded link points (never fetched).
pub const TARGET: &str = "https://example.com/";
/// Its public component.
pub const COMPONENT: &str = "Link redirects";

/// The probe of `public_url`'s seeded link, every `interval`; `ca_file`
/// is the listener's own CA when it serves TLS from a private PKI.
pub fn shortener_redirect(
    public_url: &url::Url,
    interval: Duration,
    ca_file: Option<std::path::PathBuf>,
) -> ProbeSpec {
    let url = public_url
        .join(SLUG)
        .map(String::from)
        .unwrap_or_else(|_| format!("{public_url}{SLUG}"));
    ProbeSpec {
        name: PROBE.to_string(),
        component: COMPONENT.to_string(),
        interval,
        timeout: (interval / 2).min(Duration::from_secs(5)),
        check: Check::Http(HttpCheck {
            url,
            method: "GET".to_string(),
            expected_status: [301, 302, 307, 308]
                .into_iter()
                .map(StatusPattern::Code)
                .collect(),
            body_contains: None,
            tls_expiry_warning: Duration::from_secs(14 * 86_400),
            follow_redirects: false,
            ca_file,
        }),
    }
}

/// Creates the probe's link through `public_url`'s links API (a 409
/// means it exists already).
pub async fn seed_link(client: &HttpClient, public_url: &url::Url) -> Result<(), String> {
    let api = public_url
        .join("api/v1/links")
        .map_err(|e| format!("links API URL: {e}"))?;
    let body = serde_json::json!({
        "url": TARGET,
        "slug": SLUG,
        "redirect_status": 302,
        "tags": ["status-probe"],
    });
    let headers = [(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/json"),
    )];
    let answer = fetch(
        client,
        &Method::POST,
        &api,
        &headers,
        Bytes::from(body.to_string()),
    )
    .await?;
    match answer.status {
        200..=299 | 409 => Ok(()),
        status => Err(format!(
            "POST {api} answered {status}: {}",
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
        )),
    }
}
