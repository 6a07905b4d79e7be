//! The LLM gateway's request check: `openai::parse` on arbitrary bytes for
//! the endpoint the first byte picks (what `POST /v1/chat/completions`,
//! `/v1/completions` and `/v1/embeddings` run before routing), then
//! `Request::to_backend_body` with the cap and usage option the first byte
//! also picks; `response_usage` on the same bytes.
//! Properties: no panic; a refusal names a code and becomes an OpenAI
//! error envelope that is JSON and a stream event that reads back as an
//! error; an accepted request is within its bounds, and the body sent to
//! the backend parses again, to the same request but for exactly the
//! documented changes (model, include_usage, the cap), every other member
//! kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openai::request::{MAX_MODEL_BYTES, MAX_N, MAX_TOKENS_LIMIT};
use openai::{parse, response_usage, ApiError, Endpoint, Request, SseParser};
use serde_json::Value;

const BACKEND_MODEL: &str = "backend/model-1";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(selector % 3)];
    let cap = match (selector / 3) % 4 {
        0 => None,
        1 => Some(256),
        2 => Some(0),
        _ => Some(u64::MAX),
    };
    let force_usage = selector & 0x80 != 0;
    let _ = response_usage(body);

    let request = match parse(endpoint, body) {
        Ok(request) => request,
        Err(error) => return refused(&error),
    };
    assert!(!request.model().is_empty() && request.model().len() <= MAX_MODEL_BYTES);
    assert!((1..=MAX_N).contains(&request.n()));
    assert!(request
        .max_tokens()
        .is_none_or(|m| (1..=MAX_TOKENS_LIMIT).contains(&m)));
    assert!(!(endpoint == Endpoint::Embeddings && request.stream()));
    let estimate = request.estimated_prompt_tokens();
    assert!(request.reserved_tokens(1024) >= estimate);
    assert!(request.reserved_tokens(u64::MAX) >= estimate);

    let sent = request.to_backend_body(BACKEND_MODEL, cap, force_usage);
    let again = parse(endpoint, &sent).unwrap_or_else(|e| {
        panic!(
            "the backend body is refused ({e}): {}",
            String::from_utf8_lossy(&sent)
        )
    });
    assert_eq!(again.model(), BACKEND_MODEL);
    assert_eq!(again.stream(), request.stream());
    assert_eq!(again.n(), request.n());
    let exact = others_kept(&request, &again);
    if exact {
        // (Tool definitions count by their JSON's length, which a float
        // that moved by an ulp may change.)
        assert_eq!(again.prompt_size(), request.prompt_size());
        assert_eq!(again.estimated_prompt_tokens(), estimate);
    }
    let forced = force_usage && request.stream();
    assert_eq!(
        again.client_wants_usage(),
        request.client_wants_usage() || forced
    );
    let expected_max = match (endpoint, request.max_tokens(), cap) {
        (Endpoint::Embeddings, _, _) => None,
        (_, Some(max), _) => Some(max),
        (_, None, cap) => cap.map(|c| c.clamp(1, MAX_TOKENS_LIMIT)),
    };
    assert_eq!(again.max_tokens(), expected_max);

    // Sending it once more changes nothing.
    let twice = again.to_backend_body(BACKEND_MODEL, cap, force_usage);
    let twice: Value = serde_json::from_slice(&twice).expect("JSON");
    let once: Value = serde_json::from_slice(&sent).expect("JSON");
    assert!(same_json(&twice, &once, &mut true), "{twice} != {once}");
});

/// Every member but the ones the gateway may change is as the client sent
/// it; true when no float moved at all.
fn others_kept(request: &Request, again: &Request) -> bool {
    let changed = [
        "model",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
    ];
    let mut exact = true;
    for (key, value) in request.body() {
        if !changed.contains(&key.as_str()) {
            let after = again
                .body()
                .get(key)
                .unwrap_or_else(|| panic!("{key} dropped"));
            assert!(
                same_json(after, value, &mut exact),
                "{key}: {value} became {after}"
            );
        }
    }
    for key in again.body().keys() {
        assert!(
            request.body().contains_key(key) || changed.contains(&key.as_str()),
            "{key} added"
        );
    }
    // stream_options keep their other members.
    if let (Some(Value::Object(before)), Some(Value::Object(after))) = (
        request.body().get("stream_options"),
        again.body().get("stream_options"),
    ) {
        for (key, value) in before {
            if key != "include_usage" {
                let kept = after
                    .get(key)
                    .is_some_and(|a| same_json(a, value, &mut exact));
                assert!(kept, "stream_options.{key}");
            }
        }
    }
    exact
}

/// Equal JSON, but for floats within a few ulps: without serde_json's
/// `float_roundtrip` feature its parser may read back a written float one
/// ulp off. `exact` turns false when that happened.
fn same_json(a: &Value, b: &Value, exact: &mut bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x != y => {
            *exact = false;
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y, exact))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w, exact)))
        }
        _ => a == b,
    }
}

fn refused(error: &openai::RequestError) {
    let code = error.code();
    assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    assert!(error.param().is_none_or(|p| !p.is_empty()));
    let api = ApiError::from(error);
    let envelope: Value = serde_json::from_slice(&api.to_json()).expect("the envelope is JSON");
    assert_eq!(envelope["error"]["type"], "invalid_request_error");
    assert_eq!(envelope["error"]["code"], code);
    let mut parser = SseParser::new(1 << 20);
    parser.push(&api.to_sse_event());
    let event = parser
        .next_event()
        .expect("one event")
        .expect("well formed");
    assert!(openai::chunk_usage(&event.data).expect("a chunk").is_error);
    assert!(parser.finish().is_none());
}
