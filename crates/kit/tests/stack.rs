//! The middleware stack and health endpoints, driven in-process.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use kit::health::{Readiness, ReadinessCheck};
use kit::http::{stack, HttpConfig};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

fn app() -> Router {
    kit::metrics::install();
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/items/{id}", get(|| async { "item" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        )
        .route(
            "/page",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_SECURITY_POLICY,
                        "default-src 'self'",
                    )],
                    "<p>page</p>",
                )
            }),
        )
        .merge(kit::metrics::routes());
    let config = HttpConfig {
        request_timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    stack(router, "kit-test", &config)
}

async fn call(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

async fn metrics_text(router: &Router) -> String {
    let response = router
        .clone()
        .oneshot(get_req("/metrics"))
        .await
        .expect("infallible");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf8")
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

/// Every answer, routed, unmatched or refused, carries the security
/// headers; a handler's own policy is kept.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let router = app();
    for path in ["/ok", "/no-such-path", "/metrics"] {
        let (_, headers, _) = call(&router, get_req(path)).await;
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    let post = Request::post("/ok").body(Body::empty()).expect("request");
    let (status, headers, _) = call(&router, post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let (_, headers, _) = call(&router, get_req("/page")).await;
    assert_eq!(headers["content-security-policy"], "default-src 'self'");

    let off = HttpConfig {
        security_headers: false,
        ..HttpConfig::default()
    };
    let plain = stack(
        Router::new().route("/ok", get(|| async { "ok" })),
        "kit-test",
        &off,
    );
    let (_, headers, _) = call(&plain, get_req("/ok")).await;
    assert!(headers.get("content-security-policy").is_none());
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    let router = app();
    let (_, headers, _) = call(&router, get_req("/ok")).await;
    let generated = headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(generated.len(), 32);

    let request = Request::get("/ok")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .expect("request");
    let (_, headers, _) = call(&router, request).await;
    assert_eq!(headers["x-request-id"], "abc-123");

    // An unreasonable id is replaced, not trusted.
    let request = Request::get("/ok")
        .header("x-request-id", "x".repeat(500))
        .body(Body::empty())
        .expect("request");
    let (_, headers, _) = call(&router, request).await;
    assert_eq!(headers["x-request-id"].len(), 32);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let router = app();
    let (status, headers, body) = call(&router, get_req("/nowhere")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "/problems/not-found");
    let request = Request::delete("/ok").body(Body::empty()).expect("request");
    let (status, _, body) = call(&router, request).await;
    assert_eq!(status, 405);
    assert_eq!(body["type"], "/problems/method-not-allowed");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem() {
    let router = app();
    let (status, headers, body) = call(&router, get_req("/panic")).await;
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "/problems/internal");
    assert!(
        !body.to_string().contains("handler bug"),
        "the cause must not leak"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_is_cut_off_at_the_timeout() {
    let router = app();
    let (status, _, body) = call(&router, get_req("/slow")).await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "/problems/unavailable");
}

fn in_process(path: &str, caller_timeout: Duration) -> Request<Body> {
    let mut request = Request::get(path)
        .header("x-request-id", "from-the-gateway")
        .body(Body::empty())
        .expect("request");
    request.extensions_mut().insert(kit::http::InProcessCall {
        caller_timeout,
        trace: None,
    });
    request
}

/// An in-process caller that gives up sooner than the module would is the
/// one whose timeout counts: the module arms none of its own (a timer
/// less per request). One that waits longer still gets the module's.
#[tokio::test(start_paused = true)]
async fn an_in_process_call_keeps_the_module_timeout_only_when_it_is_shorter() {
    let router = app();
    let (status, _, _) = call(&router, in_process("/slow", Duration::from_secs(1))).await;
    assert_eq!(status, 200, "the caller's shorter timeout covers it");
    let (status, _, body) = call(&router, in_process("/slow", Duration::from_secs(30))).await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "/problems/unavailable");
}

/// The caller's request id is the module's too, and the caller echoes it.
#[tokio::test]
async fn an_in_process_call_keeps_the_callers_request_id() {
    let router = Router::new().route(
        "/id",
        get(|headers: axum::http::HeaderMap| async move {
            headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        }),
    );
    let router = stack(router, "kit-test", &HttpConfig::default());
    let response = router
        .clone()
        .oneshot(in_process("/id", Duration::from_secs(1)))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-request-id").is_none());
    let bytes = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(&bytes[..], b"from-the-gateway");
    // Served directly, the same request gets its id echoed.
    let request = Request::get("/id")
        .header("x-request-id", "from-the-client")
        .body(Body::empty())
        .expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.headers()["x-request-id"], "from-the-client");
}

#[tokio::test]
async fn metrics_use_route_templates_not_raw_paths() {
    let router = app();
    for id in ["1", "2", "3"] {
        call(&router, get_req(&format!("/items/{id}"))).await;
    }
    call(&router, get_req("/no/such/path/42")).await;
    let text = metrics_text(&router).await;
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{service="kit-test",http_route="/items/{id}",http_request_method="GET",http_response_status_code="200"} 3"#
    ), "{text}");
    assert!(text.contains(r#"service="kit-test",http_route="unmatched",http_request_method="GET",http_response_status_code="404""#));
    assert!(
        !text.contains("/items/1"),
        "raw paths must not become labels"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths must not become labels"
    );
}

struct Failing;

impl ReadinessCheck for Failing {
    fn name(&self) -> &str {
        "flaky-db"
    }
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async { Err("connection refused to postgres://secret@db".to_string()) })
    }
}

#[tokio::test]
async fn readiness_reports_failing_checks_and_draining() {
    let readiness = Readiness::new();
    let router: Router = readiness.routes().into();
    let (status, _, _) = call(&router, get_req("/readyz")).await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&router, get_req("/healthz")).await;
    assert_eq!(status, 200);

    readiness.start_draining();
    let (status, _, body) = call(&router, get_req("/readyz")).await;
    assert_eq!(status, 503);
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("draining"));
    let (status, _, _) = call(&router, get_req("/healthz")).await;
    assert_eq!(status, 200, "a draining process is still alive");

    let readiness = Readiness::new();
    readiness.add_check(Arc::new(Failing));
    let (status, _, body) = call(&readiness.routes().into(), get_req("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["invalid_params"][0]["name"], "flaky-db");
    assert!(
        !body.to_string().contains("secret"),
        "check errors stay in the logs"
    );
}

#[tokio::test]
async fn a_module_router_can_carry_its_own_service_label() {
    kit::metrics::install();
    let labelled = kit::http::service_label(
        Router::new().route("/labelled/{id}", get(|| async { "x" })),
        "other-module",
    );
    let router = stack(
        Router::new()
            .route("/unlabelled-route", get(|| async { "y" }))
            .merge(labelled)
            .merge(kit::metrics::routes()),
        "default-module",
        &HttpConfig::default(),
    );
    call(&router, get_req("/labelled/7")).await;
    call(&router, get_req("/unlabelled-route")).await;
    let text = metrics_text(&router).await;
    assert!(
        text.contains(r#"service="other-module",http_route="/labelled/{id}""#),
        "{text}"
    );
    assert!(
        text.contains(r#"service="default-module",http_route="/unlabelled-route""#),
        "{text}"
    );
}

/// Spends CPU on the polling thread, as a model call would.
fn spin(rounds: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..rounds {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    x
}

fn cost_series(text: &str, route: &str) -> Option<f64> {
    let prefix =
        format!("reliable_cost_cpu_seconds_total{{module=\"kit-cost-test\",route=\"{route}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn cpu_is_charged_to_the_route_that_spent_it() {
    kit::metrics::install();
    let router = Router::new()
        .route("/heavy", get(|| async { spin(2_000_000).to_string() }))
        .route("/cheap", get(|| async { "ok" }))
        .merge(kit::metrics::routes());
    let config = HttpConfig {
        cost_sample_every: 1,
        ..HttpConfig::default()
    };
    let router = stack(router, "kit-cost-test", &config);
    for _ in 0..20 {
        assert_eq!(call(&router, get_req("/heavy")).await.0, StatusCode::OK);
        assert_eq!(call(&router, get_req("/cheap")).await.0, StatusCode::OK);
    }
    let text = metrics_text(&router).await;
    let heavy = cost_series(&text, "/heavy").expect("heavy route charged");
    let cheap = cost_series(&text, "/cheap").expect("cheap route charged");
    assert!(heavy > 0.0 && cheap > 0.0, "{heavy} {cheap}");
    assert!(
        heavy > cheap * 20.0,
        "heavy {heavy} s against cheap {cheap} s"
    );
}

/// A catch-all answers every path no route matches, observed as a route
/// under its own label (request id, security headers, the handler's trace
/// context, the duration histogram); routes and their 405s still win.
#[tokio::test]
async fn a_catch_all_answers_unmatched_paths_as_an_observed_route() {
    kit::metrics::install();
    let catch_all = kit::http::CatchAll::new(
        "/{*rest}",
        |request: axum::extract::Request, _| async move {
            let trace = kit::telemetry::current_trace().expect("the observe layer sets the trace");
            let id = request.headers()["x-request-id"].clone();
            axum::response::IntoResponse::into_response((
                StatusCode::ACCEPTED,
                [("x-seen-trace", trace.to_string())],
                [("x-seen-id", id)],
                format!("caught {}", request.uri().path()),
            ))
        },
    );
    assert_eq!(catch_all.route(), "/{*rest}");
    let routes = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .merge(kit::metrics::routes());
    let router = kit::http::stack_with_catch_all(
        routes,
        "kit-catch-all",
        &HttpConfig::default(),
        Some(catch_all),
    );
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let request = Request::get("/any/where?x=1")
        .header("traceparent", parent)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let headers = response.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let id = headers["x-request-id"].to_str().expect("ascii").to_string();
    assert_eq!(id.len(), 32);
    // The handler saw the id the response echoes, and a child of the
    // caller's trace.
    assert_eq!(headers["x-seen-id"], id.as_str());
    let seen = headers["x-seen-trace"].to_str().expect("ascii");
    assert!(
        seen.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{seen}"
    );
    assert!(!seen.contains("b7ad6b7169203331"), "a child span: {seen}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 10)
        .await
        .expect("body");
    assert_eq!(&body[..], b"caught /any/where");

    let (status, _, _) = call(&router, get_req("/ok")).await;
    assert_eq!(status, StatusCode::OK);
    let post = Request::post("/ok").body(Body::empty()).expect("request");
    let (status, _, body) = call(&router, post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["type"], "/problems/method-not-allowed");

    let text = metrics_text(&router).await;
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{service="kit-catch-all",http_route="/{*rest}",http_request_method="GET",http_response_status_code="202"} 1"#
    ), "{text}");
    assert!(
        !text.contains("/any/where"),
        "raw paths must not become labels"
    );
    // Outside a request there is no context.
    assert!(kit::telemetry::current_trace().is_none());
}

/// A catch-all with its own security headers (a proxy's) and a route's
/// answer marked `OwnSecurityHeaders` get kit's request id but none of its
/// security headers. The others (an unclaimed path's 404, a plain route)
/// still get them.
#[tokio::test]
async fn answers_that_set_their_own_get_no_security_headers_and_the_others_do() {
    kit::metrics::install();
    let catch_all = kit::http::CatchAll::new("/{slug}", |_: axum::extract::Request, _| async {
        axum::response::IntoResponse::into_response("from the origin")
    })
    .claiming(kit::http::one_segment)
    .with_own_security_headers();
    let routes = Router::new()
        .route("/own/page", get(|| async { "kit's" }))
        .route(
            "/relayed/page",
            get(|| async {
                let mut response = axum::response::IntoResponse::into_response("relayed");
                response
                    .extensions_mut()
                    .insert(kit::http::OwnSecurityHeaders);
                response
            }),
        );
    let router = kit::http::stack_with_catch_all(
        routes,
        "kit-own-security",
        &HttpConfig::default(),
        Some(catch_all),
    );
    let security =
        |headers: &axum::http::HeaderMap| testkit::headers::security_headers(headers).len();
    for (path, status, expected) in [
        ("/abc", StatusCode::OK, 0),
        ("/relayed/page", StatusCode::OK, 0),
        ("/own/page", StatusCode::OK, 3),
        ("/not/claimed", StatusCode::NOT_FOUND, 3),
    ] {
        let (got, headers, _) = call(&router, get_req(path)).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(security(&headers), expected, "{path}");
        assert!(headers.contains_key("x-request-id"), "{path}");
    }
}

/// A catch-all that claims only some paths (a module's `/{slug}`) answers
/// those under its label; every other unmatched path is the 404 problem,
/// observed as unmatched, exactly as without it.
#[tokio::test]
async fn a_claiming_catch_all_leaves_the_other_paths_unmatched() {
    kit::metrics::install();
    let catch_all =
        kit::http::CatchAll::new("/{slug}", |request: axum::extract::Request, _| async move {
            axum::response::IntoResponse::into_response(format!("slug {}", request.uri().path()))
        })
        .claiming(kit::http::one_segment);
    let router = kit::http::stack_with_catch_all(
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .merge(kit::metrics::routes()),
        "kit-claiming",
        &HttpConfig::default(),
        Some(catch_all),
    );
    for path in ["/abc", "/abc?x=1", "/%2F"] {
        let (status, _, _) = call(&router, get_req(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for path in ["/", "/a/b", "/abc/"] {
        let (status, _, body) = call(&router, get_req(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["type"], "/problems/not-found", "{path}");
    }
    let (status, _, _) = call(&router, get_req("/ok")).await;
    assert_eq!(status, StatusCode::OK);

    let text = metrics_text(&router).await;
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{service="kit-claiming",http_route="/{slug}",http_request_method="GET",http_response_status_code="200"} 3"#
    ), "{text}");
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{service="kit-claiming",http_route="unmatched",http_request_method="GET",http_response_status_code="404"} 3"#
    ), "{text}");
}

/// A generated request id reaches the handler in the request's headers
/// (a proxy forwards them), unless its catch-all keeps them as sent; the
/// answer carries it either way, and a client's sane id is kept as is.
#[tokio::test]
async fn a_catch_all_keeping_request_headers_gets_no_generated_id_in_them() {
    let echo_id = |request: axum::extract::Request, _| async move {
        let seen = request
            .headers()
            .get("x-request-id")
            .map(|id| id.to_str().expect("ascii").to_owned());
        axum::response::IntoResponse::into_response(axum::Json(seen))
    };
    for keeps in [false, true] {
        let mut catch_all = kit::http::CatchAll::new("/{slug}", echo_id);
        if keeps {
            catch_all = catch_all.keeping_request_headers();
        }
        let router = kit::http::stack_with_catch_all(
            Router::new(),
            "kit-request-id",
            &HttpConfig::default(),
            Some(catch_all),
        );
        let (status, headers, seen) = call(&router, get_req("/abc")).await;
        assert_eq!(status, StatusCode::OK);
        let answered = headers["x-request-id"].to_str().expect("ascii");
        assert_eq!(answered.len(), 32, "a generated id: {answered}");
        if keeps {
            assert_eq!(seen, serde_json::Value::Null, "headers kept as sent");
        } else {
            assert_eq!(seen, answered, "the handler sees the id it answers with");
        }

        let sent = Request::get("/abc")
            .header("x-request-id", "client-id-1")
            .body(Body::empty())
            .expect("request");
        let (_, headers, seen) = call(&router, sent).await;
        assert_eq!(headers["x-request-id"], "client-id-1");
        assert_eq!(seen, "client-id-1", "keeps: {keeps}");
    }
}

#[test]
fn one_segment_is_what_a_single_parameter_route_matches() {
    for path in ["/a", "/abc", "/a.b", "/%2F"] {
        assert!(kit::http::one_segment(path), "{path}");
    }
    for path in ["", "/", "a", "/a/", "/a/b", "//"] {
        assert!(!kit::http::one_segment(path), "{path}");
    }
}

/// An in-process caller hands its trace context over parsed: the module's
/// handler runs in a child of it, and a `traceparent` header on the same
/// request (which a caller sends too) is not parsed again.
#[tokio::test]
async fn an_in_process_call_continues_the_trace_it_hands_over() {
    let catch_all =
        kit::http::CatchAll::new("/{*rest}", |_: axum::extract::Request, _| async move {
            let trace = kit::telemetry::current_trace().expect("the observe layer sets the trace");
            axum::response::IntoResponse::into_response([("x-seen-trace", trace.to_string())])
        });
    let router = kit::http::stack_with_catch_all(
        Router::new(),
        "kit-in-process-trace",
        &HttpConfig::default(),
        Some(catch_all),
    );
    let handed = kit::trace_context::TraceParent::parse(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    .expect("valid");
    // A request as the gateway hands it over: its own `traceparent`
    // header, and maybe the parsed context.
    let handed_over = |trace| {
        let mut request = Request::get("/x")
            .header("x-request-id", "from-the-gateway")
            .header(
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            )
            .body(Body::empty())
            .expect("request");
        request.extensions_mut().insert(kit::http::InProcessCall {
            caller_timeout: Duration::from_secs(1),
            trace,
        });
        request
    };
    let request = handed_over(Some(handed));
    let response = router.clone().oneshot(request).await.expect("infallible");
    let seen = response.headers()["x-seen-trace"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        seen.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "the handed trace, not the header's: {seen}"
    );
    assert!(!seen.contains("b7ad6b7169203331"), "a child span: {seen}");

    // Without one handed over, the header is read, as for any request.
    let request = handed_over(None);
    let response = router.oneshot(request).await.expect("infallible");
    let seen = response.headers()["x-seen-trace"].to_str().expect("ascii");
    assert!(
        seen.starts_with("00-11111111111111111111111111111111-"),
        "{seen}"
    );
}
