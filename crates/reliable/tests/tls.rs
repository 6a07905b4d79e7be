//! mTLS between modules, black-box: `reliable pki`, a shortener that
//! requires client certificates from the platform CA, a gateway in front
//! of it presenting its own, the refusals, rotation under load, and bad
//! certificate files.

mod support;

use kit::tls::pki::{self, Ca, LeafRequest, ServiceName};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{reliable, run_to_end, start, stop, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

fn pki_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = reliable();
    cmd.arg("pki").args(args).arg("--dir").arg(dir);
    cmd
}

/// A CA made by `reliable pki init` and leaves made by `reliable pki issue`.
struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Pki {
    fn init() -> Self {
        let tmp = tempfile::tempdir().expect("dir");
        let dir = tmp.path().join("pki");
        let (code, stderr) = run_to_end(pki_cmd(&dir, &["init"]));
        assert_eq!(code, 0, "{stderr}");
        Self { _tmp: tmp, dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(pki::CA_BUNDLE)
    }

    /// `reliable pki issue --service NAME --out DIR`: (cert, key).
    fn issue(&self, service: &str, out: &str) -> (PathBuf, PathBuf) {
        let out = self.dir.join(out);
        let mut cmd = pki_cmd(&self.dir, &["issue", "--service", service]);
        cmd.arg("--out").arg(&out);
        let (code, stderr) = run_to_end(cmd);
        assert_eq!(code, 0, "{stderr}");
        (
            out.join(format!("{service}.pem")),
            out.join(format!("{service}-key.pem")),
        )
    }

    /// A leaf issued through the library, for what the CLI will not make.
    fn issue_with(
        &self,
        service: &str,
        out: &str,
        edit: impl FnOnce(&mut LeafRequest),
    ) -> (PathBuf, PathBuf) {
        let ca = Ca::load(&self.dir).expect("CA");
        let name = ServiceName::parse(service).expect("name");
        let mut request = LeafRequest::new(name.clone(), pki::DEFAULT_LEAF_TTL);
        edit(&mut request);
        let leaf = ca.issue(&request).expect("issue");
        pki::write_leaf(&self.dir.join(out), &name, &leaf).expect("write")
    }
}

/// A client TLS configuration trusting `pki`'s CA, presenting `identity`.
fn client_config(ca_file: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let ca = std::fs::read(ca_file).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("cert")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("cert file")
                .collect::<Result<Vec<_>, _>>()
                .expect("chain");
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
    };
    // Every connection a full handshake: a resumed session carries the
    // certificate of the session it resumes, not the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The answer to one request on a fresh TLS connection.
struct Answer {
    status: u16,
    head: String,
    body: String,
    /// The server's leaf, as served on this connection.
    server_leaf: CertificateDer<'static>,
}

/// One HTTP/1.1 request over a new TLS connection to `addr` (as
/// `localhost`), read to its end.
async fn request(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    target: &str,
    body: Option<&str>,
) -> std::io::Result<Answer> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let server_leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| std::io::Error::other("no server certificate"))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    let mut response = Vec::new();
    // A server that closes without close_notify is not our concern here:
    // what was read before counts.
    match tls.read_to_end(&mut response).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
        server_leaf,
    })
}

fn leaf_of(cert_file: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(cert_file)
        .expect("cert file")
        .next()
        .expect("a certificate")
        .expect("PEM")
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// The shortener on PostgreSQL, requiring client certificates; link
/// creation reserved to the gateway.
fn shortener(pki: &Pki, cert: &Path, key: &Path, database_url: &str) -> Running {
    let config = write_config(
        &pki.dir,
        "shortener.toml",
        "[[tls.allow]]\nprefix = \"/api/v1/links\"\nidentities = [\"spiffe://reliable/gateway\"]\n",
    );
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "shortener", "--config"])
        .arg(&config)
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATABASE_URL", database_url)
        .env("RELIABLE_TLS_CERT_FILE", cert)
        .env("RELIABLE_TLS_KEY_FILE", key)
        .env("RELIABLE_TLS_CA_FILE", pki.ca_file())
        .env("RELIABLE_TLS_CLIENT_AUTH", "required")
        .env("RELIABLE_TLS_RELOAD_INTERVAL", "100ms");
    start(cmd)
}

/// A lone gateway whose pool is the shortener at `https://localhost:PORT`.
fn gateway(pki: &Pki, upstream: &str, data_dir: &Path) -> Running {
    let port = upstream.rsplit(':').next().expect("port");
    let config = write_config(
        &pki.dir,
        "gateway.toml",
        &format!(
            "[gateway.pools.links]\nendpoints = [\"https://localhost:{port}\"]\n\n\
             [[gateway.routes]]\nprefix = \"/\"\npool = \"links\"\n"
        ),
    );
    let (cert, key) = pki.issue("gateway", "gateway");
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "gateway", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env_remove("RELIABLE_DATABASE_URL")
        .env_remove("RELIABLE_REDIS_URL")
        .env("RELIABLE_TLS_CERT_FILE", cert)
        .env("RELIABLE_TLS_KEY_FILE", key)
        .env("RELIABLE_TLS_CA_FILE", pki.ca_file());
    start(cmd)
}

#[test]
fn pki_issue_before_init_names_the_missing_file_and_bad_names_are_refused() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("pki");
    let (code, stderr) = run_to_end(pki_cmd(&dir, &["issue", "--service", "orders"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("root.pem"), "{stderr}");
    assert!(stderr.contains("reliable pki init"), "{stderr}");

    let (code, stderr) = run_to_end(pki_cmd(&dir, &["init"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run_to_end(pki_cmd(&dir, &["init"]));
    assert_eq!(code, 2, "a second init must not replace the CA: {stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    for bad in ["Orders", "../etc", "a/b", "", "-x", "has space"] {
        let service = format!("--service={bad}");
        let (code, stderr) = run_to_end(pki_cmd(&dir, &["issue", &service]));
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(stderr.contains("not a service name"), "{bad}: {stderr}");
    }
    assert!(
        !dir.join("..pem").exists() && !tmp.path().join("etc.pem").exists(),
        "no file written for a bad name"
    );
}

#[cfg(unix)]
#[test]
fn pki_init_and_issue_write_0600_keys_and_a_24h_spiffe_leaf() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::init();
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&pki.dir.join(pki::ROOT_KEY)), 0o600);
    assert_eq!(mode(&pki.dir.join(pki::INTERMEDIATE_KEY)), 0o600);
    let (cert, key) = pki.issue("orders", "out");
    assert_eq!(mode(&key), 0o600);
    let leaf = leaf_of(&cert);
    assert_eq!(
        kit::tls::PeerIdentity::of_certificate(&leaf).map(|p| p.to_string()),
        Some("spiffe://reliable/orders".to_string())
    );
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).expect("X.509");
    let validity = parsed.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    // 24 hours from now, backdated a minute for peers whose clocks lag.
    assert_eq!(lifetime, 24 * 3600 + 60);
    let chain = CertificateDer::pem_file_iter(&cert).expect("cert").count();
    assert_eq!(chain, 2, "leaf and intermediate");
}

#[tokio::test]
async fn a_gateway_reaches_a_shortener_over_mtls_and_strangers_are_refused() {
    let database_url = testkit::postgres().create_database();
    let pki = Pki::init();
    let (cert, key) = pki.issue("shortener", "shortener");
    let upstream = shortener(&pki, &cert, &key, &database_url);
    let data_dir = tempfile::tempdir().expect("data dir");
    let front = gateway(&pki, &upstream.addr, data_dir.path());
    let public = client_config(&pki.ca_file(), None);

    // Through the gateway, which presents its `gateway` certificate.
    let body = r#"{"url": "https://example.com/mtls", "slug": "mtls"}"#;
    let created = request(
        &front.addr,
        public.clone(),
        "POST",
        "/api/v1/links",
        Some(body),
    )
    .await
    .expect("create through the gateway");
    assert_eq!(created.status, 201, "{}\n{}", created.head, created.body);
    let redirect = request(&front.addr, public.clone(), "GET", "/mtls", None)
        .await
        .expect("redirect through the gateway");
    assert_eq!(redirect.status, 302, "{}", redirect.head);
    assert!(
        redirect
            .head
            .to_ascii_lowercase()
            .contains("location: https://example.com/mtls"),
        "{}",
        redirect.head
    );

    // Straight to the shortener: no certificate, another CA, expired.
    let other = Pki::init();
    let (other_cert, other_key) = other.issue("gateway", "gateway");
    let (expired_cert, expired_key) = pki.issue_with("gateway", "expired", |r| {
        r.not_before = time::OffsetDateTime::now_utc() - Duration::from_secs(7200);
        r.not_after = time::OffsetDateTime::now_utc() - Duration::from_secs(3600);
    });
    for (what, config) in [
        ("no certificate", client_config(&pki.ca_file(), None)),
        (
            "another CA",
            client_config(
                &pki.ca_file(),
                Some((other_cert.as_path(), other_key.as_path())),
            ),
        ),
        (
            "expired",
            client_config(
                &pki.ca_file(),
                Some((expired_cert.as_path(), expired_key.as_path())),
            ),
        ),
    ] {
        let refused = request(&upstream.addr, config, "GET", "/mtls", None).await;
        assert!(refused.is_err(), "{what}: let in");
    }

    // A platform certificate with the wrong identity: in, but not on the
    // reserved prefix.
    let (orders_cert, orders_key) = pki.issue("orders", "orders");
    let orders = client_config(
        &pki.ca_file(),
        Some((orders_cert.as_path(), orders_key.as_path())),
    );
    let forbidden = request(
        &upstream.addr,
        orders.clone(),
        "POST",
        "/api/v1/links",
        Some(body),
    )
    .await
    .expect("handshake with a platform certificate");
    assert_eq!(forbidden.status, 403, "{}", forbidden.head);
    assert!(
        forbidden
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{}",
        forbidden.head
    );
    assert!(
        forbidden.body.contains("/problems/forbidden-identity"),
        "{}",
        forbidden.body
    );
    let open = request(&upstream.addr, orders, "GET", "/mtls", None)
        .await
        .expect("unlisted prefix");
    assert_eq!(open.status, 302, "{}", open.head);

    drop(front);
    let lines = stop(upstream).await;
    let handshakes = lines
        .iter()
        .filter(|l| l.contains("TLS handshake refused"))
        .count();
    assert!(
        handshakes >= 3,
        "each refused handshake is logged: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request refused") && l.contains("spiffe://reliable/orders")),
        "the 403 is logged with the identity: {lines:#?}"
    );
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let key_body: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for line in &lines {
        assert!(!line.contains("PRIVATE KEY"), "{line}");
        for chunk in &key_body {
            assert!(!line.contains(chunk), "key material in a log line: {line}");
        }
    }
}

#[tokio::test]
async fn certificates_rotate_under_load_without_a_failed_request() {
    let database_url = testkit::postgres().create_database();
    let pki = Pki::init();
    let (cert, key) = pki.issue("shortener", "live");
    let upstream = shortener(&pki, &cert, &key, &database_url);
    let (gw_cert, gw_key) = pki.issue("gateway", "gateway-client");
    let client = client_config(&pki.ca_file(), Some((gw_cert.as_path(), gw_key.as_path())));
    let first = leaf_of(&cert);

    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let newest = Arc::new(std::sync::Mutex::new(first.clone()));
    let load = {
        let (done, sent, failures, newest) =
            (done.clone(), sent.clone(), failures.clone(), newest.clone());
        let (addr, client) = (upstream.addr.clone(), client.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                match request(&addr, client.clone(), "GET", "/healthz", None).await {
                    Ok(answer) if answer.status == 200 => {
                        *newest.lock().expect("lock") = answer.server_leaf;
                    }
                    Ok(answer) => failures.lock().expect("lock").push(answer.head),
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    testkit::eventually(
        "requests before the rotation",
        Duration::from_secs(30),
        async || (sent.load(Ordering::Relaxed) >= 20).then_some(()),
    )
    .await;

    // Overwrite the live files in place, key first, as a renewal does.
    let (new_cert, new_key) = pki.issue("shortener", "renewed");
    std::fs::copy(&new_key, &key).expect("key");
    std::fs::copy(&new_cert, &cert).expect("cert");
    let renewed = leaf_of(&new_cert);
    assert_ne!(renewed, first);
    testkit::eventually(
        "the renewed certificate served",
        Duration::from_secs(30),
        async || (*newest.lock().expect("lock") == renewed).then_some(()),
    )
    .await;
    let after = sent.load(Ordering::Relaxed);
    testkit::eventually(
        "requests after the rotation",
        Duration::from_secs(30),
        async || (sent.load(Ordering::Relaxed) >= after + 20).then_some(()),
    )
    .await;
    done.store(true, Ordering::Relaxed);
    load.await.expect("load loop");
    let failures = failures.lock().expect("lock").clone();
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert_eq!(*newest.lock().expect("lock"), renewed);
    stop(upstream).await;
}

#[test]
fn bad_certificate_files_are_refused_at_start_naming_the_key() {
    let pki = Pki::init();
    let (cert, key) = pki.issue("shortener", "good");
    let (other_cert, _) = pki.issue("orders", "other");
    let (expired, expired_key) = pki.issue_with("shortener", "expired", |r| {
        r.not_before = time::OffsetDateTime::now_utc() - Duration::from_secs(7200);
        r.not_after = time::OffsetDateTime::now_utc() - Duration::from_secs(3600);
    });
    let not_pem = write_config(&pki.dir, "not.pem", "this is not a certificate\n");
    let missing = pki.dir.join("missing.pem");
    let check = |cert: &Path, key: &Path| {
        let mut cmd = reliable();
        cmd.args(["config", "check"])
            .env("RELIABLE_TLS_CERT_FILE", cert)
            .env("RELIABLE_TLS_KEY_FILE", key);
        run_to_end(cmd)
    };
    let (code, stderr) = check(&cert, &key);
    assert_eq!(code, 0, "{stderr}");
    for (what, cert, key, names) in [
        (
            "missing",
            missing.as_path(),
            key.as_path(),
            ["tls.cert_file", "missing.pem"],
        ),
        (
            "not PEM",
            not_pem.as_path(),
            key.as_path(),
            ["tls.cert_file", "not.pem"],
        ),
        (
            "key not PEM",
            cert.as_path(),
            not_pem.as_path(),
            ["tls.key_file", "not.pem"],
        ),
        (
            "expired",
            expired.as_path(),
            expired_key.as_path(),
            ["tls.cert_file", "not valid now"],
        ),
        (
            "key of another certificate",
            other_cert.as_path(),
            key.as_path(),
            ["tls.key_file", "does not match"],
        ),
    ] {
        let (code, stderr) = check(cert, key);
        assert_eq!(code, 2, "{what}: {stderr}");
        for name in names {
            assert!(stderr.contains(name), "{what}: {name} not in {stderr}");
        }
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }

    // `serve` refuses the same way, before binding anything.
    let mut cmd = reliable();
    cmd.args(["serve", "--target", "shortener"])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env(
            "RELIABLE_DATABASE_URL",
            "postgres://unused@127.0.0.1:1/none",
        )
        .env("RELIABLE_TLS_CERT_FILE", &not_pem)
        .env("RELIABLE_TLS_KEY_FILE", &key);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("tls.cert_file"), "{stderr}");
}
