//! The rate-limit quota notation (`300/min,burst=300`), read from the
//! gateway's config and from every API key's stored rate.
//! Properties: an accepted quota is within bounds, its GCRA numbers do not
//! overflow, and its canonical form parses back to the same quota.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ratelimit::Quota;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(quota) = text.parse::<Quota>() else {
        return;
    };
    assert!((1..=1_000_000).contains(&quota.rate()), "{text}");
    assert!((1..=1_000_000).contains(&quota.burst()), "{text}");
    assert!(quota.emission_interval_us() > 0, "{text}");
    let _ = quota.tolerance_us();
    let canonical = quota.to_string();
    assert_eq!(
        canonical.parse::<Quota>(),
        Ok(quota),
        "{text} -> {canonical}"
    );
});
