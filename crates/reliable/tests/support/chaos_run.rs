//! `reliable chaos run EXPERIMENT --json` from a test, and what its
//! journal says: the exit code, the probes that deviated, each probe's
//! last reading.

use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

/// Full durations (the files' defaults) instead of CI's short ones.
pub fn full() -> bool {
    std::env::var_os("CHAOS_FULL").is_some_and(|v| v != "0")
}

/// `(name, value)` pairs: CI's short durations unless [`full`].
pub fn short(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    if full() {
        return Vec::new();
    }
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn var(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

/// What `reliable chaos run --json` did.
pub struct Outcome {
    pub code: i32,
    pub journal: Value,
    pub stderr: String,
}

impl Outcome {
    /// Probes named in the deviations.
    pub fn deviated_probes(&self) -> Vec<String> {
        self.journal["deviations"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|r| r["probe"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        format!(
            "exit {}; deviations {}; error {}; stderr:\n{}",
            self.code, self.journal["deviations"], self.journal["error"], self.stderr
        )
    }

    /// The last reading of `probe` in the journal's checks.
    pub fn last_reading(&self, probe: &str) -> Option<f64> {
        self.journal["checks"]
            .as_array()?
            .iter()
            .rev()
            .flat_map(|c| c["readings"].as_array().into_iter().flatten())
            .find(|r| r["probe"] == probe)
            .and_then(|r| r["value"].as_f64())
    }

    /// The first reading of `probe` in the journal's checks.
    pub fn first_reading(&self, probe: &str) -> Option<f64> {
        self.journal["checks"]
            .as_array()?
            .iter()
            .flat_map(|c| c["readings"].as_array().into_iter().flatten())
            .find(|r| r["probe"] == probe)
            .and_then(|r| r["value"].as_f64())
    }
}

/// Runs `reliable chaos run experiments/FILE --json` with `vars` and
/// `env` (a process the experiment starts inherits it).
pub async fn chaos_run(
    file: &str,
    vars: Vec<(String, String)>,
    env: Vec<(String, String)>,
) -> Outcome {
    let mut cmd = super::reliable();
    cmd.arg("chaos")
        .arg("run")
        .arg(experiments_dir().join(file))
        .arg("--json");
    for (k, v) in &vars {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run reliable chaos run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let journal = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON journal ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Outcome {
        code: out.status.code().unwrap_or(-1),
        journal,
        stderr,
    }
}
