//! mTLS between Reliable's modules.
//!
//! Every module that listens or calls out gets the same identity (a leaf
//! certificate whose URI SAN is `spiffe://reliable/<service>`), trusts
//! the same platform CA, and can authorize a peer by its identity. This
//! crate holds the mechanisms, with no knowledge of config files or of the
//! modules:
//!
//! - [`pki`]: a development CA (ECDSA P-256 root and intermediate, made
//!   with rcgen) and the leaves it issues; `reliable pki` drives it. In
//!   production cert-manager or step-ca fill the same files.
//! - [`identity`]: this process's certificate and key, loaded from PEM
//!   files, checked (the key must match the certificate), re-read when the
//!   files change and swapped atomically; it is both the server's and the
//!   client's certificate resolver, so a rotation needs no restart.
//! - [`peer`]: the peer's identity taken from its verified certificate,
//!   and the allow-list that authorizes a path prefix by identity.
//! - [`config`]: rustls server and client configurations built from the
//!   above, with the `ring` provider named explicitly.
#![forbid(unsafe_code)]

pub mod config;
mod error;
pub mod identity;
pub mod peer;
pub mod pki;

pub use config::{provider, server_config, ClientAuth, ClientTls};
pub use error::TlsError;
pub use identity::Identity;
pub use peer::{AllowList, AllowRule, PeerIdentity};
pub use rustls;
