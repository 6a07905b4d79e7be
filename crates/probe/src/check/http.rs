//! The HTTP(S) check: one request on its own connection, hyper over
//! tokio-rustls, so the peer's certificate chain is in hand for the expiry
//! gauge (a pooled client would hide which connection answered).
//!
//! No task is spawned: the connection is driven in the same future as the
//! request and dropped with it. Redirects are followed only when asked
//! (at most [`MAX_REDIRECTS`]); otherwise a 3xx is the answer, which is
//! what the shortener's redirect probe checks.

use super::Outcome;
use crate::config::HttpCheck;
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Redirects followed at most (with `follow_redirects`).
pub const MAX_REDIRECTS: usize = 10;
/// Body bytes read at most (for `body_contains`).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The TLS settings checks connect with: the public roots (webpki) and
/// any extra CA (a private PKI, a test CA).
#[derive(Clone)]
pub struct HttpClient {
    tls: TlsConnector,
}

impl HttpClient {
    /// Public roots, plus the PEM bundle at `ca_file` if given.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        let extra = match ca_file {
            None => Vec::new(),
            Some(path) => CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading CA bundle {}: {e}", path.display()))?,
        };
        Self::with_roots(extra)
    }

    /// Public roots plus `extra`.
    pub fn with_roots(extra: Vec<CertificateDer<'static>>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra {
            roots
                .add(cert)
                .map_err(|e| format!("CA certificate refused: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub location: Option<String>,
    /// At most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
    /// The earliest `notAfter` in the peer's chain (HTTPS only).
    pub cert_expiry: Option<DateTime<Utc>>,
}

/// Sends one request to `url` on a fresh connection (no redirects).
pub async fn fetch(
    client: &HttpClient,
    method: &Method,
    url: &url::Url,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> Result<Fetched, String> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{url}: no host")),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{url}: no port"))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let mut request = Request::builder()
        .method(method.clone())
        .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
        .header(http::header::HOST, host_header(url))
        .header(http::header::USER_AGENT, "reliable-probe")
        .header(http::header::CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))?;
    if url.scheme() == "https" {
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let tls = client
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
        let expiry = earliest_expiry(tls.get_ref().1.peer_certificates().unwrap_or_default());
        let mut fetched = exchange(tls, request).await?;
        fetched.cert_expiry = expiry;
        Ok(fetched)
    } else {
        exchange(tcp, request).await
    }
}

fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

async fn exchange<S>(io: S, request: Request<Full<Bytes>>) -> Result<Fetched, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::pin!(conn);
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < MAX_BODY_BYTES {
            match body.frame().await {
                None => break,
                Some(Err(e)) => return Err(format!("reading the body: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
            }
        }
        bytes.truncate(MAX_BODY_BYTES);
        Ok(Fetched {
            status,
            location,
            body: bytes,
            cert_expiry: None,
        })
    };
    tokio::pin!(exchange);
    // The connection is driven here, beside the request; if it ends first
    // (the peer closed), the request's own error says why.
    tokio::select! {
        biased;
        done = &mut exchange => done,
        driven = &mut conn => match driven {
            Err(e) => Err(format!("connection: {e}")),
            Ok(()) => exchange.await,
        },
    }
}

fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<DateTime<Utc>> {
    chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
}

/// The HTTP check: request (following redirects if asked), then status,
/// body and certificate expiry.
pub(super) async fn check(
    check: &HttpCheck,
    client: &HttpClient,
    now: DateTime<Utc>,
    started: Instant,
) -> Outcome {
    let failure = |detail: String| Outcome::failure(detail, started);
    let Ok(method) = Method::from_bytes(check.method.as_bytes()) else {
        return failure(format!("method {} is not valid", check.method));
    };
    let Ok(mut url) = url::Url::parse(&check.url) else {
        return failure("URL is not valid".to_string());
    };
    let mut earliest: Option<DateTime<Utc>> = None;
    let mut hops = 0;
    let fetched = loop {
        let fetched = match fetch(client, &method, &url, &[], Bytes::new()).await {
            Ok(f) => f,
            Err(e) => return failure(e),
        };
        earliest = match (earliest, fetched.cert_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let next = (300..400)
            .contains(&fetched.status)
            .then_some(fetched.location.as_deref())
            .flatten()
            .filter(|_| check.follow_redirects);
        match next {
            Some(location) if hops < MAX_REDIRECTS => {
                hops += 1;
                url = match url.join(location) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                    _ => return failure(format!("redirect to an unusable location {location:?}")),
                };
            }
            Some(_) => return failure(format!("more than {MAX_REDIRECTS} redirects")),
            None => break fetched,
        }
    };
    let mut outcome = Outcome {
        success: true,
        detail: String::new(),
        warning: false,
        duration: started.elapsed(),
        cert_expiry: earliest,
    };
    if !check
        .expected_status
        .iter()
        .any(|p| p.matches(fetched.status))
    {
        outcome.success = false;
        outcome.detail = format!("status {} is not expected", fetched.status);
    } else if let Some(needle) = &check.body_contains {
        if !contains(&fetched.body, needle.as_bytes()) {
            outcome.success = false;
            outcome.detail = format!("body does not contain {needle:?}");
        }
    }
    if let Some(expiry) = earliest {
        let left = expiry.signed_duration_since(now);
        let warn_within =
            chrono::Duration::from_std(check.tls_expiry_warning).unwrap_or(chrono::Duration::MAX);
        if left < warn_within {
            outcome.warning = true;
            if outcome.success {
                outcome.detail = format!(
                    "certificate expires {} ({} days)",
                    expiry.format("%Y-%m-%d"),
                    left.num_days()
                );
            }
        }
    }
    outcome
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
