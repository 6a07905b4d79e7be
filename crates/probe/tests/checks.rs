//! Probe checks against servers started here on port 0: up, down, slow,
//! wrong status, body mismatch, redirects, TLS from a test CA (expired,
//! expiring within the warning, valid), TCP and DNS.

mod support;

use chrono::Utc;
use probe::check::{self, HttpClient};
use probe::config::{Check, DnsCheck, HttpCheck, ProbeSpec, StatusPattern, TcpCheck};
use std::time::Duration;
use support::{http_server, refused_port, silent_server, tls_server, TestCa};

fn http(url: String) -> HttpCheck {
    HttpCheck {
        url,
        method: "GET".to_string(),
        expected_status: vec![StatusPattern::Class("2xx".to_string())],
        body_contains: None,
        tls_expiry_warning: Duration::from_secs(14 * 86_400),
        follow_redirects: false,
        ca_file: None,
    }
}

fn spec(check: Check) -> ProbeSpec {
    ProbeSpec {
        name: "test".to_string(),
        component: "Test".to_string(),
        interval: Duration::from_secs(10),
        timeout: Duration::from_millis(200),
        check,
    }
}

async fn run(check: Check) -> check::Outcome {
    let client = HttpClient::new(None).expect("client");
    check::run(&spec(check), &client, Utc::now()).await
}

#[tokio::test]
async fn an_answering_server_passes_with_its_duration() {
    let base = http_server().await;
    let outcome = run(Check::Http(http(format!("{base}/ok")))).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(outcome.duration < Duration::from_millis(200));
    assert_eq!(outcome.cert_expiry, None);
}

#[tokio::test]
async fn a_refused_connection_fails() {
    let port = refused_port();
    let outcome = run(Check::Http(http(format!("http://127.0.0.1:{port}/")))).await;
    assert!(!outcome.success);
    assert!(outcome.detail.contains("connect"), "{}", outcome.detail);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let addr = silent_server().await;
    let outcome = run(Check::Http(http(format!("http://{addr}/")))).await;
    assert!(!outcome.success);
    assert!(
        outcome.detail.contains("timed out after 200ms"),
        "{}",
        outcome.detail
    );
}

#[tokio::test]
async fn a_wrong_status_fails_and_an_expected_one_passes() {
    let base = http_server().await;
    let outcome = run(Check::Http(http(format!("{base}/missing")))).await;
    assert!(!outcome.success);
    assert!(outcome.detail.contains("404"), "{}", outcome.detail);
    let mut check = http(format!("{base}/missing"));
    check.expected_status = vec![StatusPattern::Code(404)];
    assert!(run(Check::Http(check)).await.success);
}

#[tokio::test]
async fn the_body_must_contain_the_text() {
    let base = http_server().await;
    let mut check = http(format!("{base}/ok"));
    check.body_contains = Some("hello".to_string());
    assert!(run(Check::Http(check.clone())).await.success);
    check.body_contains = Some("goodbye".to_string());
    let outcome = run(Check::Http(check)).await;
    assert!(!outcome.success);
    assert!(outcome.detail.contains("goodbye"), "{}", outcome.detail);
}

#[tokio::test]
async fn redirects_are_answers_unless_followed() {
    let base = http_server().await;
    let mut check = http(format!("{base}/redirect"));
    check.expected_status = vec![StatusPattern::Code(302)];
    assert!(run(Check::Http(check.clone())).await.success);
    check.follow_redirects = true;
    assert!(!run(Check::Http(check.clone())).await.success);
    check.expected_status = vec![StatusPattern::Code(200)];
    check.body_contains = Some("hello".to_string());
    assert!(run(Check::Http(check)).await.success);
}

#[tokio::test]
async fn an_expired_certificate_fails() {
    let ca = TestCa::new();
    let addr = tls_server(ca.leaf(-10, -1)).await;
    let client = HttpClient::with_roots(vec![ca.cert_der()]).expect("client");
    let check = Check::Http(http(format!("https://localhost:{}/", addr.port())));
    let outcome = check::run(&spec(check), &client, Utc::now()).await;
    assert!(!outcome.success);
    assert!(
        outcome.detail.to_lowercase().contains("expired"),
        "{}",
        outcome.detail
    );
}

#[tokio::test]
async fn a_certificate_expiring_within_the_warning_passes_with_a_warning() {
    let ca = TestCa::new();
    let addr = tls_server(ca.leaf(-1, 5)).await;
    let client = HttpClient::with_roots(vec![ca.cert_der()]).expect("client");
    let check = Check::Http(http(format!("https://localhost:{}/", addr.port())));
    let now = Utc::now();
    let outcome = check::run(&spec(check.clone()), &client, now).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(outcome.warning);
    let expiry = outcome.cert_expiry.expect("expiry read");
    let left = expiry.signed_duration_since(now).num_hours();
    assert!((4 * 24..=5 * 24).contains(&left), "{left}h left");
    // A year-long certificate does not warn.
    let addr = tls_server(ca.leaf(-1, 365)).await;
    let check = Check::Http(http(format!("https://localhost:{}/", addr.port())));
    let outcome = check::run(&spec(check), &client, now).await;
    assert!(outcome.success && !outcome.warning, "{outcome:?}");
}

#[tokio::test]
async fn an_unknown_ca_fails() {
    let ca = TestCa::new();
    let addr = tls_server(ca.leaf(-1, 30)).await;
    let outcome = run(Check::Http(http(format!(
        "https://localhost:{}/",
        addr.port()
    ))))
    .await;
    assert!(!outcome.success);
    assert!(outcome.detail.contains("TLS"), "{}", outcome.detail);
}

#[tokio::test]
async fn tcp_connects_or_is_refused() {
    let base = http_server().await;
    let address = base.trim_start_matches("http://").to_string();
    assert!(run(Check::Tcp(TcpCheck { address })).await.success);
    let address = format!("127.0.0.1:{}", refused_port());
    assert!(!run(Check::Tcp(TcpCheck { address })).await.success);
}

#[tokio::test]
async fn dns_resolves_localhost_and_checks_the_address() {
    let resolves = |expect| {
        Check::Dns(DnsCheck {
            name: "localhost".to_string(),
            expect,
        })
    };
    assert!(run(resolves(None)).await.success);
    assert!(
        run(resolves(Some("127.0.0.1".parse().unwrap())))
            .await
            .success
    );
    let outcome = run(resolves(Some("192.0.2.7".parse().unwrap()))).await;
    assert!(!outcome.success);
    assert!(outcome.detail.contains("192.0.2.7"), "{}", outcome.detail);
    let outcome = run(Check::Dns(DnsCheck {
        name: "no-such-host.invalid".to_string(),
        expect: None,
    }))
    .await;
    assert!(!outcome.success);
}
