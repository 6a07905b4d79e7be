//! The HTTP client side: `http://` and `https://` base URLs, a pooled
//! HTTP/1.1 client over rustls, and errors typed by what failed.
//!
//! TLS trusts the webpki roots (Mozilla's list, compiled in, so a slim
//! container needs no CA package) plus, when configured, a PEM bundle of
//! private CAs: an internal upstream signed by a company or mesh CA works
//! without trusting that CA for every other caller. Inside the platform
//! (mTLS between modules, `[tls]`) the binary registers the platform's
//! TLS once with [`use_platform_tls`]: every client built afterwards
//! trusts the platform CA and presents this process's certificate when a
//! server asks for one, so the gateway's pools, the notifier's webhooks
//! and any later caller get mTLS without code of their own; the identity
//! is reloaded in place, so a rotated certificate is presented from the
//! next handshake on. Bodies stream both
//! ways ([`crate::body`]); a per-call timeout covers the wait for the
//! response head, so a long stream (SSE) is not cut off by it.

use crate::body::{is_over_limit, BoxError, ClientBody};
use crate::connections::{Conn, Home, IdleList, Key, ResponseBody, SendError};
use crate::failure::{causes, Classify, Retry};
use crate::resolve::{AddressFilter, FilteredResolver};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::CertificateDer;
use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The platform's TLS, registered once by the binary.
static PLATFORM_TLS: OnceLock<kit::tls::ClientTls> = OnceLock::new();

/// Registers the platform CA and this process's identity for every client
/// built from now on (one process, one identity). A second call is
/// refused: clients built earlier would silently keep the first.
pub fn use_platform_tls(tls: kit::tls::ClientTls) -> Result<(), kit::tls::ClientTls> {
    PLATFORM_TLS.set(tls)
}

/// Where a service is: `http://host:port` or `https://host[:port]`,
/// parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    https: bool,
    authority: Authority,
    /// The `Host` header for it, made once: the port only when it is not
    /// the scheme's default (what hyper-util would otherwise format for
    /// every request that comes without one).
    host: HeaderValue,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a base URL: expected http://host:port or https://host[:port], without a path"
)]
pub struct BadBaseUrl(pub String);

impl BaseUrl {
    pub fn parse(url: &str) -> Result<Self, BadBaseUrl> {
        let bad = || BadBaseUrl(url.to_string());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) if *s == Scheme::HTTPS => true,
            _ => return Err(bad()),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(bad());
        }
        let default_port = if https { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_string(),
        };
        let host = HeaderValue::try_from(host).map_err(|_| bad())?;
        Ok(Self {
            https,
            authority,
            host,
        })
    }

    /// The `Host` header a request to this service carries.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `host:port` as written: a bounded label for metrics and logs.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The URI of `target` (a path and query starting with `/`) here.
    /// Built by hand: the gateway makes one per request, and `format!`
    /// cost about 1,100 instructions of it.
    pub fn uri(&self, target: &str) -> String {
        let scheme = if self.https { "https://" } else { "http://" };
        let authority = self.authority.as_str();
        let mut uri = String::with_capacity(scheme.len() + authority.len() + target.len());
        uri.push_str(scheme);
        uri.push_str(authority);
        uri.push_str(target);
        uri
    }
}

impl BaseUrl {
    /// `scheme://authority/`, to connect to.
    fn root_uri(&self) -> http::Uri {
        let scheme = if self.https {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        http::Uri::from_parts({
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(scheme);
            parts.authority = Some(self.authority.clone());
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
            parts
        })
        .unwrap_or_else(|_| http::Uri::from_static("/"))
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// PEM bundle of CAs trusted in addition to the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Resolved addresses the client may connect to (none: any); see
    /// [`crate::resolve`].
    pub address_filter: Option<AddressFilter>,
    /// Extra roots and a client certificate; `None` takes the platform's
    /// (see [`use_platform_tls`]), if registered.
    pub tls: Option<kit::tls::ClientTls>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            max_idle_per_host: 256,
            ca_file: None,
            address_filter: None,
            tls: None,
        }
    }
}

/// Why the client's TLS trust could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
    #[error(transparent)]
    Platform(#[from] kit::tls::TlsError),
}

/// The certificates of the PEM bundle at `path`; an error if there are
/// none or one does not parse (config validation calls this too). The one
/// reader of CA bundles is the tls crate's; this names it for callers of
/// the client.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    Ok(kit::tls::config::read_ca_bundle(path)?)
}

fn tls_config(
    ca_file: Option<&Path>,
    platform: Option<&kit::tls::ClientTls>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_ca_bundle(path)? {
            roots.add(cert).map_err(|e| TlsError::Invalid {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    if let Some(platform) = platform {
        return Ok(platform.client_config(roots)?);
    }
    // The provider is named, not taken from the process default: another
    // dependency may build rustls with a second provider, and then there
    // is no default to take.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A pooled HTTP/1.1 client for `http://` and `https://`; cheap to clone
/// (clones share the idle connections, [`crate::connections`]).
#[derive(Clone)]
pub struct HttpClient {
    connector: HttpsConnector<HttpConnector<FilteredResolver>>,
    idle: Arc<IdleList>,
}

impl HttpClient {
    pub fn new(settings: &ClientSettings) -> Result<Self, TlsError> {
        let platform = settings.tls.as_ref().or_else(|| PLATFORM_TLS.get());
        let tls = tls_config(settings.ca_file.as_deref(), platform)?;
        let mut http = HttpConnector::new_with_resolver(FilteredResolver {
            filter: settings.address_filter,
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            connector,
            idle: Arc::new(IdleList::new(
                settings.max_idle_per_host,
                settings.idle_timeout,
            )),
        })
    }

    /// Sends `request` (an absolute URI, e.g. from [`BaseUrl::uri`]) and
    /// returns once the response head is in; the body streams after. A
    /// request without a `Host` header gets the URI's.
    pub async fn send(
        &self,
        request: Request<ClientBody>,
    ) -> Result<Response<ResponseBody>, ClientError> {
        let (request, key, uri) = origin_form(request)?;
        self.send_keyed(request, key, || uri).await
    }

    /// [`HttpClient::send`] of a request to `base` whose URI is already
    /// in origin-form (`/path?query`) and whose `Host` the caller set
    /// ([`BaseUrl::host_header`]): nothing to take apart per request (the
    /// gateway's path; about 1,100 instructions, issue 18).
    pub async fn send_to(
        &self,
        base: &BaseUrl,
        request: Request<ClientBody>,
    ) -> Result<Response<ResponseBody>, ClientError> {
        let key = Key::new(base.https, base.authority.clone());
        self.send_keyed(request, key, || base.root_uri()).await
    }

    /// [`HttpClient::send_to`], giving up when no response head came
    /// within `timeout`.
    pub async fn send_to_within(
        &self,
        base: &BaseUrl,
        request: Request<ClientBody>,
        timeout: Duration,
    ) -> Result<Response<ResponseBody>, ClientError> {
        tokio::time::timeout(timeout, self.send_to(base, request))
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// Sends `request` (origin-form, `Host` set) to the server of `key`:
    /// on an idle connection when one is open, else on a new one to
    /// `connect_to` (an absolute URI of that server).
    async fn send_keyed(
        &self,
        mut request: Request<ClientBody>,
        key: Key,
        connect_to: impl FnOnce() -> http::Uri,
    ) -> Result<Response<ResponseBody>, ClientError> {
        let home = || Home {
            list: self.idle.clone(),
            key: key.clone(),
        };
        while let Some(conn) = self.idle.take(&key) {
            match conn.send(request, home()).await {
                Ok(response) => return Ok(response),
                // Closed while idle, before taking it: try the next.
                Err(SendError::Unsent(unsent, _)) => request = *unsent,
                Err(SendError::Failed(error)) => return Err(ClientError::exchange(error)),
            }
        }
        // Boxed: connecting (resolution, TCP, TLS) is the cold path, and
        // its future is kilobytes that every caller's future would
        // otherwise carry and move around on each request.
        let conn = Box::pin(self.connect(connect_to())).await?;
        match conn.send(request, home()).await {
            Ok(response) => Ok(response),
            Err(SendError::Unsent(_, error) | SendError::Failed(error)) => {
                Err(ClientError::exchange(error))
            }
        }
    }

    /// A new connection to the server of `uri`.
    async fn connect(&self, uri: http::Uri) -> Result<Conn, ClientError> {
        let io = tower::ServiceExt::oneshot(self.connector.clone(), uri)
            .await
            .map_err(ClientError::connect)?;
        Conn::handshake(io, self.idle.tasks())
            .await
            .map_err(|e| ClientError::Connect(e.into()))
    }

    /// [`HttpClient::send`], giving up when no response head came within
    /// `timeout`.
    pub async fn send_within(
        &self,
        request: Request<ClientBody>,
        timeout: Duration,
    ) -> Result<Response<ResponseBody>, ClientError> {
        tokio::time::timeout(timeout, self.send(request))
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// Closes the idle connections (of every clone) and waits for the
    /// tasks of all its connections to end: call it once nothing sends
    /// any more (after the server has drained), so that no connection
    /// task outlives its module.
    pub async fn shutdown(&self) {
        self.idle.shutdown().await;
    }

    #[cfg(test)]
    pub(crate) fn idle_connections(&self) -> usize {
        self.idle.len()
    }

    #[cfg(test)]
    pub(crate) fn connection_tasks(&self) -> usize {
        self.idle.tasks().len()
    }
}

/// `request` as it goes on the wire (origin-form: path and query), with
/// the server it goes to and its absolute URI (to connect to); `Host`
/// added from the URI when missing, with the port only when it is not the
/// scheme's default.
fn origin_form(
    mut request: Request<ClientBody>,
) -> Result<(Request<ClientBody>, Key, http::Uri), ClientError> {
    let uri = request.uri();
    let https = match uri.scheme() {
        Some(s) if *s == Scheme::HTTP => false,
        Some(s) if *s == Scheme::HTTPS => true,
        _ => return Err(ClientError::Connect(NotAbsolute(uri.to_string()).into())),
    };
    let Some(authority) = uri.authority().cloned() else {
        return Err(ClientError::Connect(NotAbsolute(uri.to_string()).into()));
    };
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let absolute = std::mem::replace(request.uri_mut(), http::Uri::from(path));
    if !request.headers().contains_key(http::header::HOST) {
        let default_port = if https { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => HeaderValue::try_from(authority.as_str()),
            _ => HeaderValue::try_from(authority.host()),
        };
        if let Ok(host) = host {
            request.headers_mut().insert(http::header::HOST, host);
        }
    }
    Ok((request, Key::new(https, authority), absolute))
}

/// A request URI without a scheme and a server.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an absolute http:// or https:// URI")]
struct NotAbsolute(String);

type Source = BoxError;

/// Why a call failed, by what failed (see [`Classify`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection: nothing was sent.
    #[error("connecting to the server failed")]
    Connect(#[source] Source),
    /// The TLS handshake failed (most often: a certificate no trusted CA
    /// signed).
    #[error("TLS with the server failed")]
    Tls(#[source] Source),
    /// The request body went over its limit while streaming: the caller's
    /// failure, not the server's.
    #[error("the request body is over its limit")]
    RequestBodyTooLarge(#[source] Source),
    /// The connection broke after the request (or part of it) was sent.
    #[error("the exchange with the server failed")]
    Exchange(#[source] Source),
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

fn is_tls(error: &(dyn Error + 'static)) -> bool {
    causes(error).any(|cause| cause.is::<rustls::Error>())
}

impl ClientError {
    /// A failure to connect: TLS when the handshake failed.
    fn connect(error: BoxError) -> Self {
        if is_tls(&*error) {
            ClientError::Tls(error)
        } else {
            ClientError::Connect(error)
        }
    }

    /// A failure once connected: the request body's own limit, or the
    /// exchange.
    fn exchange(error: hyper::Error) -> Self {
        if is_over_limit(&error) {
            ClientError::RequestBodyTooLarge(error.into())
        } else {
            ClientError::Exchange(error.into())
        }
    }
}

impl Classify for ClientError {
    fn retry(&self) -> Retry {
        match self {
            ClientError::Connect(_) => Retry::Safe,
            ClientError::Exchange(_) => Retry::IfIdempotent,
            // A certificate is not trusted on the next try either; a body
            // over the limit stays over it; a timeout already cost the
            // caller its whole wait.
            ClientError::Tls(_) | ClientError::RequestBodyTooLarge(_) | ClientError::Timeout(_) => {
                Retry::Never
            }
        }
    }

    fn blames_endpoint(&self) -> bool {
        !matches!(self, ClientError::RequestBodyTooLarge(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_http_or_https_without_a_path() {
        let url = BaseUrl::parse("https://api.example:8443").expect("https");
        assert!(url.is_https());
        assert_eq!(url.uri("/v1?x=1"), "https://api.example:8443/v1?x=1");
        let url = BaseUrl::parse("http://127.0.0.1:9000/").expect("trailing slash");
        assert_eq!(url.authority().as_str(), "127.0.0.1:9000");
        assert_eq!(url.uri("/"), "http://127.0.0.1:9000/");
        // Host: the port only when it is not the scheme's default.
        for (base, host) in [
            ("http://127.0.0.1:9000", "127.0.0.1:9000"),
            ("http://example.com:80", "example.com"),
            ("http://example.com", "example.com"),
            ("https://example.com:443", "example.com"),
            ("https://example.com:80", "example.com:80"),
            ("http://[::1]:8080", "[::1]:8080"),
        ] {
            let url = BaseUrl::parse(base).expect(base);
            assert_eq!(url.host_header(), host, "{base}");
        }
        for bad in [
            "ftp://a:1",
            "http://a:1/path",
            "http://a:1?q",
            "http://user@a:1",
            "nonsense",
            "a:1",
            "",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_bundle_must_exist_and_hold_certificates() {
        let missing = read_ca_bundle(Path::new("/nonexistent/ca.pem"));
        assert!(matches!(
            missing,
            Err(TlsError::Platform(kit::tls::TlsError::Read { .. }))
        ));
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        assert!(matches!(
            read_ca_bundle(&empty),
            Err(TlsError::Platform(kit::tls::TlsError::NotPem { .. }))
        ));
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        assert!(read_ca_bundle(&broken).is_err());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_safe_to_retry() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = HttpClient::new(&ClientSettings::default()).expect("client");
        let request = Request::get(format!("http://{addr}/"))
            .body(crate::body::empty())
            .expect("request");
        let error = client.send(request).await.expect_err("refused");
        assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
        assert_eq!(error.retry(), Retry::Safe);
        assert!(error.blames_endpoint());
    }

    /// `localhost` resolves to loopback: a client whose filter refuses
    /// loopback cannot reach it (no request arrives), one without can.
    #[tokio::test]
    async fn the_address_filter_refuses_names_that_resolve_to_refused_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("answer");
        });
        let request = || {
            Request::get(format!("http://localhost:{port}/"))
                .body(crate::body::empty())
                .expect("request")
        };
        let guarded = HttpClient::new(&ClientSettings {
            address_filter: Some(|ip| !ip.is_loopback()),
            ..ClientSettings::default()
        })
        .expect("client");
        let error = guarded.send(request()).await.expect_err("refused");
        assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
        assert!(!accepted.is_finished());

        let open = HttpClient::new(&ClientSettings::default()).expect("client");
        let response = open.send(request()).await.expect("allowed");
        assert_eq!(response.status(), 204);
        accepted.await.expect("served");
    }
}
