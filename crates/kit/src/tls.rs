//! The `[tls]` section: this process's identity, the platform CA, client
//! certificates and who may call what.
//!
//! The mechanisms (PKI, reloading identity, rustls configurations, peer
//! identities) are the `tls` crate's, re-exported here; this module holds
//! the settings every module shares and their validation, which reads the
//! files so that a wrong path, a file that is not PEM or a key that does
//! not match its certificate stops the start (exit 2) with the key named.

pub use ::tls::*;

use crate::config::reference::Duration as DurationDoc;
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// TLS for the listener and the shared HTTP client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This process's certificate chain (PEM, leaf first). With `key_file`
    /// the listener serves HTTPS and the shared HTTP client presents it as
    /// its client certificate (gateway pools, webhooks).
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// The platform CA bundle (PEM): client certificates must chain to it,
    /// and the shared HTTP client trusts it in addition to the public
    /// roots. Read at start.
    pub ca_file: Option<PathBuf>,
    /// Client certificates on the listener: `none`, `optional` (verified
    /// when sent) or `required` (the handshake fails without one from
    /// `ca_file`).
    pub client_auth: ClientAuth,
    /// How often `cert_file` and `key_file` are checked for new contents
    /// (a renewal, a Kubernetes Secret update); new files replace the
    /// identity without a restart, bad ones are logged and ignored.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "DurationDoc")]
    pub reload_interval: Duration,
    /// Path prefixes only some peers may call, by identity (the URI SAN of
    /// their verified client certificate), e.g. `[[tls.allow]]
    /// prefix = "/api/v1/orders"`, `identities =
    /// ["spiffe://reliable/gateway"]`. Others get 403
    /// `/problems/forbidden-identity`; unlisted prefixes follow
    /// `client_auth`.
    pub allow: Vec<AllowRule>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            ca_file: None,
            client_auth: ClientAuth::None,
            reload_interval: Duration::from_secs(10),
            allow: Vec::new(),
        }
    }
}

impl TlsConfig {
    /// This process's identity files, when TLS is on.
    pub fn identity_files(&self) -> Option<::tls::identity::IdentityFiles> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => Some(::tls::identity::IdentityFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            }),
            _ => None,
        }
    }

    /// Checks the settings and reads every file they name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            let missing = if self.cert_file.is_none() {
                "tls.cert_file"
            } else {
                "tls.key_file"
            };
            return Err(ConfigError::invalid(
                missing,
                "must be set together with tls.cert_file and tls.key_file",
            ));
        }
        if self.reload_interval.is_zero() {
            return Err(ConfigError::invalid(
                "tls.reload_interval",
                "must be above zero",
            ));
        }
        if let Some(files) = self.identity_files() {
            ::tls::identity::check(&files).map_err(|e| self.config_error(&e))?;
        }
        if let Some(path) = &self.ca_file {
            ::tls::config::read_ca_bundle(path)
                .map_err(|e| ConfigError::invalid("tls.ca_file", e.to_string()))?;
        }
        let serving = self.identity_files().is_some();
        if self.client_auth != ClientAuth::None {
            if !serving {
                return Err(ConfigError::invalid(
                    "tls.client_auth",
                    "client certificates need TLS: set tls.cert_file and tls.key_file",
                ));
            }
            if self.ca_file.is_none() {
                return Err(ConfigError::invalid(
                    "tls.client_auth",
                    "client certificates are verified against tls.ca_file: set it",
                ));
            }
        }
        for (i, rule) in self.allow.iter().enumerate() {
            if !rule.prefix.starts_with('/') {
                return Err(ConfigError::invalid(
                    &format!("tls.allow[{i}].prefix"),
                    format!("`{}` must start with `/`", rule.prefix),
                ));
            }
            if rule.identities.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("tls.allow[{i}].identities"),
                    "list at least one identity (spiffe://reliable/<service>)",
                ));
            }
        }
        if !self.allow.is_empty() && self.client_auth == ClientAuth::None {
            return Err(ConfigError::invalid(
                "tls.allow",
                "authorizing by identity needs client certificates: set tls.client_auth",
            ));
        }
        Ok(())
    }

    /// A file error as a config error naming the key that holds the file.
    fn config_error(&self, error: &TlsError) -> ConfigError {
        let key = match error.file() {
            Some(file) if Some(file) == self.key_file.as_deref() => "tls.key_file",
            Some(file) if Some(file) == self.ca_file.as_deref() => "tls.ca_file",
            _ => "tls.cert_file",
        };
        ConfigError::invalid(key, error.to_string())
    }

    /// Loads what the settings name: the identity (if TLS is on), the
    /// listener's configuration and what the shared client adds. Files are
    /// read again here (validation read them too): an error names the key.
    pub fn build(&self) -> Result<Option<Transport>, ConfigError> {
        let Some(files) = self.identity_files() else {
            return Ok(None);
        };
        let identity = Identity::load(files).map_err(|e| self.config_error(&e))?;
        let server = server_config(identity.clone(), self.client_auth, self.ca_file.as_deref())
            .map_err(|e| self.config_error(&e))?;
        let client = ClientTls::new(self.ca_file.as_deref(), Some(identity.clone()))
            .map_err(|e| self.config_error(&e))?;
        Ok(Some(Transport {
            identity,
            server,
            client,
            allow: Arc::new(AllowList::new(self.allow.clone())),
            reload_interval: self.reload_interval,
        }))
    }
}

/// TLS as built from [`TlsConfig`]: the listener's and the client's sides
/// of one identity.
#[derive(Clone)]
pub struct Transport {
    /// Reload it with [`Identity::watch`] every `reload_interval`.
    pub identity: Arc<Identity>,
    pub server: Arc<rustls::ServerConfig>,
    pub client: ClientTls,
    pub allow: Arc<AllowList>,
    pub reload_interval: Duration,
}
