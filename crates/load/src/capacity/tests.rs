use super::*;

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * 1e-6 + 1e-9
}

fn level<'p>(plan: &'p CapacityPlan, name: &str) -> &'p Level {
    plan.levels
        .iter()
        .find(|l| l.level == name)
        .unwrap_or_else(|| panic!("no {name} level"))
}

/// Checks a level against the arithmetic worked by hand in the test.
fn assert_level(
    plan: &CapacityPlan,
    name: &str,
    creates: f64,
    redirects: f64,
    cores: f64,
    replicas: u64,
    pg: f64,
) {
    let l = level(plan, name);
    assert!(
        close(l.creates_per_s, creates),
        "{name} creates {}",
        l.creates_per_s
    );
    assert!(
        close(l.redirects_per_s, redirects),
        "{name} redirects {}",
        l.redirects_per_s
    );
    assert!(close(l.cores, cores), "{name} cores {}", l.cores);
    assert_eq!(l.replicas, replicas, "{name} replicas");
    assert!(close(l.pg_rows_per_s, pg), "{name} pg {}", l.pg_rows_per_s);
}

// With the defaults: 5 creates per user per day, 100 redirects each, peak
// x2.5, viral x100, 25,400 redirects and 750 creates per core, 60%
// utilization, 2 cores per replica, 2 rows per visit and per create.

#[test]
fn ten_thousand_users() {
    let plan = CapacityModel::for_dau(10_000.0).plan().expect("plan");
    // 10,000 x 5 / 86,400 = 0.5787 creates/s on average.
    let average = 50_000.0 / 86_400.0;
    assert_level(
        &plan,
        "average",
        average,
        average * 100.0,
        (average * 100.0 / 25_400.0 + average / 750.0) / 0.6,
        2,
        average * 202.0,
    );
    // Peak: 1.447 creates/s + 144.7 redirects/s = 0.0127 cores: the
    // minimum of 2 replicas.
    assert_level(
        &plan,
        "peak",
        1.446_759_26,
        144.675_926,
        0.012_708_19,
        2,
        292.245_370,
    );
    assert!(plan.notes.iter().all(|n| !n.contains("ClickHouse")));
}

#[test]
fn one_million_users() {
    let plan = CapacityModel::for_dau(1_000_000.0).plan().expect("plan");
    // 5,000,000 creates a day = 57.87/s; peak 144.7/s and 14,468
    // redirects/s: (14,467.6 / 25,400 + 144.68 / 750) / 0.6 = 1.27 cores.
    assert_level(
        &plan,
        "peak",
        144.675_926,
        14_467.592_59,
        1.270_819_16,
        2,
        29_224.537_04,
    );
    // Viral x100: 578,704 redirects/s + 5,787 creates/s = 50.8 cores,
    // 26 replicas of 2 cores.
    assert_level(
        &plan,
        "viral",
        5_787.037_037,
        578_703.703_7,
        50.832_766_27,
        26,
        1_168_981.481,
    );
    assert!(close(plan.visits_per_day, 500_000_000.0));
    assert!(close(plan.pg_rows_per_day, 1_010_000_000.0));
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("26 replicas against 2")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn a_hundred_million_users() {
    let plan = CapacityModel::for_dau(100_000_000.0).plan().expect("plan");
    // Peak: 1,446,759 redirects/s + 14,468 creates/s = 127.1 cores, 64
    // replicas; 2.9 M PostgreSQL rows/s, far past one primary.
    assert_level(
        &plan,
        "peak",
        14_467.592_59,
        1_446_759.259,
        127.081_915_7,
        64,
        2_922_453.704,
    );
    assert!(
        plan.notes.iter().any(|n| n.contains("ClickHouse")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn the_plan_reuses_the_dau_helper_arithmetic() {
    let plan = CapacityModel::for_dau(1_000_000.0).plan().expect("plan");
    let helper = Dau {
        users: 1_000_000.0,
        actions_per_user_per_day: 5.0,
        read_write_ratio: 100.0,
        peak_factor: Some(2.5),
        spike_factor: Some(100.0),
    };
    assert_eq!(plan.dau_arithmetic, helper.explain());
    let text = plan.to_string();
    assert!(
        text.contains("1,000,000 users x 5/day = 5,000,000 writes/day"),
        "{text}"
    );
    assert!(text.contains("--redirects-per-core     25,400/s"), "{text}");
    let replicas = text
        .lines()
        .find(|l| l.starts_with("replicas"))
        .expect("replicas row");
    assert_eq!(
        replicas.split_whitespace().collect::<Vec<_>>(),
        ["replicas", "2", "2", "26"]
    );
}

#[test]
fn other_inputs_move_the_plan_as_the_formula_says() {
    let model = CapacityModel {
        redirects_per_core: 50_000.0,
        creates_per_core: 1_000.0,
        utilization: 1.0,
        cores_per_replica: 4.0,
        min_replicas: 1,
        pg_writes_per_visit: 1.0,
        pg_writes_per_create: 3.0,
        ..CapacityModel::for_dau(86_400_000.0)
    };
    let plan = model.plan().expect("plan");
    // 86.4 M users x 5 / 86,400 = 5,000 creates/s, 500,000 redirects/s.
    // Cores: 10 + 5 = 15; replicas ceil(15 / 4) = 4; rows 500,000 + 15,000.
    assert_level(&plan, "average", 5_000.0, 500_000.0, 15.0, 4, 515_000.0);
}

#[test]
fn wal_is_the_visits_and_creates_times_their_bytes() {
    let model = CapacityModel {
        pg_wal_bytes_per_visit: 400.0,
        pg_wal_bytes_per_create: 1_000.0,
        ..CapacityModel::for_dau(86_400_000.0)
    };
    let plan = model.plan().expect("plan");
    // 500,000 redirects/s x 400 + 5,000 creates/s x 1,000 = 205 MB/s on
    // average, 2.5 times that at peak; 205 MB x 86,400 a day.
    assert!(close(level(&plan, "average").pg_wal_bytes_per_s, 205e6));
    assert!(close(level(&plan, "peak").pg_wal_bytes_per_s, 512.5e6));
    assert!(close(plan.pg_wal_bytes_per_day, 205e6 * 86_400.0));
    let text = plan.to_string();
    let wal = text
        .lines()
        .find(|l| l.starts_with("PostgreSQL WAL MB/s"))
        .expect("WAL row");
    assert_eq!(
        wal.split_whitespace().skip(3).collect::<Vec<_>>(),
        ["205", "512", "20,500"]
    );
    assert!(text.contains("17,712 GB of WAL"), "{text}");
}

#[test]
fn nonsense_inputs_name_their_flag() {
    let refused = |model: CapacityModel| model.plan().expect_err("refused").to_string();
    assert!(refused(CapacityModel::for_dau(0.0)).starts_with("--dau:"));
    assert!(refused(CapacityModel::for_dau(f64::NAN)).starts_with("--dau:"));
    let base = CapacityModel::for_dau(1_000.0);
    assert!(refused(CapacityModel {
        peak_factor: -1.0,
        ..base.clone()
    })
    .starts_with("--peak-factor:"));
    assert!(refused(CapacityModel {
        read_write_ratio: -1.0,
        ..base.clone()
    })
    .starts_with("--read-write-ratio:"));
    assert!(refused(CapacityModel {
        redirects_per_core: 0.0,
        ..base.clone()
    })
    .starts_with("--redirects-per-core:"));
    assert!(refused(CapacityModel {
        pg_writes_per_visit: -2.0,
        ..base.clone()
    })
    .starts_with("--pg-writes-per-visit:"));
    assert!(refused(CapacityModel {
        pg_wal_bytes_per_create: f64::NAN,
        ..base.clone()
    })
    .starts_with("--pg-wal-per-create:"));
    let utilization = refused(CapacityModel {
        utilization: 60.0,
        ..base.clone()
    });
    assert!(
        utilization.starts_with("--utilization:") && utilization.contains("0.6"),
        "{utilization}"
    );
    assert!(refused(CapacityModel {
        cores_per_replica: 0.0,
        ..base
    })
    .starts_with("--cores-per-replica:"));
}

#[test]
fn the_json_names_every_input_and_level() {
    let plan = CapacityModel::for_dau(1_000_000.0).plan().expect("plan");
    let value = serde_json::to_value(&plan).expect("json");
    assert_eq!(value["model"]["dau"], 1_000_000.0);
    assert_eq!(value["model"]["redirects_per_core"], 25_400.0);
    assert_eq!(value["levels"][1]["level"], "peak");
    assert_eq!(value["levels"][2]["replicas"], 26);
    assert!(value["dau_arithmetic"]
        .as_str()
        .is_some_and(|s| s.contains("dau.peak")));
}
