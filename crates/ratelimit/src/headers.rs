//! Response headers of the IETF "RateLimit header fields for HTTP" draft
//! (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy` names the
//! quota (`q` requests per `w` seconds), `RateLimit` the state after this
//! request (`r` remaining, `t` seconds until the quota is whole again), and
//! `Retry-After` on a refusal that waiting cures (not on one whose cost is
//! above the burst).

use crate::gcra::Decision;
use crate::Quota;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use std::borrow::Cow;

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// A policy name as the draft's structured-field string: lower-case
/// letters, digits, `-` and `_`, 1..=32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyName(Cow<'static, str>);

impl PolicyName {
    pub fn parse(name: &str) -> Option<Self> {
        is_policy_name(name).then(|| Self(Cow::Owned(name.to_string())))
    }

    /// [`PolicyName::parse`] for a name fixed in the code, without a copy
    /// (a limited request names its policy on every request).
    pub fn from_static(name: &'static str) -> Option<Self> {
        is_policy_name(name).then_some(Self(Cow::Borrowed(name)))
    }
}

fn is_policy_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// The headers for `decision` under `quota`.
///
/// Written digit by digit into one buffer: every request a limit applies
/// to gets two of these, and `format!` cost about 3,100 instructions of a
/// proxied request's 73,000 (issue 18).
pub fn headers(
    policy: &PolicyName,
    quota: &Quota,
    decision: &Decision,
) -> Vec<(HeaderName, HeaderValue)> {
    let window = ceil_secs(quota.emission_interval_us() * quota.burst()).max(1);
    let mut out = Vec::with_capacity(3);
    let mut text = String::with_capacity(64);
    let mut push = |name: HeaderName, text: &str| {
        if let Ok(value) = HeaderValue::from_str(text) {
            out.push((name, value));
        }
    };
    policy_item(&mut text, policy, "q", quota.burst(), "w", window);
    push(RATELIMIT_POLICY, &text);
    text.clear();
    policy_item(
        &mut text,
        policy,
        "r",
        decision.remaining,
        "t",
        ceil_secs(decision.reset_us),
    );
    push(RATELIMIT, &text);
    if !decision.allowed && !decision.exceeds_burst() {
        text.clear();
        kit::text::push_decimal(&mut text, ceil_secs(decision.retry_after_us).max(1));
        push(RETRY_AFTER, &text);
    }
    out
}

/// `"<policy>";<a>=<x>;<b>=<y>`
fn policy_item(out: &mut String, policy: &PolicyName, a: &str, x: u64, b: &str, y: u64) {
    out.push('"');
    out.push_str(&policy.0);
    out.push_str("\";");
    out.push_str(a);
    out.push('=');
    kit::text::push_decimal(out, x);
    out.push(';');
    out.push_str(b);
    out.push('=');
    kit::text::push_decimal(out, y);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_structured_field_safe() {
        assert!(PolicyName::parse("anon").is_some());
        assert!(PolicyName::parse("per-key_2").is_some());
        assert_eq!(PolicyName::from_static("anon"), PolicyName::parse("anon"));
        assert!(PolicyName::from_static("Anon").is_none());
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

    #[test]
    fn decimals_are_written_whole() {
        for n in [0, 7, 10, 299, 1_000_000, u64::MAX] {
            let mut text = String::new();
            kit::text::push_decimal(&mut text, n);
            assert_eq!(text, n.to_string());
        }
    }
}
