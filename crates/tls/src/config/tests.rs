//! Handshakes between the server and client configurations, in memory
//! over loopback TCP: who gets in, and what a rotation changes.

use super::*;
use crate::identity::{IdentityFiles, Reload};
use crate::pki::{write_leaf, Ca, LeafRequest, ServiceName, DEFAULT_LEAF_TTL};
use crate::PeerIdentity;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let ca = Ca::generate().expect("ca");
        ca.write(&dir.path().join("ca"), false).expect("write ca");
        Self { dir, ca }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca").join(crate::pki::CA_BUNDLE)
    }

    fn issue_into(
        &self,
        service: &str,
        out: &str,
        request: impl FnOnce(&mut LeafRequest),
    ) -> IdentityFiles {
        let name = ServiceName::parse(service).expect("name");
        let mut leaf_request = LeafRequest::new(name.clone(), DEFAULT_LEAF_TTL);
        request(&mut leaf_request);
        let leaf = self.ca.issue(&leaf_request).expect("issue");
        let (cert_file, key_file) =
            write_leaf(&self.dir.path().join(out), &name, &leaf).expect("write leaf");
        IdentityFiles {
            cert_file,
            key_file,
        }
    }

    fn issue(&self, service: &str) -> IdentityFiles {
        self.issue_into(service, "leaves", |_| {})
    }
}

/// Serves one handshake per connection; reports the peer identity (or
/// the handshake error) of each.
async fn server(
    config: Arc<rustls::ServerConfig>,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<Option<PeerIdentity>, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let outcome = match acceptor.accept(tcp).await {
                Ok(stream) => {
                    let peer = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(PeerIdentity::of_certificate);
                    // Keep the connection until the client is done with it.
                    let mut stream = stream;
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"ok").await;
                    Ok(peer)
                }
                Err(e) => Err(e.to_string()),
            };
            if tx.send(outcome).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// Connects, completes the handshake (reading the server's first bytes,
/// which TLS 1.3 client authentication needs to be settled), and returns
/// the server's leaf.
async fn connect(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut stream = connector.connect(name, tcp).await?;
    let mut buf = [0u8; 2];
    tokio::io::AsyncReadExt::read_exact(&mut stream, &mut buf).await?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .expect("server certificate");
    Ok(leaf)
}

/// A client trusting `pki`, presenting `identity` as read from its files
/// (not through [`Identity`], which refuses an expired certificate).
fn client(pki: &Pki, identity: Option<IdentityFiles>) -> rustls::ClientConfig {
    let Some(files) = identity else {
        return ClientTls::new(Some(&pki.ca_file()), None)
            .expect("client tls")
            .client_config(rustls::RootCertStore::empty())
            .expect("client config");
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_ca_bundle(&pki.ca_file()).expect("ca") {
        roots.add(cert).expect("root");
    }
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .expect("cert file")
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&files.key_file).expect("key");
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client cert")
}

async fn required_server(
    pki: &Pki,
) -> (
    Arc<Identity>,
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<Option<PeerIdentity>, String>>,
) {
    let identity = Identity::load(pki.issue("shortener")).expect("server identity");
    let config = server_config(identity.clone(), ClientAuth::Required, Some(&pki.ca_file()))
        .expect("config");
    let (addr, rx) = server(config).await;
    (identity, addr, rx)
}

#[tokio::test]
async fn a_client_with_a_platform_certificate_is_identified() {
    let pki = Pki::new();
    let (_, addr, mut outcomes) = required_server(&pki).await;
    connect(addr, client(&pki, Some(pki.issue("gateway"))))
        .await
        .expect("handshake");
    let peer = outcomes.recv().await.expect("outcome").expect("accepted");
    assert_eq!(
        peer.map(|p| p.as_str().to_string()),
        Some("spiffe://reliable/gateway".to_string())
    );
}

#[tokio::test]
async fn clients_without_a_good_certificate_are_refused_at_the_handshake() {
    let pki = Pki::new();
    let (_, addr, mut outcomes) = required_server(&pki).await;

    // No certificate.
    let _ = connect(addr, client(&pki, None)).await;
    let refused = outcomes
        .recv()
        .await
        .expect("outcome")
        .expect_err("no cert");
    assert!(refused.contains("no certificates"), "{refused}");

    // A certificate from another CA.
    let other = Pki::new();
    let _ = connect(addr, client(&pki, Some(other.issue("gateway")))).await;
    let refused = outcomes
        .recv()
        .await
        .expect("outcome")
        .expect_err("other CA");
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // Expired.
    let expired = pki.issue_into("gateway", "expired", |r| {
        r.not_before = time::OffsetDateTime::now_utc() - Duration::from_secs(7200);
        r.not_after = time::OffsetDateTime::now_utc() - Duration::from_secs(3600);
    });
    let error = Identity::load(expired.clone()).expect_err("an expired identity");
    assert!(error.to_string().contains("not valid now"), "{error}");
    let _ = connect(addr, client(&pki, Some(expired))).await;
    let refused = outcomes
        .recv()
        .await
        .expect("outcome")
        .expect_err("expired");
    assert!(refused.to_lowercase().contains("expired"), "{refused}");
}

#[tokio::test]
async fn optional_client_auth_lets_a_client_without_a_certificate_in_anonymously() {
    let pki = Pki::new();
    let identity = Identity::load(pki.issue("shortener")).expect("identity");
    let config =
        server_config(identity, ClientAuth::Optional, Some(&pki.ca_file())).expect("config");
    let (addr, mut outcomes) = server(config).await;
    connect(addr, client(&pki, None)).await.expect("handshake");
    assert_eq!(outcomes.recv().await.expect("outcome"), Ok(None));
    assert!(server_config(
        Identity::load(pki.issue("x")).expect("identity"),
        ClientAuth::Required,
        None
    )
    .is_err());
}

#[tokio::test]
async fn a_reload_swaps_the_served_certificate_and_a_bad_file_keeps_the_old_one() {
    let pki = Pki::new();
    let (identity, addr, _outcomes) = required_server(&pki).await;
    let files = identity.files().clone();
    let gateway = pki.issue("gateway");
    let first = connect(addr, client(&pki, Some(gateway.clone())))
        .await
        .expect("handshake");
    assert_eq!(identity.reload().expect("reload"), Reload::Unchanged);

    // A certificate that is not PEM: refused, the old pair serves.
    let old_cert = std::fs::read(&files.cert_file).expect("read");
    std::fs::write(&files.cert_file, "not a certificate").expect("write");
    let error = identity.reload().expect_err("not PEM");
    assert!(matches!(error, TlsError::NotPem { .. }), "{error}");
    assert!(error.to_string().contains("shortener.pem"), "{error}");
    // A certificate that does not match the key: refused too.
    let other = pki.issue_into("shortener", "other", |_| {});
    std::fs::copy(&other.cert_file, &files.cert_file).expect("copy");
    let error = identity.reload().expect_err("mismatch");
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    let served = connect(addr, client(&pki, Some(gateway.clone())))
        .await
        .expect("handshake");
    assert_eq!(served, first);
    std::fs::write(&files.cert_file, old_cert).expect("restore");

    // A new pair: served from the next handshake on.
    let new = pki.issue_into("shortener", "new", |_| {});
    std::fs::copy(&new.key_file, &files.key_file).expect("key");
    std::fs::copy(&new.cert_file, &files.cert_file).expect("cert");
    assert_eq!(identity.reload().expect("reload"), Reload::Swapped);
    let served = connect(addr, client(&pki, Some(gateway)))
        .await
        .expect("handshake");
    assert_ne!(served, first);
    let expected = crate::identity::parse_chain(
        &new.cert_file,
        &std::fs::read(&new.cert_file).expect("read"),
    )
    .expect("chain");
    assert_eq!(served, expected[0]);
}

#[tokio::test(start_paused = true)]
async fn the_watcher_picks_up_new_files_on_its_next_tick() {
    let pki = Pki::new();
    let identity = Identity::load(pki.issue("orders")).expect("identity");
    let before = identity.current();
    let stop = stop_signal();
    let swaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = swaps.clone();
    let watcher = tokio::spawn(identity.clone().watch_notifying(
        Duration::from_secs(10),
        stop.1,
        move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        },
    ));
    let new = pki.issue_into("orders", "new", |_| {});
    std::fs::copy(&new.key_file, &identity.files().key_file).expect("key");
    std::fs::copy(&new.cert_file, &identity.files().cert_file).expect("cert");
    // Not before the interval has passed...
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert!(Arc::ptr_eq(&identity.current(), &before));
    assert_eq!(swaps.load(std::sync::atomic::Ordering::SeqCst), 0);
    // ...and after it, without waiting for real time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while Arc::ptr_eq(&identity.current(), &before) {
        assert!(tokio::time::Instant::now() < deadline, "never reloaded");
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
    // Told once, for the one swap.
    assert_eq!(swaps.load(std::sync::atomic::Ordering::SeqCst), 1);
    let _ = stop.0.send(());
    watcher.await.expect("watcher stops");
}

/// A stop future for [`Identity::watch`] and the sender that completes it.
fn stop_signal() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}
