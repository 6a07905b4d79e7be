//! A backend: one OpenAI-compatible server, how to reach it and how to
//! present ourselves to it.
//!
//! Its API key comes from an environment variable or a file (a mounted
//! Secret), never from the config file, and travels as a sensitive header
//! value so that no debug print of a request shows it.

use crate::config::BackendConfig;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use kit::config::Secret;
use resilience::body::ClientBody;
use resilience::{BaseUrl, ClientSettings, HttpClient};
use std::path::Path;

/// Why a backend's settings cannot work.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("`{0}` is not an http:// or https:// URL with a host (and an optional path such as /v1), without query, fragment or credentials")]
    Url(String),
    #[error("header `{0}` is not a valid header name, or is one the gateway sets itself")]
    HeaderName(String),
    #[error("the value of header `{0}` is not a valid header value")]
    HeaderValue(String),
    #[error("environment variable {0} (api_key_env) is not set")]
    KeyEnv(String),
    #[error("cannot read the API key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the API key is not usable in a header")]
    KeyValue,
    #[error(transparent)]
    Tls(#[from] resilience::client::TlsError),
}

/// A backend's OpenAI base URL, split into where to connect and the path
/// its API lives under (`/v1`).
#[derive(Debug, Clone)]
pub struct BackendUrl {
    pub base: BaseUrl,
    /// No trailing slash; empty for a server at the root.
    pub path: String,
}

impl BackendUrl {
    pub fn parse(raw: &str) -> Result<Self, BackendError> {
        let bad = || BackendError::Url(raw.to_string());
        let url = url::Url::parse(raw).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(bad());
        }
        let origin = url.origin().ascii_serialization();
        let base = BaseUrl::parse(&origin).map_err(|_| bad())?;
        let path = url.path().trim_end_matches('/').to_string();
        Ok(Self { base, path })
    }

    /// The absolute URI of `endpoint` (`/chat/completions`).
    pub fn uri(&self, endpoint: &str) -> String {
        self.base.uri(&format!("{}{endpoint}", self.path))
    }
}

/// Headers the gateway sets itself and a config may not override.
const RESERVED: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "traceparent",
];

/// Parses one `headers` entry of a backend.
pub fn extra_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), BackendError> {
    let header = HeaderName::try_from(name).map_err(|_| BackendError::HeaderName(name.into()))?;
    if RESERVED.contains(&header.as_str()) {
        return Err(BackendError::HeaderName(name.into()));
    }
    let value = HeaderValue::try_from(value).map_err(|_| BackendError::HeaderValue(name.into()))?;
    Ok((header, value))
}

/// One backend, ready to call.
pub struct Backend {
    /// Its name in config: a metric label (`server_address`) and what the
    /// usage ledger records.
    pub name: &'static str,
    pub url: BackendUrl,
    authorization: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub client: HttpClient,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn bearer(key: &str) -> Result<HeaderValue, BackendError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", key.trim()))
        .map_err(|_| BackendError::KeyValue)?;
    value.set_sensitive(true);
    Ok(value)
}

fn read_key_file(path: &Path) -> Result<Secret, BackendError> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
        .map_err(|e| BackendError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

impl Backend {
    /// Builds a backend from its config; reads its API key now, so a
    /// missing secret fails start-up rather than every call.
    pub fn from_config(name: &'static str, config: &BackendConfig) -> Result<Self, BackendError> {
        let key = match (&config.api_key_env, &config.api_key_file) {
            (Some(var), _) => Some(Secret::new(
                std::env::var(var).map_err(|_| BackendError::KeyEnv(var.clone()))?,
            )),
            (None, Some(path)) => Some(read_key_file(path)?),
            (None, None) => None,
        };
        let headers = config
            .headers
            .iter()
            .map(|(n, v)| extra_header(n, v))
            .collect::<Result<_, _>>()?;
        Self::new(
            name,
            BackendUrl::parse(&config.url)?,
            key.as_ref(),
            headers,
            config.ca_file.clone(),
        )
    }

    pub fn new(
        name: &'static str,
        url: BackendUrl,
        key: Option<&Secret>,
        headers: Vec<(HeaderName, HeaderValue)>,
        ca_file: Option<std::path::PathBuf>,
    ) -> Result<Self, BackendError> {
        let client = HttpClient::new(&ClientSettings {
            ca_file,
            ..ClientSettings::default()
        })?;
        Ok(Self {
            name,
            url,
            authorization: key.map(|k| bearer(k.expose())).transpose()?,
            headers,
            client,
        })
    }

    /// A call of `endpoint` (`/chat/completions`) with a JSON body.
    pub fn request(
        &self,
        method: Method,
        endpoint: &str,
        body: Option<Bytes>,
        traceparent: HeaderValue,
    ) -> Request<ClientBody> {
        let mut request = Request::new(match body {
            Some(bytes) => resilience::body::full(bytes),
            None => resilience::body::empty(),
        });
        *request.method_mut() = method;
        // A URI built from a validated base and a fixed endpoint parses.
        if let Ok(uri) = self.url.uri(endpoint).parse() {
            *request.uri_mut() = uri;
        }
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(kit::http::TRACEPARENT, traceparent);
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_keep_their_path() {
        let url = BackendUrl::parse("http://127.0.0.1:8000/v1/").expect("valid");
        assert_eq!(
            url.uri("/chat/completions"),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
        let url = BackendUrl::parse("https://api.example.com").expect("valid");
        assert_eq!(url.uri("/models"), "https://api.example.com/models");
        for bad in [
            "ftp://a/v1",
            "http://",
            "http://a/v1?x=1",
            "http://a/v1#f",
            "http://user:pw@a/v1",
            "not a url",
            "",
        ] {
            assert!(BackendUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extra_headers_cannot_override_ours() {
        assert!(extra_header("OpenAI-Organization", "org-1").is_ok());
        for reserved in ["Authorization", "host", "Content-Type", "traceparent"] {
            assert!(extra_header(reserved, "x").is_err(), "{reserved}");
        }
        assert!(extra_header("bad header", "x").is_err());
        assert!(extra_header("x-ok", "line\nbreak").is_err());
    }

    #[test]
    fn the_key_is_sent_as_a_sensitive_bearer_and_never_printed() {
        let backend = Backend::new(
            "a",
            BackendUrl::parse("http://127.0.0.1:9/v1").expect("url"),
            Some(&Secret::new("sk-test-123")),
            vec![],
            None,
        )
        .expect("backend");
        let request = backend.request(
            Method::POST,
            "/chat/completions",
            Some(Bytes::from_static(b"{}")),
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        let auth = request.headers().get(AUTHORIZATION).expect("auth");
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Bearer sk-test-123");
        assert!(!format!("{backend:?}").contains("sk-test"));
        assert!(!format!("{:?}", request.headers()).contains("sk-test"));
    }

    #[test]
    fn a_missing_key_variable_fails_at_build() {
        let config = BackendConfig {
            url: "http://127.0.0.1:9/v1".into(),
            api_key_env: Some("RELIABLE_TEST_SURELY_UNSET_KEY_VAR".into()),
            api_key_file: None,
            headers: Default::default(),
            ca_file: None,
            discover: false,
        };
        assert!(matches!(
            Backend::from_config("a", &config),
            Err(BackendError::KeyEnv(_))
        ));
    }
}
