//! The change timeline, black-box: `reliable keys` records its changes,
//! `reliable up` records what its modules change (models loaded, written
//! on shutdown), and `reliable changes list` reads them back, as a table
//! or JSON, filtered; bad flags exit 2 naming the flag.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{copy_dir, reliable, start, stop};

fn list(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = reliable()
        .args(["changes", "list"])
        .args(args)
        .env("RELIABLE_DATA_DIR", data)
        .env_remove("RELIABLE_DATABASE_URL")
        .output()
        .expect("run reliable changes list");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn list_json(data: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = list(data, &all);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("a JSON array")
}

fn keys(data: &Path, args: &[&str]) -> String {
    let out = reliable()
        .arg("keys")
        .args(args)
        .env("RELIABLE_DATA_DIR", data)
        .env("USER", "alice")
        .env_remove("RELIABLE_DATABASE_URL")
        .output()
        .expect("run reliable keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn key_changes_are_recorded_by_the_cli_user_without_the_key() {
    let data = tempfile::tempdir().expect("dir");
    let (code, stdout, _) = list(data.path(), &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("(no changes)"), "{stdout}");

    let key = keys(
        data.path(),
        &["create", "--name", "ci-bot", "--scopes", "links:write"],
    );
    keys(data.path(), &["revoke", "ci-bot"]);

    let events = list_json(data.path(), &[]);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["kind"], "key_revoked", "newest first");
    assert_eq!(events[1]["kind"], "key_created");
    for event in &events {
        assert_eq!(event["service"], "gateway");
        assert_eq!(event["actor"], "cli:alice");
        assert_eq!(event["subject"], "key ci-bot");
        assert!(event["id"].as_i64().is_some());
        assert!(event["at"].as_str().is_some());
        let text = event.to_string();
        assert!(!text.contains(&key), "the key leaked: {text}");
        assert!(!text.contains(&key[4..]), "part of the key leaked: {text}");
    }
    assert!(events[1]["summary"]
        .as_str()
        .expect("summary")
        .contains("links:write"));

    let created = list_json(data.path(), &["--kind", "key_created", "--since", "1h"]);
    assert_eq!(created.len(), 1);
    let none = list_json(data.path(), &["--service", "inference"]);
    assert!(none.is_empty());
    let one = list_json(data.path(), &["--limit", "1"]);
    assert_eq!(one[0]["kind"], "key_revoked");

    let (code, table, _) = list(data.path(), &["--kind", "key_revoked"]);
    assert_eq!(code, 0);
    let lines: Vec<_> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].contains("kind") && lines[0].contains("actor"),
        "{table}"
    );
    assert!(lines[1].contains("key_revoked") && lines[1].contains("cli:alice"));
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let data = tempfile::tempdir().expect("dir");
    for (args, flag) in [
        (vec!["--kind", "KeyCreated"], "--kind"),
        (vec!["--since", "soon"], "--since"),
        (vec!["--limit", "0"], "--limit"),
        (vec!["--limit", "501"], "--limit"),
    ] {
        let (code, _, stderr) = list(data.path(), &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    // Nothing was opened for a bad flag.
    assert!(!data.path().join("changes.db").exists());
}

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[tokio::test]
async fn up_records_the_models_it_loads_and_writes_them_by_shutdown() {
    let data = tempfile::tempdir().expect("dir");
    let repository = tempfile::tempdir().expect("dir");
    copy_dir(
        &models_dir().join("digits"),
        &repository.path().join("digits"),
    );
    let admin = keys(
        data.path(),
        &["create", "--name", "ml", "--scopes", "models:admin"],
    );
    let mut cmd = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data.path())
        .env("RELIABLE_INFERENCE_REPOSITORY", repository.path())
        .env_remove("RELIABLE_DATABASE_URL");
    let app = start(cmd);
    let unloaded = reqwest::Client::new()
        .post(format!(
            "http://{}/v2/repository/models/digits/unload",
            app.addr
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("unload");
    assert_eq!(unloaded.status().as_u16(), 200);
    stop(app).await;

    let gone = list_json(data.path(), &["--kind", "model_unloaded"]);
    assert!(!gone.is_empty(), "no model_unloaded event");
    for event in &gone {
        assert_eq!(event["service"], "inference");
        assert_eq!(event["actor"], "api");
        assert!(event["summary"]
            .as_str()
            .expect("summary")
            .contains("unloaded"));
    }

    let loaded = list_json(
        data.path(),
        &["--kind", "model_loaded", "--service", "inference"],
    );
    assert!(!loaded.is_empty(), "no model_loaded event");
    for event in &loaded {
        assert_eq!(event["actor"], "system");
        let subject = event["subject"].as_str().expect("subject");
        assert!(subject.starts_with("digits/"), "{subject}");
        let summary = event["summary"].as_str().expect("summary");
        assert!(
            summary.contains("digits version") && summary.contains("loaded"),
            "{summary}"
        );
    }
}
