use super::*;
use chrono::{TimeZone, Utc};

fn window() -> Window {
    Window {
        start: Utc
            .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("start"),
        end: Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .single()
            .expect("end"),
    }
}

fn vector(series: &[(&[(&str, &str)], &str)]) -> Vec<u8> {
    let result: Vec<serde_json::Value> = series
        .iter()
        .map(|(labels, value)| {
            let metric: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect();
            serde_json::json!({"metric": metric, "value": [1764583200.0, value]})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": result}
    }))
    .expect("json")
}

const SHORTENER: &[(&str, &str)] = &[
    ("namespace", "reliable"),
    ("pod", "shortener-7d9f"),
    ("container", "reliable"),
];

#[test]
fn the_queries_cover_the_window_and_every_measure() {
    let queries = queries(&window());
    assert_eq!(queries.len(), 9);
    assert!(
        queries.iter().all(|q| q.promql.contains("[36000s")),
        "{queries:?}"
    );
    let cpu = &queries[0];
    assert_eq!(cpu.measure, Measure::CpuUsage);
    assert!(cpu.promql.starts_with("sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!=\"\""));
}

#[test]
fn answers_become_container_usages_with_their_module() {
    let mut answers = HashMap::new();
    answers.insert(
        Measure::CpuUsage,
        parse_vector(&vector(&[
            (SHORTENER, "0.25"),
            (&[("pod", "no-namespace")], "9"),
        ]))
        .expect("cpu"),
    );
    answers.insert(
        Measure::CpuRequest,
        parse_vector(&vector(&[(SHORTENER, "0.5")])).expect("req"),
    );
    answers.insert(
        Measure::RamUsage,
        parse_vector(&vector(&[(SHORTENER, "104857600")])).expect("ram"),
    );
    answers.insert(
        Measure::Minutes,
        parse_vector(&vector(&[(SHORTENER, "300")])).expect("minutes"),
    );
    answers.insert(
        Measure::PodModule,
        parse_vector(&vector(&[(
            &[
                ("namespace", "reliable"),
                ("pod", "shortener-7d9f"),
                ("label_app_kubernetes_io_name", "shortener"),
            ],
            "1",
        )]))
        .expect("labels"),
    );
    let usages = container_usages(&answers, &window());
    assert_eq!(
        usages.len(),
        1,
        "a series without its labels is left out: {usages:?}"
    );
    let usage = &usages[0];
    assert_eq!(usage.name, "reliable/shortener-7d9f/reliable");
    assert_eq!(
        usage.properties.get("module").map(String::as_str),
        Some("shortener")
    );
    assert_eq!(usage.cpu_core_usage_average, 0.25);
    assert_eq!(usage.cpu_core_request_average, 0.5);
    assert_eq!(usage.ram_byte_usage_average, 104857600.0);
    assert_eq!(usage.minutes, 300.0);
}

#[test]
fn route_cpu_becomes_an_average_and_requests_join_by_module_and_route() {
    let mut answers = HashMap::new();
    answers.insert(
        Measure::RouteCpuSeconds,
        parse_vector(&vector(&[(
            &[("module", "shortener"), ("route", "/{slug}")],
            "3600",
        )]))
        .expect("cpu"),
    );
    answers.insert(
        Measure::RouteRequests,
        parse_vector(&vector(&[(
            &[("service", "shortener"), ("http_route", "/{slug}")],
            "1000000.4",
        )]))
        .expect("requests"),
    );
    let usages = route_usages(&answers, &window());
    assert_eq!(usages.len(), 1);
    assert_eq!(
        usages[0].cpu_core_usage_average, 0.1,
        "3,600 CPU-seconds over 10 hours"
    );
    assert_eq!(usages[0].requests, 1_000_000);
}

#[test]
fn errors_and_odd_answers_are_refused_clearly() {
    let refused = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
    assert_eq!(
        parse_vector(refused),
        Err(PrometheusError::Refused {
            kind: "bad_data".to_string(),
            message: "parse error at char 5".to_string()
        })
    );
    let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(
        matches!(parse_vector(matrix), Err(PrometheusError::Malformed(m)) if m.contains("matrix"))
    );
    assert!(matches!(
        parse_vector(b"<html>502</html>"),
        Err(PrometheusError::Malformed(_))
    ));
    let nan = vector(&[(SHORTENER, "NaN"), (SHORTENER, "+Inf")]);
    assert_eq!(parse_vector(&nan).expect("parsed"), Vec::new());
}
