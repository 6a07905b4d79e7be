//! The worked example of docs/operations/cost.md ("OpenCost's arithmetic,
//! by hand"), figure for figure. Change one only with the other.

use super::*;
use crate::pricing::Pricing;
use chrono::{TimeZone, Utc};

const PRICING: &str = "\
currency: USD
resources:
  cpu_core_hour: 0.04
  ram_gib_hour: 0.005
node_types:
  n1:
    cores: 4
    ram_gib: 16
    hourly: 0.24
nodes:
  - {type: n1, count: 2}
";

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

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

fn usage(
    name: &str,
    module: &str,
    route: Option<&str>,
    minutes: f64,
    cpu: (f64, f64),
    ram_gib: (f64, f64),
) -> Usage {
    let mut properties = BTreeMap::from([("module".to_string(), module.to_string())]);
    if let Some(route) = route {
        properties.insert("route".to_string(), route.to_string());
    }
    Usage {
        name: name.to_string(),
        properties,
        node_type: Some("n1".to_string()),
        minutes,
        cpu_core_request_average: cpu.0,
        cpu_core_usage_average: cpu.1,
        ram_byte_request_average: ram_gib.0 * GIB,
        ram_byte_usage_average: ram_gib.1 * GIB,
        ..Usage::default()
    }
}

/// A: requests above usage; B: usage above requests; C: half the window,
/// with external (token) cost.
fn usages() -> Vec<Usage> {
    let a = Usage {
        requests: 100_000,
        ..usage(
            "a",
            "shortener",
            Some("GET /{slug}"),
            600.0,
            (1.0, 0.5),
            (2.0, 1.0),
        )
    };
    let b = Usage {
        requests: 2_500,
        ..usage(
            "b",
            "inference",
            Some("POST /v2/models/{name}/infer"),
            600.0,
            (1.0, 2.5),
            (4.0, 5.0),
        )
    };
    let c = Usage {
        external_cost: 0.75,
        ..usage("c", "llm", None, 300.0, (0.5, 1.0), (2.0, 1.0))
    };
    vec![a, b, c]
}

fn near(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} != {expected}"
    );
}

#[test]
fn the_worked_example_with_an_idle_line() {
    let pricing = Pricing::parse(PRICING).expect("pricing");
    let set = allocate(&pricing, &window(), &usages(), IdleOptions::default());
    let a = &set.allocations["a"];
    near(
        a.cpu_core_hours,
        10.0,
        "a core-hours (request 1 > usage 0.5)",
    );
    near(a.cpu_cost, 0.40, "a cpu");
    near(a.ram_byte_hours / GIB, 20.0, "a GiB-hours");
    near(a.ram_cost, 0.10, "a ram");
    near(a.total_cost, 0.50, "a total");
    near(a.total_efficiency, 0.5, "a efficiency");
    near(a.cost_per_1k_requests.expect("requests"), 0.005, "a per 1k");

    let b = &set.allocations["b"];
    near(
        b.cpu_core_hours,
        25.0,
        "b core-hours (usage 2.5 > request 1)",
    );
    near(b.cpu_cost, 1.00, "b cpu");
    near(b.ram_cost, 0.25, "b ram");
    near(b.total_cost, 1.25, "b total");
    near(b.cost_per_1k_requests.expect("requests"), 0.5, "b per 1k");

    let c = &set.allocations["c"];
    near(c.cpu_core_hours, 5.0, "c core-hours (5 h)");
    near(c.cpu_cost, 0.20, "c cpu");
    near(c.ram_cost, 0.05, "c ram");
    near(c.total_cost, 1.00, "c total (0.75 external)");
    assert_eq!(c.cost_per_1k_requests, None);

    let idle = &set.allocations[IDLE];
    near(idle.cpu_cost, 1.60, "idle cpu: 3.20 capacity - 1.60");
    near(idle.ram_cost, 1.20, "idle ram: 1.60 capacity - 0.40");
    near(idle.cpu_core_hours, 40.0, "idle core-hours: 80 - 40");
    near(idle.ram_byte_hours / GIB, 240.0, "idle GiB-hours: 320 - 80");
    near(idle.total_cost, 2.80, "idle total");
    near(set.total_cost(), 5.55, "capacity 4.80 + external 0.75");
}

#[test]
fn the_worked_example_with_idle_shared_by_cost() {
    let pricing = Pricing::parse(PRICING).expect("pricing");
    let options = IdleOptions {
        include_idle: true,
        share_idle: true,
    };
    let set = allocate(&pricing, &window(), &usages(), options);
    assert!(!set.allocations.contains_key(IDLE));
    let expected = [
        ("a", 0.80, 0.40, 1.20),
        ("b", 2.00, 1.00, 3.00),
        ("c", 0.40, 0.20, 1.35),
    ];
    for (name, cpu, ram, total) in expected {
        let line = &set.allocations[name];
        near(line.cpu_cost, cpu, name);
        near(line.ram_cost, ram, name);
        near(line.total_cost, total, name);
    }
    near(
        set.allocations["a"].cpu_cost_idle,
        0.40,
        "a's share of cpu idle",
    );
    near(
        set.total_cost(),
        5.55,
        "shared idle changes nothing in the total",
    );
}

#[test]
fn without_idle_only_the_workloads_are_reported() {
    let pricing = Pricing::parse(PRICING).expect("pricing");
    let options = IdleOptions {
        include_idle: false,
        share_idle: false,
    };
    let set = allocate(&pricing, &window(), &usages(), options);
    assert_eq!(set.allocations.len(), 3);
    near(set.total_cost(), 2.75, "0.50 + 1.25 + 1.00");
}

#[test]
fn aggregation_sums_and_keeps_idle_and_unallocated_apart() {
    let pricing = Pricing::parse(PRICING).expect("pricing");
    let mut more = usages();
    more.push(usage(
        "a2",
        "shortener",
        Some("POST /api/v1/links"),
        600.0,
        (0.5, 0.25),
        (1.0, 1.0),
    ));
    let set = allocate(&pricing, &window(), &more, IdleOptions::default());
    let by_module = set.aggregate("module");
    let shortener = &by_module.allocations["shortener"];
    near(shortener.cpu_cost, 0.40 + 0.20, "two routes' cpu");
    near(shortener.cpu_core_request_average, 1.5, "requests add");
    assert!(by_module.allocations.contains_key(IDLE));
    near(
        by_module.total_cost(),
        set.total_cost(),
        "aggregation keeps the total",
    );

    let by_route = set.aggregate("route");
    assert!(
        by_route.allocations.contains_key(UNALLOCATED),
        "{:?}",
        by_route.allocations.keys()
    );
    near(
        by_route.allocations[UNALLOCATED].external_cost,
        0.75,
        "the llm line has no route",
    );
}

#[test]
fn the_json_has_opencost_field_names() {
    let pricing = Pricing::parse(PRICING).expect("pricing");
    let set = allocate(&pricing, &window(), &usages(), IdleOptions::default());
    let json = serde_json::to_value(&set).expect("json");
    let a = &json["a"];
    for field in [
        "cpuCost",
        "ramCost",
        "totalCost",
        "cpuCoreUsageAverage",
        "cpuCoreRequestAverage",
        "minutes",
        "cpuCoreHours",
        "ramByteHours",
        "externalCost",
        "totalEfficiency",
    ] {
        assert!(a.get(field).is_some(), "{field} missing: {a}");
    }
    assert_eq!(a["window"]["start"], "2026-12-01T00:00:00+00:00");
    assert!(json.get(IDLE).is_some());
}
