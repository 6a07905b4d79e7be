//! The Pushgateway side of `--prometheus-push`: one thread with its own
//! small Tokio runtime, so it works whatever runtime (if any) calls the
//! observer, taking bodies from a channel and `PUT`ting each one.
//!
//! HTTP goes through hyper-util's pooled client with hyper-rustls on the
//! ring provider and the Mozilla roots, the stack the rest of this crate
//! links already. (reqwest would need a TLS feature that, unified across
//! the workspace, makes every other reqwest client in the binary ask for
//! a process-wide crypto provider.)
//!
//! Only the newest body matters, since a PUT replaces the whole group:
//! bodies that queued behind a slow push are skipped. A failure is
//! printed once, then only counted.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A push that takes longer is abandoned and counted as failed; it also
/// bounds how long `finish()` waits for the last one.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

type PushClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("--prometheus-push: `{0}` is not an http:// or https:// URL")]
    Url(String),
    #[error("--prometheus-push: cannot start the push thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("--prometheus-push: cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
}

/// What the push thread did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushTally {
    pub pushed: u64,
    pub failed: u64,
}

/// `20261130T112640Z-4242`: when and which process, enough to tell runs
/// apart in the Pushgateway.
pub fn default_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    )
}

/// A grouping-key value as a plain path segment: anything but letters,
/// digits, `.`, `_` and `-` becomes `_`.
fn path_segment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "run".to_string()
    } else {
        cleaned
    }
}

fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// `{url}/metrics/job/reliable_load/instance/{run id}`, checked.
fn endpoint(url: &str, run_id: &str) -> Result<(String, http::Uri), PushError> {
    let bad = || PushError::Url(url.to_string());
    let base = url::Url::parse(url).map_err(|_| bad())?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(bad());
    }
    let text = format!(
        "{}/metrics/job/reliable_load/instance/{}",
        base.as_str().trim_end_matches('/'),
        path_segment(run_id)
    );
    let uri = text.parse().map_err(|_| bad())?;
    Ok((text, uri))
}

/// Starts the push thread: the endpoint, the channel for bodies (drop it
/// to stop the thread) and the thread, which returns its tally.
pub fn start(
    url: &str,
    run_id: &str,
) -> Result<(String, mpsc::Sender<String>, JoinHandle<PushTally>), PushError> {
    let (text, uri) = endpoint(url, run_id)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PushError::Thread)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(PUSH_TIMEOUT / 2));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config().map_err(PushError::Tls)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: PushClient = Client::builder(TokioExecutor::new()).build(connector);
    let (bodies, receiver) = mpsc::channel();
    let shown = text.clone();
    let worker = std::thread::Builder::new()
        .name("load-prometheus-push".into())
        .spawn(move || push_loop(&runtime, &client, &uri, &shown, &receiver))
        .map_err(PushError::Thread)?;
    Ok((text, bodies, worker))
}

/// One PUT; `Err` says why it did not land.
async fn push(client: &PushClient, uri: &http::Uri, body: String) -> Result<(), String> {
    let request = http::Request::put(uri.clone())
        .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            // hyper-util's error says "client error (Connect)"; the causes
            // say what happened.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(inner) = cause {
                text = format!("{text}: {inner}");
                cause = inner.source();
            }
            text
        })?;
        let status = response.status();
        // Read the (small) answer so the connection can be reused.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the Pushgateway answered {status}"))
        }
    };
    tokio::time::timeout(PUSH_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PUSH_TIMEOUT:?}")))
}

fn push_loop(
    runtime: &tokio::runtime::Runtime,
    client: &PushClient,
    uri: &http::Uri,
    shown: &str,
    bodies: &mpsc::Receiver<String>,
) -> PushTally {
    let mut tally = PushTally::default();
    while let Ok(mut body) = bodies.recv() {
        while let Ok(newer) = bodies.try_recv() {
            body = newer;
        }
        match runtime.block_on(push(client, uri, body)) {
            Ok(()) => tally.pushed += 1,
            Err(reason) => {
                if tally.failed == 0 {
                    eprintln!(
                        "reliable load: cannot push metrics to {shown}: {reason}; \
                         the run goes on, further failures are only counted"
                    );
                }
                tally.failed += 1;
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_taken() {
        for bad in ["ftp://gateway:9091", "gateway:9091", "not a url", "http://"] {
            assert!(
                matches!(endpoint(bad, "r"), Err(PushError::Url(_))),
                "{bad}"
            );
        }
        let (text, uri) =
            endpoint("https://gw.example/prefix/", "2026-11-30T11:26Z").expect("https works too");
        assert_eq!(
            text,
            "https://gw.example/prefix/metrics/job/reliable_load/instance/2026-11-30T11_26Z"
        );
        assert_eq!(uri.host(), Some("gw.example"));
        assert_eq!(path_segment("a/b c"), "a_b_c");
        assert_eq!(path_segment(""), "run");
        assert!(default_run_id()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(tls_config().is_ok());
    }
}
