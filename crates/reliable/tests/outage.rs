//! `reliable drill outage`, black-box: bad input is refused with exit 2
//! before anything starts, and a small drill prints its rows as JSON.

mod support;

use serde_json::Value;
use support::reliable;

fn outage(args: &[&str]) -> std::process::Output {
    reliable()
        .args(["drill", "outage"])
        .args(args)
        .output()
        .expect("reliable runs")
}

#[test]
fn bad_input_exits_2_with_a_clear_error() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--modules", "shortener", "--fault", "orders-db"],
            "the orders module is not running in this drill",
        ),
        (&["--fault", "disk-full"], "unknown fault `disk-full`"),
        (&["--modules", "billing"], "unknown module `billing`"),
        (&["--error-ratio", "0"], "--error-ratio 0 is outside (0, 1]"),
        (
            &["--error-ratio", "1.5"],
            "--error-ratio 1.5 is outside (0, 1]",
        ),
        (&["--steady", "0s"], "--steady must be longer than zero"),
    ];
    for (args, message) in cases {
        let out = outage(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a table");
    }
}

#[test]
fn a_full_outage_prints_json_rows_with_its_figures_and_goes_on_the_timeline() {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("utf-8 path");
    let out = outage(&[
        "--data-dir",
        data_dir,
        "--modules",
        "shortener",
        "--fault",
        "shortener-errors",
        "--error-ratio",
        "1",
        "--tick-requests",
        "4",
        "--max-recovery",
        "1h",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON rows");
    let row = &rows[0];
    assert_eq!(row["scenario"], "full outage");
    assert_eq!(row["slo"], "shortener-redirect-availability");
    let page = row["mttd_page_seconds"].as_f64().expect("paged");
    assert!(page < 60.0, "{row}");
    assert!(row["mttr_page_seconds"].as_f64().is_some(), "{row}");
    assert!(row["requests_failed"].as_u64().expect("count") > 0);
    assert_eq!(row["goal_met"], true, "{row}");

    // The run is on the platform's change timeline.
    let listed = reliable()
        .args([
            "changes",
            "list",
            "--kind",
            "drill",
            "--json",
            "--data-dir",
            data_dir,
        ])
        .output()
        .expect("reliable runs");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let changes: Value = serde_json::from_slice(&listed.stdout).expect("JSON changes");
    let drill = &changes.as_array().expect("a list")[0];
    assert_eq!(drill["kind"], "drill", "{changes}");
    assert!(
        drill["summary"]
            .as_str()
            .expect("summary")
            .contains("full outage"),
        "{drill}"
    );
}
