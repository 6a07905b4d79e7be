//! This process's certificate and key, reloaded when their files change.
//!
//! One [`Identity`] serves as the server's certificate resolver and as the
//! client's, so the listener and every outgoing call switch together. The
//! current pair sits behind a lock that is held only to clone an `Arc`;
//! a handshake in flight keeps the pair it started with, and the next one
//! gets the new pair: no connection fails because of a swap.
//!
//! Change detection compares a SHA-256 of both files' contents, not their
//! modification times: Kubernetes updates a mounted Secret by swapping a
//! symlink, which leaves the mtime of the path the process opened
//! unchanged, and a content hash sees that as well as an overwrite.
//! Certificate and key are written one after the other, so a poll can see
//! a new certificate with the old key: that pair does not match, is logged
//! and skipped, and the next poll sees both. The same holds for a file
//! caught half-written. The old pair keeps serving meanwhile.

use crate::error::TlsError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Where the identity is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// The leaf's private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

/// The files' contents as read, hashed for change detection. The buffer
/// holding the key is wiped when dropped.
struct Contents {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl Contents {
    fn read(files: &IdentityFiles) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(Self {
            cert: read(&files.cert_file)?,
            key: Zeroizing::new(read(&files.key_file)?),
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update((self.cert.len() as u64).to_be_bytes());
        hash.update(&self.cert);
        hash.update(&self.key[..]);
        hash.finalize().into()
    }
}

/// The certificate chain in `pem` (read from `path`): at least one
/// certificate, the first a parseable X.509 leaf that is valid now and is
/// not a CA (an expired identity would fail every handshake: better
/// refused at start, or kept out by a reload).
pub fn parse_chain(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NotPem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    };
    let bad = |reason: String| TlsError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let validity = parsed.validity();
    if !validity.is_valid() {
        return Err(bad(format!(
            "not valid now (valid from {} to {})",
            validity.not_before, validity.not_after
        )));
    }
    if parsed.is_ca() {
        return Err(bad(
            "the first certificate is a CA; put the leaf first".to_string()
        ));
    }
    Ok(chain)
}

/// The private key in `pem` (read from `path`).
pub fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NotPem {
            path: path.to_path_buf(),
            what: "private key",
        },
        other => TlsError::BadKey {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

fn certified_key(files: &IdentityFiles, contents: &Contents) -> Result<CertifiedKey, TlsError> {
    let chain = parse_chain(&files.cert_file, &contents.cert)?;
    let key = parse_key(&files.key_file, &contents.key)?;
    let signing_key = crate::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: files.key_file.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(TlsError::KeyMismatch {
            cert: files.cert_file.clone(),
            key: files.key_file.clone(),
        }),
    }
}

/// Reads and checks the identity in `files` once, without keeping it:
/// what configuration validation runs.
pub fn check(files: &IdentityFiles) -> Result<(), TlsError> {
    certified_key(files, &Contents::read(files)?).map(drop)
}

/// This process's certificate and key; see the module docs.
pub struct Identity {
    files: IdentityFiles,
    current: RwLock<Arc<CertifiedKey>>,
    digest: Mutex<[u8; 32]>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What a reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are as last loaded.
    Unchanged,
    /// New files were loaded and now serve.
    Swapped,
}

impl Identity {
    /// Loads and checks the identity; an error names the file at fault.
    pub fn load(files: IdentityFiles) -> Result<Arc<Self>, TlsError> {
        let contents = Contents::read(&files)?;
        let certified = certified_key(&files, &contents)?;
        Ok(Arc::new(Self {
            digest: Mutex::new(contents.digest()),
            current: RwLock::new(Arc::new(certified)),
            files,
        }))
    }

    pub fn files(&self) -> &IdentityFiles {
        &self.files
    }

    /// The pair serving now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the files; when their contents changed and the new pair is
    /// good, it replaces the current one. On error the current pair stays.
    pub fn reload(&self) -> Result<Reload, TlsError> {
        let contents = Contents::read(&self.files)?;
        let digest = contents.digest();
        let mut last = self.digest.lock().unwrap_or_else(|e| e.into_inner());
        if *last == digest {
            return Ok(Reload::Unchanged);
        }
        let certified = Arc::new(certified_key(&self.files, &contents)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = certified;
        *last = digest;
        Ok(Reload::Swapped)
    }

    /// Polls the files every `interval` until `stop` completes. A bad new
    /// file is logged (once per distinct content, naming the file) and the
    /// old identity kept; the loop itself never fails.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: impl Future<Output = ()>) {
        self.watch_notifying(interval, stop, |_| {}).await;
    }

    /// [`Self::watch`], calling `on_swap` after each swap (the platform
    /// records it on its change timeline).
    pub async fn watch_notifying(
        self: Arc<Self>,
        interval: Duration,
        stop: impl Future<Output = ()>,
        mut on_swap: impl FnMut(&IdentityFiles),
    ) {
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the files were just loaded.
        ticks.tick().await;
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {}
            }
            match self.reload() {
                Ok(Reload::Unchanged) => {}
                Ok(Reload::Swapped) => {
                    last_error = None;
                    tracing::info!(
                        cert_file = %self.files.cert_file.display(),
                        "TLS certificate reloaded"
                    );
                    on_swap(&self.files);
                }
                Err(e) => {
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(
                            error = %text,
                            "new TLS certificate or key not usable; keeping the current one"
                        );
                        last_error = Some(text);
                    }
                }
            }
        }
    }
}

impl rustls::server::ResolvesServerCert for Identity {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for Identity {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
