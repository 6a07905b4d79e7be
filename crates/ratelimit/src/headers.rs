//! Response headers of the IETF "RateLimit header fields for HTTP" draft
//! (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy` names the
//! quota (`q` requests per `w` seconds), `RateLimit` the state after this
//! request (`r` remaining, `t` seconds until the quota is whole again), and
//! `Retry-After` on a refusal that waiting cures (not on one whose cost is
//! above the burst).

use crate::gcra::Decision;
use crate::Quota;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// A policy name as the draft's structured-field string: lower-case
/// letters, digits, `-` and `_`, 1..=32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyName(String);

impl PolicyName {
    pub fn parse(name: &str) -> Option<Self> {
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then(|| Self(name.to_string()))
    }
}

fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// The headers for `decision` under `quota`.
pub fn headers(
    policy: &PolicyName,
    quota: &Quota,
    decision: &Decision,
) -> Vec<(HeaderName, HeaderValue)> {
    let window = ceil_secs(quota.emission_interval_us() * quota.burst()).max(1);
    let mut out = Vec::with_capacity(3);
    let mut push = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.push((name, value));
        }
    };
    push(
        RATELIMIT_POLICY,
        format!("\"{}\";q={};w={window}", policy.0, quota.burst()),
    );
    push(
        RATELIMIT,
        format!(
            "\"{}\";r={};t={}",
            policy.0,
            decision.remaining,
            ceil_secs(decision.reset_us)
        ),
    );
    if !decision.allowed && !decision.exceeds_burst() {
        push(
            RETRY_AFTER,
            ceil_secs(decision.retry_after_us).max(1).to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_structured_field_safe() {
        assert!(PolicyName::parse("anon").is_some());
        assert!(PolicyName::parse("per-key_2").is_some());
        for bad in ["", "Anon", "a b", "a\"b", "a;q=1", &"x".repeat(33)] {
            assert!(PolicyName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn headers_follow_the_draft() {
        let quota: Quota = "300/min,burst=300".parse().expect("quota");
        let policy = PolicyName::parse("anon").expect("name");
        let allowed = Decision {
            allowed: true,
            remaining: 299,
            reset_us: 200_000,
            retry_after_us: 0,
        };
        let h = headers(&policy, &quota, &allowed);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].1, "\"anon\";q=300;w=60");
        assert_eq!(h[1].1, "\"anon\";r=299;t=1");
        let refused = Decision {
            allowed: false,
            remaining: 0,
            reset_us: 60_000_000,
            retry_after_us: 150_000,
        };
        let h = headers(&policy, &quota, &refused);
        assert_eq!(h[2], (RETRY_AFTER, HeaderValue::from_static("1")));
        assert_eq!(h[1].1, "\"anon\";r=0;t=60");
        let never = Decision {
            retry_after_us: u64::MAX,
            ..refused
        };
        assert_eq!(headers(&policy, &quota, &never).len(), 2);
    }
}
