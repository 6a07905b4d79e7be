use super::*;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn pools() -> Vec<PoolSpec> {
    vec![
        PoolSpec {
            name: "slugs".into(),
            capacity: 10,
        },
        PoolSpec {
            name: "orders".into(),
            capacity: 10,
        },
    ]
}

fn vars() -> BTreeMap<String, String> {
    BTreeMap::from([("api".to_string(), "/api/links".to_string())])
}

fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "s3cret \"quoted\"".to_string())
}

fn parse(text: &str, escaping: Escaping) -> Result<Template, TemplateError> {
    let pools = pools();
    let vars = vars();
    let scope = Scope {
        target: Some("http://127.0.0.1:8080"),
        vars: &vars,
        env: &env,
        pools: &pools,
    };
    Template::parse(text, escaping, &scope)
}

fn render(template: &Template, state: &State) -> Result<String, EmptyPool> {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut out = b"prefix:".to_vec();
    template.render(
        &mut Render {
            state,
            rng: &mut rng,
        },
        &mut out,
    )?;
    Ok(String::from_utf8(out).unwrap().split_off("prefix:".len()))
}

#[test]
fn the_files_own_placeholders_become_literal_text() {
    let template = parse(
        "{{ target }}{{vars.api}}?token={{env.TOKEN}}",
        Escaping::Url,
    )
    .unwrap();
    assert_eq!(
        template.as_literal(),
        Some("http://127.0.0.1:8080/api/links?token=s3cret \"quoted\"")
    );
    let state = State::new(&pools());
    assert_eq!(
        render(&template, &state).unwrap(),
        "http://127.0.0.1:8080/api/links?token=s3cret \"quoted\""
    );
    assert_eq!(Template::literal("x").as_literal(), Some("x"));
    assert_eq!(parse("", Escaping::Plain).unwrap().as_literal(), Some(""));
}

#[test]
fn pool_values_in_a_url_are_percent_encoded_and_the_target_is_not() {
    let template = parse("{{target}}/{{pool.slugs | hot(80%, 20%)}}", Escaping::Url).unwrap();
    assert_eq!(template.as_literal(), None);
    assert_eq!(template.literal_prefix(), "http://127.0.0.1:8080/");
    assert_eq!(template.pools().collect::<Vec<_>>(), vec![0]);
    let state = State::new(&pools());
    state.push(0, Bytes::from("a/b c"));
    assert_eq!(
        render(&template, &state).unwrap(),
        "http://127.0.0.1:8080/a%2Fb%20c"
    );
}

#[test]
fn an_empty_pool_is_reported_and_leaves_the_buffer_as_it_was() {
    let template = parse("{{target}}/{{pool.orders | take}}/confirm", Escaping::Url).unwrap();
    let state = State::new(&pools());
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = b"kept".to_vec();
    let result = template.render(
        &mut Render {
            state: &state,
            rng: &mut rng,
        },
        &mut out,
    );
    assert_eq!(
        result,
        Err(EmptyPool {
            pool: "orders".into()
        })
    );
    assert_eq!(out, b"kept");

    state.push(1, Bytes::from("o-1"));
    assert_eq!(
        render(&template, &state).unwrap(),
        "http://127.0.0.1:8080/o-1/confirm"
    );
    assert!(state.is_empty(1), "take removes the value");
}

#[test]
fn run_time_values_have_their_shape() {
    let state = State::new(&pools());
    let counter = parse("n={{counter}}", Escaping::Plain).unwrap();
    assert_eq!(render(&counter, &state).unwrap(), "n=1");
    assert_eq!(render(&counter, &state).unwrap(), "n=2");

    let uuid = render(&parse("{{uuid}}", Escaping::Plain).unwrap(), &state).unwrap();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, vec![8, 4, 4, 4, 12], "{uuid}");
    assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
    assert!(
        matches!(&uuid[19..20], "8" | "9" | "a" | "b"),
        "variant: {uuid}"
    );

    let int = parse("{{random.int(-3, 3)}}", Escaping::Plain).unwrap();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let mut out = Vec::new();
        int.render(
            &mut Render {
                state: &state,
                rng: &mut rng,
            },
            &mut out,
        )
        .unwrap();
        seen.insert(String::from_utf8(out).unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(seen, (-3..=3).collect(), "inclusive on both ends");

    let text = render(
        &parse("{{random.string(24)}}", Escaping::Url).unwrap(),
        &state,
    )
    .unwrap();
    assert_eq!(text.len(), 24);
    assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
}

#[test]
fn a_json_body_is_compact_ordered_and_escapes_what_it_substitutes() {
    let body: JsonBody = serde_json::from_str(
        r#"{"url": "https://example.com/{{pool.slugs}}", "token": "{{env.TOKEN}}", "n": 2, "tags": ["a", null, true]}"#,
    )
    .unwrap();
    let pools = pools();
    let vars = vars();
    let scope = Scope {
        target: None,
        vars: &vars,
        env: &env,
        pools: &pools,
    };
    let template = Template::json(&body, &scope).unwrap();
    let state = State::new(&pools);
    state.push(0, Bytes::from("quote\"and\\slash"));
    let text = render(&template, &state).unwrap();
    assert_eq!(
        text,
        r#"{"url":"https://example.com/quote\"and\\slash","token":"s3cret \"quoted\"","n":2,"tags":["a",null,true]}"#
    );
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["url"], "https://example.com/quote\"and\\slash");

    let literal: JsonBody = serde_json::from_str(r#"{"a": "{{vars.api}}"}"#).unwrap();
    let literal = Template::json(&literal, &scope).unwrap();
    assert_eq!(literal.as_literal(), Some(r#"{"a":"/api/links"}"#));
}

#[test]
fn header_values_keep_their_text_but_not_control_characters() {
    let template = parse("Bearer {{pool.slugs}}", Escaping::Plain).unwrap();
    let state = State::new(&pools());
    state.push(0, Bytes::from("a/b\r\nX-Injected: 1"));
    assert_eq!(
        render(&template, &state).unwrap(),
        "Bearer a/b%0D%0AX-Injected: 1"
    );
}

#[test]
fn errors_name_the_placeholder_and_the_reason() {
    let cases = [
        (
            "{{target}}/{{pool.links}}",
            "{{pool.links}}",
            "no pool named `links`",
        ),
        ("{{vars.nope}}", "{{vars.nope}}", "no var named `nope`"),
        ("{{env.UNSET}}", "{{env.UNSET}}", "`UNSET` is not set"),
        (
            "/{{ pool.slugs | zipf(-1) }}",
            "{{ pool.slugs | zipf(-1) }}",
            "positive",
        ),
        ("/a/{{uuid", "{{uuid", "without a closing"),
        ("{{bogus}}", "{{bogus}}", "unknown placeholder"),
    ];
    for (text, placeholder, reason) in cases {
        let error = parse(text, Escaping::Url).expect_err(text);
        assert_eq!(error.placeholder, placeholder, "{text}");
        assert!(error.message.contains(reason), "{text}: {error}");
        assert!(error.to_string().contains(placeholder), "{error}");
    }
    assert!(parse("{{pool.links}}", Escaping::Url)
        .unwrap_err()
        .message
        .contains("known: slugs, orders"));
}

#[test]
fn target_without_a_target_says_how_to_give_one() {
    let pools = pools();
    let vars = vars();
    let scope = Scope {
        target: None,
        vars: &vars,
        env: &env,
        pools: &pools,
    };
    let error = Template::parse("{{target}}/healthz", Escaping::Url, &scope).unwrap_err();
    assert!(error.message.contains("--target"), "{error}");
}
