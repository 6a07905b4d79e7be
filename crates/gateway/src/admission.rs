//! Admission: who is calling, may they call this route, and may they call
//! it now. Runs before a request costs an upstream anything.
//!
//! A key arrives as `Authorization: Bearer rlk_...` or `X-Api-Key`. Its
//! format is checked before the store is asked, so garbage is a cheap 401.
//! The key itself never reaches a log line or an upstream: requests are
//! forwarded without it, with `X-Api-Key-Name` naming the caller instead.
//! Rate limits are per key (the key's own rate, else `key_rate`) and per
//! client IP for anonymous traffic (`anon_rate`); the `RateLimit` headers
//! go on every response, 429 with `Retry-After` when refused.

use crate::error::GatewayError;
use crate::keys::{ApiKey, StoredKey, KEY_PREFIX};
use crate::routes::Route;
use crate::Shared;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::HeaderMap;
use ratelimit::headers::PolicyName;
use std::net::IpAddr;

pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The key presented, if any; `Err` if one is there but malformed. In
/// `Authorization`, only a `Bearer rlk_...` token is ours: other bearer
/// tokens (an upstream's own JWTs) pass through untouched.
fn presented(headers: &HeaderMap) -> Result<Option<ApiKey>, GatewayError> {
    let value = if let Some(v) = headers.get(&X_API_KEY) {
        v.as_bytes()
    } else if let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .filter(|t| t.trim_ascii_start().starts_with(KEY_PREFIX.as_bytes()))
    {
        token
    } else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value).map_err(|_| GatewayError::KeyMalformed)?;
    ApiKey::parse(value.trim())
        .map(Some)
        .map_err(|_| GatewayError::KeyMalformed)
}

/// The caller's key, if one was presented: malformed, unknown or revoked
/// keys are refused (401), a store that cannot answer is a 503.
pub(crate) async fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<Option<StoredKey>, GatewayError> {
    let Some(key) = presented(headers)? else {
        return Ok(None);
    };
    let store = shared.keys.as_ref().ok_or(GatewayError::KeyRejected)?;
    let stored = store.find(&key.hash()).await.map_err(|e| {
        tracing::error!(
            error = &e as &dyn std::error::Error,
            "API key lookup failed"
        );
        GatewayError::KeyStore
    })?;
    match stored {
        Some(k) if k.revoked_at.is_none() => Ok(Some(k)),
        _ => Err(GatewayError::KeyRejected),
    }
}

/// Checks the key and scope of `route`, then the caller's rate.
/// `key_headers` says whether `headers` carries `X-Api-Key` or
/// `Authorization` at all (the caller's one pass over them found out):
/// without, no key is looked for. `rate_headers` is filled even when the
/// answer is 429.
pub(crate) async fn admit(
    shared: &Shared,
    route: &Route,
    headers: &HeaderMap,
    key_headers: bool,
    client_ip: IpAddr,
    rate_headers: &mut Vec<(HeaderName, HeaderValue)>,
) -> Result<Option<StoredKey>, GatewayError> {
    let key = if key_headers {
        authenticate(shared, headers).await?
    } else {
        None
    };
    if let Some(scope) = &route.scope {
        let key = key.as_ref().ok_or(GatewayError::KeyMissing)?;
        if !key.scopes.contains(scope) {
            return Err(GatewayError::WrongScope(scope.as_str().to_string()));
        }
    }
    let (policy, quota) = match &key {
        Some(k) => ("key", k.rate.or(shared.key_quota)),
        None => ("anon", shared.anon_quota),
    };
    let Some(quota) = quota else {
        return Ok(key);
    };
    // Only a limited caller has a bucket: formatting its name cost ~1,400
    // instructions a request on routes without a limit too.
    let bucket = match &key {
        Some(k) => format!("key:{}", k.id),
        // Every limited anonymous request: without `fmt` (see ip_text).
        None => "ip:".to_string() + &kit::net::ip_text(client_ip),
    };
    let decision = shared.limiter.check(&bucket, &quota).await.map_err(|e| {
        tracing::warn!(error = %e, "rate limiter refused to decide");
        GatewayError::LimiterDown
    })?;
    if let Some(policy) = PolicyName::from_static(policy) {
        rate_headers.extend(ratelimit::headers::headers(&policy, &quota, &decision));
    }
    if !decision.allowed {
        metrics::counter!("gateway_rate_limited_total", "policy" => policy).increment(1);
        return Err(GatewayError::RateLimited);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_either_header_and_checked_for_format() {
        let good = format!("rlk_{}", "0".repeat(64));
        let mut h = HeaderMap::new();
        assert!(presented(&h).unwrap().is_none());
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert!(presented(&h).unwrap().is_none());
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {good}")).unwrap(),
        );
        assert!(presented(&h).unwrap().is_some());
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer eyJhbGciOi.jwt"),
        );
        assert!(presented(&h).unwrap().is_none(), "not our token");
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer rlk_short"));
        assert!(matches!(presented(&h), Err(GatewayError::KeyMalformed)));
        h.insert(X_API_KEY, HeaderValue::from_str(&good).unwrap());
        assert!(presented(&h).unwrap().is_some());
    }
}
