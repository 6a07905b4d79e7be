//! Scenario files through the public `compile`: what a person writes, the
//! plan the engine gets, and every refusal naming its line and field.

use reliable_load::plan::{Executor, Plan, Stage, StatusSet};
use reliable_load::scenario::{
    compile, compile_with_env, CaptureSource, CheckKind, CompileOptions, KeyChoice, ScenarioError,
};
use std::time::Duration;

fn options() -> CompileOptions {
    CompileOptions {
        target: Some("http://127.0.0.1:8080/".parse().unwrap()),
    }
}

/// The environment the tests compile against.
fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "t0k".to_string())
}

fn compile_here(text: &str) -> Result<Plan, ScenarioError> {
    compile_with_env(text, &options(), &env)
}

fn compiled(text: &str) -> Plan {
    compile_here(text).unwrap_or_else(|e| panic!("does not compile: {e}"))
}

/// Compiles `text`, expecting a refusal at `line` naming `path`.
fn refused(text: &str, line: usize, path: &str) -> ScenarioError {
    let error = match compile_here(text) {
        Ok(_) => panic!("compiled, but should refuse at line {line} ({path})"),
        Err(error) => error,
    };
    assert_eq!(error.line, line, "wrong line: {error}");
    assert_eq!(error.path, path, "wrong path: {error}");
    let message = error.to_string();
    assert!(message.contains(&format!("line {line}")), "{message}");
    assert!(message.contains(path), "{message}");
    error
}

const MINIMAL: &str = r#"
scenarios:
  tight:
    executor: constant-arrival-rate
    rate: 200            # per second
    duration: 3s
    requests:
      - name: health
        method: GET
        url: "{{target}}/healthz"
thresholds:
  "http_req_duration": ["p(50) < 0.001ms"]   # cannot hold: exit code 99
"#;

#[test]
fn the_minimal_file_of_the_issue_compiles() {
    let plan = compiled(MINIMAL);
    assert_eq!(plan.scenarios.len(), 1);
    let tight = &plan.scenarios[0];
    assert_eq!(tight.name, "tight");
    assert_eq!(
        tight.executor,
        Executor::ConstantArrivalRate {
            rate: 200.0,
            duration: Duration::from_secs(3)
        }
    );
    assert_eq!(tight.start, Duration::ZERO);
    assert_eq!(tight.connections, 64);
    assert_eq!(tight.requests.len(), 1);
    let health = &tight.requests[0];
    assert_eq!(health.name, "health");
    assert_eq!(health.method, http::Method::GET);
    assert_eq!(
        health.url.as_literal(),
        Some("http://127.0.0.1:8080/healthz")
    );
    assert_eq!(health.weight, 1);
    assert_eq!(health.timeout, Duration::from_secs(5));
    assert_eq!(health.expect_status, StatusSet::default());
    assert!(health.body.is_none() && health.captures.is_empty() && health.checks.is_empty());
    assert_eq!(plan.thresholds.len(), 1);
    assert_eq!(plan.thresholds[0].key, "http_req_duration");
    assert_eq!(plan.thresholds[0].expression, "p(50) < 0.001ms");
    assert!(plan.setup.is_empty() && plan.teardown.is_empty() && plan.pools.is_empty());
    assert_eq!(plan.dau, None);
}

const FULL: &str = include_str!("scenario_full.yaml");

#[test]
fn a_full_file_compiles_to_the_expected_plan() {
    let plan = compiled(FULL);

    assert_eq!(plan.pools.len(), 1);
    assert_eq!(plan.pools[0].name, "slugs");
    assert_eq!(plan.pools[0].capacity, 100_000);
    let dau = plan.dau.as_deref().unwrap();
    assert!(
        dau.starts_with("1,000 users x 5/day = 5,000 writes/day"),
        "{dau}"
    );

    assert_eq!(plan.setup.len(), 1);
    let setup = &plan.setup[0];
    assert_eq!((setup.repeat, setup.concurrency), (1000, 16));
    let create = &setup.request;
    assert_eq!(create.name, "create-link");
    assert_eq!(create.method, http::Method::POST);
    assert_eq!(
        create.url.as_literal(),
        Some("http://127.0.0.1:8080/api/links")
    );
    assert_eq!(create.expect_status, StatusSet(vec![(201, 201)]));
    assert_eq!(create.weight, 0);
    let body = create.body.as_ref().unwrap();
    assert_eq!(
        body.as_literal(),
        None,
        "random.string is rendered per request"
    );
    assert!(body
        .literal_prefix()
        .starts_with(r#"{"url":"https://example.com/"#));
    assert_eq!(create.captures.len(), 1);
    assert_eq!(create.captures[0].pool, 0);
    assert_eq!(
        create.captures[0].source,
        CaptureSource::JsonPointer("/slug".into())
    );
    assert_eq!(create.captures[0].label, "slugs <- json /slug");
    assert!(create.needs_body());
    let header_names: Vec<&str> = create.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(header_names, vec!["accept", "content-type"]);
    assert_eq!(create.headers[1].1.as_literal(), Some("application/json"));
    assert_eq!(create.timeout, Duration::from_secs(5));

    let names: Vec<&str> = plan.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["baseline", "viral", "ramp", "closed"]);
    let [baseline, viral, ramp, closed] = &plan.scenarios[..] else {
        panic!("four scenarios");
    };

    assert_eq!(
        baseline.executor,
        Executor::ConstantArrivalRate {
            rate: 21.0,
            duration: Duration::from_secs(60)
        }
    );
    assert_eq!((baseline.start, baseline.connections), (Duration::ZERO, 32));
    assert!(!baseline.http2 && !baseline.insecure_tls);
    let weights: Vec<(&str, u32)> = baseline
        .requests
        .iter()
        .map(|r| (r.name.as_str(), r.weight))
        .collect();
    assert_eq!(weights, vec![("create", 1), ("redirect", 100)]);
    let redirect = &baseline.requests[1];
    assert_eq!(redirect.url.literal_prefix(), "http://127.0.0.1:8080/");
    assert_eq!(redirect.url.pools().collect::<Vec<_>>(), vec![0]);
    let checks: Vec<(&str, &CheckKind)> = redirect
        .checks
        .iter()
        .map(|c| (c.name.as_str(), &c.kind))
        .collect();
    assert_eq!(
        checks[0],
        (
            "is redirect",
            &CheckKind::StatusIn(vec![301, 302, 307, 308])
        )
    );
    assert_eq!(
        checks[1],
        (
            "has location",
            &CheckKind::HeaderPresent(http::header::LOCATION)
        )
    );
    assert_eq!(
        checks[2],
        (
            "ok body",
            &CheckKind::JsonEquals {
                pointer: "/status".into(),
                value: serde_json::json!("ok")
            }
        )
    );
    let token = redirect
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap();
    assert_eq!(token.1.as_literal(), Some("Bearer t0k"));

    // 25 x viral (5,000/86,400 x 100 writes, x101 with reads).
    let expected_viral = 25.0 * 5_000.0 / 86_400.0 * 100.0 * 101.0;
    match &viral.executor {
        Executor::ConstantArrivalRate { rate, duration } => {
            assert!((rate - expected_viral).abs() < 1e-6, "{rate}");
            assert_eq!(*duration, Duration::from_secs(10));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        viral.start,
        Duration::ZERO,
        "start_time 0s runs it beside baseline"
    );
    assert!(viral.http2);
    assert_eq!(viral.warmup, Duration::from_secs(2));

    assert_eq!(
        ramp.start,
        Duration::from_secs(60),
        "after everything before it"
    );
    assert_eq!(
        ramp.executor,
        Executor::RampingArrivalRate {
            start_rate: 10.0,
            stages: vec![
                Stage {
                    target: 100.0,
                    duration: Duration::from_secs(30)
                },
                Stage {
                    target: 100.0,
                    duration: Duration::from_secs(60)
                },
            ]
        }
    );
    assert_eq!(closed.start, Duration::from_secs(150));
    assert_eq!(
        closed.executor,
        Executor::ConstantConnections {
            duration: Duration::from_secs(10)
        }
    );
    assert_eq!(closed.connections, 64);
    assert_eq!(
        closed.requests[0].expect_status,
        StatusSet(vec![(200, 299), (404, 404)])
    );

    assert_eq!(plan.teardown.len(), 1);
    assert_eq!(plan.teardown[0].request.method, http::Method::DELETE);
    assert_eq!(
        plan.teardown[0].request.url.pools().collect::<Vec<_>>(),
        vec![0]
    );

    let thresholds: Vec<(&str, &str, bool)> = plan
        .thresholds
        .iter()
        .map(|t| (t.key.as_str(), t.expression.as_str(), t.abort_on_fail))
        .collect();
    assert_eq!(
        thresholds,
        vec![
            ("http_req_duration", "p(99) < 25ms", false),
            ("http_req_duration", "p(50) < 5ms", false),
            ("http_req_duration{name:redirect}", "p(99) < 25ms", false),
            ("http_req_duration{scenario:viral}", "p(99) < 50ms", true),
            ("errors", "rate < 0.1%", false),
            ("checks", "rate > 99.9%", false),
            ("dropped", "count == 0", false),
        ]
    );
    assert_eq!(plan.thresholds[3].delay_abort_eval, Duration::from_secs(10));
}

#[test]
fn key_choices_reach_the_plan() {
    let plan = compiled(FULL);
    // The hot set is visible through rendering: 80% of picks to the first 20%.
    let state = reliable_load::scenario::State::new(&plan.pools);
    for i in 0..100 {
        state.push(0, bytes::Bytes::from(format!("k{i:02}")));
    }
    let redirect = &plan.scenarios[0].requests[1];
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(9);
    let mut hot = 0;
    for _ in 0..10_000 {
        let mut out = Vec::new();
        let mut render = reliable_load::scenario::Render {
            state: &state,
            rng: &mut rng,
        };
        redirect.url.render(&mut render, &mut out).unwrap();
        let key: usize = std::str::from_utf8(&out)
            .unwrap()
            .rsplit('k')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if key < 20 {
            hot += 1;
        }
    }
    assert!(
        (7_600..8_400).contains(&hot),
        "{hot} of 10000 to the hot 20%"
    );
    assert_eq!(
        KeyChoice::HotSet {
            traffic: 0.8,
            keys: 0.2
        },
        KeyChoice::HotSet {
            traffic: 0.8,
            keys: 0.2
        }
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duraton: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    let error = refused(text, 4, "scenarios.s.duraton");
    assert!(error.message.contains("duraton"), "{error}");
}

#[test]
fn an_unknown_key_in_a_request_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}/\"\n        wieght: 3\n";
    let error = refused(text, 8, "scenarios.s.requests[0].wieght");
    assert!(error.message.contains("wieght"), "{error}");
}

#[test]
fn a_placeholder_naming_a_missing_pool_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}/{{pool.links}}\"\n";
    let error = refused(text, 7, "scenarios.s.requests[0].url");
    assert!(error.message.contains("no pool named `links`"), "{error}");
}

#[test]
fn a_placeholder_naming_a_missing_var_is_refused() {
    let text = "vars: {api: /api}\nscenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}{{vars.apj}}\"\n";
    let error = refused(text, 8, "scenarios.s.requests[0].url");
    assert!(error.message.contains("no var named `apj`"), "{error}");
}

#[test]
fn all_weights_zero_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - {name: a, url: \"{{target}}/\", weight: 0}\n      - {name: b, url: \"{{target}}/\", weight: 0}\n";
    let error = refused(text, 5, "scenarios.s.requests");
    assert!(error.message.contains("every weight is 0"), "{error}");
}

#[test]
fn a_rate_of_zero_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 0\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    let error = refused(text, 3, "scenarios.s.rate");
    assert!(error.message.contains("more than zero"), "{error}");
}

#[test]
fn a_negative_rate_is_refused() {
    let text = "scenarios:\n  s:\n    rate: -5\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    let error = refused(text, 3, "scenarios.s.rate");
    assert!(error.message.contains("-5"), "{error}");
}

#[test]
fn a_dau_rate_without_a_dau_section_is_refused() {
    let text = "scenarios:\n  s:\n    rate: dau.peak\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    let error = refused(text, 3, "scenarios.s.rate");
    assert!(error.message.contains("needs a `dau:` section"), "{error}");
}

#[test]
fn a_stage_without_duration_is_refused() {
    let text = "scenarios:\n  r:\n    executor: ramping-arrival-rate\n    stages:\n      - {target: 10, duration: 5s}\n      - {target: 20}\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    let error = refused(text, 6, "scenarios.r.stages[1]");
    assert!(error.message.contains("duration"), "{error}");
}

#[test]
fn a_threshold_that_does_not_parse_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\nthresholds:\n  http_req_duration:\n    - \"p(99) < 25ms\"\n    - \"p(99) about 25ms\"\n";
    let error = refused(text, 9, "thresholds.http_req_duration[1]");
    assert!(error.message.contains("p(99) about 25ms"), "{error}");
}

#[test]
fn duplicate_request_names_are_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - {name: a, url: \"{{target}}/\"}\n      - {name: a, url: \"{{target}}/b\"}\n";
    let error = refused(text, 7, "scenarios.s.requests[1].name");
    assert!(error.message.contains("`a` is already"), "{error}");
}

#[test]
fn body_and_json_together_are_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        method: POST\n        url: \"{{target}}/\"\n        json: {a: 1}\n        body: raw\n";
    let error = refused(text, 9, "scenarios.s.requests[0].json");
    assert!(error.message.contains("not both"), "{error}");
}

#[test]
fn target_without_a_target_is_refused() {
    let options = CompileOptions::default();
    let error = compile(MINIMAL, &options).unwrap_err();
    assert_eq!(
        (error.line, error.path.as_str()),
        (10, "scenarios.tight.requests[0].url")
    );
    assert!(error.message.contains("--target"), "{error}");
}

#[test]
fn a_url_that_is_not_absolute_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests: [{name: a, url: \"/healthz\"}]\n";
    let error = refused(text, 5, "scenarios.s.requests[0].url");
    assert!(error.message.contains("http://"), "{error}");
}

#[test]
fn a_scenario_without_its_executors_fields_is_refused() {
    let no_rate =
        "scenarios:\n  s:\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    let error = refused(no_rate, 2, "scenarios.s.rate");
    assert!(error.message.contains("needs a `rate`"), "{error}");
    let rate_on_closed = "scenarios:\n  s:\n    executor: constant-connections\n    rate: 5\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\n";
    refused(rate_on_closed, 4, "scenarios.s.rate");
}

#[test]
fn a_capture_or_check_must_say_what_it_reads() {
    let capture = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}/\"\n        capture:\n          ids: {json: /id, header: location}\n";
    refused(capture, 9, "scenarios.s.requests[0].capture.ids");
    let check = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}/\"\n        checks:\n          - {name: c, json: /status}\n";
    refused(check, 9, "scenarios.s.requests[0].checks[0].equals");
}

#[test]
fn a_declared_pool_that_nothing_fills_is_refused_where_it_is_read() {
    let text = "pools:\n  slugs: {capacity: 10}\nsetup:\n  - name: create\n    method: POST\n    url: \"{{target}}/api/links\"\n    capture: {slgus: {json: /slug}}\nscenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}/{{pool.slugs}}\"\n";
    let error = refused(text, 14, "scenarios.s.requests[0].url");
    assert!(error.message.contains("no `capture` fills it"), "{error}");
}

#[test]
fn an_unset_environment_variable_is_refused() {
    let text = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests:\n      - name: a\n        url: \"{{target}}/\"\n        headers: {authorization: \"Bearer {{env.NO_SUCH_TOKEN}}\"}\n";
    let error = refused(text, 8, "scenarios.s.requests[0].headers.authorization");
    assert!(
        error.message.contains("`NO_SUCH_TOKEN` is not set"),
        "{error}"
    );
}

#[test]
fn a_threshold_selecting_a_scenario_or_name_that_does_not_exist_is_refused() {
    let base = "scenarios:\n  s:\n    rate: 1\n    duration: 1s\n    requests: [{name: a, url: \"{{target}}/\"}]\nthresholds:\n";
    let scenario = format!("{base}  \"http_req_duration{{scenario:viral}}\": [\"p(99) < 25ms\"]\n");
    let error = refused(
        &scenario,
        7,
        "thresholds.http_req_duration{scenario:viral}[0]",
    );
    assert!(
        error.message.contains("no scenario named `viral`"),
        "{error}"
    );
    let name = format!("{base}  \"http_req_duration{{name:redirect}}\": [\"p(99) < 25ms\"]\n");
    let error = refused(&name, 7, "thresholds.http_req_duration{name:redirect}[0]");
    assert!(
        error.message.contains("no request named `redirect`"),
        "{error}"
    );
}
