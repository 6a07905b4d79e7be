//! OpenSLO v1 specs through the catalog loader, as `reliable slo` reads a
//! file: YAML documents sniffed for their format, SLIs resolved by
//! `indicatorRef`, ids checked for uniqueness.
//! Properties: no panic, every error names the file, and the rules
//! generated from accepted specs are YAML again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match slo::catalog::load_texts(&[("fuzz.yaml".to_string(), text.to_string())]) {
        Ok(slos) => reliable_fuzz::generated_rules_are_yaml(&slos),
        Err(errors) => {
            for error in &errors.0 {
                assert_eq!(error.file, "fuzz.yaml", "{error}");
            }
        }
    }
});
