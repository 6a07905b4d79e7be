//! The worked example of docs/operations/cost.md ("What the platform
//! measures by itself"), figure for figure: one 5-minute bucket, prices
//! chosen so a core-second costs 1e-5 and a GiB-second 1e-6.

use super::*;
use chrono::TimeZone;

const PRICING: &str = "\
currency: USD
resources: {cpu_core_hour: 0.036, ram_gib_hour: 0.0036}
node_types:
  big: {cores: 64, ram_gib: 256, hourly: 3}
nodes:
  - {type: big, count: 10}
llm:
  gpt-4o-mini: {input_per_1k: 0.00015, output_per_1k: 0.0006}
budgets:
  modules: {shortener: 1}
  keys: {team-a: 0.5}
";

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, minute, 0)
        .single()
        .expect("time")
}

fn pricing() -> Pricing {
    Pricing::parse(PRICING).expect("pricing")
}

fn route(bucket: u32, module: &str, route: &str, model: &str, cpu: f64, requests: f64) -> Measured {
    Measured {
        module: module.into(),
        route: route.into(),
        model: model.into(),
        cpu_seconds: cpu,
        requests,
        ..Measured::new(at(bucket), Kind::Route)
    }
}

/// The example's bucket starting at `bucket` minutes.
fn example(bucket: u32) -> Vec<Measured> {
    vec![
        Measured {
            seconds: 300.0,
            cpu_seconds: 18.0,
            byte_seconds: 3.0 * GIB * 300.0,
            ..Measured::new(at(bucket), Kind::Process)
        },
        route(bucket, "shortener", "/{slug}", "", 3.0, 900.0),
        route(bucket, "inference", "/v2/infer", "resnet:1", 12.0, 0.0),
        route(bucket, "inference", "/v2/infer", "", 0.0, 100.0),
        route(bucket, "shortener", "task:visit-writer", "", 1.5, 0.0),
        Measured {
            module: "shortener".into(),
            byte_seconds: GIB * 300.0,
            ..Measured::new(at(bucket), Kind::Memory)
        },
        Measured {
            key: "team-a".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 10_000.0,
            output_tokens: 2_000.0,
            ..Measured::new(at(bucket), Kind::Tokens)
        },
    ]
}

fn options(share_idle: bool) -> Options {
    Options {
        capacity_cores: 2.0,
        idle: IdleOptions {
            include_idle: true,
            share_idle,
        },
    }
}

/// One core of capacity and no idle line: only the measured lines.
fn one_core_no_idle() -> Options {
    Options {
        capacity_cores: 1.0,
        idle: IdleOptions {
            include_idle: false,
            share_idle: false,
        },
    }
}

fn window(from: u32, to: u32) -> Window {
    Window {
        start: at(from),
        end: at(to),
    }
}

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

#[test]
fn the_worked_example_figure_for_figure() {
    let sets = allocate_measured(&pricing(), &window(0, 5), None, &example(0), options(false))
        .expect("window");
    assert_eq!(sets.len(), 1);
    let set = &sets[0];
    let line = |name: &str| set.allocations.get(name).expect(name);

    // Overhead 18 - (3 + 12 + 1.5) = 1.5 core-seconds, shared by the
    // routes' measured CPU (3 + 12): a tenth of each.
    let slug = line("shortener /{slug}");
    close(slug.cpu_cost, 3e-5);
    close(slug.shared_cost, 3e-6);
    close(slug.total_cost, 3.3e-5);
    close(slug.cpu_core_usage_average, 0.01);
    assert_eq!(slug.requests, 900);
    assert_eq!(slug.minutes, 5.0);

    // The route's 100 requests go to its only model version.
    let infer = line("inference /v2/infer resnet:1");
    close(infer.cpu_cost, 1.2e-4);
    close(infer.shared_cost, 1.2e-5);
    assert_eq!(infer.requests, 100);
    close(infer.cost_per_1k_requests.expect("requests"), 1.32e-3);
    assert!(!set.allocations.contains_key("inference /v2/infer"));

    close(line("shortener task:visit-writer").total_cost, 1.5e-5);
    close(line("shortener memory").ram_cost, 3e-4);
    // RSS 3 GiB, modules 1 GiB: 2 GiB × 300 s shared.
    close(line(SHARED).ram_cost, 6e-4);
    close(line("llm/team-a/gpt-4o-mini").external_cost, 0.0027);
    // Idle against 2 cores, not the pricing file's ten nodes: 600 - 18.
    let idle = line(IDLE);
    close(idle.cpu_core_hours, 582.0 / 3600.0);
    close(idle.cpu_cost, 5.82e-3);
    close(set.total_cost(), 9.6e-3);

    let modules = set.aggregate("module");
    let shortener = &modules.allocations["shortener"];
    close(shortener.total_cost, 3.48e-4);
    assert_eq!(shortener.requests, 900);
    close(
        shortener.cost_per_1k_requests.expect("requests"),
        3.48e-4 / 0.9,
    );
    close(modules.allocations["llm"].total_cost, 0.0027);
    close(modules.allocations[SHARED].total_cost, 6e-4);
}

#[test]
fn shared_idle_is_spread_by_cpu_cost_and_the_total_is_unchanged() {
    let sets = allocate_measured(&pricing(), &window(0, 5), None, &example(0), options(true))
        .expect("window");
    let set = &sets[0];
    assert!(!set.allocations.contains_key(IDLE));
    let slug = &set.allocations["shortener /{slug}"];
    close(slug.cpu_cost_idle, 5.82e-3 * 3.3e-5 / 1.8e-4);
    close(set.total_cost(), 9.6e-3);
    // Memory and external lines have no CPU: no idle.
    assert_eq!(set.allocations[SHARED].cpu_cost_idle, 0.0);
}

#[test]
fn without_requests_the_overhead_is_unallocated() {
    let rows = vec![
        Measured {
            seconds: 300.0,
            cpu_seconds: 6.0,
            ..Measured::new(at(0), Kind::Process)
        },
        route(0, "notifier", "task:deliver", "", 2.0, 0.0),
    ];
    let sets = allocate_measured(&pricing(), &window(0, 5), None, &rows, one_core_no_idle())
        .expect("window");
    let set = &sets[0];
    close(set.allocations[UNALLOCATED].cpu_cost, 4e-5);
    assert!(!set.allocations.contains_key(IDLE));
    close(set.total_cost(), 6e-5);
}

#[test]
fn with_sampling_off_the_overhead_is_shared_by_request_count() {
    let rows = vec![
        Measured {
            seconds: 300.0,
            cpu_seconds: 4.0,
            ..Measured::new(at(0), Kind::Process)
        },
        route(0, "shortener", "/{slug}", "", 0.0, 300.0),
        route(0, "shortener", "/api/v1/links", "", 0.0, 100.0),
    ];
    let sets = allocate_measured(&pricing(), &window(0, 5), None, &rows, one_core_no_idle())
        .expect("window");
    let set = &sets[0];
    close(set.allocations["shortener /{slug}"].shared_cost, 3e-5);
    close(set.allocations["shortener /api/v1/links"].shared_cost, 1e-5);
    close(set.total_cost(), 4e-5);
}

#[test]
fn steps_take_the_buckets_that_start_in_them() {
    let mut rows = example(0);
    rows.extend(example(5));
    rows.extend(example(10));
    let sets = allocate_measured(
        &pricing(),
        &window(0, 10),
        Some(Duration::minutes(5)),
        &rows,
        options(false),
    )
    .expect("window");
    assert_eq!(sets.len(), 2);
    for set in &sets {
        close(set.total_cost(), 9.6e-3);
    }
    let whole =
        allocate_measured(&pricing(), &window(0, 10), None, &rows, options(false)).expect("window");
    close(whole[0].total_cost(), 2.0 * 9.6e-3);
    assert_eq!(whole[0].allocations["shortener /{slug}"].requests, 1800);
}

#[test]
fn rows_merge_by_key_and_buckets_align_to_five_minutes() {
    let late = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 7, 59)
        .single()
        .expect("time");
    assert_eq!(bucket_of(late), at(5));
    let merged = merge([
        route(0, "a", "/", "", 1.0, 2.0),
        route(0, "a", "/", "", 0.5, 1.0),
        route(5, "a", "/", "", 1.0, 1.0),
    ]);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].cpu_seconds, 1.5);
    assert_eq!(merged[0].requests, 3.0);
    for kind in Kind::ALL {
        assert_eq!(Kind::parse(kind.as_str()), Some(kind));
    }
}

#[test]
fn the_view_has_steps_top_lines_keys_and_budgets() {
    let mut rows = example(0);
    rows.extend(example(5));
    let panel = view(
        &pricing(),
        &window(0, 10),
        Some(Duration::minutes(5)),
        &rows,
        options(false),
        1,
    )
    .expect("view");
    assert_eq!(panel.steps.len(), 2);
    close(panel.steps[0].modules["shortener"], 3.48e-4);
    close(panel.steps[0].idle_cost, 5.82e-3);
    assert_eq!(panel.top_routes.len(), 1);
    assert_eq!(panel.top_routes[0].name, "/v2/infer");
    assert_eq!(panel.top_models[0].name, "gpt-4o-mini");
    assert_eq!(panel.keys.len(), 1);
    close(panel.keys[0].cost, 0.0054);
    close(panel.total_cost, 2.0 * 9.6e-3);
    // 10 minutes observed: × 4,320 for 30 days.
    close(panel.projected_month, 2.0 * 9.6e-3 * 4320.0);
    let team = panel
        .budgets
        .iter()
        .find(|b| b.name == "team-a")
        .expect("team-a");
    close(team.projected_month, 0.0054 * 4320.0);
    assert!(team.over);
}
