//! Starting, signalling and stopping the `reliable` binary, black-box.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod chaos;

pub const SECRET: &str = "fault-test-secret";

pub struct Running {
    pub child: Child,
    pub addr: String,
    /// Every stdout line after the `listening on` line (the first is
    /// `console on http://ADDR` unless the console is disabled).
    pub lines: mpsc::Receiver<String>,
}

/// The binary under test: this build's, or `RELIABLE_BIN` (a release
/// build, for the benchmarks and the drills' full variants: a debug
/// build's platform and load generator cost several times the CPU).
pub fn reliable() -> Command {
    let binary =
        std::env::var_os("RELIABLE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_reliable").into());
    let mut cmd = Command::new(binary);
    cmd.env_remove("RELIABLE_BIN");
    // No synthetic redirect probe: tests count requests, visits and spans
    // exactly (tests/probes.rs turns it on).
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("RELIABLE_LOG", "warn")
        .env("RELIABLE_PROBES_SHORTENER_REDIRECT", "false");
    cmd
}

/// `reliable serve --target TARGETS` on free ports, keeping its files in
/// `data`; add the database and the rest.
pub fn serve(targets: &str, data: &std::path::Path) -> Command {
    let mut cmd = reliable();
    cmd.args(["serve", "--target", targets])
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data);
    cmd
}

/// Starts `cmd` and waits (bounded) for its `listening on http(s)://ADDR`
/// line; later stdout lines are kept in [`Running::lines`].
pub fn start(cmd: Command) -> Running {
    start_with_stderr(cmd, Stdio::inherit())
}

/// [`start`], with the process's stderr sent to `stderr` (a file, to read
/// what it wrote).
pub fn start_with_stderr(mut cmd: Command, stderr: Stdio) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn reliable");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("reliable printed no `listening on` line");
        let addr = line
            .strip_prefix("listening on http://")
            .or_else(|| line.strip_prefix("listening on https://"));
        if let Some(addr) = addr {
            break addr.to_string();
        }
    };
    Running { child, addr, lines }
}

pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// SIGTERM; asserts exit status 0 and returns the stdout lines printed
/// since it started listening.
pub async fn stop(running: Running) -> Vec<String> {
    sigterm(&running.child);
    let (status, running) = tokio::task::spawn_blocking(move || {
        let mut running = running;
        (running.child.wait(), running)
    })
    .await
    .expect("join");
    let status = status.expect("wait");
    assert!(status.success(), "exit status {status}");
    // The `console on` line follows `listening on`; the rest are logs.
    running
        .lines
        .try_iter()
        .filter(|l| !l.starts_with("console on "))
        .collect()
}

/// The body of a GET, as text (`/metrics`, `/readyz`).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect(url);
    response.text().await.expect("text")
}

/// A test that fails must not leave its server running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGKILL: no shutdown path runs.
pub fn kill(running: &mut Running) {
    let _ = running.child.kill();
    let _ = running.child.wait();
}

/// SIGTERM and the exit status.
pub async fn terminate(mut running: Running) -> std::process::ExitStatus {
    sigterm(&running.child);
    tokio::task::spawn_blocking(move || running.child.wait())
        .await
        .expect("join")
        .expect("wait")
}

/// Runs `cmd` to its end; returns the exit code and stderr.
pub fn run_to_end(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().expect("run reliable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn order_body(customer: &str) -> serde_json::Value {
    serde_json::json!({
        "customer_id": customer,
        "currency": "EUR",
        "items": [{"sku": "sku-1", "quantity": 2, "unit_price_minor": 500}]
    })
}

/// `reliable keys create` in `data`: the key, printed once.
pub fn create_key(data: &std::path::Path, name: &str, scopes: &str) -> String {
    let created = reliable()
        .args(["keys", "create", "--name", name, "--scopes", scopes])
        .env("RELIABLE_DATA_DIR", data)
        .output()
        .expect("keys");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    String::from_utf8_lossy(&created.stdout).trim().to_string()
}

/// Copies a directory tree (the example models into a test repository).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub mod balancer;
pub mod failover_watch;
pub mod limit_meter;
pub mod process_cpu;
