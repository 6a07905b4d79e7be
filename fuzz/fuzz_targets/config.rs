//! The config loader (`kit::config::load_from`) on a TOML file written
//! from the input, plus `RELIABLE_*` variables: the input is the file, and
//! after a NUL byte, `NAME=value` lines for the environment. The root is a
//! small platform config made of the real module sections.
//! Properties: loading and validating never panic; an error names a key,
//! a variable or the file; an accepted config written back as TOML loads
//! again to the same config.
#![no_main]

use kit::config::{load_from, Alias, ConfigError};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Root {
    http: kit::http::HttpConfig,
    shortener: shortener::ShortenerConfig,
    orders: orders::OrdersConfig,
    notifier: notifier::NotifierConfig,
}

impl Root {
    fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.shortener.validate()?;
        self.orders.validate()?;
        self.notifier.validate()
    }
}

const ALIASES: &[Alias] = &[
    Alias {
        old: "shortener.trusted_proxies",
        new: "http.trusted_proxies",
    },
    Alias {
        old: "cache_size",
        new: "shortener.cache_capacity",
    },
];

#[derive(Serialize)]
struct NoFlags {}

/// One file per fuzzing process, rewritten for every input.
fn scratch() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir();
        let pid = std::process::id();
        (
            dir.join(format!("reliable-fuzz-config-{pid}.toml")),
            dir.join(format!("reliable-fuzz-config-{pid}-again.toml")),
        )
    })
}

fn environment(text: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|line| line.split_once('='))
        // `_FILE` variables read the file they name: the fuzzer must not
        // point them at /dev/zero. Their code path is the same lookup.
        .filter(|(name, _)| !name.to_ascii_uppercase().ends_with("_FILE"))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (file, env) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], environment(&data[at + 1..])),
        None => (data, Vec::new()),
    };
    let (path, again) = scratch();
    if std::fs::write(path, file).is_err() {
        return;
    }
    let loaded = match load_from::<Root, _>(Some(path.as_path()), &NoFlags {}, ALIASES, env) {
        Ok(loaded) => loaded,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let config = loaded.config;
    if config.validate().is_err() {
        return;
    }
    // The written form of an accepted config means the same thing.
    let Ok(written) = toml::to_string(&config) else {
        return;
    };
    std::fs::write(again, &written).expect("scratch file");
    let reloaded = load_from::<Root, _>(Some(again.as_path()), &NoFlags {}, &[], Vec::new())
        .unwrap_or_else(|e| panic!("written config does not load: {e}\n{written}"))
        .config;
    assert_eq!(
        toml::to_string(&reloaded).ok().as_deref(),
        Some(written.as_str()),
        "config changed meaning when written back"
    );
});
