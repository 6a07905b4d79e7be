//! Ticks over synthetic `/metrics` text on a manual clock: buckets fill,
//! a counter reset is not a negative amount, a restarted process keeps
//! its history and counts from its start, old buckets are pruned.

use super::*;
use chrono::TimeZone;
use cost::measured::Kind;
use kit::ManualClock;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("time")
}

fn minutes(m: i64) -> DateTime<Utc> {
    start() + Span::minutes(m)
}

/// The series the meter reads, `i` ticks into a steady load.
fn metrics(cpu: f64, requests: f64, process_cpu: f64, started: Option<i64>) -> String {
    let mut text = format!(
        "# TYPE reliable_cost_cpu_seconds_total counter\n\
         reliable_cost_cpu_seconds_total{{module=\"shortener\",route=\"/{{slug}}\"}} {cpu}\n\
         http_server_request_duration_seconds_count{{service=\"shortener\",http_route=\"/{{slug}}\",http_response_status_code=\"301\"}} {requests}\n\
         reliable_memory_bytes{{module=\"shortener\",component=\"cache\"}} {}\n\
         process_cpu_seconds_total {process_cpu}\n\
         process_resident_memory_bytes {}\n\
         llm_key_tokens_total{{key=\"team-a\",gen_ai_request_model=\"gpt-4o-mini\",gen_ai_token_type=\"input\"}} {}\n",
        0.25 * GIB,
        GIB,
        requests * 10.0,
    );
    if let Some(at) = started {
        text.push_str(&format!("process_start_time_seconds {at}\n"));
    }
    text
}

async fn meter(dir: &std::path::Path, clock: &ManualClock) -> CostLive {
    let url = format!("sqlite://{}", dir.join("cost.db").display());
    let store = crate::cost_store::open(&url).await.expect("store");
    let config = CostConfig {
        capacity_cores: Some(2.0),
        ..CostConfig::default()
    };
    CostLive::new(&config, Arc::new(clock.clone()), store).expect("meter")
}

fn window(from: i64, to: i64) -> Window {
    Window {
        start: minutes(from),
        end: minutes(to),
    }
}

async fn routes(live: &CostLive, from: i64, to: i64) -> Vec<Measured> {
    let mut rows: Vec<Measured> = live
        .inner
        .store
        .read(&window(from, to), Some(Span::minutes(5)))
        .await
        .expect("read")
        .into_iter()
        .filter(|r| r.kind == Kind::Route)
        .collect();
    rows.sort_by_key(|r| r.bucket);
    rows
}

#[tokio::test]
async fn ticks_fill_buckets_survive_resets_and_restarts_and_are_pruned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(start());
    let live = meter(dir.path(), &clock).await;
    assert_eq!(live.pricing_source(), PricingSource::Example);
    // The first sample of a process that does not say when it started is
    // only an anchor.
    live.tick(&metrics(0.0, 0.0, 0.0, None)).await;
    for i in 1..=60 {
        clock.advance(Span::seconds(10));
        let i = f64::from(i);
        live.tick(&metrics(0.1 * i, 10.0 * i, 0.3 * i, None)).await;
    }
    // Each interval counts in the bucket of its end: 29 ticks end in the
    // first bucket, 30 in the second, one in the third.
    let rows = routes(&live, 0, 15).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!((rows[0].cpu_seconds - 2.9).abs() < 1e-9, "{rows:?}");
    assert!((rows[0].requests - 290.0).abs() < 1e-9);
    assert!((rows[1].cpu_seconds - 3.0).abs() < 1e-9);

    let sets = live
        .allocation(&window(0, 10), None, IdleOptions::default())
        .await
        .expect("allocation");
    let set = &sets[0];
    let slug = &set.allocations["shortener /{slug}"];
    assert_eq!(slug.requests, 590);
    // A window that starts between two stored microseconds (the system
    // clock's nanoseconds) still holds its buckets.
    let nanos = Window {
        start: minutes(0) - Span::nanoseconds(1),
        end: minutes(10),
    };
    let sets = live
        .allocation(&nanos, None, IdleOptions::default())
        .await
        .expect("allocation");
    assert_eq!(sets[0].allocations["shortener /{slug}"].requests, 590);
    // 5.9 CPU-seconds over 590 s observed.
    assert!((slug.cpu_core_usage_average - 0.01).abs() < 1e-9);
    // Process 17.7 s - route 5.9 s: 11.8 s of overhead, all on the one
    // route with requests.
    let rate = 0.031611 / 3600.0;
    assert!((slug.shared_cost - 11.8 * rate).abs() < 1e-12, "{slug:?}");
    // 2 cores × 590 s - 17.7 s.
    let idle = &set.allocations[cost::IDLE];
    assert!((idle.cpu_cost - (1180.0 - 17.7) * rate).abs() < 1e-12);
    let shared = &set.allocations[cost::measured::SHARED];
    assert!((shared.ram_byte_usage_average - 0.75 * GIB).abs() < 1.0);
    assert!(set.allocations["llm/team-a/gpt-4o-mini"].external_cost > 0.0);

    // A reset: the counters start again from small values.
    clock.advance(Span::seconds(10));
    live.tick(&metrics(0.05, 5.0, 0.1, None)).await;
    let rows = routes(&live, 10, 15).await;
    assert!((rows[0].cpu_seconds - 0.15).abs() < 1e-9, "{rows:?}");

    // A restarted process on the same store: the history is there, and
    // its first tick counts from its start.
    clock.advance(Span::seconds(10));
    let restarted = meter(dir.path(), &clock).await;
    let started = (clock.now() - Span::seconds(5)).timestamp();
    restarted
        .tick(&metrics(0.02, 2.0, 0.04, Some(started)))
        .await;
    let rows = routes(&restarted, 0, 15).await;
    assert_eq!(rows.len(), 3);
    assert!((rows[0].cpu_seconds - 2.9).abs() < 1e-9);
    assert!((rows[2].cpu_seconds - 0.17).abs() < 1e-9, "{rows:?}");

    // 36 days on, the next tick prunes what is older than 35.
    clock.advance(Span::days(36));
    restarted.tick(&metrics(0.03, 3.0, 0.05, None)).await;
    assert!(routes(&restarted, 0, 15).await.is_empty());
}

#[tokio::test]
async fn a_step_longer_than_allowed_or_a_bad_window_is_the_callers_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(start());
    let live = meter(dir.path(), &clock).await;
    let error = live
        .allocation(
            &window(0, 60 * 24 * 30),
            Some(Span::minutes(5)),
            IdleOptions::default(),
        )
        .await
        .expect_err("too many steps");
    assert!(matches!(error, CostError::Window(_)), "{error}");
    let view = live.view(&window(0, 10), Some(Span::minutes(5))).await;
    assert_eq!(view.expect("empty view").steps.len(), 2);
}

#[test]
fn config_refuses_bad_values_and_reads_a_pricing_file() {
    let config = CostConfig {
        tick: Duration::from_millis(10),
        ..CostConfig::default()
    };
    assert!(config.validate().is_err());
    let config = CostConfig {
        capacity_cores: Some(-1.0),
        ..CostConfig::default()
    };
    assert!(config.validate().is_err());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cost.yaml");
    std::fs::write(
        &path,
        "currency: USD\nresources: {cpu_core_hour: -1, ram_gib_hour: 0}\n",
    )
    .expect("write");
    let config = CostConfig {
        pricing: Some(path.clone()),
        ..CostConfig::default()
    };
    let error = config.validate().expect_err("negative price").to_string();
    assert!(error.contains("cost.pricing"), "{error}");
    std::fs::write(
        &path,
        "currency: EUR\nresources: {cpu_core_hour: 1, ram_gib_hour: 0}\n",
    )
    .expect("write");
    let (pricing, source) = config.prices().expect("prices");
    assert_eq!(
        (pricing.currency.as_str(), source),
        ("EUR", PricingSource::File)
    );
}
