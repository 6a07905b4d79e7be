use super::*;
use crate::catalog::load_texts;

const MIN: i64 = 60_000;

const SPEC: &str = "version: prometheus/v1\nservice: api\nslos:\n  - name: availability\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(req_total{code=\"500\"}[{{.window}}]))\n        total_query: sum(rate(req_total[{{.window}}]))\n";

/// A 99% SLO (budget 1%) with page and ticket alerts, no `for`.
fn evaluator() -> Evaluator {
    Evaluator::new(&load_texts(&[("t.yaml".into(), SPEC.into())]).expect("valid"))
}

/// Runs minute ticks; `traffic(m)` gives (errors, requests) in minute m,
/// `None` for no series at all. Returns the firing alerts after each minute.
fn run(
    e: &mut Evaluator,
    minutes: i64,
    traffic: impl Fn(i64) -> Option<(f64, f64)>,
) -> Vec<Vec<String>> {
    let (mut errors, mut total) = (0.0, 0.0);
    let mut out = Vec::new();
    for m in 0..minutes {
        let counts = traffic(m).map(|(err, req)| {
            errors += err;
            total += req;
            EventCounts { errors, total }
        });
        e.tick(m * MIN, &[counts]);
        out.push(e.report("t").slos[0].firing.clone());
    }
    out
}

fn first(firing: &[Vec<String>], alert: &str) -> Option<usize> {
    firing.iter().position(|f| f.iter().any(|a| a == alert))
}

#[test]
fn a_fast_burn_pages_within_minutes() {
    let mut e = evaluator();
    // A healthy day, then every request fails: burn rate 100. The 1h
    // window crosses 14.4 after 14.4/100 of an hour, 8.6 minutes.
    let firing = run(&mut e, 1440 + 30, |m| {
        Some(if m < 1440 {
            (0.0, 100.0)
        } else {
            (100.0, 100.0)
        })
    });
    let page = first(&firing, "page").expect("pages");
    // Tick m counts minute m, so index 1448 is the ninth failing minute.
    assert_eq!(page, 1440 + 8, "paged at minute {page}");
}

#[test]
fn a_slow_burn_opens_a_ticket_but_never_pages() {
    let mut e = evaluator();
    // 2% errors: burn rate 2, under every page factor, over the 3d/6h 1x.
    let firing = run(&mut e, 3 * 1440, |_| Some((2.0, 100.0)));
    assert_eq!(first(&firing, "page"), None);
    let ticket = first(&firing, "ticket").expect("ticket");
    assert!(ticket <= 6 * 60 + 1, "ticket at minute {ticket}");
    let report = e.report("t");
    let s = &report.slos[0];
    assert!((s.burn_rates[0].burn_rate.expect("5m") - 2.0).abs() < 1e-9);
    // 3 days of a 30-day period at burn rate 2: 20% of the budget spent.
    assert!(
        (s.budget_remaining.expect("data") - (1.0 - 2.0)).abs() < 1e-9,
        "{:?}",
        s.budget_remaining
    );
}

#[test]
fn a_short_spike_that_stops_does_not_page() {
    let mut e = evaluator();
    let firing = run(&mut e, 1440 + 120, |m| {
        Some(if (1440..1445).contains(&m) {
            (100.0, 100.0)
        } else {
            (0.0, 100.0)
        })
    });
    assert_eq!(first(&firing, "page"), None, "{:?}", &firing[1440..1450]);
}

#[test]
fn zero_traffic_fires_nothing_and_no_series_fires_only_absent() {
    let mut e = evaluator();
    let firing = run(&mut e, 120, |_| Some((0.0, 0.0)));
    assert!(firing.iter().all(Vec::is_empty), "{firing:?}");
    let s = &e.report("t").slos[0];
    assert_eq!(s.burn_rates[0].burn_rate, Some(0.0));
    assert_eq!(s.budget_remaining, Some(1.0));

    let mut e = evaluator();
    let firing = run(&mut e, 30, |_| None);
    assert_eq!(first(&firing, "absent"), Some(10));
    assert!(firing.iter().all(|f| f.iter().all(|a| a == "absent")));
    let s = &e.report("t").slos[0];
    assert_eq!(s.budget_remaining, None);
    assert_eq!(s.burn_rates[0].burn_rate, None);
}

#[test]
fn budget_time_and_sli_in_the_report() {
    let mut e = evaluator();
    run(&mut e, 61, |_| Some((1.0, 200.0)));
    let s = &e.report("t").slos[0];
    assert!((s.sli.expect("sli") - 0.995).abs() < 1e-9);
    assert!((s.budget_remaining.expect("budget") - 0.5).abs() < 1e-9);
    // Half of 1% of 30 days.
    assert!(
        (s.budget_remaining_seconds.expect("time") - 0.5 * 0.01 * 30.0 * 86_400.0).abs() < 1e-6
    );
}

#[test]
fn samples_the_exposition_text() {
    let mut e = evaluator();
    e.observe_text(0, "req_total{code=\"200\"} 100\n");
    e.observe_text(
        MIN,
        "req_total{code=\"200\"} 190\nreq_total{code=\"500\"} 10\n",
    );
    let s = &e.report("t").slos[0];
    assert!((s.burn_rates[0].burn_rate.expect("5m") - 10.0).abs() < 1e-9);
    assert!(e.not_evaluable().is_empty());
}

#[test]
fn for_delays_firing_until_the_condition_has_held_that_long() {
    let text = format!("{SPEC}    alerting:\n      page_alert:\n        for: 5m\n      ticket_alert:\n        disable: true\n");
    let mut e = Evaluator::new(&load_texts(&[("t.yaml".into(), text)]).expect("valid"));
    let firing = run(&mut e, 1440 + 30, |m| {
        Some(if m < 1440 {
            (0.0, 100.0)
        } else {
            (100.0, 100.0)
        })
    });
    // Without `for` it pages at 1448 (see above); with it, five minutes on.
    assert_eq!(first(&firing, "page"), Some(1440 + 8 + 5));
    assert_eq!(first(&firing, "ticket"), None, "the ticket tier is off");
}

#[test]
fn alerts_go_pending_then_firing_and_their_transitions_are_kept() {
    // The same SLO with a 2-minute `for` on the page tier.
    let spec = SPEC.to_string()
        + "    alerting:\n      name: ApiBurn\n      annotations:\n        runbook_url: docs/runbooks/slo-burn.md\n      page_alert:\n        for: 2m\n";
    let mut e = Evaluator::new(&load_texts(&[("t.yaml".into(), spec)]).expect("valid"));
    // A healthy day, then a full outage.
    let _ = run(&mut e, 1440, |_| Some((0.0, 100.0)));
    assert!(e.alerts().is_empty(), "{:?}", e.alerts());
    let _ = e.take_transitions();
    let _ = run_from(&mut e, 1440, 9, |_| Some((100.0, 100.0)));
    let alerts = e.alerts();
    let page = alerts
        .iter()
        .find(|a| a.condition == AlertCondition::PageBurn)
        .expect("page alert active");
    assert_eq!(page.state, AlertState::Pending, "{page:?}");
    assert_eq!(page.name, "ApiBurn");
    assert_eq!(page.runbook.as_deref(), Some("docs/runbooks/slo-burn.md"));
    let _ = run_from(&mut e, 1449, 2, |_| Some((100.0, 100.0)));
    let page = e
        .alerts()
        .into_iter()
        .find(|a| a.condition == AlertCondition::PageBurn)
        .expect("page alert active");
    assert_eq!(page.state, AlertState::Firing);
    assert_eq!(page.firing_since_ms, Some(page.since_ms + 2 * MIN));
    // Recovery: the alert resolves, and both transitions were recorded.
    let _ = run_from(&mut e, 1451, 120, |_| Some((0.0, 100.0)));
    assert!(e
        .alerts()
        .iter()
        .all(|a| a.condition != AlertCondition::PageBurn));
    let page_transitions: Vec<bool> = e
        .take_transitions()
        .into_iter()
        .filter(|t| t.condition == AlertCondition::PageBurn)
        .map(|t| t.firing)
        .collect();
    assert_eq!(page_transitions, [true, false]);
    let points = e.points(1571 * MIN);
    assert_eq!(points.len(), 1);
    assert!(points[0].1.sli.expect("data") < 1.0);
}

/// Like [`run`], continuing the counters from where minute `start` left them.
fn run_from(
    e: &mut Evaluator,
    start: i64,
    minutes: i64,
    traffic: impl Fn(i64) -> Option<(f64, f64)>,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for m in start..start + minutes {
        let last = e.slos[0].history.latest();
        let counts = traffic(m).map(|(err, req)| EventCounts {
            errors: last.map_or(0.0, |s| s.errors) + err,
            total: last.map_or(0.0, |s| s.total) + req,
        });
        e.tick(m * MIN, &[counts]);
        out.push(e.report("t").slos[0].firing.clone());
    }
    out
}
