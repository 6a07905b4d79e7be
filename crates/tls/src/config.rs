//! rustls configurations for the listener and the shared HTTP client.
//!
//! The crypto provider is named here (`ring`, as everywhere in the
//! workspace) and never taken from the process default: a dependency that
//! enables a second provider would leave no default to take.

use crate::error::TlsError;
use crate::identity::Identity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider of every TLS configuration in the platform.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether the listener asks for a client certificate.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client certificate is asked for and, when sent, must chain to
    /// `ca_file`; clients without one are let in (the allow-list may still
    /// refuse them).
    Optional,
    /// The handshake fails without a client certificate from `ca_file`.
    Required,
}

/// The certificates of the PEM bundle at `path`: at least one.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NotPem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn root_store(
    path: &Path,
    certs: Vec<CertificateDer<'static>>,
) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The listener's configuration: `identity` as its certificate (reloaded
/// in place), client certificates per `client_auth` verified against the
/// bundle at `ca_file` (required unless `client_auth` is `none`), HTTP/1.1
/// by ALPN, and resumption by session tickets so a reconnecting client
/// skips the full handshake.
pub fn server_config(
    identity: Arc<Identity>,
    client_auth: ClientAuth,
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let verifier = match (client_auth, ca_file) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (_, None) => {
            return Err(TlsError::Setup(rustls::Error::General(
                "client certificates need a CA bundle".to_string(),
            )))
        }
        (auth, Some(path)) => {
            let roots = root_store(path, read_ca_bundle(path)?)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            verifier.build().map_err(|e| TlsError::BadCertificate {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?
        }
    };
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// What the shared HTTP client adds to its defaults: the platform CA as a
/// trusted root and this process's identity as its client certificate.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Trusted in addition to the client's other roots.
    pub roots: Vec<CertificateDer<'static>>,
    /// Presented when a server asks for a client certificate.
    pub identity: Option<Arc<Identity>>,
}

impl ClientTls {
    /// `ca_file`'s certificates and `identity`.
    pub fn new(ca_file: Option<&Path>, identity: Option<Arc<Identity>>) -> Result<Self, TlsError> {
        let roots = match ca_file {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        Ok(Self { roots, identity })
    }

    /// A client configuration trusting `roots` plus these roots, with this
    /// identity (if any) as client certificate.
    pub fn client_config(
        &self,
        mut roots: rustls::RootCertStore,
    ) -> Result<rustls::ClientConfig, TlsError> {
        for cert in &self.roots {
            roots.add(cert.clone())?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        Ok(match &self.identity {
            Some(identity) => builder.with_client_cert_resolver(identity.clone()),
            None => builder.with_no_client_auth(),
        })
    }
}

#[cfg(test)]
mod tests;
