//! Running shipped chaos experiments (`reliable chaos run ... --json`)
//! from a test: the notified-orders counter they read, the run itself and
//! its journal.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use testkit::webhook::Receiver;

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

/// A webhook receiver whose counts are served as JSON at `stats_url`,
/// for the experiments' `count` probes.
pub struct Counted {
    pub receiver: Receiver,
    pub stats_url: String,
}

pub async fn counted_receiver(secret: &str) -> Counted {
    counted(Receiver::start(secret).await).await
}

/// As [`counted_receiver`], but every answer says `Connection: close`, so
/// each delivery opens its own connection through a fault proxy, whose
/// toxicity is drawn per connection (see `Receiver::start_closing`).
pub async fn counted_closing_receiver(secret: &str) -> Counted {
    counted(Receiver::start_closing(secret).await).await
}

async fn counted(receiver: Receiver) -> Counted {
    let app = Router::new()
        .route("/stats", get(stats))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stats");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Counted {
        receiver,
        stats_url: format!("http://{addr}/stats"),
    }
}

/// `orders_delivered`: distinct orders with an `orders.created`
/// notification; `orders_created_events`: distinct event ids of those;
/// `duplicate_deliveries`: deliveries of an event id already accepted.
async fn stats(State(receiver): State<Receiver>) -> Json<Value> {
    let deliveries = receiver.deliveries();
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    let mut created_events = HashSet::new();
    let mut created_orders = HashSet::new();
    for d in &deliveries {
        *per_event.entry(d.event_id.as_str()).or_default() += 1;
        if d.event_type == "orders.created" {
            created_events.insert(d.event_id.as_str());
            if let Some(id) = serde_json::from_slice::<Value>(&d.body)
                .ok()
                .and_then(|b| b["order"]["id"].as_str().map(str::to_string))
            {
                created_orders.insert(id);
            }
        }
    }
    Json(json!({
        "requests": receiver.requests(),
        "accepted": deliveries.len(),
        "distinct_events": per_event.len(),
        "duplicate_deliveries": per_event.values().map(|n| n - 1).sum::<usize>(),
        "orders_delivered": created_orders.len(),
        "orders_created_events": created_events.len(),
    }))
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

    /// Every reading of `probe`, in order: `(seconds from the start,
    /// value)`.
    pub fn readings(&self, probe: &str) -> Vec<(f64, f64)> {
        self.journal["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["readings"].as_array().into_iter().flatten())
            .filter(|r| r["probe"] == probe)
            .filter_map(|r| Some((r["at_s"].as_f64()?, r["value"].as_f64()?)))
            .collect()
    }

    /// The last reading of `probe`, and its detail (a count's sides).
    pub fn last(&self, probe: &str) -> Option<(f64, String)> {
        self.journal["checks"]
            .as_array()?
            .iter()
            .rev()
            .flat_map(|c| c["readings"].as_array().into_iter().flatten())
            .find(|r| r["probe"] == probe)
            .and_then(|r| {
                Some((
                    r["value"].as_f64()?,
                    r["detail"].as_str().unwrap_or_default().to_string(),
                ))
            })
    }

    /// One line for the test log: exit, status, duration, the last
    /// check's readings and the deviations.
    pub fn journal_line(&self) -> String {
        let last = self.journal["checks"]
            .as_array()
            .and_then(|c| c.last())
            .and_then(|c| c["readings"].as_array())
            .map(|readings| {
                readings
                    .iter()
                    .map(|r| format!("{}={} {}", r["probe"], r["value"], r["detail"]))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        format!(
            "exit {} status {} after {:.1} s, {} checks, last check: {last}; deviations {}",
            self.code,
            self.journal["status"],
            self.journal["duration_s"].as_f64().unwrap_or(0.0),
            self.journal["checks"].as_array().map_or(0, Vec::len),
            self.journal["deviations"]
        )
    }

    /// When the method's action named `name` started (seconds from the
    /// start of the run).
    pub fn action_started(&self, name: &str) -> Option<f64> {
        self.journal["activities"]
            .as_array()?
            .iter()
            .find(|a| a["name"] == name)?["started_s"]
            .as_f64()
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
    let outcome = Outcome {
        code: out.status.code().unwrap_or(-1),
        journal,
        stderr,
    };
    println!("chaos run {file}: {}", outcome.journal_line());
    outcome
}
