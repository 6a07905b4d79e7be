//! The console in the binary, black-box: `reliable up` prints its address
//! after the public one, every page and `/api/v1/...` endpoint answers
//! with live data once traffic flowed and the evaluator ticked, every
//! answer carries the console's security headers, a taken console port is
//! a startup error naming `RELIABLE_CONSOLE_LISTEN`, and a console beyond
//! loopback asks for a `console:read` key (`pages.rs`); every page
//! renders cleanly in headless Chromium (`browser.rs`).
//!
//! `RELIABLE_SLO_TICK=200ms` makes the evaluator and the traffic sampler
//! tick fast; waits poll with a deadline, never a fixed sleep.

mod browser;
mod cost_question;
mod pages;
#[path = "../support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{order_body, reliable, start, Running};

pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) fn up(data: &Path, console_listen: &str) -> Command {
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", console_listen)
        .env("RELIABLE_DATA_DIR", data)
        .env("RELIABLE_SLO_TICK", "200ms");
    cmd
}

/// The platform and its console's `http://ADDR` (the line after
/// `listening on`).
pub(crate) fn start_up(data: &Path, console_listen: &str) -> (Running, String) {
    let running = start(up(data, console_listen));
    let line = running
        .lines
        .recv_timeout(DEADLINE)
        .expect("a line after `listening on`");
    let console = line
        .strip_prefix("console on ")
        .unwrap_or_else(|| panic!("expected `console on http://ADDR`, got `{line}`"))
        .to_string();
    (running, console)
}

/// Links, redirects, a 404 and an order through the public address.
pub(crate) async fn traffic(http: &reqwest::Client, base: &str) {
    for i in 0..5 {
        let created = http
            .post(format!("{base}/api/v1/links"))
            .json(
                &serde_json::json!({"url": "https://example.com/", "slug": format!("console-{i}")}),
            )
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201);
        for _ in 0..4 {
            let redirect = http
                .get(format!("{base}/console-{i}"))
                .send()
                .await
                .expect("redirect");
            assert!(redirect.status().is_redirection(), "{}", redirect.status());
        }
    }
    let missing = http
        .get(format!("{base}/no-such-link"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let order = http
        .post(format!("{base}/api/v1/orders"))
        .header("idempotency-key", "console-1")
        .json(&order_body("console"))
        .send()
        .await
        .expect("order");
    assert_eq!(order.status(), 201);
}

pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.expect(url);
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("json")
}

/// Polls `url` until `ready` holds for its JSON, or fails at the deadline.
pub(crate) async fn until(
    http: &reqwest::Client,
    url: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let value = get_json(http, url).await;
        if ready(&value) {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{url} never got there: {value:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn module<'a>(overview: &'a Value, name: &str) -> Option<&'a Value> {
    overview["modules"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}
