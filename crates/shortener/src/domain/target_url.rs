use std::fmt;
use url::Url;

/// Longest target URL accepted, in bytes (what browsers and proxies handle safely).
pub const MAX_URL_BYTES: usize = 2048;

/// Where a link redirects to: an absolute `http`/`https` URL with a host and
/// no embedded credentials, at most [`MAX_URL_BYTES`] bytes. Stored in the
/// normalised form the `url` crate serialises, which is always a valid
/// `Location` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetUrlError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error("is not an absolute URL")]
    NotAbsolute,
    #[error("scheme `{0}` is not allowed; use http or https")]
    Scheme(String),
    #[error("must have a host")]
    NoHost,
    #[error("host `{0}` is not a valid host name")]
    BadHost(String),
    #[error("must not contain credentials")]
    Credentials,
}

impl TargetUrl {
    pub fn parse(value: &str) -> Result<Self, TargetUrlError> {
        if value.trim().is_empty() {
            return Err(TargetUrlError::Empty);
        }
        if value.len() > MAX_URL_BYTES {
            return Err(TargetUrlError::TooLong);
        }
        let url = Url::parse(value).map_err(|_| TargetUrlError::NotAbsolute)?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(TargetUrlError::Scheme(other.to_string())),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(TargetUrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetUrlError::Credentials);
        }
        // The URL standard lets characters such as `*` or `!` into a host;
        // DNS does not, and no browser could follow such a link.
        if let Some(url::Host::Domain(name)) = url.host() {
            if !is_host_name(name) {
                return Err(TargetUrlError::BadHost(name.chars().take(64).collect()));
            }
        }
        // Percent-encoding during normalisation can grow the URL.
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(TargetUrlError::TooLong);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// Labels of letters, digits, `-` and `_` (used in some service names),
/// 1 to 63 characters, not starting or ending with `-`; an
/// internationalised name arrives here in its `xn--` form.
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_must_be_host_names() {
        for bad in [
            "https://tht.xdmrkw*/",
            "https://a!b.example/",
            "https://-lead.example/",
            "https://a..b/",
        ] {
            assert!(
                matches!(TargetUrl::parse(bad), Err(TargetUrlError::BadHost(_))),
                "{bad}"
            );
        }
        assert!(TargetUrl::parse("https://my_service.internal/x").is_ok());
        assert!(TargetUrl::parse("https://example.com./").is_ok());
    }

    #[test]
    fn accepts_http_and_https() {
        for ok in [
            "https://example.com",
            "http://example.com/a?b=c#d",
            "https://xn--bcher-kva.example/p",
            "https://bücher.example/ä",
            "https://[::1]:8443/x",
        ] {
            let url = TargetUrl::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(axum::http::HeaderValue::from_str(url.as_str()).is_ok());
        }
    }

    #[test]
    fn rejects_dangerous_or_malformed_urls() {
        use TargetUrlError::*;
        let cases: &[(&str, TargetUrlError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("javascript:alert(1)", Scheme("javascript".into())),
            (
                "data:text/html,<script>alert(1)</script>",
                Scheme("data".into()),
            ),
            ("file:///etc/passwd", Scheme("file".into())),
            ("ftp://example.com/", Scheme("ftp".into())),
            ("/relative/path", NotAbsolute),
            ("example.com/no-scheme", NotAbsolute),
            ("https://user:pass@example.com/", Credentials),
            ("https://user@example.com/", Credentials),
            ("http://", NotAbsolute),
        ];
        for (input, expected) in cases {
            assert_eq!(
                TargetUrl::parse(input).as_ref().err(),
                Some(expected),
                "{input}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(TargetUrl::parse(&long), Err(TooLong));
    }
}
