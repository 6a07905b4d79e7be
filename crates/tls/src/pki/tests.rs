use super::*;
use crate::peer::PeerIdentity;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};

#[test]
fn service_names_are_lowercase_dns_labels() {
    for good in ["orders", "gateway", "a", "api-v2", "x9"] {
        assert!(ServiceName::parse(good).is_ok(), "{good}");
    }
    let long = "a".repeat(64);
    for bad in [
        "",
        "Orders",
        "-a",
        "a-",
        "a/b",
        "../etc",
        "a.b",
        "a b",
        "é",
        long.as_str(),
    ] {
        let error = ServiceName::parse(bad).expect_err(bad);
        assert!(error.to_string().contains("not a service name"), "{error}");
    }
    let name = ServiceName::parse("orders").expect("name");
    assert_eq!(name.spiffe_id(), "spiffe://reliable/orders");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn init_writes_keys_0600_and_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = dir.path().join("pki");
    Ca::generate()
        .expect("ca")
        .write(&pki, false)
        .expect("write");
    #[cfg(unix)]
    {
        assert_eq!(mode(&pki.join(ROOT_KEY)), 0o600);
        assert_eq!(mode(&pki.join(INTERMEDIATE_KEY)), 0o600);
        assert_eq!(mode(&pki), 0o700);
    }
    let before = std::fs::read_to_string(pki.join(ROOT_CERT)).expect("root");
    let error = Ca::generate()
        .expect("ca")
        .write(&pki, false)
        .expect_err("exists");
    assert!(
        matches!(error, PkiError::AlreadyInitialized { .. }),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(pki.join(ROOT_CERT)).expect("root"),
        before
    );
    Ca::generate()
        .expect("ca")
        .write(&pki, true)
        .expect("forced");
    assert_ne!(
        std::fs::read_to_string(pki.join(ROOT_CERT)).expect("root"),
        before
    );
    #[cfg(unix)]
    assert_eq!(mode(&pki.join(ROOT_KEY)), 0o600);
}

#[test]
fn issuing_before_init_names_the_missing_file() {
    let dir = tempfile::tempdir().expect("dir");
    let error = match Ca::load(dir.path()) {
        Err(e) => e,
        Ok(_) => panic!("no CA there"),
    };
    assert!(matches!(error, PkiError::NotInitialized { .. }), "{error}");
    assert!(error.to_string().contains("root.pem"), "{error}");
    assert!(error.to_string().contains("reliable pki init"), "{error}");
}

#[test]
fn a_leaf_chains_to_the_root_and_names_its_service() {
    let dir = tempfile::tempdir().expect("dir");
    Ca::generate()
        .expect("ca")
        .write(dir.path(), false)
        .expect("write");
    let ca = Ca::load(dir.path()).expect("load");
    let service = ServiceName::parse("orders").expect("name");
    let leaf = ca
        .issue(&LeafRequest::new(service.clone(), DEFAULT_LEAF_TTL))
        .expect("issue");
    let (cert, key) = write_leaf(&dir.path().join("out"), &service, &leaf).expect("write");
    assert!(cert.ends_with("orders.pem") && key.ends_with("orders-key.pem"));
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    assert_eq!(chain.len(), 2, "leaf and intermediate");
    assert_eq!(
        PeerIdentity::of_certificate(&chain[0]).map(|p| p.as_str().to_string()),
        Some("spiffe://reliable/orders".to_string())
    );

    // The chain verifies against the root alone, as a client and as a server.
    let root = CertificateDer::from_pem_slice(ca.root.cert.as_bytes()).expect("root");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("root");
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        crate::provider(),
    )
    .build()
    .expect("verifier");
    let now = UnixTime::now();
    for name in ["localhost", "orders", "127.0.0.1"] {
        let server_name = rustls::pki_types::ServerName::try_from(name).expect("name");
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0]).expect("x509");
    let lifetime =
        parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
    assert_eq!(lifetime, (DEFAULT_LEAF_TTL + BACKDATE).as_secs() as i64);
    let eku = parsed
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!parsed.is_ca());
}

#[test]
fn a_damaged_intermediate_key_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    Ca::generate()
        .expect("ca")
        .write(dir.path(), false)
        .expect("write");
    std::fs::write(dir.path().join(INTERMEDIATE_KEY), "garbage").expect("damage");
    let error = match Ca::load(dir.path()) {
        Err(e) => e,
        Ok(_) => panic!("damaged"),
    };
    assert!(error.to_string().contains(INTERMEDIATE_KEY), "{error}");
}

#[test]
fn a_leaf_needs_a_lifetime_and_valid_dns_names() {
    let ca = Ca::generate().expect("ca");
    let service = ServiceName::parse("orders").expect("name");
    let mut request = LeafRequest::new(service, DEFAULT_LEAF_TTL);
    request.not_after = request.not_before;
    assert!(matches!(ca.issue(&request), Err(PkiError::ZeroLifetime)));
    request.not_after = request.not_before + Duration::from_secs(60);
    request.dns = vec!["bad name\u{7f}é".to_string()];
    assert!(matches!(ca.issue(&request), Err(PkiError::BadDnsName(_))));
}
