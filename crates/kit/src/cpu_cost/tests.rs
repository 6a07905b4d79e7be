use super::*;

#[test]
fn one_request_in_every_is_sampled_per_thread() {
    let sampled = (0..64).filter(|_| sample(16).is_some()).count();
    assert_eq!(sampled, 4);
    assert!((0..10).all(|_| sample(1) == Some(1)));
    assert!((0..10).all(|_| sample(0).is_none()));
}

fn spin(rounds: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..rounds {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    x
}

#[test]
fn a_nested_request_is_measured_at_the_outer_scale_and_left_out_of_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ((inner_scale, inner_nanos), outer_nanos) = runtime.block_on(Measured::new(
        async {
            // As the in-process gateway does: a module's request starts
            // and runs inside the outer request's poll.
            let scale = sample(1000).expect("nested requests are always measured");
            let (_, nanos) = Measured::new(async { spin(5_000_000) }, scale).await;
            (scale, nanos)
        },
        7,
    ));
    assert_eq!(inner_scale, 7);
    assert!(inner_nanos > 0);
    assert!(
        outer_nanos * 10 < inner_nanos,
        "outer {outer_nanos} ns should hold little more than the hand-off, inner {inner_nanos} ns"
    );
    assert_eq!(sample(0), None, "nothing stays active after the poll");
}

#[test]
fn a_busy_future_is_charged_its_cpu_and_a_waiting_one_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (_, busy) = runtime.block_on(Measured::new(async { spin(5_000_000) }, 1));
    let (_, waiting) = runtime.block_on(Measured::new(
        async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        },
        1,
    ));
    assert!(busy > waiting * 10, "busy {busy} ns, waiting {waiting} ns");
}

#[test]
fn counters_render_as_seconds_with_escaped_labels() {
    let counters = CpuCounters::default();
    counters.add("shortener", "/{slug}", 1_500_000_000);
    counters.add("shortener", "/{slug}", 500_000_000);
    counters.add("gateway", "/say \"hi\"", 1);
    let mut out = String::new();
    counters.render_into(&mut out);
    assert!(
        out.contains("# TYPE reliable_cost_cpu_seconds_total counter"),
        "{out}"
    );
    assert!(
        out.contains("reliable_cost_cpu_seconds_total{module=\"shortener\",route=\"/{slug}\"} 2\n"),
        "{out}"
    );
    assert!(
        out.contains("route=\"/say \\\"hi\\\"\"} 0.000000001"),
        "{out}"
    );
}

fn series(module: &str, route: &str, model: Option<&str>) -> Option<u64> {
    counters()
        .snapshot()
        .into_iter()
        .find(|c| c.module == module && c.route == route && c.model.as_deref() == model)
        .map(|c| c.nanos)
}

#[tokio::test]
async fn a_background_task_is_charged_its_cpu_under_task_name() {
    let supervisor = crate::tasks::Supervisor::new();
    let tasks = supervisor.for_module("cost-tasks");
    for (name, rounds) in [("burner", 20_000_000u64), ("idler", 0)] {
        let stop = tasks.stop_token();
        tasks.spawn(name, crate::tasks::OnFailure::Unready, async move {
            std::hint::black_box(spin(rounds));
            stop.cancelled().await;
            Ok::<(), String>(())
        });
    }
    // One thread: yielding runs both tasks up to their wait.
    tokio::task::yield_now().await;
    tasks.shutdown().await;
    assert!(
        supervisor.failures().is_empty(),
        "{:?}",
        supervisor.failures()
    );
    let burner = series("cost-tasks", "task:burner", None).expect("burner's series");
    let idler = series("cost-tasks", "task:idler", None).expect("idler's series");
    assert!(
        burner > 10 * idler.max(1_000),
        "burner {burner} ns, idler {idler} ns"
    );
    let mut out = String::new();
    counters().render_into(&mut out);
    assert!(
        out.contains(
            "reliable_cost_cpu_seconds_total{module=\"cost-tasks\",route=\"task:burner\"} "
        ),
        "{out}"
    );
}

#[test]
fn a_charge_is_split_evenly_and_keeps_the_total() {
    let to = |model: &str| ChargeTo {
        module: "cost-charge",
        route: "/v2/models/{name}/infer".into(),
        model: Some(model.into()),
    };
    let targets = [to("digits:1"), to("digits:1"), to("digits:2")];
    charge_evenly(targets.iter(), 1_000_000_001);
    let route = "/v2/models/{name}/infer";
    assert_eq!(
        series("cost-charge", route, Some("digits:1")),
        Some(666_666_668)
    );
    assert_eq!(
        series("cost-charge", route, Some("digits:2")),
        Some(333_333_333)
    );
    assert_eq!(series("cost-charge", route, None), None);
    let mut out = String::new();
    counters().render_into(&mut out);
    assert!(
        out.contains("{module=\"cost-charge\",route=\"/v2/models/{name}/infer\",model=\"digits:2\"} 0.333333333\n"),
        "{out}"
    );
}

mod tagged {
    use super::*;
    use crate::http::{stack, HttpConfig};
    use axum::body::Body;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn every_request() -> HttpConfig {
        HttpConfig {
            cost_sample_every: 1,
            ..HttpConfig::default()
        }
    }

    /// A module whose handler spins and names the model version it ran.
    fn model_module() -> Router {
        let router = Router::new().route(
            "/infer/{name}",
            get(|| async {
                std::hint::black_box(spin(2_000_000));
                let mut response = "ok".into_response();
                response.extensions_mut().insert(CostTag {
                    model: "digits:2".into(),
                });
                response
            }),
        );
        stack(router, "cost-tagged", &every_request())
    }

    async fn call(router: Router, path: &str) -> Response {
        let request = axum::extract::Request::get(path)
            .body(Body::empty())
            .expect("request");
        router.oneshot(request).await.expect("infallible")
    }

    #[tokio::test]
    async fn a_cost_tag_puts_the_request_on_its_model_label() {
        let response = call(model_module(), "/infer/digits").await;
        assert!(response.status().is_success());
        assert!(
            response.extensions().get::<CostTag>().is_none(),
            "the tag is taken off the response"
        );
        let nanos = series("cost-tagged", "/infer/{name}", Some("digits:2"));
        assert!(nanos.is_some_and(|n| n > 0), "{:?}", counters().snapshot());
        assert_eq!(series("cost-tagged", "/infer/{name}", None), None);
    }

    #[tokio::test]
    async fn an_outer_request_calling_a_tagged_module_in_process_is_not_tagged() {
        // As `reliable up`'s gateway does: its handler calls the module's
        // router inside its own request.
        let gateway = Router::new().route(
            "/gw/{*rest}",
            get(|| async { call(model_module(), "/infer/digits").await }),
        );
        let gateway = stack(gateway, "cost-gateway", &every_request());
        let response = call(gateway, "/gw/infer/digits").await;
        assert!(response.status().is_success());
        assert!(series("cost-gateway", "/gw/{*rest}", None).is_some());
        assert_eq!(
            series("cost-gateway", "/gw/{*rest}", Some("digits:2")),
            None,
            "{:?}",
            counters().snapshot()
        );
        let inner = series("cost-tagged", "/infer/{name}", Some("digits:2"));
        assert!(inner.is_some_and(|n| n > 0));
    }
}

/// Spins until this thread's CPU clock has moved `nanos`: CPU spent for
/// certain, whatever the machine's speed.
fn burn(nanos: u64) {
    let start = thread_cpu_nanos();
    while thread_cpu_nanos().saturating_sub(start) < nanos {
        spin(1_000);
    }
}

fn charged(module: &str, route: &str) -> u64 {
    counters()
        .snapshot()
        .into_iter()
        .filter(|c| c.module == module && c.route == route)
        .map(|c| c.nanos)
        .sum()
}

/// One request as kit's server and observe layer serve it: the
/// connection reads (CPU), the observe layer measures the handler if the
/// connection's poll says so and charges its route, the connection writes
/// (CPU) and drops the body, then waits for the next request. Returns the
/// scale the request was measured at.
async fn serve_one(
    meter: &connection::ConnectionMeter,
    route: &'static str,
    reading: u64,
    writing: u64,
) -> Option<u32> {
    burn(reading);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen_in_request = seen.clone();
    let response = meter
        .request(async move {
            let scale = sample(1_000_000);
            if let Some(scale) = scale {
                let ((), nanos) = Measured::new(async { burn(200_000) }, scale).await;
                charge_request("conn-test", route, None, nanos);
            }
            *seen_in_request.lock().expect("not poisoned") = scale;
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
        })
        .await;
    burn(writing);
    drop(response);
    // The connection waits for the client's next request.
    tokio::task::yield_now().await;
    let scale = *seen.lock().expect("not poisoned");
    scale
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

#[test]
fn a_connection_charges_its_own_cpu_to_the_route_it_served() {
    let meter = connection::ConnectionMeter::new();
    let (reading, writing) = (3_000_000, 2_000_000);
    let scale = current_thread()
        .block_on(meter.connection(1, serve_one(&meter, "/heavy-body", reading, writing)));
    assert_eq!(scale, Some(1));
    let total = charged("conn-test", "/heavy-body");
    assert!(
        total >= 200_000 + reading + writing,
        "the route is charged the handler's 0.2 ms and the connection's 5 ms: {total} ns"
    );
}

#[test]
fn the_connection_decides_which_requests_are_measured() {
    let meter = connection::ConnectionMeter::new();
    let scales = current_thread().block_on(meter.connection(2, async {
        let mut scales = Vec::new();
        for _ in 0..4 {
            scales.push(serve_one(&meter, "/every-other", 1_000_000, 0).await);
        }
        scales
    }));
    assert_eq!(scales, [Some(2), None, Some(2), None]);
    let total = charged("conn-test", "/every-other");
    assert!(
        total >= 2 * 2 * (1_000_000 + 200_000),
        "two requests measured, each counting twice: {total} ns"
    );
}

#[test]
fn an_unsampled_connection_measures_nothing() {
    let meter = connection::ConnectionMeter::new();
    let scale =
        current_thread().block_on(meter.connection(0, serve_one(&meter, "/never", 1_000_000, 0)));
    assert_eq!(scale, None, "the observe layer follows the connection");
    assert_eq!(charged("conn-test", "/never"), 0);
}

#[test]
fn an_in_process_module_request_in_a_measured_connection_is_charged_on_its_own() {
    let meter = connection::ConnectionMeter::new();
    current_thread().block_on(meter.connection(1, async {
        let response = meter
            .request(async {
                // The gateway's request: measured by its connection...
                let scale = sample(1_000_000).expect("the connection measures this request");
                let ((), outer) = Measured::new(
                    async {
                        burn(1_000_000);
                        // ...and a module's request, in-process, inside it.
                        let scale = sample(1_000_000).expect("nested: measured");
                        let ((), inner) = Measured::new(async { burn(3_000_000) }, scale).await;
                        charge_request("conn-test", "/module", None, inner);
                    },
                    scale,
                )
                .await;
                charge_request("conn-test", "/gateway", None, outer);
                Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
            })
            .await;
        drop(response);
        tokio::task::yield_now().await;
    }));
    let module = charged("conn-test", "/module");
    let gateway = charged("conn-test", "/gateway");
    assert!(module >= 3_000_000, "module {module} ns");
    assert!(
        (1_000_000..module).contains(&gateway),
        "the gateway is charged its own 1 ms, not the module's 3 ms: {gateway} ns"
    );
}

#[test]
fn a_task_adding_to_a_shared_counter_hands_its_cpu_on() {
    let spent = Arc::new(AtomicU64::new(0));
    current_thread().block_on(TaskCpu::adding_to(
        async {
            burn(2_000_000);
            tokio::task::yield_now().await;
            burn(1_000_000);
        },
        spent.clone(),
    ));
    let spent = spent.load(Ordering::Relaxed);
    assert!(spent >= 3_000_000, "both polls counted: {spent} ns");
}
