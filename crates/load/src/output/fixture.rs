//! A hand-built run for the output tests: a setup step with a capture,
//! an open-model scenario that dropped arrivals and failed checks, a
//! closed-model scenario whose name needs HTML escaping, and thresholds
//! that pass and fail.

use crate::plan::{Executor, Plan, PoolSpec, RequestPlan, ScenarioPlan, SetupStep, StatusSet};
use crate::results::{
    record, Outcome, PhaseResults, Point, Results, ScenarioResults, Series, Stats,
};
use crate::scenario::Template;
use crate::threshold::{Threshold, Verdict};
use http::Method;
use std::collections::BTreeMap;
use std::time::Duration;

pub const HOSTILE: &str = "<script>alert(\"x\")</script>";

pub fn request(name: &str) -> RequestPlan {
    RequestPlan {
        name: name.to_string(),
        weight: 1,
        method: Method::GET,
        url: Template::literal("http://127.0.0.1:8080/"),
        headers: Vec::new(),
        body: None,
        captures: Vec::new(),
        checks: Vec::new(),
        expect_status: StatusSet::default(),
        timeout: Duration::from_secs(5),
    }
}

fn scenario(name: &str, executor: Executor, start: u64, requests: &[&str]) -> ScenarioPlan {
    ScenarioPlan {
        name: name.to_string(),
        executor,
        start: Duration::from_secs(start),
        connections: 32,
        http2: false,
        insecure_tls: false,
        warmup: Duration::ZERO,
        requests: requests.iter().map(|name| request(name)).collect(),
    }
}

fn threshold(key: &str, expression: &str, abort_on_fail: bool) -> Threshold {
    Threshold::parse(key, expression, abort_on_fail, Duration::ZERO)
        .expect("the fixture's thresholds parse")
}

pub fn plan() -> Plan {
    Plan {
        pools: vec![PoolSpec {
            name: "slugs".to_string(),
            capacity: 100_000,
        }],
        setup: vec![SetupStep {
            request: request("create-link"),
            repeat: 100,
            concurrency: 4,
            insecure_tls: false,
        }],
        scenarios: vec![
            scenario(
                "baseline",
                Executor::ConstantArrivalRate {
                    rate: 20.0,
                    duration: Duration::from_secs(60),
                },
                0,
                &["create", "redirect"],
            ),
            scenario(
                HOSTILE,
                Executor::ConstantConnections {
                    duration: Duration::from_secs(30),
                },
                60,
                &[HOSTILE],
            ),
        ],
        teardown: Vec::new(),
        thresholds: vec![
            threshold("http_req_duration", "p(99) < 25ms", false),
            threshold("errors", "rate < 0.1%", true),
        ],
        dau: Some("1,000 users x 5/day = 0.058/s average".to_string()),
    }
}

/// `ok` answers of 200 spread from 1 ms to `slowest_ms`, plus `timeouts`
/// and `unavailable` (503) failures; lateness 100-300 us.
pub fn stats(ok: u64, slowest_ms: u64, timeouts: u64, unavailable: u64) -> Stats {
    let mut stats = Stats::default();
    for i in 0..ok {
        let us = 1_000 + i * (slowest_ms.saturating_sub(1) * 1_000) / ok.max(1);
        stats.record_outcome(Outcome::Status(200), true, Duration::from_micros(us));
        record(&mut stats.lateness, Duration::from_micros(100 + i % 200));
    }
    for _ in 0..timeouts {
        stats.record_outcome(Outcome::Timeout, false, Duration::from_secs(5));
    }
    for _ in 0..unavailable {
        stats.record_outcome(Outcome::Status(503), false, Duration::from_millis(2));
    }
    stats.sent = ok + timeouts + unavailable;
    stats
}

fn series(scenario: &str, name: &str, from: u64, seconds: u64, base_ms: u64) -> Series {
    let mut series = Series {
        scenario: scenario.to_string(),
        name: name.to_string(),
        points: Vec::new(),
    };
    for second in 0..seconds {
        // A slow wave with one stall, so the charts have shape.
        let wave = (second as f64 / 6.0).sin().abs();
        let p50 = base_ms * 1_000 + (wave * (base_ms * 1_000) as f64) as u64;
        let stall = if second == seconds / 2 { 10_000 } else { 0 };
        series.push(Point {
            t: (from + second + 1) as f64,
            width: 1.0,
            sent: 20 + second % 3,
            completed: 20 + second % 3,
            errors: u64::from(second % 10 == 0),
            check_failures: 0,
            p50_us: p50,
            p90_us: p50 * 2,
            p99_us: p50 * 3 + stall,
            max_us: p50 * 4 + stall,
            lateness_p99_us: 150,
        });
    }
    series
}

pub fn results() -> Results {
    let mut create_link = stats(100, 5, 0, 0);
    create_link.record_check("created", true);
    let mut redirect = stats(1_100, 30, 2, 3);
    for _ in 0..1_100 {
        redirect.record_check("is redirect", true);
    }
    redirect.record_check("is redirect", false);
    redirect.skipped_empty_pool = 4;
    Results {
        setup: vec![PhaseResults {
            phase: "setup",
            name: "create-link".to_string(),
            stats: create_link,
            captured: BTreeMap::from([("slugs <- json /slug".to_string(), 100)]),
        }],
        scenarios: vec![
            ScenarioResults {
                name: "baseline".to_string(),
                executor: "constant-arrival-rate",
                target_rate: Some(20.0),
                connections: 32,
                start: Duration::ZERO,
                duration: Duration::from_secs(60),
                scheduled: 1_200,
                dropped: 90,
                requests: vec![
                    ("create".to_string(), stats(10, 8, 0, 0)),
                    ("redirect".to_string(), redirect),
                ],
            },
            ScenarioResults {
                name: HOSTILE.to_string(),
                executor: "constant-connections",
                target_rate: None,
                connections: 32,
                start: Duration::from_secs(60),
                duration: Duration::from_secs(30),
                scheduled: 3_000,
                dropped: 0,
                requests: vec![(HOSTILE.to_string(), stats(3_000, 12, 0, 0))],
            },
        ],
        teardown: Vec::new(),
        series: vec![
            series("baseline", "create", 0, 60, 2),
            series("baseline", "redirect", 0, 60, 1),
            series(HOSTILE, HOSTILE, 60, 30, 4),
        ],
        started_unix_ms: 1_700_000_000_000,
        elapsed: Duration::from_secs(90),
        aborted_by: Some("errors: rate < 0.1%".to_string()),
    }
}

pub fn verdicts() -> Vec<Verdict> {
    vec![
        Verdict {
            key: "http_req_duration".to_string(),
            expression: "p(99) < 25ms".to_string(),
            observed: Some("12.3ms".to_string()),
            passed: true,
        },
        Verdict {
            key: "errors".to_string(),
            expression: "rate < 0.1%".to_string(),
            observed: Some("0.42%".to_string()),
            passed: false,
        },
        Verdict {
            key: format!("http_req_duration{{name:{HOSTILE}}}"),
            expression: "p(99) < 1ms".to_string(),
            observed: None,
            passed: false,
        },
    ]
}
