use super::*;
use crate::catalog::load_texts;
use crate::promql::parses;

fn slos(text: &str) -> Vec<Slo> {
    load_texts(&[("t.yaml".into(), text.into())]).expect("valid spec")
}

const SLOTH: &str = r#"
version: prometheus/v1
service: gateway
labels: {team: platform}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_server_request_duration_seconds_count{service="gateway",http_response_status_code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_server_request_duration_seconds_count{service="gateway"}[{{.window}}]))
    alerting:
      name: GatewayAvailability
      annotations: {runbook_url: "https://runbooks/gateway"}
      page_alert: {labels: {severity: critical}, for: 2m}
      ticket_alert: {disable: true}
"#;

#[test]
fn every_expression_parses_as_promql() {
    for slo in slos(SLOTH) {
        for group in groups(&slo) {
            for rule in &group.rules {
                parses(rule.expr()).unwrap_or_else(|e| panic!("{}: {e}", rule.expr()));
            }
        }
    }
}

#[test]
fn records_every_window_and_the_period() {
    let slo = &slos(SLOTH)[0];
    let records: Vec<String> = groups(slo)
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| match r {
            Rule::Record { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect();
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        assert!(
            records.contains(&format!("slo:sli_error:ratio_rate{w}")),
            "{w}"
        );
    }
    for r in [
        PERIOD_ERROR_RATIO,
        BUDGET_REMAINING,
        OBJECTIVE,
        PERIOD_SECONDS,
    ] {
        assert!(records.iter().any(|x| x == r), "{r}");
    }
}

#[test]
fn period_sli_is_weighted_by_requests() {
    let slo = &slos(SLOTH)[0];
    let g = groups(slo);
    let period = g[1]
        .rules
        .iter()
        .find(|r| matches!(r, Rule::Record { record, .. } if record == PERIOD_ERROR_RATIO))
        .expect("period rule");
    assert!(
        period
            .expr()
            .contains("sum_over_time(slo:sli_error_events:rate5m"),
        "{}",
        period.expr()
    );
    assert!(period.expr().contains("[30d]"));
    assert!(!period.expr().contains("avg_over_time"));
}

#[test]
fn ratios_guard_against_zero_traffic() {
    let slo = &slos(SLOTH)[0];
    let expr = ratio_expr(&slo.sli, Window::hours(1));
    assert!(expr.contains(") > 0) or ("), "{expr}");
}

#[test]
fn tiers_switch_off_and_carry_labels() {
    let slo = &slos(SLOTH)[0];
    let alerts: Vec<Rule> = groups(slo)[2].rules.clone();
    assert_eq!(alerts.len(), 2, "page + absent, ticket disabled");
    let Rule::Alert {
        alert,
        expr,
        for_,
        labels,
        annotations,
    } = &alerts[0]
    else {
        panic!("alert")
    };
    assert_eq!(alert, "GatewayAvailability");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["slo_severity"], "page");
    assert_eq!(labels["team"], "platform");
    assert_eq!(annotations["runbook_url"], "https://runbooks/gateway");
    assert_eq!(*for_, Some(Window::minutes(2)));
    assert!(
        expr.contains(
            "slo:sli_error:ratio_rate1h{slo_id=\"gateway-availability\"} > (14.4 * 0.001)"
        ),
        "{expr}"
    );
    assert!(
        expr.contains("slo:sli_error:ratio_rate30m{slo_id=\"gateway-availability\"} > (6 * 0.001)"),
        "{expr}"
    );
    let Rule::Alert { alert, expr, .. } = &alerts[1] else {
        panic!("alert")
    };
    assert_eq!(alert, ABSENT_ALERT);
    assert!(expr.starts_with("absent("));
}

#[test]
fn twenty_eight_day_factors_reach_the_rules() {
    let text = r#"
apiVersion: openslo/v1
kind: SLO
metadata: {name: latency}
spec:
  service: gateway
  indicator:
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: 'http_server_request_duration_seconds_bucket{service="gateway"}'}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99, op: lte, value: 0.3}]
"#;
    let slo = &slos(text)[0];
    let g = groups(slo);
    let ticket = g[2].rules.iter().find(|r| matches!(r, Rule::Alert { labels, .. } if labels.get("slo_severity").map(String::as_str) == Some("ticket"))).expect("ticket");
    assert!(ticket.expr().contains("(2.8 * 0.01)"), "{}", ticket.expr());
    assert!(
        ticket.expr().contains("(0.933333333333 * 0.01)"),
        "{}",
        ticket.expr()
    );
    let page = &g[2].rules[0];
    assert!(
        page.expr().contains("(13.44 * 0.01)") && page.expr().contains("(5.6 * 0.01)"),
        "{}",
        page.expr()
    );
    let five = ratio_expr(&slo.sli, Window::minutes(5));
    assert!(
        five.contains(
            "http_server_request_duration_seconds_bucket{service=\"gateway\",le=\"0.3\"}[5m]"
        ),
        "{five}"
    );
    assert!(
        five.contains("http_server_request_duration_seconds_count{service=\"gateway\"}[5m]"),
        "{five}"
    );
    for group in g {
        for rule in &group.rules {
            parses(rule.expr()).unwrap_or_else(|e| panic!("{}: {e}", rule.expr()));
        }
    }
}

#[test]
fn rule_file_and_custom_resource_are_yaml_with_the_same_groups() {
    let all = slos(SLOTH);
    let refs: Vec<&Slo> = all.iter().collect();
    let file = crate::emit::rule_file(&refs, "t.yaml");
    let cr = crate::emit::prometheus_rule("slo-gateway", &refs, "t.yaml");
    let exprs = |text: &str| -> Vec<String> {
        assert!(crate::yaml::parse_documents(text).is_ok(), "not YAML");
        text.lines()
            .filter(|l| {
                l.trim_start().starts_with("expr:")
                    || l.trim_start().starts_with("- record:")
                    || l.trim_start().starts_with("- alert:")
            })
            .map(|l| l.trim().to_string())
            .collect()
    };
    assert_eq!(exprs(&file), exprs(&cr));
    assert_eq!(exprs(&file).len(), 2 * (9 + 7 + 2));
    assert!(cr.contains("kind: PrometheusRule"));
}
