//! Every page in headless Chromium.

use crate::support;
use crate::{start_up, traffic, until};
use std::path::Path;
use std::time::{Duration, Instant};

/// The browser test: Debian's headless Chromium, driven by
/// playwright-core from npm (`crates/console/browser`, `npm ci` once, no
/// browser download), loads every page at a desktop and a phone viewport
/// against a `reliable up` with traffic, fails on console errors and
/// failed requests, asserts the SLO cards show a percentage and takes
/// full-page screenshots (kept in `CONSOLE_SCREENSHOTS_DIR` when set).
///
/// Without chromium, node or npm it fails and says how to get them, unless
/// `RELIABLE_SKIP_BROWSER=1` asks to skip it.
#[tokio::test]
async fn every_page_renders_cleanly_in_headless_chromium() {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        ("chromium", chromium.as_str()),
        ("node", "node"),
        ("npm", "npm"),
    ]
    .into_iter()
    .filter(|(_, program)| which(program).is_none())
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        if std::env::var("RELIABLE_SKIP_BROWSER").as_deref() == Ok("1") {
            println!("skipped: {missing:?} missing and RELIABLE_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "{missing:?} not found: run scripts/test, which installs Debian's chromium, nodejs \
             and npm (or set RELIABLE_SKIP_BROWSER=1 to skip this test)"
        );
    }
    let started = Instant::now();
    npm_ci(&package).await;

    let dir = tempfile::tempdir().expect("dir");
    let (app, console) = start_up(dir.path(), "127.0.0.1:0");
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    traffic(&http, &base).await;
    // Every SLO card the browser opens first shows numbers.
    until(&http, &format!("{console}/api/v1/slos"), |v| {
        v["slos"].as_array().is_some_and(|slos| {
            slos.first().is_some_and(|s| s["sli"].as_f64().is_some())
                && slos.iter().any(|s| {
                    s["id"] == "shortener-redirect-availability" && s["sli"].as_f64().is_some()
                })
        })
    })
    .await;

    let shots = match std::env::var_os("CONSOLE_SCREENSHOTS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => dir.path().join("screenshots"),
    };
    let mut node = tokio::process::Command::new("node");
    node.arg("check-pages.mjs")
        .arg(&console)
        .arg(&shots)
        .current_dir(&package)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, node.output())
        .await
        .unwrap_or_else(|_| panic!("the browser check took more than {BROWSER_TIMEOUT:?}; killed"))
        .expect("node starts");
    assert!(
        output.status.success(),
        "the browser check failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for name in [
        "overview", "slos", "slo", "alerts", "changes", "canaries", "models", "cost",
    ] {
        for viewport in ["desktop", "phone"] {
            let shot =
                std::fs::read(shots.join(format!("{name}-{viewport}.png"))).expect("screenshot");
            assert!(
                shot.starts_with(b"\x89PNG") && shot.len() > 5_000,
                "{name}-{viewport}"
            );
        }
    }
    support::stop(app).await;
    println!("browser check in {:?}", started.elapsed());
}

/// The whole browser check, `npm ci` included, on a cold cache.
pub(crate) const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

pub(crate) fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `npm ci` into the package, once per lock file (a stamp holds its hash),
/// never downloading a browser.
pub(crate) async fn npm_ci(package: &Path) {
    let lock = std::fs::read(package.join("package-lock.json")).expect("package-lock.json");
    let stamp = package.join("node_modules/.package-lock.stamp");
    let fingerprint = format!("{:x}", fnv(&lock));
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) {
        return;
    }
    let mut npm = tokio::process::Command::new("npm");
    npm.args(["ci", "--silent", "--no-audit", "--no-fund"])
        .current_dir(package)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, npm.output())
        .await
        .expect("npm ci took too long")
        .expect("npm starts");
    assert!(
        output.status.success(),
        "npm ci failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&stamp, fingerprint).expect("stamp");
}

/// FNV-1a: enough to notice a changed lock file.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
