//! Connections: plain TCP or rustls, HTTP/1.1 or HTTP/2, keep-alive.
//!
//! An HTTP/1.1 connection is a stream and its read buffer, driven by the
//! task that sends the requests ([`super::wire`], no hyper): a request
//! then costs no cross-task wake-ups and no message building, which keeps
//! the generator's CPU per request close to wrk's. An HTTP/2 connection
//! multiplexes, so it stays on hyper, its driver runs as its own task on
//! the same (single-threaded) runtime and the sending tasks share it.

use super::harvest::{Harvester, TickedStream};
use super::wire::Inbox;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Responses larger than this are read to the end but only this much is
/// kept for checks and captures.
pub(crate) const MAX_KEPT_BODY: usize = 1 << 20;

/// Where a connection goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub tls: bool,
    pub authority: Authority,
    /// `host:port` to connect to.
    pub addr: String,
    /// The TLS server name (the host without port or brackets).
    pub host: String,
}

impl Origin {
    /// The origin of an absolute `http://` or `https://` URI.
    pub(crate) fn of(uri: &http::Uri) -> Option<Self> {
        let tls = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) if *s == Scheme::HTTPS => true,
            _ => return None,
        };
        let authority = uri.authority()?.clone();
        let host = authority.host().to_string();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Some(Self {
            tls,
            addr: format!("{host}:{port}"),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            authority,
        })
    }
}

/// What the connections of a scenario share.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Arc<rustls::ClientConfig>,
    http2: bool,
}

impl Connector {
    pub(crate) fn new(http2: bool, insecure_tls: bool) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
            });
        let mut config = if insecure_tls {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Self {
            tls: Arc::new(config),
            http2,
        }
    }

    pub(crate) fn http2(&self) -> bool {
        self.http2
    }

    async fn stream(
        &self,
        origin: &Origin,
        harvester: Option<&Arc<Harvester>>,
    ) -> std::io::Result<Stream> {
        let tcp = TcpStream::connect(&origin.addr).await?;
        tcp.set_nodelay(true)?;
        if !origin.tls {
            return Ok(match harvester {
                Some(harvester) => Stream::Ticked(TickedStream::new(tcp, harvester.clone())?),
                None => Stream::Plain(tcp),
            });
        }
        let name = rustls_pki_types::ServerName::try_from(origin.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// Opens an HTTP/1.1 connection; a plain one is read at `harvester`'s
    /// harvests when there is one.
    pub(crate) async fn http1(
        &self,
        origin: &Origin,
        harvester: Option<&Arc<Harvester>>,
    ) -> std::io::Result<Http1> {
        Ok(Http1 {
            stream: self.stream(origin, harvester).await?,
            inbox: Inbox::default(),
        })
    }

    /// Opens an HTTP/2 connection; its driver runs on the current runtime
    /// until the connection closes or the runtime stops.
    pub(crate) async fn http2_connect(&self, origin: &Origin) -> std::io::Result<Http2> {
        let stream = self.stream(origin, None).await?;
        let (sender, driver) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let driver = tokio::spawn(async move {
            let _ = driver.await;
        });
        Ok(Http2 {
            sender,
            _driver: Arc::new(AbortOnDrop(driver)),
        })
    }
}

pub(crate) type Body = Full<Bytes>;

/// An HTTP/1.1 connection, spoken by [`super::wire`].
pub(crate) struct Http1 {
    pub stream: Stream,
    pub inbox: Inbox,
}

#[derive(Clone)]
pub(crate) struct Http2 {
    pub sender: http2::SendRequest<Body>,
    _driver: Arc<AbortOnDrop>,
}

/// Stops the HTTP/2 driver when the last sender goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response as far as checks and captures need it.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// Kept only when asked for, at most [`MAX_KEPT_BODY`].
    pub body: Vec<u8>,
    pub body_bytes: u64,
    /// When its last bytes arrived, if the connection knows (a harvested
    /// one read it later); else it was read as it came.
    pub received_at: Option<std::time::Instant>,
}

/// Reads a response to the end, keeping the body if `keep_body`.
pub(crate) async fn read_answer(
    response: http::Response<hyper::body::Incoming>,
    keep_body: bool,
) -> Result<Answer, hyper::Error> {
    let (parts, mut body) = response.into_parts();
    let mut kept = Vec::new();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            body_bytes += data.len() as u64;
            if keep_body && kept.len() < MAX_KEPT_BODY {
                let room = MAX_KEPT_BODY - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: kept,
        body_bytes,
        received_at: None,
    })
}

/// Plain TCP (on the runtime's epoll or harvested) or TLS, one type for
/// hyper and the wire.
pub(crate) enum Stream {
    Plain(TcpStream),
    Ticked(TickedStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// When the last bytes read arrived, for a harvested connection.
    pub(crate) fn take_received_at(&mut self) -> Option<std::time::Instant> {
        match self {
            Stream::Ticked(s) => s.take_received_at(),
            Stream::Plain(_) | Stream::Tls(_) => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Ticked(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Ticked(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Ticked(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Ticked(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Ticked(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Ticked(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// `insecure_tls: true`: any certificate, for self-signed test servers.
/// Signatures are still checked, so the handshake is a real one.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
