//! `reliable backup`, `reliable restore` and `reliable drill dr`,
//! black-box: a backup of a serving platform, restored into a new data
//! dir that serves the same links; the bad inputs refused; and the whole
//! DR drill at 10,000 links on SQLite and on PostgreSQL.

mod support;

use std::path::Path;
use std::process::Command;
use support::{reliable, run_to_end, start, stop};

fn up_command(data_dir: &Path) -> Command {
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data_dir)
        .env_remove("RELIABLE_DATABASE_URL");
    cmd
}

/// `reliable <args>` on the SQLite stores of `data_dir`.
fn on_data_dir(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = reliable();
    cmd.args(args)
        .env("RELIABLE_DATA_DIR", data_dir)
        .env_remove("RELIABLE_DATABASE_URL");
    cmd
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn create_link(http: &reqwest::Client, base: &str, slug: &str) {
    let created = http
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": format!("https://example.com/{slug}"), "slug": slug}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn a_serving_platform_is_backed_up_and_restored_into_a_new_data_dir() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let app = start(up_command(&data));
    let base = format!("http://{}", app.addr);
    let http = client();
    create_link(&http, &base, "kept").await;
    let tar = dir.path().join("b.tar");

    // While it serves.
    let (code, stderr) = run_to_end(on_data_dir(
        &data,
        &["backup", "--to", tar.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 0, "{stderr}");

    // --into names a tar after the time (for jobs without a shell).
    let nightly = dir.path().join("nightly");
    std::fs::create_dir(&nightly).expect("mkdir");
    let (code, stderr) = run_to_end(on_data_dir(
        &data,
        &["backup", "--into", nightly.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 0, "{stderr}");
    let named: Vec<String> = std::fs::read_dir(&nightly)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        named.len() == 1 && named[0].starts_with("reliable-") && named[0].ends_with(".tar"),
        "{named:?}"
    );

    // A backup to an unwritable place fails cleanly (a path under a file:
    // ENOTDIR, which stops root too) and the platform is unaffected.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let under_file = file.join("backup");
    let (code, stderr) = run_to_end(on_data_dir(
        &data,
        &["backup", "--to", under_file.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("a-file"), "{stderr}");
    create_link(&http, &base, "after").await;
    stop(app).await;

    let restored = dir.path().join("restored");
    let (code, stderr) = run_to_end(on_data_dir(
        &restored,
        &["restore", "--from", tar.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 0, "{stderr}");
    // Not again into the same, now non-empty, data dir.
    let (code, stderr) = run_to_end(on_data_dir(
        &restored,
        &["restore", "--from", tar.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");

    let app = start(up_command(&restored));
    let base = format!("http://{}", app.addr);
    let kept = http.get(format!("{base}/kept")).send().await.expect("get");
    assert_eq!(kept.status(), 302);
    assert_eq!(kept.headers()["location"], "https://example.com/kept");
    let after = http.get(format!("{base}/after")).send().await.expect("get");
    assert_eq!(after.status(), 404, "written after the backup");
    stop(app).await;
}

#[tokio::test]
async fn restore_refuses_a_missing_a_non_backup_and_a_damaged_backup() {
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("target");
    let missing = dir.path().join("nope");
    let (code, stderr) = run_to_end(on_data_dir(
        &target,
        &["restore", "--from", missing.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let (code, stderr) = run_to_end(on_data_dir(
        &target,
        &["restore", "--from", empty.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a backup"), "{stderr}");

    // A real backup (of the API key store a command wrote), damaged.
    let data = dir.path().join("data");
    support::create_key(&data, "ops", "models:admin");
    let backup = dir.path().join("b");
    let (code, stderr) = run_to_end(on_data_dir(
        &data,
        &["backup", "--to", backup.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 0, "{stderr}");
    let db = backup.join("gateway.db");
    let mut bytes = std::fs::read(&db).expect("read");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&db, bytes).expect("truncate");
    let (code, stderr) = run_to_end(on_data_dir(
        &target,
        &["restore", "--from", backup.to_str().expect("utf-8")],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("damaged") && stderr.contains("gateway.db"),
        "{stderr}"
    );
    assert!(!target.exists(), "nothing restored");
}

/// `reliable drill dr --links 10000 --orders 1000 --json` and its report.
fn drill(cmd: &mut Command, extra: &[&std::ffi::OsStr]) -> serde_json::Value {
    cmd.args([
        "drill", "dr", "--links", "10000", "--orders", "1000", "--probes", "50", "--json",
    ])
    .args(extra);
    let out = cmd.output().expect("run the drill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["links"], 10_000);
    assert_eq!(report["probes"]["links_ok"], 50);
    assert_eq!(report["probes"]["orders_ok"], 50);
    assert_eq!(report["outbox"]["replayed"], 0);
    assert_eq!(report["writes"]["missing_before_snapshot"], 0);
    assert!(
        report["writes"]["before_snapshot"].as_u64() > Some(0),
        "{report:#}"
    );
    // Links and visits, orders and outbox, and what the writers added.
    assert!(
        report["backup"]["rows"].as_u64() >= Some(22_000),
        "{report:#}"
    );
    assert!(report["rto_seconds"].as_f64() > Some(0.0));
    report
}

#[tokio::test]
async fn the_dr_drill_recovers_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = reliable();
    cmd.env_remove("RELIABLE_DATABASE_URL");
    let report = drill(&mut cmd, &["--data-dir".as_ref(), dir.path().as_os_str()]);
    assert_eq!(report["engine"], "sqlite");
    // The drill works in a temporary directory of its own and removes it.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
    assert!(left.is_empty());
}

#[tokio::test]
async fn the_dr_drill_recovers_postgres() {
    let url = testkit::postgres().create_database();
    let mut cmd = reliable();
    cmd.env("RELIABLE_DATABASE_URL", &url);
    let report = drill(&mut cmd, &[]);
    assert_eq!(report["engine"], "postgres");

    // Its database now holds data: a second run refuses to destroy it.
    let out = reliable()
        .env("RELIABLE_DATABASE_URL", &url)
        .args(["drill", "dr", "--links", "10", "--orders", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs an empty one"), "{stderr}");
}
