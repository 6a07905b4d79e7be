//! The scenario files shipped in `scenarios/` compile, so a broken one
//! fails CI rather than the first person who runs it; and the shortener's
//! DAU model still says what its documentation says it models.

use reliable_load::plan::{Executor, Plan, ScenarioPlan};
use reliable_load::scenario::{compile, CheckKind, CompileOptions};
use std::path::PathBuf;

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// The `{{env.NAME}}` values the shipped files read, as a person running
/// them would export them.
const ENV: [(&str, &str); 1] = [(
    "RELIABLE_LOAD_API_KEY",
    "rlk_0000000000000000000000000000000000000000000000000000000000000000",
)];

/// What `reliable load FILE --target http://127.0.0.1:8080` passes.
fn options() -> CompileOptions {
    // `compile` reads `{{env.NAME}}` from the process environment. Setting
    // the same values from several test threads is harmless, and std
    // serialises its own environment reads and writes.
    for (name, value) in ENV {
        std::env::set_var(name, value);
    }
    CompileOptions {
        target: Some(url::Url::parse("http://127.0.0.1:8080").expect("url")),
    }
}

fn compile_shipped(name: &str) -> Plan {
    let path = scenarios_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    compile(&text, &options()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_shipped_scenario_compiles() {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    names.sort();
    // The list; a file removed by mistake fails here.
    for expected in [
        "inference-mix.yaml",
        "llm-chat.yaml",
        "orders-flow.yaml",
        "shortener-dau.yaml",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} is missing");
    }
    for name in &names {
        let plan = compile_shipped(name);
        assert!(!plan.scenarios.is_empty(), "{name}: no scenario");
        assert!(!plan.thresholds.is_empty(), "{name}: no threshold");
    }
}

/// The load agents' Job (deploy/load) mounts its own scenario file.
#[test]
fn the_load_agents_scenario_compiles_with_thresholds_for_the_merge() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/load/scenario.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let plan = compile(&text, &options()).unwrap_or_else(|e| panic!("deploy/load: {e}"));
    assert_eq!(plan.setup.len(), 1, "each agent seeds its links");
    assert_eq!(
        mix(&plan.scenarios[0]),
        [("create", 1), ("redirect", 20)],
        "the mix deploy/load/scenario.yaml describes"
    );
    assert!(!plan.thresholds.is_empty(), "the merge judges them");
}

fn rate(scenario: &ScenarioPlan) -> f64 {
    match scenario.executor {
        Executor::ConstantArrivalRate { rate, .. } => rate,
        ref other => panic!("{}: {other:?} is not a constant rate", scenario.name),
    }
}

/// (name, weight) of each request in the mix.
fn mix(scenario: &ScenarioPlan) -> Vec<(&str, u32)> {
    scenario
        .requests
        .iter()
        .map(|r| (r.name.as_str(), r.weight))
        .collect()
}

#[test]
fn the_shortener_dau_model_is_what_its_documentation_says() {
    let plan = compile_shipped("shortener-dau.yaml");

    let dau = plan.dau.as_deref().expect("the DAU arithmetic");
    for figure in ["0.058/s", "579/s"] {
        assert!(dau.contains(figure), "{figure} in {dau}");
    }

    assert_eq!(plan.setup.len(), 1);
    assert_eq!(plan.setup[0].repeat, 1000);
    let slugs = plan
        .pools
        .iter()
        .position(|p| p.name == "slugs")
        .expect("a slugs pool");
    assert!(plan.setup[0]
        .request
        .captures
        .iter()
        .any(|c| c.pool == slugs));

    let names: Vec<&str> = plan.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["baseline", "peak", "viral", "stress"]);
    // In sequence: each starts when the previous one ends.
    for pair in plan.scenarios.windows(2) {
        assert_eq!(pair[1].start, pair[0].start + pair[0].duration());
    }

    let rates: Vec<f64> = plan.scenarios.iter().map(rate).collect();
    assert_eq!(rates[..3], [21.0, 52.0, 208.0]);
    assert_eq!(rates[3], 25.0 * rates[2], "stress is 25x viral");
    let mixes: Vec<Vec<(&str, u32)>> = plan.scenarios.iter().map(mix).collect();
    assert_eq!(mixes[0], [("create", 1), ("redirect", 20)]);
    assert_eq!(mixes[1], [("create", 2), ("redirect", 50)]);
    assert_eq!(mixes[2], [("create", 8), ("redirect", 200)]);
    assert_eq!(mixes[3], mixes[2]);

    for scenario in &plan.scenarios {
        let redirect = &scenario.requests[1];
        for status in [301, 302, 307, 308] {
            assert!(redirect.expect_status.contains(status), "{status}");
        }
        assert!(!redirect.expect_status.contains(200));
        assert!(redirect
            .checks
            .iter()
            .any(|c| matches!(&c.kind, CheckKind::StatusIn(codes) if codes.contains(&302))));
        assert!(scenario.requests[0]
            .captures
            .iter()
            .any(|c| c.pool == slugs));
    }
}
