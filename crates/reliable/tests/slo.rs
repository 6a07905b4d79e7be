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

/// The command that writes deploy/prometheus/.
const GENERATE: &str =
    "reliable slo generate slo/ -o deploy/prometheus/ --pricing cost.example.yaml";

#[test]
fn committed_rules_are_what_the_specs_generate() {
    let out = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run(reliable()
        .args([
            "slo",
            "generate",
            "slo/",
            "--pricing",
            "cost.example.yaml",
            "-o",
        ])
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 14, "{stdout}");
    assert!(out.path().join("cost.rules.yml").exists(), "{stdout}");
    for entry in std::fs::read_dir(out.path()).expect("read") {
        let generated = entry.expect("entry").path();
        let name = generated.file_name().expect("name");
        let committed = repo().join("deploy/prometheus").join(name);
        assert_eq!(
            std::fs::read_to_string(&generated).expect("generated"),
            std::fs::read_to_string(&committed).unwrap_or_default(),
            "{} is stale: run `{GENERATE}`",
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
    assert_eq!(files.len(), 7, "6 spec files and the budgets: {files:?}");
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
fn without_a_pricing_file_only_the_slo_rules_are_written() {
    let out = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run(reliable()
        .args(["slo", "generate", "slo/", "-o"])
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 12, "{stdout}");
    assert!(!out.path().join("cost.rules.yml").exists());
}

/// cost.example.yaml with `from` replaced by `to`, as `dir/name`.
fn pricing(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let example = std::fs::read_to_string(repo().join("cost.example.yaml")).expect("example");
    assert!(example.contains(from), "{from}");
    let path = dir.join(name);
    std::fs::write(&path, example.replace(from, to)).expect("write");
    path
}

#[test]
fn a_bad_pricing_file_writes_nothing_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let generate = |pricing: &Path| {
        run(reliable()
            .args(["slo", "generate", "slo/", "-o"])
            .arg(&out)
            .arg("--pricing")
            .arg(pricing))
    };
    let cases = [
        (
            dir.path().join("missing.yaml"),
            "missing.yaml: No such file or directory".to_string(),
        ),
        (
            pricing(dir.path(), "negative.yaml", "team-a: 50", "team-a: -50"),
            "budgets.keys.team-a: a price must be a finite number of at least 0, got -50"
                .to_string(),
        ),
        (
            pricing(dir.path(), "typo.yaml", "inference: 300", "inferense: 300"),
            "budgets.modules.inferense: no module is named `inferense` (modules: ".to_string(),
        ),
        (
            pricing(dir.path(), "name.yaml", "team-a: 50", "'Team A': 50"),
            "budgets.keys.Team A: a budget name is 1 to 64 of a-z".to_string(),
        ),
    ];
    for (file, needle) in cases {
        let (code, _, stderr) = generate(&file);
        assert_eq!(code, 2, "{needle}: {stderr}");
        assert!(stderr.contains(&needle), "{needle}: {stderr}");
        assert!(!out.exists(), "nothing written: {needle}");
    }

    // A spec file named `cost` would be overwritten by the budgets' files.
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("specs");
    std::fs::copy(repo().join("slo/llm.yaml"), specs.join("cost.yaml")).expect("copy");
    let (code, _, stderr) = run(reliable()
        .args(["slo", "generate"])
        .arg(&specs)
        .arg("-o")
        .arg(&out)
        .args(["--pricing", "cost.example.yaml"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cost.yaml: a spec file named `cost` would be overwritten"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// A spec with two faults: an objective of 100 % and a query that does not parse.
const BAD_SPEC: &str = "version: prometheus/v1\nservice: a\nslos:\n  - name: b\n    objective: 100\n    sli:\n      raw:\n        error_ratio_query: x[{{.window}}]\n";

#[test]
fn a_bad_spec_fails_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(&spec, BAD_SPEC).expect("write");
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

/// Every file `reliable slo dashboards` writes, by name, from the specs.
fn generated_dashboards() -> (tempfile::TempDir, Vec<PathBuf>) {
    let out = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run(reliable()
        .args(["slo", "dashboards", "slo/", "-o"])
        .arg(out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        13,
        "6 JSON, 6 ConfigMaps, 1 kustomization: {stdout}"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.path())
        .expect("read")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    (out, files)
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn committed_dashboards() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/grafana"))
        .expect("deploy/grafana")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn committed_dashboards_are_what_the_specs_generate() {
    let regenerate = "run `cargo run -q -p reliable -- slo dashboards slo/ -o deploy/grafana`";
    let (_dir, generated) = generated_dashboards();
    assert_eq!(
        names(&committed_dashboards()),
        names(&generated),
        "deploy/grafana holds other files than the specs generate: {regenerate}"
    );
    for file in &generated {
        let committed = repo()
            .join("deploy/grafana")
            .join(file.file_name().expect("name"));
        assert!(
            std::fs::read_to_string(file).expect("generated")
                == std::fs::read_to_string(&committed).unwrap_or_default(),
            "{} is stale: {regenerate}",
            committed.display()
        );
    }
    let kustomization =
        std::fs::read_to_string(repo().join("deploy/grafana/kustomization.yaml")).expect("read");
    assert!(kustomization.starts_with("# Generated by `reliable slo dashboards`"));
    let listed: Vec<&str> = kustomization
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .collect();
    let mut config_maps: Vec<String> = names(&generated)
        .into_iter()
        .filter(|n| n.ends_with(".dashboard.yaml"))
        .collect();
    config_maps.sort();
    assert_eq!(listed, config_maps, "every ConfigMap, sorted");
}

fn dashboard_files() -> Vec<(String, serde_json::Value)> {
    committed_dashboards()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".dashboard.json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let stem = names(std::slice::from_ref(&p))[0]
                .trim_end_matches(".dashboard.json")
                .to_string();
            (stem, serde_json::from_str(&text).expect("dashboard JSON"))
        })
        .collect()
}

fn exprs(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect()
}

/// `promtool check rules` on the expressions as recording rules, with
/// Grafana's interval macros replaced by durations.
fn promtool_check_exprs(exprs: &[String]) -> (i32, String, String) {
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, expr)| {
            let plain = expr
                .replace("$__rate_interval", "5m")
                .replace("$__range", "30d");
            serde_json::json!({"record": format!("dashboard_expr_{i}"), "expr": plain})
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboards.rules.yml");
    // JSON is YAML, and needs no quoting rules of its own.
    let groups = serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]});
    std::fs::write(&file, groups.to_string()).expect("write");
    run(promtool().args(["check", "rules"]).arg(&file))
}

#[test]
fn promtool_parses_every_dashboard_expression() {
    let mut all = Vec::new();
    for (stem, dashboard) in dashboard_files() {
        for expr in exprs(&dashboard) {
            let without_macros = expr.replace("$__rate_interval", "").replace("$__range", "");
            assert!(
                !without_macros.contains('$'),
                "{stem}: a template variable in {expr}"
            );
            all.push(expr);
        }
    }
    assert!(all.len() > 50, "{} expressions", all.len());
    let (code, stdout, stderr) = promtool_check_exprs(&all);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{} rules found", all.len())),
        "{stdout}"
    );

    let mut broken = all.clone();
    broken.push("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval]))".into());
    let (code, stdout, stderr) = promtool_check_exprs(&broken);
    assert_ne!(code, 0, "a broken expression passed: {stdout}");
    // The broken one, by name: not some other failure of the same run.
    let broken_rule = format!(
        "\"dashboard_expr_{}\": could not parse expression",
        all.len()
    );
    assert!(stderr.contains(&broken_rule), "{stdout}{stderr}");
}

#[test]
fn each_dashboard_has_the_panels_of_every_slo_of_its_file() {
    use slo::dashboard::PanelKind;
    let slos = slo::catalog::load_paths(&[repo().join("slo")]).expect("specs");
    let dashboards = dashboard_files();
    assert_eq!(dashboards.len(), 6);
    for (stem, dashboard) in dashboards {
        let panels = dashboard["panels"].as_array().expect("panels");
        let mine: Vec<&slo::Slo> = slos
            .iter()
            .filter(|s| {
                Path::new(&s.source.file)
                    .file_stem()
                    .is_some_and(|f| f == stem.as_str())
            })
            .collect();
        assert!(!mine.is_empty(), "{stem}: no specs");
        let rows = panels.iter().filter(|p| p["type"] == "row").count();
        assert_eq!(rows, mine.len(), "{stem}: one row per SLO");
        for s in mine {
            let id = s.id();
            let start = panels
                .iter()
                .position(|p| {
                    p["type"] == "row"
                        && p["title"]
                            .as_str()
                            .is_some_and(|t| t.starts_with(&format!("{id}:")))
                })
                .unwrap_or_else(|| panic!("{stem}: no row for {id}"));
            let row: Vec<&serde_json::Value> = panels[start + 1..]
                .iter()
                .take_while(|p| p["type"] != "row")
                .collect();
            let count = |kind: PanelKind, ty: &str| {
                row.iter()
                    .filter(|p| {
                        p["type"] == ty
                            && p["title"]
                                .as_str()
                                .is_some_and(|t| t.starts_with(kind.title()))
                    })
                    .count()
            };
            let pairs = 2 * usize::from(s.alerting.page.is_some())
                + 2 * usize::from(s.alerting.ticket.is_some());
            let latency = matches!(
                &s.sli,
                slo::model::Sli::Events {
                    latency_threshold: Some(_),
                    ..
                }
            );
            assert_eq!(count(PanelKind::Sli, "timeseries"), 1, "{id}: SLI");
            assert_eq!(
                count(PanelKind::BudgetRemaining, "stat"),
                1,
                "{id}: budget stat"
            );
            assert_eq!(
                count(PanelKind::BudgetHistory, "timeseries"),
                1,
                "{id}: budget series"
            );
            assert_eq!(
                count(PanelKind::BurnRate, "timeseries"),
                pairs,
                "{id}: burn rates"
            );
            assert_eq!(
                count(PanelKind::Latency, "timeseries"),
                usize::from(latency),
                "{id}: latency"
            );
            assert_eq!(
                row.len(),
                3 + pairs + usize::from(latency),
                "{id}: nothing else"
            );
            for p in &row {
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{id}: {} has no description",
                    p["title"]
                );
            }
        }
    }
}

#[test]
fn dashboards_refuse_bad_specs_and_clashing_file_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(&spec, BAD_SPEC).expect("write");
    let out = dir.path().join("out");
    let (code, _, stderr) = run(reliable()
        .args(["slo", "dashboards"])
        .arg(&spec)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.yaml:5"), "{stderr}");
    assert!(!out.exists(), "nothing written for a bad spec");

    for (sub, service) in [("one", "a"), ("two", "b")] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        std::fs::write(
            dir.path().join(sub).join("x.yaml"),
            format!("version: prometheus/v1\nservice: {service}\nslos:\n  - name: b\n    objective: 99\n    sli:\n      raw:\n        error_ratio_query: sum(rate(e[{{{{.window}}}}])) / sum(rate(t[{{{{.window}}}}]))\n"),
        )
        .expect("write");
    }
    let (code, _, stderr) = run(reliable()
        .args(["slo", "dashboards"])
        .arg(dir.path().join("one"))
        .arg(dir.path().join("two"))
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("two spec files are named `x`"), "{stderr}");
    assert!(!out.exists());
}
