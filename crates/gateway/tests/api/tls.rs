//! HTTPS upstreams: a TLS upstream whose certificate a test CA signed is
//! trusted through the pool's `ca_file`, and refused (502, its own
//! problem type) without it.

use crate::helpers::*;
use axum::body::Body;
use gateway::{PoolConfig, RouteConfig};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

/// A test CA's certificate (PEM) and a server config for `127.0.0.1`
/// with a certificate it signed.
fn test_pki() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Reliable test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server params");
    let cert = server.signed_by(&key, &issuer).expect("server certificate");
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    (ca_cert.pem(), config)
}

/// The echo upstream behind TLS on port 0.
async fn tls_upstream(config: rustls::ServerConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router = echo_router(UpstreamState::new("tls"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                // A refused handshake (the gateway's test without the CA)
                // ends this connection only.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    router.clone().oneshot(request.map(Body::new))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn tls_config(addr: SocketAddr, ca_file: Option<PathBuf>) -> gateway::GatewayConfig {
    let mut cfg = config(&[], vec![RouteConfig::new("/", "secure")]);
    let mut pool = PoolConfig::new(vec![format!("https://{addr}")]);
    pool.ca_file = ca_file;
    cfg.pools.insert("secure".into(), pool);
    cfg
}

#[tokio::test]
async fn an_https_upstream_signed_by_the_configured_ca_is_trusted() {
    let (ca_pem, server) = test_pki();
    let addr = tls_upstream(server).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write CA");
    let gw = spawn_gateway(tls_config(addr, Some(ca_file))).await;
    let response = client().get(gw.url("/over/tls?x=1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let echo = json(response).await;
    assert_eq!(echo["upstream"], "tls");
    assert_eq!(echo["path"], "/over/tls");
}

#[tokio::test]
async fn an_https_upstream_of_an_unknown_ca_is_refused_with_a_clear_problem() {
    let (_, server) = test_pki();
    let addr = tls_upstream(server).await;
    let gw = spawn_gateway(tls_config(addr, None)).await;
    let response = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let problem = json(response).await;
    assert_eq!(problem["type"], "/problems/upstream-tls");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ca_file"),
        "{problem}"
    );
}
