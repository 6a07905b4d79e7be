//! A development CA and the leaves it issues.
//!
//! `reliable pki init` makes an ECDSA P-256 root and an intermediate
//! signed by it; `reliable pki issue` signs short-lived leaves with the
//! intermediate, so the root key can stay offline even in a dev setup and
//! the chain has the shape cert-manager's CA issuer and step-ca produce.
//! A leaf names its service twice: the SPIFFE-style URI SAN
//! `spiffe://reliable/<service>` (what authorization reads) and DNS SANs
//! (what a client checks against the host it dialled).
//!
//! Private keys are created with mode 0600 (never widened and then
//! narrowed: a `chmod` after writing leaves a window) and held in
//! zeroizing buffers while in memory.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The trust domain of every identity the PKI issues.
pub const TRUST_DOMAIN: &str = "reliable";
/// File names inside a PKI directory.
pub const ROOT_CERT: &str = "root.pem";
pub const ROOT_KEY: &str = "root-key.pem";
pub const INTERMEDIATE_CERT: &str = "intermediate.pem";
pub const INTERMEDIATE_KEY: &str = "intermediate-key.pem";
/// The bundle peers trust (`tls.ca_file`): the root.
pub const CA_BUNDLE: &str = "ca.pem";
/// Leaves live 24 hours unless asked otherwise: short enough that a leaked
/// key expires soon, long enough to survive a day of local work.
pub const DEFAULT_LEAF_TTL: Duration = Duration::from_secs(24 * 3600);
const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const INTERMEDIATE_TTL: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Leaves start a minute in the past, for peers whose clocks lag.
const BACKDATE: Duration = Duration::from_secs(60);

/// Why the PKI could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path} does not exist: run `reliable pki init` first")]
    NotInitialized { path: PathBuf },
    #[error("a CA already exists in {dir} ({file}); pass --force to replace it")]
    AlreadyInitialized { dir: PathBuf, file: &'static str },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable CA file: {reason}")]
    BadCaFile { path: PathBuf, reason: String },
    #[error(transparent)]
    BadName(#[from] BadServiceName),
    #[error("`{0}` is not a DNS name")]
    BadDnsName(String),
    #[error("the certificate's lifetime must be above zero")]
    ZeroLifetime,
    #[error("generating the certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A service name as it appears in an identity and a file name: 1 to 63
/// lowercase letters, digits and `-`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a service name: use 1 to 63 lowercase letters, digits and `-`, \
     not starting or ending with `-`"
)]
pub struct BadServiceName(pub String);

impl ServiceName {
    pub fn parse(name: &str) -> Result<Self, BadServiceName> {
        let valid = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(Self(name.to_string()))
        } else {
            Err(BadServiceName(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `spiffe://reliable/<name>`.
    pub fn spiffe_id(&self) -> String {
        format!("spiffe://{TRUST_DOMAIN}/{}", self.0)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A certificate and its private key, both PEM.
pub struct Pem {
    pub cert: String,
    pub key: Zeroizing<String>,
}

/// The development CA: a root and the intermediate that signs leaves.
pub struct Ca {
    pub root: Pem,
    pub intermediate: Pem,
    /// Where it was loaded from, to name a damaged file.
    dir: PathBuf,
}

fn key_pair() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
}

/// The first 8 bytes of the SHA-256 of a public key, in hex.
fn fingerprint(key: &KeyPair) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.public_key_raw())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ca_params(common_name: &str, ttl: Duration, path_len: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Reliable");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + ttl;
    params
}

impl Ca {
    /// A new root and intermediate, in memory.
    pub fn generate() -> Result<Self, PkiError> {
        let root_key = key_pair()?;
        // Each CA's names carry a fingerprint of its root key: two dev CAs
        // never share a subject, so a chain from another CA is refused as
        // an unknown issuer rather than matched by name.
        let id = fingerprint(&root_key);
        let root_params = ca_params(&format!("Reliable development root CA {id}"), ROOT_TTL, 1);
        let root_cert = root_params.self_signed(&root_key)?;
        let intermediate_key = key_pair()?;
        let mut params = ca_params(
            &format!("Reliable development intermediate CA {id}"),
            INTERMEDIATE_TTL,
            0,
        );
        params.use_authority_key_identifier_extension = true;
        let root_issuer = Issuer::new(root_params, &root_key);
        let intermediate_cert = params.signed_by(&intermediate_key, &root_issuer)?;
        Ok(Self {
            root: Pem {
                cert: root_cert.pem(),
                key: Zeroizing::new(root_key.serialize_pem()),
            },
            intermediate: Pem {
                cert: intermediate_cert.pem(),
                key: Zeroizing::new(intermediate_key.serialize_pem()),
            },
            dir: PathBuf::new(),
        })
    }

    /// Writes the CA into `dir` (created 0700 if missing). Refuses to
    /// replace an existing CA unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(), PkiError> {
        let files = [ROOT_CERT, ROOT_KEY, INTERMEDIATE_CERT, INTERMEDIATE_KEY];
        if !force {
            if let Some(file) = files.iter().find(|f| dir.join(f).exists()) {
                return Err(PkiError::AlreadyInitialized {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
        create_private_dir(dir)?;
        write_file(&dir.join(ROOT_CERT), &self.root.cert, Mode::Public)?;
        write_file(&dir.join(ROOT_KEY), &self.root.key, Mode::Private)?;
        write_file(&dir.join(CA_BUNDLE), &self.root.cert, Mode::Public)?;
        write_file(
            &dir.join(INTERMEDIATE_CERT),
            &self.intermediate.cert,
            Mode::Public,
        )?;
        write_file(
            &dir.join(INTERMEDIATE_KEY),
            &self.intermediate.key,
            Mode::Private,
        )?;
        Ok(())
    }

    /// The CA written by [`Ca::write`] into `dir`. Only the intermediate is
    /// needed to issue; the root certificate goes into issued chains'
    /// trust bundle, not into the chain.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let read = |file: &str| -> Result<String, PkiError> {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => PkiError::NotInitialized { path: path.clone() },
                _ => PkiError::Read {
                    path: path.clone(),
                    source,
                },
            })
        };
        let ca = Self {
            root: Pem {
                cert: read(ROOT_CERT)?,
                // The root key is not needed to issue: it stays on disk.
                key: Zeroizing::new(String::new()),
            },
            intermediate: Pem {
                cert: read(INTERMEDIATE_CERT)?,
                key: Zeroizing::new(read(INTERMEDIATE_KEY)?),
            },
            dir: dir.to_path_buf(),
        };
        // Parse now, so a damaged file is named before anything is signed.
        let key = ca.issuer_key()?;
        ca.issuer(&key)?;
        Ok(ca)
    }

    fn issuer_key(&self) -> Result<KeyPair, PkiError> {
        KeyPair::from_pem(&self.intermediate.key).map_err(|e| PkiError::BadCaFile {
            path: self.dir.join(INTERMEDIATE_KEY),
            reason: e.to_string(),
        })
    }

    fn issuer<'k>(&self, key: &'k KeyPair) -> Result<Issuer<'static, &'k KeyPair>, PkiError> {
        Issuer::from_ca_cert_pem(&self.intermediate.cert, key).map_err(|e| PkiError::BadCaFile {
            path: self.dir.join(INTERMEDIATE_CERT),
            reason: e.to_string(),
        })
    }

    /// Signs a leaf for `request` with the intermediate. The returned
    /// certificate PEM is the chain: leaf, then intermediate.
    pub fn issue(&self, request: &LeafRequest) -> Result<Pem, PkiError> {
        if request.not_after <= request.not_before {
            return Err(PkiError::ZeroLifetime);
        }
        let issuer_key = self.issuer_key()?;
        let issuer = self.issuer(&issuer_key)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Reliable");
        dn.push(DnType::CommonName, request.service.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = request.not_before;
        params.not_after = request.not_after;
        let uri = request
            .service
            .spiffe_id()
            .try_into()
            .map_err(|_| BadServiceName(request.service.to_string()))?;
        params.subject_alt_names.push(SanType::URI(uri));
        for name in &request.dns {
            let dns = name
                .as_str()
                .try_into()
                .map_err(|_| PkiError::BadDnsName(name.clone()))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        for ip in &request.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let key = key_pair()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Pem {
            cert: format!("{}{}", cert.pem(), self.intermediate.cert),
            key: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// What a leaf certifies and for how long.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub service: ServiceName,
    /// DNS SANs: what clients dial (`localhost`, the Kubernetes service).
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl LeafRequest {
    /// Valid from a minute ago for `ttl`, for `localhost`, the service's
    /// own name and 127.0.0.1 (what local runs and tests dial).
    pub fn new(service: ServiceName, ttl: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            dns: vec!["localhost".to_string(), service.as_str().to_string()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            service,
            not_before: now - BACKDATE,
            not_after: now + ttl,
        }
    }
}

/// Writes an issued leaf as `<service>.pem` and `<service>-key.pem` (0600)
/// into `out`, replacing older files; returns both paths.
pub fn write_leaf(
    out: &Path,
    service: &ServiceName,
    leaf: &Pem,
) -> Result<(PathBuf, PathBuf), PkiError> {
    std::fs::create_dir_all(out).map_err(|source| PkiError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let cert = out.join(format!("{service}.pem"));
    let key = out.join(format!("{service}-key.pem"));
    write_file(&key, &leaf.key, Mode::Private)?;
    write_file(&cert, &leaf.cert, Mode::Public)?;
    Ok((cert, key))
}

#[derive(Clone, Copy)]
enum Mode {
    Public,
    Private,
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| PkiError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path`. A private file is created with mode 0600
/// from the start; an existing one is removed first, since opening it for
/// writing would keep whatever mode it had.
fn write_file(path: &Path, contents: &str, mode: Mode) -> Result<(), PkiError> {
    let write_error = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match mode {
        Mode::Public => {
            options.create(true).truncate(true);
        }
        Mode::Private => {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(write_error(e)),
            }
            options.create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
    }
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

#[cfg(test)]
mod tests;
