//! `reliable slo`: generation against the committed rules, promtool's
//! check and unit tests, the gate's exit codes, spec errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reliable() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reliable"));
    cmd.current_dir(repo());
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run reliable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// promtool from Debian's `prometheus` package (scripts/test installs it).
fn promtool() -> Command {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool not found: install the Debian package `prometheus` (scripts/test does)"
    );
    Command::new("promtool")
}

#[test]
fn committed_rules_are_what_the_specs_generate() {
    let out = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run(reliable()
        .args(["slo", "generate", "slo/", "-o"])
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 10, "{stdout}");
    for entry in std::fs::read_dir(out.path()).expect("read") {
        let generated = entry.expect("entry").path();
        let name = generated.file_name().expect("name");
        let committed = repo().join("deploy/prometheus").join(name);
        assert_eq!(
            std::fs::read_to_string(&generated).expect("generated"),
            std::fs::read_to_string(&committed).unwrap_or_default(),
            "{} is stale: run `reliable slo generate slo/ -o deploy/prometheus/`",
            committed.display()
        );
    }
}

#[test]
fn promtool_checks_every_rule_file_and_passes_the_unit_tests() {
    let dir = repo().join("deploy/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/prometheus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 5);
    let (code, stdout, stderr) = run(promtool().args(["check", "rules"]).args(&files));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let tests: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .expect("tests")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!tests.is_empty());
    let (code, stdout, stderr) = run(promtool().args(["test", "rules"]).args(&tests));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}

#[test]
fn a_bad_spec_fails_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        "version: prometheus/v1\nservice: a\nslos:\n  - name: b\n    objective: 100\n    sli:\n      raw:\n        error_ratio_query: x[{{.window}}]\n",
    )
    .expect("write");
    let (code, _, stderr) = run(reliable().args(["slo", "check"]).arg(&spec));
    assert_eq!(code, 2);
    assert!(
        stderr
            .contains("bad.yaml:5: field `slos[0].objective`: objective 100 must be a percentage"),
        "{stderr}"
    );
    let (code, _, stderr) = run(reliable()
        .args(["slo", "generate"])
        .arg(&spec)
        .arg("-o")
        .arg(dir.path().join("out")));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "nothing written for a bad spec"
    );
}

fn status_file(dir: &Path, remaining: &[(&str, Option<f64>)]) -> PathBuf {
    let slos: Vec<serde_json::Value> = remaining
        .iter()
        .map(|(id, r)| {
            serde_json::json!({
                "id": id, "service": id.split('-').next().unwrap_or(""), "name": "n",
                "objective": 0.999, "period_seconds": 2_592_000,
                "sli": null, "budget_remaining": r, "budget_remaining_seconds": null,
                "burn_rates": [], "firing": []
            })
        })
        .collect();
    let path = dir.join("status.json");
    std::fs::write(
        &path,
        serde_json::json!({"source": "test", "slos": slos}).to_string(),
    )
    .expect("write");
    path
}

#[test]
fn the_gate_follows_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = |remaining: &[(&str, Option<f64>)], extra: &[&str]| {
        let file = status_file(dir.path(), remaining);
        run(reliable()
            .args([
                "slo",
                "gate",
                "--policy",
                "slo/policy/error-budget.yaml",
                "--status-file",
            ])
            .arg(file)
            .args(extra))
    };
    let (code, stdout, _) = gate(&[("gateway-availability", Some(0.8))], &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("allowed (ship)"), "{stdout}");
    let (code, _, stderr) = gate(
        &[
            ("gateway-availability", Some(0.8)),
            ("orders-create", Some(0.15)),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stderr
            .contains("blocked (reliability-first): orders-create: 15.0% of the error budget left"),
        "{stderr}"
    );
    let (code, _, _) = gate(&[("orders-create", Some(0.15))], &["--kind", "fix"]);
    assert_eq!(code, 0, "fixes still ship");
    let (code, _, stderr) = gate(&[("orders-create", Some(-0.2))], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("freeze"), "{stderr}");
    let (code, _, _) = gate(
        &[
            ("gateway-availability", Some(0.8)),
            ("orders-create", Some(0.15)),
        ],
        &["--service", "gateway"],
    );
    assert_eq!(code, 0, "filtered to the gateway");
    let (code, _, stderr) = gate(&[("inference-availability", None)], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no SLI data"), "{stderr}");
    let (code, _, _) = gate(&[("inference-availability", None)], &["--allow-missing"]);
    assert_eq!(code, 0);
    let (code, _, stderr) = gate(&[("a-b", Some(0.5))], &["--slo", "nope"]);
    assert_eq!(code, 2, "{stderr}");
}
