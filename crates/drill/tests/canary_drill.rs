//! The canary drill, whole, as CI runs it: each scenario must end as it
//! should. Times are printed, never asserted (a shared 2-core machine).

use drill::canary::{run, table, CanaryDrill, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_canary_ends_as_it_should() {
    let drill = CanaryDrill {
        dwell: Duration::from_secs(3),
        ..CanaryDrill::default()
    };
    let rows = run(&drill).await.expect("the drill runs");
    println!("{}", table(&rows));
    assert_eq!(rows.len(), Scenario::ALL.len());
    for row in &rows {
        assert!(row.as_expected, "{:?} ended wrongly: {row:?}", row.scenario);
        if row.scenario.is_bad() {
            assert!(
                row.requests_affected > 0,
                "the bad version was never reached: {row:?}"
            );
        }
    }
}
