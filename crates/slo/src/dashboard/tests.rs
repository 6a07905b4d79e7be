use super::*;
use crate::catalog::load_texts;
use crate::promql::parses;
use crate::yaml::{self, Node};

const SPEC: &str = r#"
version: prometheus/v1
service: gateway
slos:
  - name: availability
    objective: 99.9
    description: Requests answered without a server error.
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="gateway",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="gateway"}[{{.window}}]))
    alerting:
      ticket_alert: {disable: true}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: latency}
spec:
  service: gateway
  indicator:
    spec:
      thresholdMetric:
        metricSource:
          type: Prometheus
          spec:
            query: http_request_duration_seconds_bucket{service="gateway"}
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.99
      op: lte
      value: 0.3
"#;

fn slos() -> Vec<Slo> {
    load_texts(&[("gateway.yaml".into(), SPEC.into())]).expect("valid spec")
}

fn board() -> Value {
    let slos = slos();
    let refs: Vec<&Slo> = slos.iter().collect();
    dashboard("gateway", "gateway.yaml", &refs)
}

fn panels(board: &Value) -> &Vec<Value> {
    board["panels"].as_array().expect("panels")
}

/// Panels under the row whose title starts with `id:`.
fn row<'b>(board: &'b Value, id: &str) -> Vec<&'b Value> {
    let all = panels(board);
    let start = all
        .iter()
        .position(|p| {
            p["type"] == "row"
                && p["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("{id}:")))
        })
        .unwrap_or_else(|| panic!("no row for {id}"));
    all[start + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .collect()
}

fn of_kind<'b>(panels: &[&'b Value], kind: PanelKind) -> Vec<&'b Value> {
    panels
        .iter()
        .copied()
        .filter(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.starts_with(kind.title()))
        })
        .filter(|p| kind != PanelKind::BudgetRemaining || p["type"] == "stat")
        .collect()
}

fn steps(panel: &Value) -> Vec<f64> {
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect()
}

fn exprs(board: &Value) -> Vec<String> {
    panels(board)
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect()
}

#[test]
fn the_dashboard_has_grafanas_shape() {
    let b = board();
    assert_eq!(b["schemaVersion"], 39);
    assert_eq!(b["uid"], "reliable-slo-gateway");
    assert_eq!(b["title"], "SLOs: gateway");
    assert_eq!(b["tags"], json!(["reliable", "slo"]));
    assert_eq!(b["id"], Value::Null);
    let vars = b["templating"]["list"].as_array().expect("variables");
    assert_eq!(vars.len(), 1, "only the data source");
    assert_eq!(vars[0]["name"], "datasource");
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
}

#[test]
fn panels_have_ids_descriptions_and_the_datasource() {
    let b = board();
    for (i, p) in panels(&b).iter().enumerate() {
        assert_eq!(p["id"], json!(i + 1), "ids count from 1 in order");
        let description = p["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{} has no description", p["title"]);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}");
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}");
            }
        }
    }
}

#[test]
fn panels_do_not_overlap_and_fit_the_grid() {
    let b = board();
    let mut cells = std::collections::HashSet::new();
    for p in panels(&b) {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64(),
            g["y"].as_u64(),
            g["w"].as_u64(),
            g["h"].as_u64(),
        );
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
            panic!("gridPos of {}", p["title"])
        };
        assert!(x + w <= 24, "{}", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{} overlaps", p["title"]);
            }
        }
    }
}

#[test]
fn every_expression_is_promql_with_no_variable_but_grafanas_intervals() {
    let all = exprs(&board());
    assert!(all.len() > 10);
    for expr in all {
        let plain = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "30d");
        assert!(!plain.contains('$'), "a template variable in {expr}");
        parses(&plain).unwrap_or_else(|e| panic!("{expr}: {e}"));
    }
}

#[test]
fn each_slo_gets_its_panels() {
    let b = board();
    let availability = row(&b, "gateway-availability");
    assert_eq!(of_kind(&availability, PanelKind::Sli).len(), 1);
    assert_eq!(
        steps(of_kind(&availability, PanelKind::Sli)[0]),
        vec![0.999]
    );
    assert_eq!(of_kind(&availability, PanelKind::BudgetRemaining).len(), 1);
    assert_eq!(of_kind(&availability, PanelKind::BudgetHistory).len(), 1);
    let burn = of_kind(&availability, PanelKind::BurnRate);
    let factors: Vec<Vec<f64>> = burn.iter().map(|p| steps(p)).collect();
    assert_eq!(
        factors,
        vec![vec![14.4], vec![6.0]],
        "page pairs only: the ticket tier is off"
    );
    assert!(of_kind(&availability, PanelKind::Latency).is_empty());

    let latency = row(&b, "gateway-latency");
    let burn = of_kind(&latency, PanelKind::BurnRate);
    let factors: Vec<Vec<f64>> = burn.iter().map(|p| steps(p)).collect();
    assert_eq!(
        factors,
        vec![vec![13.44], vec![5.6], vec![2.8], vec![0.933333333333]],
        "28 days"
    );
    let quantiles = of_kind(&latency, PanelKind::Latency);
    assert_eq!(quantiles.len(), 1);
    assert_eq!(steps(quantiles[0]), vec![0.3]);
    let q = quantiles[0]["targets"][2]["expr"].as_str().expect("p99");
    assert_eq!(
        q,
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service=\"gateway\"}[$__rate_interval])))"
    );
}

#[test]
fn panels_read_the_recorded_series() {
    let all = exprs(&board()).join("\n");
    for series in [
        rules::PERIOD_ERROR_RATIO,
        rules::BUDGET_REMAINING,
        rules::CURRENT_BURN_RATE,
        "slo:sli_error:ratio_rate1h{slo_id=\"gateway-availability\"} / 0.001",
        "slo:sli_error:ratio_rate3d{slo_id=\"gateway-latency\"} / 0.01",
    ] {
        assert!(all.contains(series), "{series} missing");
    }
}

#[test]
fn a_latency_sli_of_another_shape_gets_no_quantiles_rather_than_a_wrong_query() {
    let mut slos = slos();
    if let Sli::Events { errors, .. } = &mut slos[1].sli {
        *errors = ErrorEvents::Good(promql::rate_of("something_else{le=\"0.5\"}"));
    }
    let refs: Vec<&Slo> = slos.iter().collect();
    let b = dashboard("gateway", "gateway.yaml", &refs);
    assert!(of_kind(&row(&b, "gateway-latency"), PanelKind::Latency).is_empty());
}

#[test]
fn output_is_deterministic_whatever_the_input_order() {
    let slos = slos();
    let forward: Vec<&Slo> = slos.iter().collect();
    let backward: Vec<&Slo> = slos.iter().rev().collect();
    let a = dashboard_json("gateway", "gateway.yaml", &forward);
    assert_eq!(a, dashboard_json("gateway", "gateway.yaml", &forward));
    assert_eq!(a, dashboard_json("gateway", "gateway.yaml", &backward));
    assert!(a.ends_with("}\n"));
    let keys: Vec<&str> = a
        .lines()
        .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
        .filter_map(|l| l.trim().split('"').nth(1))
        .collect();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    assert_eq!(keys, sorted_keys, "top-level keys sorted");
    assert_eq!(keys.first(), Some(&"annotations"));
}

#[test]
fn uids_fit_grafana() {
    assert_eq!(uid("shortener"), "reliable-slo-shortener");
    assert_eq!(uid("a b/c"), "reliable-slo-a-b-c");
    let long_a = uid("a-very-long-spec-file-name-for-one-team-one");
    let long_b = uid("a-very-long-spec-file-name-for-one-team-two");
    assert_eq!(long_a.len(), 40, "{long_a}");
    assert_ne!(long_a, long_b, "the hash keeps long stems apart");
    assert!(long_a.starts_with("reliable-slo-a-very-long"));
}

fn get<'n>(node: &'n Node, key: &str) -> &'n Node {
    match &node.value {
        yaml::Value::Map(entries) => {
            &entries
                .iter()
                .find(|e| e.key == key)
                .unwrap_or_else(|| panic!("no {key}"))
                .value
        }
        other => panic!("{key}: not a map: {other:?}"),
    }
}

fn text(node: &Node) -> &str {
    match &node.value {
        yaml::Value::Scalar { text, .. } => text,
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_config_map_carries_the_json_unchanged() {
    let mut slos = slos();
    // Characters YAML reads as line breaks must not break the block scalar.
    slos[0].description = "line\u{2028}separator, next\u{85}line, and \"quotes\"".into();
    let refs: Vec<&Slo> = slos.iter().collect();
    let json = dashboard_json("gateway", "gateway.yaml", &refs);
    // YAML 1.1 readers (Kubernetes' among them) break lines at these.
    assert!(!json.contains(['\u{2028}', '\u{85}']), "escaped");
    assert!(
        json.contains("line\\u2028separator, next\\u0085line"),
        "{json}"
    );
    let cm = config_map("gateway", "gateway.yaml", &json);
    assert!(cm.starts_with("# Generated by `reliable slo dashboards` from gateway.yaml"));
    let docs = yaml::parse_documents(&cm).expect("valid YAML");
    let [doc] = docs.as_slice() else {
        panic!("one document")
    };
    assert_eq!(text(get(doc, "kind")), "ConfigMap");
    let meta = get(doc, "metadata");
    assert_eq!(text(get(meta, "name")), "slo-dashboard-gateway");
    let labels = get(meta, "labels");
    assert_eq!(text(get(labels, "grafana_dashboard")), "1");
    assert_eq!(text(get(labels, "app.kubernetes.io/part-of")), "reliable");
    assert_eq!(
        text(get(labels, "app.kubernetes.io/component")),
        "dashboards"
    );
    assert_eq!(
        text(get(get(meta, "annotations"), "grafana_folder")),
        "Reliable"
    );
    assert!(matches!(&meta.value, yaml::Value::Map(e) if e.iter().all(|e| e.key != "namespace")));
    let carried = text(get(get(doc, "data"), "reliable-slo-gateway.json"));
    assert_eq!(carried, json);
    let parsed: Value = serde_json::from_str(carried).expect("JSON");
    assert_eq!(
        parsed["panels"][0]["description"],
        "line\u{2028}separator, next\u{85}line, and \"quotes\""
    );
}

#[test]
fn config_map_names_are_kubernetes_names() {
    assert_eq!(config_map_name("shortener"), "slo-dashboard-shortener");
    assert_eq!(
        config_map_name("My_Team.openslo-"),
        "slo-dashboard-my-team.openslo"
    );
}
