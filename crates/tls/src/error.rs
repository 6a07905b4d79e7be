use std::path::PathBuf;

/// Why a certificate, key or CA bundle cannot be used. Every variant names
/// the file; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    NotPem { path: PathBuf, what: &'static str },
    #[error("{path} is not a usable certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} is not a usable private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

impl TlsError {
    /// The file at fault (for a mismatch: the key), so that a
    /// configuration error can name the setting that holds it.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            TlsError::Read { path, .. }
            | TlsError::NotPem { path, .. }
            | TlsError::BadCertificate { path, .. }
            | TlsError::BadKey { path, .. } => Some(path),
            TlsError::KeyMismatch { key, .. } => Some(key),
            TlsError::Setup(_) => None,
        }
    }
}
