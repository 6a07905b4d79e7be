//! The HTTP server serving HTTPS with client certificates, over loopback:
//! the peer's identity reaches handlers, the allow-list answers 403
//! problem+json, and shutdown still drains.

use axum::routing::get;
use axum::{Extension, Router};
use kit::server::{HttpServer, TlsListener};
use kit::tls::pki::{write_leaf, Ca, LeafRequest, ServiceName, DEFAULT_LEAF_TTL};
use kit::tls::{AllowList, AllowRule, ClientAuth, ClientTls, Identity, PeerIdentity, TlsConfig};
use kit::CancellationToken;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn issue(ca: &Ca, dir: &Path, service: &str) -> kit::tls::identity::IdentityFiles {
    let name = ServiceName::parse(service).expect("name");
    let leaf = ca
        .issue(&LeafRequest::new(name.clone(), DEFAULT_LEAF_TTL))
        .expect("issue");
    let (cert_file, key_file) = write_leaf(&dir.join(service), &name, &leaf).expect("write");
    kit::tls::identity::IdentityFiles {
        cert_file,
        key_file,
    }
}

async fn whoami(identity: Option<Extension<PeerIdentity>>) -> String {
    identity.map_or("anonymous".to_string(), |Extension(p)| p.to_string())
}

/// Sends one GET on a new connection; returns the raw response.
async fn get_as(
    addr: std::net::SocketAddr,
    ca_file: &Path,
    identity: Option<kit::tls::identity::IdentityFiles>,
    path: &str,
) -> std::io::Result<String> {
    let identity = identity.map(|files| Identity::load(files).expect("identity"));
    let config = ClientTls::new(Some(ca_file), identity)
        .and_then(|c| c.client_config(kit::tls::rustls::RootCertStore::empty()))
        .expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = kit::tls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = connector.connect(name, tcp).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn identities_reach_handlers_and_the_allow_list_refuses_others() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::generate().expect("ca");
    ca.write(&dir.path().join("ca"), false).expect("write");
    let ca_file: PathBuf = dir.path().join("ca").join(kit::tls::pki::CA_BUNDLE);
    let server_files = issue(&ca, dir.path(), "orders");
    let config = TlsConfig {
        cert_file: Some(server_files.cert_file.clone()),
        key_file: Some(server_files.key_file.clone()),
        ca_file: Some(ca_file.clone()),
        client_auth: ClientAuth::Optional,
        allow: vec![AllowRule {
            prefix: "/admin".to_string(),
            identities: vec!["spiffe://reliable/gateway".to_string()],
        }],
        ..TlsConfig::default()
    };
    config.validate().expect("valid");
    let transport = config.build().expect("build").expect("TLS on");
    assert_eq!(*transport.allow, AllowList::new(config.allow.clone()));

    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
        .with_tls(TlsListener {
            config: transport.server.clone(),
            allow: transport.allow.clone(),
        });
    let addr = server.local_addr();
    assert_eq!(server.url(), format!("https://{addr}"));
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/admin/x", get(whoami));
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(server.serve(router, shutdown.clone()));

    let gateway = issue(&ca, dir.path(), "gateway");
    let notifier = issue(&ca, dir.path(), "notifier");
    let answer = get_as(addr, &ca_file, Some(gateway.clone()), "/whoami")
        .await
        .expect("gateway");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("spiffe://reliable/gateway"), "{answer}");
    let answer = get_as(addr, &ca_file, None, "/whoami")
        .await
        .expect("anonymous");
    assert!(answer.ends_with("anonymous"), "{answer}");

    let answer = get_as(addr, &ca_file, Some(gateway), "/admin/x")
        .await
        .expect("allowed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for who in [Some(notifier), None] {
        let answer = get_as(addr, &ca_file, who, "/admin/x")
            .await
            .expect("refused with a status");
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains("/problems/forbidden-identity"), "{answer}");
    }

    shutdown.cancel();
    serving.await.expect("join").expect("serve");
}

#[test]
fn validation_names_the_key_at_fault() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::generate().expect("ca");
    let good = issue(&ca, dir.path(), "orders");
    let other = issue(&ca, dir.path(), "gateway");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let with = |cert: &Path, key: &Path| TlsConfig {
        cert_file: Some(cert.to_path_buf()),
        key_file: Some(key.to_path_buf()),
        ..TlsConfig::default()
    };
    let cases = [
        (with(&not_pem, &good.key_file), "tls.cert_file"),
        (with(&good.cert_file, &not_pem), "tls.key_file"),
        (with(&other.cert_file, &good.key_file), "tls.key_file"),
        (
            with(&dir.path().join("missing.pem"), &good.key_file),
            "tls.cert_file",
        ),
        (
            TlsConfig {
                client_auth: ClientAuth::Required,
                ..with(&good.cert_file, &good.key_file)
            },
            "tls.client_auth",
        ),
        (
            TlsConfig {
                key_file: None,
                ..with(&good.cert_file, &good.key_file)
            },
            "tls.key_file",
        ),
    ];
    for (config, key) in cases {
        let error = config.validate().expect_err(key).to_string();
        assert!(error.contains(key), "{key}: {error}");
    }
    with(&good.cert_file, &good.key_file)
        .validate()
        .expect("good pair");
}

/// An HTTPS listener with a certificate of a new CA (no client
/// certificates asked), bound, not yet serving; the directory holding the
/// files and the CA bundle a client trusts.
async fn whoami_over_tls() -> (tempfile::TempDir, PathBuf, HttpServer) {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::generate().expect("ca");
    ca.write(&dir.path().join("ca"), false).expect("write");
    let ca_file = dir.path().join("ca").join(kit::tls::pki::CA_BUNDLE);
    let files = issue(&ca, dir.path(), "orders");
    let transport = TlsConfig {
        cert_file: Some(files.cert_file),
        key_file: Some(files.key_file),
        ..TlsConfig::default()
    }
    .build()
    .expect("build")
    .expect("TLS on");
    let server = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
        .with_tls(TlsListener {
            config: transport.server,
            allow: transport.allow,
        });
    (dir, ca_file, server)
}

/// A client that opens a connection and never starts its handshake does
/// not hold shutdown up for the handshake timeout (30 s): the wait below is
/// bounded well under it.
#[tokio::test]
async fn shutdown_does_not_wait_for_a_stalled_handshake() {
    let (_dir, ca_file, server) = whoami_over_tls().await;
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let router = Router::new().route("/whoami", get(whoami));
    let serving = tokio::spawn(server.serve(router, shutdown.clone()));
    let _stalled = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // Connections are accepted in order: once a later one is answered,
    // the stalled one is in its handshake.
    let answer = get_as(addr, &ca_file, None, "/whoami")
        .await
        .expect("a later connection");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), serving)
        .await
        .expect("shutdown waited for the stalled handshake")
        .expect("join")
        .expect("serve");
}

/// The header read timeout holds on HTTPS too: a keep-alive connection
/// left idle after its handshake and a request is closed once the timeout
/// has passed. The handshake and the request run on the real clock (a
/// paused clock would jump the handshake's own timeout while its bytes
/// cross loopback); the wait runs on the paused one.
#[tokio::test]
async fn an_idle_https_keep_alive_connection_is_closed_after_the_header_timeout() {
    use kit::server::HEADER_READ_TIMEOUT;
    let (_dir, ca_file, server) = whoami_over_tls().await;
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let router = Router::new().route("/whoami", get(whoami));
    let _serving = tokio::spawn(server.serve(router, shutdown.clone()));

    let config = ClientTls::new(Some(&ca_file), None)
        .and_then(|c| c.client_config(kit::tls::rustls::RootCertStore::empty()))
        .expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = kit::tls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("handshake");
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    while !answer.ends_with(b"anonymous") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("the response");
        answer.push(byte[0]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));

    tokio::time::pause();
    let idle_from = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(2 * HEADER_READ_TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("an idle HTTPS keep-alive connection was kept past twice the header timeout");
    // A close without TLS's close_notify reads as an unexpected end.
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    assert!(
        idle_from.elapsed() >= HEADER_READ_TIMEOUT,
        "closed after {:?}, before the header timeout",
        idle_from.elapsed()
    );
}
