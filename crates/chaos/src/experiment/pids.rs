//! Which process a `process.signal` action means when it names a pid
//! file, and whether that process still runs.
//!
//! A pid file may be named through a value a service reports at run time
//! (`pidfile: /run/nats/{{item}}.pid` with `item: {url, pointer}`): a
//! drill that must kill "the node leading the stream" cannot know which
//! node that is when the file is written, only where to ask.

use super::model::ItemLookup;
use super::probes::{describe, send};
use std::path::Path;
use std::time::Duration;

/// The pid in `pidfile` (with `{{item}}` replaced by what `item` reads),
/// and the file's path as read.
pub async fn read_pidfile(
    http: &reqwest::Client,
    pidfile: &str,
    item: Option<&ItemLookup>,
) -> Result<(u32, String), String> {
    let pidfile = match item {
        Some(item) => pidfile.replace("{{item}}", &look_up(http, item).await?),
        None => pidfile.to_string(),
    };
    let text = std::fs::read_to_string(&pidfile).map_err(|e| format!("reading {pidfile}: {e}"))?;
    let pid = text
        .trim()
        .parse()
        .map_err(|_| format!("{pidfile} holds `{}`, not a pid", text.trim()))?;
    Ok((pid, pidfile))
}

/// The value at `item.pointer` in the JSON of the first of `item.urls`
/// that has one: a string, or a number as text.
async fn look_up(http: &reqwest::Client, item: &ItemLookup) -> Result<String, String> {
    let mut failures = Vec::new();
    for url in &item.urls {
        match value_at(http, url, &item.pointer).await {
            Ok(value) => return Ok(value),
            Err(e) => failures.push(e),
        }
    }
    Err(failures.join("; "))
}

async fn value_at(http: &reqwest::Client, url: &str, pointer: &str) -> Result<String, String> {
    let response = send(
        http,
        "GET",
        url,
        &Default::default(),
        None,
        None,
        Duration::from_secs(10),
    )
    .await?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| describe(&e))?;
    match body.pointer(pointer) {
        Some(serde_json::Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(value @ serde_json::Value::Number(_)) => Ok(value.to_string()),
        other => Err(format!(
            "no string or number at `{pointer}` in {url} (found {})",
            other.map_or_else(|| "nothing".to_string(), |v| v.to_string())
        )),
    }
}

/// Whether `pid` is a live process: an exited child its parent has not
/// reaped yet (a zombie) counts as gone.
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X') | None
        ),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        // No procfs: signal 0 tells whether the pid exists.
        Err(_) => i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{parse, run, RunOptions};

    /// The pid file is named by what a service reports (here: a fake
    /// monitoring endpoint saying `node-b` leads); the first URL is down,
    /// the second answers; the action waits until the process is gone.
    #[tokio::test]
    async fn a_pidfile_named_by_a_looked_up_item_is_signalled_and_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(dir.path().join("node-b.pid"), child.id().to_string()).unwrap();
        let app = axum::Router::new().route(
            "/jsz",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"streams": [{"leader": "node-b"}]}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let down = format!("http://127.0.0.1:{}/jsz", free_port());
        let text = format!(
            r#"
title: kill the leader
method:
  - type: process.signal
    pidfile: "{dir}/{{{{item}}}}.pid"
    item: {{urls: ["{down}", "http://{addr}/jsz"], pointer: /streams/0/leader}}
    signal: KILL
    wait: 10s
"#,
            dir = dir.path().display()
        );
        let experiment = parse(&text, Path::new("."), &[]).unwrap();
        let journal = run(&experiment, RunOptions::default()).await;
        server.abort();
        let note = &journal.activities[0].note;
        assert!(journal.activities[0].ok, "{}", journal.render());
        assert!(
            note.contains("node-b.pid") && note.contains("exited"),
            "{note}"
        );
        assert!(child.try_wait().unwrap().is_some(), "killed");
    }

    #[test]
    fn an_item_and_its_placeholder_come_together() {
        let refused = [
            ("pidfile: /run/{{item}}.pid", "no `item"),
            (
                "pidfile: /run/a.pid\n    item: {urls: [\"http://h/\"], pointer: /x}",
                "has none",
            ),
            (
                "pidfile: /run/{{item}}.pid\n    item: {urls: [], pointer: /x}",
                "at least one URL",
            ),
            (
                "pidfile: /run/{{item}}.pid\n    item: {urls: [\"nats://h\"], pointer: /x}",
                "only http",
            ),
        ];
        for (fields, expected) in refused {
            let text = format!(
                "title: t\nmethod:\n  - type: process.signal\n    signal: KILL\n    {fields}\n"
            );
            let error = parse(&text, Path::new("."), &[]).expect_err(fields);
            assert!(error.to_string().contains(expected), "{fields}: {error}");
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    #[test]
    fn this_process_runs_and_a_reaped_child_does_not() {
        assert!(is_running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!is_running(pid));
    }

    #[test]
    fn an_unreaped_child_that_exited_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        // Until `wait`, the exited child stays a zombie in the table.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while is_running(pid) {
            assert!(std::time::Instant::now() < deadline, "{pid} never exited");
            std::thread::yield_now();
        }
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_ok(),
            "a zombie"
        );
        child.wait().expect("wait");
    }
}
