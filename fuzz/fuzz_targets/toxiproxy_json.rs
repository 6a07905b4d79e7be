//! The fault proxy's API bodies (toxiproxy's JSON), parsed as the handlers
//! parse them: `POST /proxies`, `POST /populate`, `POST /proxies/{p}`,
//! `POST /proxies/{p}/toxics` and a toxic update on every toxic type.
//! Properties: every refusal is a 400 in toxiproxy's envelope (never a
//! 404, 409 or 5xx from a body); an accepted toxic is within its ranges
//! (toxicity 0 to 1, attributes bounded) and written back as JSON parses
//! to the same toxic; an accepted proxy has a name and an upstream.
#![no_main]

use chaos::proxy::{ApiError, ProxySpec, ProxyUpdate, ToxicKind, ToxicSpec};
use libfuzzer_sys::fuzz_target;

fn refused(e: &ApiError, data: &[u8]) {
    assert_eq!(e.status, 400, "{} for {:?}", e.message, String::from_utf8_lossy(data));
    assert_eq!(e.to_json()["status"], 400);
}

fuzz_target!(|data: &[u8]| {
    match ToxicSpec::from_json(data) {
        Ok(toxic) => {
            assert!((0.0..=1.0).contains(&toxic.toxicity));
            assert!(!toxic.name.is_empty());
            toxic.validate().expect("an accepted toxic is valid");
            let again = ToxicSpec::from_json(toxic.to_json().to_string().as_bytes())
                .unwrap_or_else(|e| panic!("written back, refused: {e}"));
            // serde_json may read a float back one ulp off.
            assert!((again.toxicity - toxic.toxicity).abs() <= 1e-12);
            assert_eq!((again.name, again.stream, again.kind), (toxic.name, toxic.stream, toxic.kind));
        }
        Err(e) => refused(&e, data),
    }
    let current = [
        ToxicKind::Latency { latency: 1, jitter: 0 },
        ToxicKind::Bandwidth { rate: 1 },
        ToxicKind::SlowClose { delay: 1 },
        ToxicKind::Timeout { timeout: 1 },
        ToxicKind::ResetPeer { timeout: 1 },
        ToxicKind::LimitData { bytes: 1 },
        ToxicKind::Slicer { average_size: 2, size_variation: 1, delay: 1 },
        ToxicKind::Blackhole,
    ];
    for kind in current {
        let toxic = ToxicSpec::new(kind);
        match toxic.updated(data) {
            Ok(next) => {
                next.validate().expect("an accepted update is valid");
                assert_eq!(next.kind.type_name(), toxic.kind.type_name());
                assert_eq!(next.name, toxic.name);
            }
            Err(e) => refused(&e, data),
        }
    }
    match ProxySpec::from_json(data) {
        Ok(p) => assert!(!p.name.is_empty() && !p.upstream.is_empty() && !p.listen.is_empty()),
        Err(e) => refused(&e, data),
    }
    match ProxySpec::list_from_json(data) {
        Ok(list) => assert!(list.iter().all(|p| !p.name.is_empty() && !p.upstream.is_empty())),
        Err(e) => refused(&e, data),
    }
    if let Err(e) = ProxyUpdate::from_json(data) {
        refused(&e, data);
    }
});
