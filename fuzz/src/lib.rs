//! Checks shared by several fuzz targets.

use slo::Slo;

/// What the SLO tooling writes from an accepted spec must be YAML again:
/// names, labels and descriptions come from the spec, and a value that
/// broke out of its quoting would inject rules into the generated file.
pub fn generated_rules_are_yaml(slos: &[Slo]) {
    let refs: Vec<&Slo> = slos.iter().collect();
    let file = slo::emit::rule_file(&refs, "fuzz.yaml");
    if let Err(e) = slo::yaml::parse_documents(&file) {
        panic!("generated rule file is not YAML ({e}):\n{file}");
    }
    let resource = slo::emit::prometheus_rule("fuzz", &refs, "fuzz.yaml");
    if let Err(e) = slo::yaml::parse_documents(&resource) {
        panic!("generated PrometheusRule is not YAML ({e}):\n{resource}");
    }
}
