//! Benchmarks (`cargo bench -p reliable-slo`): rule generation for 1,000
//! SLOs and one live-evaluator tick over 1,000 SLOs (goal: < 10 ms), plus
//! sampling their counters out of a `/metrics` text. Prints the median and
//! the spread of several runs; no harness, so no extra dependencies.

use slo::catalog::load_texts;
use slo::eval::Evaluator;
use slo::exposition::{EventCounts, Sampler};
use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SLOS: usize = 1_000;

/// 1,000 Sloth SLOs, one service each, error and total on one histogram.
fn specs() -> Vec<(String, String)> {
    let mut text = String::from("version: prometheus/v1\nservice: bench\nslos:\n");
    for i in 0..SLOS {
        let _ = write!(
            text,
            "  - name: svc{i}\n    objective: 99.9\n    sli:\n      events:\n        error_query: sum(rate(http_server_request_duration_seconds_count{{service=\"svc{i}\",http_response_status_code=~\"5..\"}}[{{{{.window}}}}]))\n        total_query: sum(rate(http_server_request_duration_seconds_count{{service=\"svc{i}\"}}[{{{{.window}}}}]))\n"
        );
    }
    vec![("bench.yaml".to_string(), text)]
}

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name:<48} median {:>10.3} ms  (min {:.3}, max {:.3}, {runs} runs)",
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let sources = specs();
    measure("parse 1,000 SLO specs", 10, || {
        black_box(load_texts(black_box(&sources)).expect("valid"));
    });
    let slos = load_texts(&sources).expect("valid");
    let refs: Vec<&slo::Slo> = slos.iter().collect();
    measure("generate rules for 1,000 SLOs (YAML text)", 10, || {
        black_box(slo::emit::rule_file(black_box(&refs), "bench.yaml"));
    });

    let mut evaluator = Evaluator::new(&slos);
    // Six hours of 10 s ticks: the fine tier full, the others filling.
    let tick_ms = 10_000;
    let mut now = 0;
    let counts = |t: i64| -> Vec<Option<EventCounts>> {
        (0..SLOS)
            .map(|i| {
                Some(EventCounts {
                    errors: (t / 1000) as f64 * 0.001 * i as f64,
                    total: (t / 1000) as f64 * 10.0,
                })
            })
            .collect()
    };
    for _ in 0..(6 * 360) {
        evaluator.tick(now, &counts(now));
        now += tick_ms;
    }
    let next = counts(now);
    measure("evaluator tick, 1,000 SLOs (6 h of history)", 50, || {
        evaluator.tick(now, black_box(&next));
        now += tick_ms;
    });
    measure("evaluator report, 1,000 SLOs", 20, || {
        black_box(evaluator.report("bench"));
    });

    let (sampler, _) = Sampler::new(&slos);
    let mut metrics = String::new();
    for i in 0..SLOS {
        for code in ["200", "500"] {
            let _ = writeln!(metrics, "http_server_request_duration_seconds_count{{service=\"svc{i}\",http_route=\"/x\",http_request_method=\"GET\",http_response_status_code=\"{code}\"}} {}", i * 10);
        }
    }
    measure("sample counters of 1,000 SLOs from /metrics", 20, || {
        black_box(sampler.sample(black_box(&metrics)));
    });
}
