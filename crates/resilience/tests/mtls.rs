//! The shared client with the platform's TLS: it trusts the platform CA
//! and presents this process's certificate to a server that requires one.

use kit::server::{HttpServer, TlsListener};
use kit::tls::pki::{write_leaf, Ca, LeafRequest, ServiceName, DEFAULT_LEAF_TTL};
use kit::tls::{ClientTls, Identity, PeerIdentity, TlsConfig};
use resilience::{ClientError, ClientSettings, HttpClient};
use std::path::Path;

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

#[tokio::test]
async fn the_client_presents_its_identity_and_trusts_the_platform_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::generate().expect("ca");
    ca.write(&dir.path().join("ca"), false).expect("write");
    let ca_file = dir.path().join("ca").join(kit::tls::pki::CA_BUNDLE);
    let server = issue(&ca, dir.path(), "shortener");
    let transport = TlsConfig {
        cert_file: Some(server.cert_file),
        key_file: Some(server.key_file),
        ca_file: Some(ca_file.clone()),
        client_auth: kit::tls::ClientAuth::Required,
        ..TlsConfig::default()
    }
    .build()
    .expect("build")
    .expect("TLS on");
    let listener = HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
        .with_tls(TlsListener {
            config: transport.server,
            allow: transport.allow,
        });
    let port = listener.local_addr().port();
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(|peer: Option<axum::Extension<PeerIdentity>>| async move {
            peer.map_or("anonymous".to_string(), |axum::Extension(p)| p.to_string())
        }),
    );
    let shutdown = kit::CancellationToken::new();
    let serving = tokio::spawn(listener.serve(router, shutdown.clone()));
    let request = || {
        http::Request::get(format!("https://localhost:{port}/"))
            .body(resilience::body::empty())
            .expect("request")
    };

    let identity = Identity::load(issue(&ca, dir.path(), "gateway")).expect("identity");
    let client = HttpClient::new(&ClientSettings {
        tls: Some(ClientTls::new(Some(&ca_file), Some(identity)).expect("client tls")),
        ..ClientSettings::default()
    })
    .expect("client");
    let response = client.send(request()).await.expect("mTLS call");
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"spiffe://reliable/gateway");

    // Without the platform's TLS the server is an unknown CA: refused,
    // and not retried.
    let plain = HttpClient::new(&ClientSettings::default()).expect("client");
    let error = plain.send(request()).await.expect_err("unknown CA");
    assert!(matches!(error, ClientError::Tls(_)), "{error:?}");

    shutdown.cancel();
    serving.await.expect("join").expect("serve");
}
