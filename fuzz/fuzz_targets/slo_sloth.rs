//! Sloth `prometheus/v1` specs: the bounded YAML reader, then the Sloth
//! parser on every document (without format sniffing, so the fuzzer does
//! not have to find the `version:` line first).
//! Properties: no panic, no unbounded memory (the YAML caps), and the
//! rules generated from an accepted spec are YAML again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = slo::yaml::parse_documents(text) else {
        return;
    };
    for doc in &docs {
        if let Ok(slos) = slo::sloth::parse("fuzz.yaml", doc) {
            reliable_fuzz::generated_rules_are_yaml(&slos);
        }
    }
});
