//! `TargetUrl::parse` and the shortener's target policy: every link's
//! destination, sent back as a `Location` header.
//! Properties: an accepted URL is http(s), has a host, no credentials,
//! fits the size limit, is a valid header value and parses again to
//! itself; a shortener whose base URL is the target's own origin refuses
//! it as a redirect loop; a literal non-public host is refused when
//! private targets are off.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shortener::domain::{TargetPolicy, TargetRefusal, TargetUrl, MAX_URL_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = TargetUrl::parse(text) else {
        return;
    };
    let url = target.url();
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{url}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    assert!(target.as_str().len() <= MAX_URL_BYTES);
    assert!(
        http::HeaderValue::from_str(target.as_str()).is_ok(),
        "not a valid Location: {target}"
    );
    assert_eq!(TargetUrl::parse(target.as_str()).as_ref(), Ok(&target));

    let origin = url.origin().ascii_serialization();
    let own = TargetPolicy::new(&origin, true)
        .unwrap_or_else(|e| panic!("origin {origin} of an accepted target: {e}"));
    assert!(
        matches!(own.check(&target), Err(TargetRefusal::RedirectLoop(_))),
        "{target} is not a loop on {origin}"
    );

    let public = TargetPolicy::new("https://sho.rt", false).expect("valid base");
    let host = url.host().expect("checked above");
    let private = kit::net::is_private_literal(&host);
    match public.check(&target) {
        Err(TargetRefusal::PrivateAddress(_)) => assert!(private, "{target}"),
        Err(TargetRefusal::RedirectLoop(_)) => {
            assert!(url
                .host_str()
                .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case("sho.rt")))
        }
        Ok(()) => assert!(!private, "{target} passed a public shortener"),
    }
});
