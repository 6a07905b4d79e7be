//! The OpenAPI documents: generated from the handlers, served at
//! `/openapi.json`, committed under docs/api/ and kept current.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::{get_text, reliable, start, terminate};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("repository root")
}

fn openapi(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_reliable"))
        .arg("openapi")
        .args(args)
        .output()
        .expect("run reliable openapi");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// docs/api/ is what the code generates; regenerate with the commands in
/// docs/api/README.md's header when this fails.
#[test]
fn the_committed_documents_are_current() {
    let docs = repo().join("docs/api");
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("openapi.json".into(), vec![]),
        ("README.md".into(), vec!["--markdown"]),
        ("shortener.json".into(), vec!["--target", "shortener"]),
        ("orders.json".into(), vec!["--target", "orders"]),
        ("notifier.json".into(), vec!["--target", "notifier"]),
        ("inference.json".into(), vec!["--target", "inference"]),
        ("llm.json".into(), vec!["--target", "llm"]),
        ("gateway.json".into(), vec!["--target", "gateway"]),
        ("canary.json".into(), vec!["--target", "canary"]),
        ("console.json".into(), vec!["--target", "console"]),
    ];
    for (file, args) in cases {
        let committed = std::fs::read_to_string(docs.join(&file)).unwrap_or_default();
        assert!(
            committed == openapi(&args),
            "docs/api/{file} is stale: run `cargo run -q -p reliable -- openapi {} > docs/api/{file}`",
            args.join(" ")
        );
    }
}

#[test]
fn an_unknown_target_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_reliable"))
        .args(["openapi", "--target", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target `nope`"));
}

/// What a client generator needs: 3.1, an id on every operation, every
/// error as problem+json with its problem types, and the links that lead
/// from what was created to what can be done with it.
#[test]
fn every_operation_is_described_for_clients() {
    let doc: Value = serde_json::from_str(&openapi(&[])).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            operations += 1;
            let what = format!("{method} {path}");
            assert!(
                operation["operationId"].is_string(),
                "{what}: no operationId"
            );
            assert!(operation["summary"].is_string(), "{what}: no summary");
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                // The LLM gateway's own errors are OpenAI's envelope, which
                // OpenAI clients parse; the platform's (stack, gateway) are
                // still problem+json beside them.
                let openai = path.starts_with("/v1/")
                    && response["content"]["application/json"]["schema"]["$ref"]
                        == "#/components/schemas/ErrorEnvelope";
                if openai {
                    continue;
                }
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{what} {status}: not problem+json"
                );
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("`/problems/")),
                    "{what} {status}: no problem type listed"
                );
            }
            // The stack's answers are on every operation.
            for status in ["500", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{what}: no {status}"
                );
            }
        }
    }
    assert!(operations >= 18, "only {operations} operations");
    let created = &doc["paths"]["/api/v1/links"]["post"]["responses"]["201"]["links"];
    assert_eq!(created["get_link"]["operationId"], "get_link");
    assert_eq!(
        created["get_link"]["parameters"]["slug"],
        "$response.body#/slug"
    );
    let order = &doc["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["links"];
    assert_eq!(order["confirm"]["parameters"]["id"], "$response.body#/id");
}

/// A module's document holds its own paths and the platform's, not the
/// others'.
#[test]
fn a_target_serves_its_own_paths() {
    let doc: Value = serde_json::from_str(&openapi(&["--target", "orders"])).expect("json");
    let paths: Vec<&String> = doc["paths"].as_object().expect("paths").keys().collect();
    assert!(
        paths.iter().any(|p| p.as_str() == "/api/v1/orders"),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p.as_str() == "/readyz"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("/api/v1/links")),
        "{paths:?}"
    );
    // Without the gateway in front, no gateway answers are promised.
    let create = &doc["paths"]["/api/v1/orders"]["post"]["responses"];
    assert!(create["429"].is_null(), "{create}");
}

/// `reliable up` serves the document it prints.
#[tokio::test]
async fn up_serves_the_whole_document() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = reliable();
    // With a backend configured, `up` serves every module, the LLM
    // gateway included (the backend need not answer for that).
    cmd.arg("up")
        .arg("--data-dir")
        .arg(dir.path())
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_LLM_BACKEND_URL", "http://127.0.0.1:9/v1")
        .env("RELIABLE_LLM_HEALTH_TIMEOUT", "100ms");
    let app = start(cmd);
    let http = reqwest::Client::new();
    let response = http
        .get(format!("http://{}/openapi.json", app.addr))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = get_text(&http, &format!("http://{}/openapi.json", app.addr)).await;
    assert_eq!(served, openapi(&[]));
    assert!(terminate(app).await.success());
}
