use super::*;
use serde_json::json;

fn chat(body: Value) -> Result<Request, RequestError> {
    parse(Endpoint::ChatCompletions, body.to_string().as_bytes())
}

/// A valid chat body with `key` set to `value` (null included).
fn chat_with(key: &str, value: Value) -> Result<Request, RequestError> {
    let mut body = json!({"model": "llama", "messages": [{"role": "user", "content": "hi"}]});
    body[key] = value;
    chat(body)
}

/// The refusal's param and code.
fn refusal(result: Result<Request, RequestError>) -> (Option<String>, &'static str) {
    let error = result.expect_err("refused");
    assert!(!error.to_string().is_empty());
    (error.param(), error.code())
}

fn p(param: &str) -> Option<String> {
    Some(param.to_string())
}

#[test]
fn a_minimal_chat_request_parses_with_defaults() {
    let request = chat_with("user", json!("u-1")).unwrap();
    assert_eq!(request.endpoint(), Endpoint::ChatCompletions);
    assert_eq!(request.model(), "llama");
    assert!(!request.stream());
    assert!(!request.client_wants_usage());
    assert_eq!(request.max_tokens(), None);
    assert_eq!(request.n(), 1);
    assert_eq!(request.body()["user"], "u-1");
    assert_eq!(
        request.prompt_size(),
        PromptSize {
            text_bytes: 2,
            messages: 1,
            prompts: 1,
            ..PromptSize::default()
        }
    );
}

#[test]
fn bodies_that_are_not_json_objects_are_refused() {
    for body in [
        &b""[..],
        b"{",
        b"not json",
        b"{\"model\": \"m\",}",
        b"\xff\xfe",
        b"{} {}",
    ] {
        let (param, code) = refusal(parse(Endpoint::ChatCompletions, body));
        assert_eq!((param, code), (None, "invalid_json"), "{body:?}");
    }
    for body in [
        &b"[]"[..],
        b"[{\"model\":\"m\"}]",
        b"\"text\"",
        b"42",
        b"null",
        b"true",
    ] {
        let (param, code) = refusal(parse(Endpoint::Completions, body));
        assert_eq!((param, code), (None, "invalid_type"), "{body:?}");
    }
}

#[test]
fn deeply_nested_garbage_is_refused_without_overflowing_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        refusal(parse(Endpoint::Embeddings, deep.as_bytes())).1,
        "invalid_json"
    );
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{}1{}}}"#,
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    assert_eq!(
        refusal(parse(Endpoint::ChatCompletions, deep.as_bytes())).1,
        "invalid_json"
    );
}

#[test]
fn the_model_must_be_a_short_clean_non_empty_string() {
    assert_eq!(
        refusal(chat(json!({"messages": []}))),
        (p("model"), "missing_model")
    );
    assert_eq!(
        refusal(chat_with("model", json!(null))),
        (p("model"), "missing_model")
    );
    assert_eq!(
        refusal(chat_with("model", json!(""))),
        (p("model"), "missing_model")
    );
    assert_eq!(
        refusal(chat_with("model", json!(7))),
        (p("model"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("model", json!(["a"]))),
        (p("model"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("model", json!("m".repeat(257)))),
        (p("model"), "string_above_max_length")
    );
    assert_eq!(
        refusal(chat_with("model", json!("a\nb"))),
        (p("model"), "invalid_value")
    );
    assert_eq!(
        refusal(chat_with("model", json!("a\u{0}"))),
        (p("model"), "invalid_value")
    );
    assert_eq!(
        chat_with("model", json!("m".repeat(256)))
            .unwrap()
            .model()
            .len(),
        256
    );
    assert_eq!(
        chat_with("model", json!("org/Llama-3.1:8b é"))
            .unwrap()
            .model(),
        "org/Llama-3.1:8b é"
    );
}

#[test]
fn stream_and_its_options_are_typed() {
    assert!(chat_with("stream", json!(true)).unwrap().stream());
    assert!(!chat_with("stream", json!(null)).unwrap().stream());
    assert_eq!(
        refusal(chat_with("stream", json!("true"))),
        (p("stream"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("stream", json!(1))),
        (p("stream"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("stream_options", json!("include_usage"))),
        (p("stream_options"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("stream_options", json!([true]))),
        (p("stream_options"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("stream_options", json!({"include_usage": "yes"}))),
        (p("stream_options.include_usage"), "invalid_type")
    );
    let request = chat_with("stream_options", json!({"include_usage": true, "x": 1})).unwrap();
    assert!(request.client_wants_usage());
    assert!(!chat_with("stream_options", json!({}))
        .unwrap()
        .client_wants_usage());
    assert!(!chat_with("stream_options", json!(null))
        .unwrap()
        .client_wants_usage());
}

#[test]
fn token_limits_are_integers_from_one_to_u32_max() {
    for key in ["max_tokens", "max_completion_tokens"] {
        assert_eq!(chat_with(key, json!(100)).unwrap().max_tokens(), Some(100));
        assert_eq!(
            chat_with(key, json!(u32::MAX)).unwrap().max_tokens(),
            Some(u32::MAX as u64)
        );
        assert_eq!(chat_with(key, json!(null)).unwrap().max_tokens(), None);
        let cases = [
            (json!(-1), "integer_below_min_value"),
            (json!(0), "integer_below_min_value"),
            (json!(i64::MIN), "integer_below_min_value"),
            (json!(1.5), "invalid_type"),
            (json!(5.0), "invalid_type"),
            (json!("100"), "invalid_type"),
            (json!(true), "invalid_type"),
            (json!([100]), "invalid_type"),
            (json!(u32::MAX as u64 + 1), "integer_above_max_value"),
            (json!(u64::MAX), "integer_above_max_value"),
            (json!(1e30), "integer_above_max_value"),
        ];
        for (value, code) in cases {
            assert_eq!(
                refusal(chat_with(key, value.clone())),
                (p(key), code),
                "{key}: {value}"
            );
        }
    }
    let huge = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100000000000000000000000}"#;
    assert_eq!(
        refusal(parse(Endpoint::ChatCompletions, huge)),
        (p("max_tokens"), "integer_above_max_value")
    );
}

#[test]
fn both_token_limits_must_agree() {
    let body = |a: u64, b: u64| {
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "max_completion_tokens": a, "max_tokens": b})
    };
    assert_eq!(chat(body(64, 64)).unwrap().max_tokens(), Some(64));
    assert_eq!(
        refusal(chat(body(64, 65))),
        (p("max_tokens"), "invalid_value")
    );
}

#[test]
fn n_is_from_one_to_128() {
    assert_eq!(chat_with("n", json!(128)).unwrap().n(), 128);
    assert_eq!(
        refusal(chat_with("n", json!(0))),
        (p("n"), "integer_below_min_value")
    );
    assert_eq!(
        refusal(chat_with("n", json!(-3))),
        (p("n"), "integer_below_min_value")
    );
    assert_eq!(
        refusal(chat_with("n", json!(129))),
        (p("n"), "integer_above_max_value")
    );
    assert_eq!(
        refusal(chat_with("n", json!("2"))),
        (p("n"), "invalid_type")
    );
}

#[test]
fn messages_are_a_non_empty_bounded_list_of_objects_with_known_roles() {
    assert_eq!(
        refusal(chat(json!({"model": "m"}))),
        (p("messages"), "missing_required_parameter")
    );
    assert_eq!(
        refusal(chat_with("messages", json!("hi"))),
        (p("messages"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("messages", json!({"role": "user"}))),
        (p("messages"), "invalid_type")
    );
    assert_eq!(
        refusal(chat_with("messages", json!([]))),
        (p("messages"), "empty_array")
    );
    let many: Vec<Value> = (0..=MAX_MESSAGES)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    assert_eq!(
        refusal(chat_with("messages", json!(many))),
        (p("messages"), "array_above_max_length")
    );
    let ok = json!({"role": "user", "content": "x"});
    let cases = [
        (json!("hi"), "messages[1]", "invalid_type"),
        (
            json!({"content": "x"}),
            "messages[1].role",
            "missing_required_parameter",
        ),
        (
            json!({"role": 7, "content": "x"}),
            "messages[1].role",
            "invalid_type",
        ),
        (
            json!({"role": ["user"], "content": "x"}),
            "messages[1].role",
            "invalid_type",
        ),
        (
            json!({"role": "wizard", "content": "x"}),
            "messages[1].role",
            "invalid_value",
        ),
        (
            json!({"role": "User", "content": "x"}),
            "messages[1].role",
            "invalid_value",
        ),
        (
            json!({"role": "user"}),
            "messages[1].content",
            "missing_required_parameter",
        ),
        (
            json!({"role": "user", "content": null}),
            "messages[1].content",
            "missing_required_parameter",
        ),
        (
            json!({"role": "user", "content": 7}),
            "messages[1].content",
            "invalid_type",
        ),
        (
            json!({"role": "user", "content": {"type": "text"}}),
            "messages[1].content",
            "invalid_type",
        ),
        (
            json!({"role": "user", "content": ["x"]}),
            "messages[1].content[0]",
            "invalid_type",
        ),
        (
            json!({"role": "user", "content": [{"text": "x"}]}),
            "messages[1].content[0].type",
            "missing_required_parameter",
        ),
        (
            json!({"role": "user", "content": [{"type": 1}]}),
            "messages[1].content[0].type",
            "invalid_type",
        ),
        (
            json!({"role": "user", "content": [{"type": "text"}]}),
            "messages[1].content[0].text",
            "missing_required_parameter",
        ),
        (
            json!({"role": "user", "content": [{"type": "text", "text": 5}]}),
            "messages[1].content[0].text",
            "invalid_type",
        ),
    ];
    for (message, param, code) in cases {
        let result = chat_with("messages", json!([ok, message]));
        assert_eq!(refusal(result), (p(param), code), "{message}");
    }
}

#[test]
fn every_role_and_content_shape_is_accepted_and_counted() {
    let messages = json!([
        {"role": "system", "content": "abc"},
        {"role": "developer", "content": "abc"},
        {"role": "user", "content": [
            {"type": "text", "text": "abcdef"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]},
        {"role": "assistant"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"role": "tool", "tool_call_id": "c", "content": "42"},
        {"role": "function", "name": "f", "content": "42"}
    ]);
    let request = chat_with("messages", messages).unwrap();
    let tool_calls = r#"[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]"#;
    let size = request.prompt_size();
    assert_eq!(size.messages, 8);
    assert_eq!(size.media_parts, 2);
    assert_eq!(
        size.text_bytes,
        3 + 3 + 6 + tool_calls.len() as u64 + 2 + 2 + 1 + 2
    );
}

#[test]
fn completions_and_embeddings_take_every_prompt_shape() {
    let cases = [
        (json!("hello"), 5, 0, 1),
        (json!(["ab", "cde"]), 5, 0, 2),
        (json!([1, 2, 3]), 0, 3, 1),
        (json!([[1, 2], [3], []]), 0, 3, 3),
    ];
    for (endpoint, key) in [
        (Endpoint::Completions, "prompt"),
        (Endpoint::Embeddings, "input"),
    ] {
        for (prompt, text_bytes, token_ids, prompts) in &cases {
            let body = json!({"model": "m", key: prompt});
            let request = parse(endpoint, body.to_string().as_bytes()).unwrap();
            let size = request.prompt_size();
            assert_eq!(
                (size.text_bytes, size.token_ids, size.prompts),
                (*text_bytes, *token_ids, *prompts),
                "{prompt}"
            );
        }
    }
}

#[test]
fn bad_prompts_name_the_element_at_fault() {
    let cases = [
        (json!(null), "prompt", "missing_required_parameter"),
        (json!(7), "prompt", "invalid_type"),
        (json!({"text": "x"}), "prompt", "invalid_type"),
        (json!([]), "prompt", "empty_array"),
        (json!([true]), "prompt[0]", "invalid_type"),
        (json!(["a", 1]), "prompt[1]", "invalid_type"),
        (json!([1, "a"]), "prompt[1]", "invalid_type"),
        (json!([1, -1]), "prompt[1]", "integer_below_min_value"),
        (json!([1, 2.5]), "prompt[1]", "invalid_type"),
        (
            json!([1, 4294967296u64]),
            "prompt[1]",
            "integer_above_max_value",
        ),
        (json!([[1], 2]), "prompt[1]", "invalid_type"),
        (json!([[1], [2, "x"]]), "prompt[1][1]", "invalid_type"),
        (
            json!(vec!["a"; MAX_PROMPTS + 1]),
            "prompt",
            "array_above_max_length",
        ),
    ];
    for (prompt, param, code) in cases {
        let body = json!({"model": "m", "prompt": prompt});
        let result = parse(Endpoint::Completions, body.to_string().as_bytes());
        assert_eq!(refusal(result), (p(param), code), "{prompt}");
    }
    let body = json!({"model": "m"});
    let result = parse(Endpoint::Embeddings, body.to_string().as_bytes());
    assert_eq!(refusal(result), (p("input"), "missing_required_parameter"));
    // A long prompt of token ids is one prompt, not a batch.
    let body = json!({"model": "m", "input": vec![1; MAX_PROMPTS + 1]});
    assert!(parse(Endpoint::Embeddings, body.to_string().as_bytes()).is_ok());
}

#[test]
fn embeddings_cannot_stream() {
    let body = json!({"model": "m", "input": "x", "stream": true});
    let result = parse(Endpoint::Embeddings, body.to_string().as_bytes());
    assert_eq!(refusal(result), (p("stream"), "invalid_value"));
    let body = json!({"model": "m", "input": "x", "stream": false, "max_tokens": "ignored"});
    let request = parse(Endpoint::Embeddings, body.to_string().as_bytes()).unwrap();
    assert_eq!((request.max_tokens(), request.n()), (None, 1));
}

#[test]
fn the_estimate_and_the_reservation_follow_the_documented_formula() {
    // 10 bytes of text -> 4 tokens; 2 messages -> 8; priming 3.
    let request = chat_with(
        "messages",
        json!([{"role": "system", "content": "abcde"}, {"role": "user", "content": "fghij"}]),
    )
    .unwrap();
    assert_eq!(request.estimated_prompt_tokens(), 4 + 8 + 3);
    assert_eq!(request.reserved_tokens(100), 15 + 100);

    let body = json!({"model": "m", "messages": [{"role": "user", "content": "abc"}],
                      "max_tokens": 10, "n": 3});
    let request = chat(body).unwrap();
    assert_eq!(request.estimated_prompt_tokens(), 1 + 4 + 3);
    assert_eq!(request.reserved_tokens(100), 8 + 30);

    // A completions batch: n choices for each of its prompts.
    let body = json!({"model": "m", "prompt": [[1, 2], [3]], "max_tokens": 5, "n": 2});
    let request = parse(Endpoint::Completions, body.to_string().as_bytes()).unwrap();
    assert_eq!(request.estimated_prompt_tokens(), 3);
    assert_eq!(request.reserved_tokens(100), 3 + 5 * 2 * 2);

    // Embeddings produce no tokens.
    let body = json!({"model": "m", "input": "abcdefg"});
    let request = parse(Endpoint::Embeddings, body.to_string().as_bytes()).unwrap();
    assert_eq!(request.estimated_prompt_tokens(), 3);
    assert_eq!(request.reserved_tokens(100), 3);

    // Saturates rather than overflows.
    let body = json!({"model": "m", "prompt": "x", "n": 128});
    let request = parse(Endpoint::Completions, body.to_string().as_bytes()).unwrap();
    assert_eq!(request.reserved_tokens(u64::MAX), u64::MAX);
}

fn backend(request: &Request, cap: Option<u64>, force_usage: bool) -> Value {
    let body = request.to_backend_body("backend-model", cap, force_usage);
    let value: Value = serde_json::from_slice(&body).expect("the backend body is JSON");
    // And it is a valid request again.
    parse(request.endpoint(), &body).expect("the backend body parses");
    value
}

#[test]
fn the_backend_body_keeps_everything_but_the_model() {
    let body = json!({"model": "alias", "messages": [{"role": "user", "content": "hi", "x-extra": [1, {"a": null}]}],
                      "temperature": 0.2, "guided_json": {"type": "object"}, "seed": 7,
                      "max_tokens": 12, "stream": false});
    let request = chat(body.clone()).unwrap();
    let mut expected = body;
    expected["model"] = json!("backend-model");
    assert_eq!(backend(&request, Some(500), true), expected);
    assert_eq!(backend(&request, None, false), expected);
}

#[test]
fn include_usage_is_forced_on_streams_and_other_options_kept() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                      "stream_options": {"include_usage": false, "continuous_usage_stats": true}});
    let request = chat(body.clone()).unwrap();
    let sent = backend(&request, None, true);
    assert_eq!(
        sent["stream_options"],
        json!({"include_usage": true, "continuous_usage_stats": true})
    );
    assert_eq!(sent["stream"], json!(true));
    // Not forced: untouched.
    assert_eq!(
        backend(&request, None, false)["stream_options"],
        body["stream_options"]
    );
    // Absent or null options are created.
    for options in [None, Some(json!(null))] {
        let mut body =
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
        if let Some(options) = options {
            body["stream_options"] = options;
        }
        let sent = backend(&chat(body).unwrap(), None, true);
        assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    }
    // Not a stream: nothing to force.
    let request = chat_with("temperature", json!(1)).unwrap();
    assert!(backend(&request, None, true)
        .get("stream_options")
        .is_none());
}

#[test]
fn the_cap_fills_a_missing_limit_under_the_clients_key() {
    let request = chat_with("temperature", json!(1)).unwrap();
    let sent = backend(&request, Some(256), false);
    assert_eq!(sent["max_tokens"], json!(256));
    assert!(sent.get("max_completion_tokens").is_none());
    // The client named max_completion_tokens (as null): the cap goes there.
    let request = chat_with("max_completion_tokens", json!(null)).unwrap();
    let sent = backend(&request, Some(256), false);
    assert_eq!(sent["max_completion_tokens"], json!(256));
    assert!(sent.get("max_tokens").is_none());
    // A client's own limit is never changed, even above the cap.
    let request = chat_with("max_completion_tokens", json!(4096)).unwrap();
    let sent = backend(&request, Some(256), false);
    assert_eq!(sent["max_completion_tokens"], json!(4096));
    assert!(sent.get("max_tokens").is_none());
    // Clamped into range.
    assert_eq!(
        backend(&chat_with("x", json!(1)).unwrap(), Some(0), false)["max_tokens"],
        json!(1)
    );
    assert_eq!(
        backend(&chat_with("x", json!(1)).unwrap(), Some(u64::MAX), false)["max_tokens"],
        json!(u32::MAX)
    );
    // Completions take the cap under max_tokens, embeddings never.
    let body = json!({"model": "m", "prompt": "x"});
    let request = parse(Endpoint::Completions, body.to_string().as_bytes()).unwrap();
    assert_eq!(backend(&request, Some(9), false)["max_tokens"], json!(9));
    let body = json!({"model": "m", "input": "x"});
    let request = parse(Endpoint::Embeddings, body.to_string().as_bytes()).unwrap();
    assert!(backend(&request, Some(9), true).get("max_tokens").is_none());
}
