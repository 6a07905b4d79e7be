use super::*;

fn parse(body: &str) -> Result<ToxicSpec, ApiError> {
    ToxicSpec::from_json(body.as_bytes())
}

#[test]
fn defaults_follow_toxiproxy() {
    let t = parse(r#"{"type":"latency","attributes":{"latency":100}}"#).unwrap();
    assert_eq!(t.name, "latency_downstream");
    assert_eq!(t.stream, Stream::Downstream);
    assert_eq!(t.toxicity, 1.0);
    assert_eq!(
        t.kind,
        ToxicKind::Latency {
            latency: 100,
            jitter: 0
        }
    );
    let json = t.to_json();
    assert_eq!(json["attributes"]["jitter"], 0);
    assert_eq!(json["type"], "latency");
}

#[test]
fn every_type_parses_with_its_attributes() {
    let cases = [
        (
            r#"{"type":"bandwidth","attributes":{"rate":10}}"#,
            ToxicKind::Bandwidth { rate: 10 },
        ),
        (
            r#"{"type":"slow_close","attributes":{"delay":5}}"#,
            ToxicKind::SlowClose { delay: 5 },
        ),
        (
            r#"{"type":"timeout","attributes":{"timeout":0}}"#,
            ToxicKind::Timeout { timeout: 0 },
        ),
        (
            r#"{"type":"reset_peer","attributes":{}}"#,
            ToxicKind::ResetPeer { timeout: 0 },
        ),
        (
            r#"{"type":"limit_data","attributes":{"bytes":3}}"#,
            ToxicKind::LimitData { bytes: 3 },
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":8,"size_variation":2,"delay":10}}"#,
            ToxicKind::Slicer {
                average_size: 8,
                size_variation: 2,
                delay: 10,
            },
        ),
        (r#"{"type":"blackhole"}"#, ToxicKind::Blackhole),
    ];
    for (body, kind) in cases {
        assert_eq!(parse(body).unwrap().kind, kind, "{body}");
    }
}

#[test]
fn bad_toxics_are_refused_naming_the_field() {
    let cases = [
        (
            r#"{"type":"latency","attributes":{"latency":-1}}"#,
            "attributes.latency",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":1.5}}"#,
            "attributes.latency",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":"1"}}"#,
            "attributes.latency",
        ),
        (
            r#"{"type":"latency","attributes":{}}"#,
            "missing required field: attributes.latency",
        ),
        (
            r#"{"type":"latency","attributes":{"latency":1,"jiter":1}}"#,
            "attributes.jiter",
        ),
        (
            r#"{"type":"latency","toxicity":1.5,"attributes":{"latency":1}}"#,
            "toxicity",
        ),
        (
            r#"{"type":"latency","toxicity":-0.1,"attributes":{"latency":1}}"#,
            "toxicity",
        ),
        (r#"{"type":"nope"}"#, "invalid toxic type"),
        (r#"{"attributes":{}}"#, "missing required field: type"),
        (
            r#"{"type":"latency","stream":"sideways","attributes":{"latency":1}}"#,
            "stream was invalid",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":0}}"#,
            "average_size",
        ),
        (
            r#"{"type":"slicer","attributes":{"average_size":4,"size_variation":4}}"#,
            "size_variation",
        ),
        (r#"not json"#, "bad request body"),
        (r#"[1]"#, "bad request body"),
    ];
    for (body, want) in cases {
        let err = parse(body).unwrap_err();
        assert_eq!(err.status, 400, "{body}");
        assert!(err.message.contains(want), "{body}: {}", err.message);
    }
}

#[test]
fn an_update_keeps_what_it_does_not_give() {
    let t = parse(r#"{"type":"latency","toxicity":0.5,"attributes":{"latency":100,"jitter":10}}"#)
        .unwrap();
    let u = t.updated(br#"{"attributes":{"latency":500}}"#).unwrap();
    assert_eq!(
        u.kind,
        ToxicKind::Latency {
            latency: 500,
            jitter: 10
        }
    );
    assert_eq!(u.toxicity, 0.5);
    let u = t.updated(br#"{"toxicity":1}"#).unwrap();
    assert_eq!(u.toxicity, 1.0);
    assert_eq!(
        t.updated(br#"{"attributes":{"latency":-3}}"#)
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn builder_renames_a_default_name_with_the_stream() {
    let t = ToxicSpec::new(ToxicKind::Blackhole).upstream();
    assert_eq!(t.name, "blackhole_upstream");
    let t = ToxicSpec::new(ToxicKind::Blackhole).named("cut").upstream();
    assert_eq!(t.name, "cut");
    assert!(ToxicSpec::new(ToxicKind::Blackhole)
        .with_toxicity(2.0)
        .validate()
        .is_err());
}
