//! The outage drill end to end on the simulated clock: real modules, real
//! load, the live evaluator's real rules; only the time between two
//! evaluations is compressed, so nothing here waits for a window.
//!
//! The metrics recorder is process-wide: each test here runs a different
//! module, so their SLIs never mix.

use drill::outage::{self, OutageDrill, OutageRequest, Row};
use kit::changes::{ChangeKind, ChangeRecorder, MemoryChangeLog};
use std::time::Duration;

fn drill(modules: &[&str], faults: &[&str], ratios: &[f64], tick_requests: u32) -> OutageDrill {
    OutageDrill::parse(&OutageRequest {
        modules: modules.iter().map(|s| s.to_string()).collect(),
        faults: faults.iter().map(|s| s.to_string()).collect(),
        error_ratios: ratios.to_vec(),
        // Few requests a tick keep it fast; the ratios do not depend on it.
        tick_requests,
        // The page's windows need 6 h of history; the tickets' recovery
        // (hours) is not waited for here.
        steady: Duration::from_secs(6 * 3600),
        max_recovery: Duration::from_secs(3600),
        ..OutageRequest::default()
    })
    .expect("valid drill")
}

fn by_name<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.scenario == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_partial_outages_page_and_resolve_as_the_windows_say() {
    let log = MemoryChangeLog::new(10);
    let changes = ChangeRecorder(log.clone());
    let drill = drill(&["shortener"], &["shortener-errors"], &[1.0, 0.1], 10);
    let rows = outage::run(&drill, &changes).await.expect("drill ran");
    eprintln!("{}", outage::table(&rows));
    assert_eq!(rows.len(), 2);
    let full = by_name(&rows, "full outage");
    let partial = by_name(&rows, "10% errors");
    let page = full.mttd_page_seconds.expect("the full outage paged");
    assert!(page < 60.0, "full outage paged after {page} s");
    assert!(page > 51.84, "before the 1 h window allows: {page} s");
    assert!(full.mttr_page_seconds.is_some(), "the page resolved");
    assert!(full.goal_met, "{}", full.verdict);
    let later = partial.mttd_page_seconds.expect("10% paged");
    assert!(
        later > page,
        "10% paged after {later} s, full after {page} s"
    );
    // The window arithmetic's 518.4 s, within one tick (every tick holds
    // the same mix and the switch spreads its failures evenly).
    assert!(
        later > 518.4 && later <= 518.4 + 10.0,
        "10% paged after {later} s"
    );
    assert!(partial.mttr_page_seconds.is_some());
    // Every failure is a real answer: a full outage fails what it sees.
    assert!(full.requests_failed > 0 && full.requests_failed < full.requests_sent);
    assert!(partial.requests_failed < full.requests_failed * 20);
    assert!(full.budget_consumed > 0.0 && full.budget_consumed < 0.1);
    let table = outage::table(&rows);
    assert_eq!(table.lines().count(), 2 + rows.len());
    assert!(table.starts_with("| scenario | fault | SLO | MTTD page | MTTD ticket | MTTR |"));
    let recorded = log.snapshot();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].event.kind, ChangeKind::Drill);
    assert!(recorded[0].event.summary.contains("full outage: page"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_database_going_away_pages_its_slo() {
    let drill = drill(&["orders"], &["orders-db"], &[], 3);
    let rows = outage::run(&drill, &ChangeRecorder::discard())
        .await
        .expect("drill ran");
    eprintln!("{}", outage::table(&rows));
    let row = by_name(&rows, "orders db unreachable");
    assert_eq!(row.slo, "orders-create-success");
    let page = row.mttd_page_seconds.expect("paged");
    // 99.5 %: 7.2 % of the hour, 259 s, and within the 5 minutes.
    assert!(page > 259.2 && page < 300.0, "paged after {page} s");
    assert!(
        row.mttr_page_seconds.is_some(),
        "resolved after reconnecting"
    );
    assert!(row.requests_failed > 0);
}
