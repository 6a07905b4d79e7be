use super::*;

fn request(modules: &[&str], faults: &[&str]) -> OutageRequest {
    OutageRequest {
        modules: modules.iter().map(|s| s.to_string()).collect(),
        faults: faults.iter().map(|s| s.to_string()).collect(),
        ..OutageRequest::default()
    }
}

#[test]
fn without_faults_it_runs_the_issues_measured_set() {
    let drill = OutageDrill::parse(&request(&[], &[])).expect("valid");
    let names: Vec<String> = drill.scenarios.iter().map(Scenario::name).collect();
    assert_eq!(
        names,
        [
            "orders db unreachable",
            "full outage",
            "10% errors",
            "2% errors"
        ]
    );
    assert_eq!(drill.modules, [Module::Shortener, Module::Orders]);
}

#[test]
fn a_named_shortener_fault_defaults_to_thirty_percent() {
    let drill = OutageDrill::parse(&request(&["shortener"], &["shortener-errors"])).expect("valid");
    assert_eq!(drill.scenarios.len(), 1);
    assert_eq!(drill.scenarios[0].error_ratio, Some(0.3));
    assert_eq!(drill.scenarios[0].fault_label(), "shortener-errors 30%");
}

#[test]
fn all_names_every_fault_once() {
    let drill = OutageDrill::parse(&request(&[], &["all", "latency"])).expect("valid");
    let faults: Vec<FaultKind> = drill.scenarios.iter().map(|s| s.fault).collect();
    assert_eq!(faults, FaultKind::ALL);
    assert_eq!(drill.scenarios[2].latency, Some(DEFAULT_LATENCY));
}

#[test]
fn a_fault_on_a_module_not_running_is_refused_with_its_name() {
    let err = OutageDrill::parse(&request(&["shortener"], &["orders-db"])).expect_err("refused");
    assert_eq!(
        err,
        InputError::ModuleNotRunning {
            fault: "orders-db",
            module: "orders"
        }
    );
    assert!(err
        .to_string()
        .starts_with("the orders module is not running in this drill;"));
    let err = OutageDrill::parse(&request(&["orders"], &["latency"])).expect_err("refused");
    assert!(err.to_string().contains("shortener module is not running"));
}

#[test]
fn bad_names_ratios_and_durations_are_refused() {
    assert_eq!(
        OutageDrill::parse(&request(&[], &["disk-full"])).expect_err("refused"),
        InputError::UnknownFault("disk-full".into())
    );
    assert_eq!(
        OutageDrill::parse(&request(&["billing"], &[])).expect_err("refused"),
        InputError::UnknownModule("billing".into())
    );
    for ratio in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
        let mut r = request(&[], &["shortener-errors"]);
        r.error_ratios = vec![ratio];
        assert!(matches!(OutageDrill::parse(&r), Err(InputError::Ratio(_))));
    }
    let mut r = request(&[], &["orders-db"]);
    r.error_ratios = vec![0.5];
    assert_eq!(
        OutageDrill::parse(&r).expect_err("refused"),
        InputError::RatioWithoutErrors
    );
    let mut r = request(&[], &[]);
    r.steady = Duration::ZERO;
    assert_eq!(
        OutageDrill::parse(&r).expect_err("refused"),
        InputError::ZeroDuration("--steady")
    );
    let mut r = request(&[], &[]);
    r.max_recovery = Duration::ZERO;
    assert_eq!(
        OutageDrill::parse(&r).expect_err("refused"),
        InputError::ZeroDuration("--max-recovery")
    );
    let mut r = request(&[], &["latency"]);
    r.latency = Some(Duration::ZERO);
    assert_eq!(
        OutageDrill::parse(&r).expect_err("refused"),
        InputError::ZeroDuration("--latency")
    );
    let mut r = request(&[], &[]);
    r.steady = Duration::from_secs(1800);
    assert_eq!(
        OutageDrill::parse(&r).expect_err("refused"),
        InputError::SteadyTooShort
    );
    let mut r = request(&[], &[]);
    r.tick_requests = 1;
    assert_eq!(
        OutageDrill::parse(&r).expect_err("refused"),
        InputError::TickRequests(1)
    );
}

#[test]
fn the_arithmetic_matches_the_workbook_figures() {
    let slos = slo::catalog::load_platform().expect("platform specs");
    let redirect = slos
        .iter()
        .find(|s| s.id() == FaultKind::ShortenerErrors.slo_id())
        .expect("redirect SLO");
    let at = |share: f64| expected_page_seconds(redirect, share).expect("pages");
    // 14.4 x 0.1 % = 1.44 % of the 1 h window.
    assert!((at(1.0) - 51.84).abs() < 1e-6);
    assert!((at(0.1) - 518.4).abs() < 1e-6);
    assert!((at(0.02) - 2592.0).abs() < 1e-6);
    // Below 0.6 % (the 6 h pair's 6 x 0.1 %) nothing pages.
    assert_eq!(expected_page_seconds(redirect, 0.005), None);
    let orders = slos
        .iter()
        .find(|s| s.id() == FaultKind::OrdersDb.slo_id())
        .expect("orders SLO");
    // 99.5 %: 14.4 x 0.5 % = 7.2 % of an hour.
    assert!((expected_page_seconds(orders, 1.0).expect("pages") - 259.2).abs() < 1e-6);
}
