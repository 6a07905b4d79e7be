//! The inference module, black-box, through `reliable up` (the gateway in
//! front, the example models from `models/` copied into a temporary
//! repository): the protocol's endpoints, versions and canary, the bad
//! inputs, the repository extension behind the `models:admin` scope, loads
//! under traffic, shadow, feedback and drift.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::{copy_dir, reliable, start, stop, Running};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

struct Reference {
    inputs: Vec<Vec<f32>>,
    shifted: Vec<Vec<f32>>,
    expected: Value,
    split: Vec<Vec<f32>>,
    split_labels: Vec<i64>,
}

fn reference() -> Reference {
    let text =
        std::fs::read_to_string(models_dir().join("reference/digits.json")).expect("reference");
    let json: Value = serde_json::from_str(&text).expect("json");
    let rows = |v: &Value| -> Vec<Vec<f32>> { serde_json::from_value(v.clone()).expect("rows") };
    let split: Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join("reference/digits-test-split.json"))
            .expect("split"),
    )
    .expect("json");
    Reference {
        inputs: rows(&json["inputs"]),
        shifted: rows(&json["shifted_inputs"]),
        expected: json["expected"].clone(),
        split: rows(&split["inputs"]),
        split_labels: serde_json::from_value(split["labels"].clone()).expect("labels"),
    }
}

fn infer_body(rows: &[Vec<f32>], id: Option<&str>) -> Value {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut body = json!({"inputs": [{"name": "pixels", "shape": [rows.len(), 64], "datatype": "FP32", "data": data}]});
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body
}

struct Platform {
    app: Running,
    base: String,
    repository: tempfile::TempDir,
    _data: tempfile::TempDir,
    admin_key: String,
    http: reqwest::Client,
}

fn up(extra_env: &[(&str, &str)]) -> Platform {
    let data = tempfile::tempdir().expect("dir");
    let repository = tempfile::tempdir().expect("dir");
    for model in ["digits", "digits-logreg"] {
        copy_dir(&models_dir().join(model), &repository.path().join(model));
    }
    let created = reliable()
        .args([
            "keys",
            "create",
            "--name",
            "ml-admin",
            "--scopes",
            "models:admin",
        ])
        .env("RELIABLE_DATA_DIR", data.path())
        .output()
        .expect("keys");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let admin_key = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let mut cmd: Command = reliable();
    cmd.arg("up")
        .env("RELIABLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_CONSOLE_LISTEN", "127.0.0.1:0")
        .env("RELIABLE_DATA_DIR", data.path())
        .env("RELIABLE_INFERENCE_REPOSITORY", repository.path());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let app = start(cmd);
    let base = format!("http://{}", app.addr);
    Platform {
        app,
        base,
        repository,
        _data: data,
        admin_key,
        http: reqwest::Client::new(),
    }
}

impl Platform {
    async fn infer(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value, Option<String>) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let version = response
            .headers()
            .get("x-model-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body, version)
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        support::get_text(&self.http, &format!("{}/metrics", self.base)).await
    }
}

fn label_of(body: &Value) -> Vec<i64> {
    let outputs = body["outputs"].as_array().expect("outputs");
    let label = outputs
        .iter()
        .find(|o| o["name"] == "label")
        .expect("label output");
    serde_json::from_value(label["data"].clone()).expect("labels")
}

#[tokio::test]
async fn the_protocol_versions_canary_and_bad_inputs() {
    let platform = up(&[]);
    let reference = reference();

    // Server and model metadata.
    let server: Value = platform
        .http
        .get(format!("{}/v2", platform.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(server["name"], "reliable");
    assert_eq!(server["extensions"], json!(["model_repository"]));
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/digits/ready",
        "/v2/models/digits/versions/1/ready",
    ] {
        let status = platform
            .http
            .get(format!("{}{path}", platform.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
    let meta: Value = platform
        .http
        .get(format!("{}/v2/models/digits", platform.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["name"], "digits");
    assert_eq!(meta["versions"], json!(["1", "2"]));
    assert_eq!(meta["platform"], "onnx");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}])
    );
    assert_eq!(meta["outputs"][0]["name"], "label");
    assert_eq!(
        meta["parameters"]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert!(
        meta["parameters"]["training_metrics"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.9
    );
    let info: Value = platform
        .http
        .get(format!(
            "{}/v2/models/digits/versions/1/info",
            platform.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["version"], "1");
    assert_eq!(
        info["training"]["dataset"]["name"],
        "sklearn.datasets.load_digits"
    );
    assert_eq!(info["drift_reference"], true);

    // One row answers with the reference's class, from the highest version.
    let (status, body, version) = platform
        .infer(
            "/v2/models/digits/infer",
            &infer_body(&reference.inputs[..1], Some("first")),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(version.as_deref(), Some("2"));
    assert_eq!(body["model_version"], "2");
    assert_eq!(body["id"], "first");
    assert_eq!(
        label_of(&body),
        vec![reference.expected["digits/2"]["label"][0].as_i64().unwrap()]
    );

    // Pinned versions, by header and by path.
    for v in ["1", "2"] {
        let (status, body, version) = platform
            .infer(
                "/v2/models/digits/infer",
                &infer_body(&reference.inputs[..4], None),
                &[("x-model-version", v)],
            )
            .await;
        assert_eq!((status, version.as_deref()), (200, Some(v)), "{body}");
        assert_eq!(body["model_version"], v);
        let expected: Vec<i64> =
            serde_json::from_value(reference.expected[format!("digits/{v}")]["label"].clone())
                .unwrap();
        assert_eq!(label_of(&body), expected[..4]);
        let (status, body, _) = platform
            .infer(
                &format!("/v2/models/digits/versions/{v}/infer"),
                &infer_body(&reference.inputs[..1], None),
                &[],
            )
            .await;
        assert_eq!((status, body["model_version"].as_str()), (200, Some(v)));
    }
    // The ai.onnx.ml model (skl2onnx's LinearClassifier).
    let (status, body, _) = platform
        .infer(
            "/v2/models/digits-logreg/infer",
            &infer_body(&reference.inputs[..2], None),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let expected: Vec<i64> =
        serde_json::from_value(reference.expected["digits-logreg/1"]["label"].clone()).unwrap();
    assert_eq!(label_of(&body), expected[..2]);

    // A 50% canary, measured over 2,000 requests.
    let (status, body) = platform
        .admin(
            reqwest::Method::PUT,
            "/v2/repository/models/digits/policy",
            Some(json!({"default_version": 2, "canary": {"version": 1, "percent": 50.0}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let one_row = infer_body(&reference.inputs[..1], None);
    let v1 = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = platform.http.clone();
        let url = format!("{}/v2/models/digits/infer", platform.base);
        let body = one_row.clone();
        let v1 = v1.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                let response = http.post(&url).json(&body).send().await.expect("request");
                assert_eq!(response.status(), 200);
                if response.headers()["x-model-version"] == "1" {
                    v1.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let share = v1.load(Ordering::Relaxed) as f64 / 2000.0;
    assert!((0.45..=0.55).contains(&share), "canary share {share}");
    // Sticky A/B: one user, one version.
    let (status, _) = platform
        .admin(
            reqwest::Method::PUT,
            "/v2/repository/models/digits/policy",
            Some(json!({"canary": {"version": 1, "percent": 50.0}, "sticky_header": "x-user-id"})),
        )
        .await;
    assert_eq!(status, 200);
    for user in ["alice", "bob", "carol"] {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let (_, _, version) = platform
                .infer("/v2/models/digits/infer", &one_row, &[("x-user-id", user)])
                .await;
            seen.insert(version);
        }
        assert_eq!(seen.len(), 1, "{user} saw {seen:?}");
    }
    let (status, body) = platform
        .admin(
            reqwest::Method::PUT,
            "/v2/repository/models/digits/policy",
            Some(json!({"canary": {"version": 7, "percent": 50.0}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Bad input: a clear 4xx with the protocol's `error`, never a 500.
    let good = &reference.inputs[0];
    let data = |n: usize| -> Vec<f32> { good.iter().copied().cycle().take(n).collect() };
    let too_many: Vec<f32> = data(65 * 64);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "wrong datatype",
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "INT64", "data": data(64).iter().map(|v| *v as i64).collect::<Vec<_>>()}]}),
            400,
            "datatype is INT64",
        ),
        (
            "unknown datatype",
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP128", "data": data(64)}]}),
            400,
            "unknown datatype",
        ),
        (
            "wrong shape",
            json!({"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": data(63)}]}),
            400,
            "shape [1, 63]",
        ),
        (
            "data length",
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": data(60)}]}),
            400,
            "needs 64 elements",
        ),
        (
            "BYTES to a numeric model",
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "BYTES", "data": vec!["a"; 64]}]}),
            400,
            "datatype is BYTES",
        ),
        (
            "strings as FP32",
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": vec!["NaN"; 64]}]}),
            400,
            "is a string",
        ),
        (
            "overflow to Inf in FP32",
            json!({"inputs": [{"name": "pixels", "shape": [1, 1, 64], "datatype": "FP32", "data": data(64)}]}),
            400,
            "shape [1, 1, 64]",
        ),
        (
            "batch over max_batch_size",
            json!({"inputs": [{"name": "pixels", "shape": [65, 64], "datatype": "FP32", "data": too_many}]}),
            400,
            "over this model's limit of 64",
        ),
        (
            "unknown input",
            json!({"inputs": [{"name": "image", "shape": [1, 64], "datatype": "FP32", "data": data(64)}]}),
            400,
            "\"image\" is not an input",
        ),
        (
            "empty inputs",
            json!({"inputs": []}),
            400,
            "inputs is empty",
        ),
        (
            "missing inputs",
            json!({"id": "x"}),
            400,
            "missing field `inputs`",
        ),
        (
            "unknown output",
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": data(64)}], "outputs": [{"name": "logits"}]}),
            400,
            "\"logits\" is not an output",
        ),
    ];
    for (what, body, status, message) in cases {
        let (got, answer, _) = platform.infer("/v2/models/digits/infer", &body, &[]).await;
        assert_eq!(got, status, "{what}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{what}: {answer}");
        assert!(
            answer["type"].as_str().is_some(),
            "{what}: problem+json: {answer}"
        );
    }
    // Raw bodies JSON cannot carry: NaN, Infinity, a number past FP32.
    for (what, raw, message) in [
        (
            "NaN",
            r#"{"inputs":[{"name":"pixels","shape":[1,1],"datatype":"FP32","data":[NaN]}]}"#,
            "expected value",
        ),
        (
            "1e39 overflows FP32",
            &format!(
                r#"{{"inputs":[{{"name":"pixels","shape":[1,64],"datatype":"FP32","data":[1e39{}]}}]}}"#,
                ",0".repeat(63)
            ),
            "out of range for FP32",
        ),
        ("not JSON", "{", "EOF"),
    ] {
        let response = platform
            .http
            .post(format!("{}/v2/models/digits/infer", platform.base))
            .header("content-type", "application/json")
            .body(raw.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{what}: {answer}"
        );
    }
    // Just over the 64 KiB limit, on a connection of its own: the server
    // answers 413 without reading the rest and closes that connection.
    let huge = format!(
        r#"{{"inputs":[{{"name":"pixels","shape":[1,64],"datatype":"FP32","data":[{}]}}]}}"#,
        "1,".repeat(40_000)
    );
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = once
        .post(format!("{}/v2/models/digits/infer", platform.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "body over the limit");
    let (got, answer, _) = platform
        .infer(
            "/v2/models/..%2F..%2Fetc/infer",
            &infer_body(&reference.inputs[..1], None),
            &[],
        )
        .await;
    assert!(matches!(got, 400 | 404), "../ in a name: {got} {answer}");
    assert!(answer["type"].is_string(), "{answer}");
    for (path, status) in [
        ("/v2/models/nope/infer", 404),
        ("/v2/models/digits/versions/two/infer", 400),
        ("/v2/models/digits/versions/0/infer", 400),
        ("/v2/models/digits/versions/9/infer", 404),
    ] {
        let (got, answer, _) = platform
            .infer(path, &infer_body(&reference.inputs[..1], None), &[])
            .await;
        assert_eq!(got, status, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{path}: {answer}");
    }
    let (got, answer, _) = platform
        .infer(
            "/v2/models/digits/infer",
            &infer_body(&reference.inputs[..1], None),
            &[("x-model-version", "latest")],
        )
        .await;
    assert_eq!(got, 400, "{answer}");
    // The other models kept serving, and no bad input was a server error.
    let (status, _, _) = platform
        .infer(
            "/v2/models/digits-logreg/infer",
            &infer_body(&reference.inputs[..1], None),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let metrics = platform.metrics().await;
    assert!(!metrics.contains(r#"service="inference",http_route="/v2/models/{name}/infer",http_request_method="POST",http_response_status_code="500""#), "{metrics}");
    assert!(
        metrics.contains("inference_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"inference_errors_total{model="digits",version="2",kind="bad_input"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("inference_batch_size_bucket"), "{metrics}");
    assert!(
        metrics.contains(r#"inference_predictions_total{model="digits""#),
        "{metrics}"
    );
    stop(platform.app).await;
}

#[tokio::test]
async fn the_repository_is_admin_only_and_loads_under_traffic_fail_nothing() {
    let platform = up(&[]);
    let reference = reference();
    // Behind the gateway, the repository needs a `models:admin` key.
    let anonymous = platform
        .http
        .post(format!("{}/v2/repository/index", platform.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, index) = platform
        .admin(reqwest::Method::POST, "/v2/repository/index", None)
        .await;
    assert_eq!(status, 200, "{index}");
    let states: Vec<(String, String, String)> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().into(),
                m["version"].as_str().unwrap().into(),
                m["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("digits".into(), "1".into(), "READY".into()),
            ("digits".into(), "2".into(), "READY".into()),
            ("digits-logreg".into(), "1".into(), "READY".into()),
        ]
    );

    // 200 req/s of infer traffic while version 3 appears and is loaded,
    // then the model is loaded again: not one request fails.
    let failures = Arc::new(AtomicUsize::new(0));
    let (sent, mut sent_rx) = tokio::sync::watch::channel(0usize);
    let stop_traffic = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let http = platform.http.clone();
        let url = format!("{}/v2/models/digits/infer", platform.base);
        let body = infer_body(&reference.inputs[..1], None);
        let (failures, sent, stop_traffic) = (failures.clone(), sent.clone(), stop_traffic.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(5));
            let mut inflight = tokio::task::JoinSet::new();
            while !stop_traffic.is_cancelled() {
                tick.tick().await;
                let (http, url, body, failures) =
                    (http.clone(), url.clone(), body.clone(), failures.clone());
                sent.send_modify(|n| *n += 1);
                inflight.spawn(async move {
                    match http.post(&url).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {}
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            while inflight.join_next().await.is_some() {}
        })
    };
    sent_rx.wait_for(|n| *n >= 100).await.unwrap();
    copy_dir(
        &platform.repository.path().join("digits/2"),
        &platform.repository.path().join("digits/3"),
    );
    let (status, body) = platform
        .admin(
            reqwest::Method::POST,
            "/v2/repository/models/digits/load",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"], json!(["1", "2", "3"]));
    sent_rx.wait_for(|n| *n >= 300).await.unwrap();
    let (status, _) = platform
        .admin(
            reqwest::Method::POST,
            "/v2/repository/models/digits/load",
            None,
        )
        .await;
    assert_eq!(status, 200);
    sent_rx.wait_for(|n| *n >= 500).await.unwrap();
    stop_traffic.cancel();
    traffic.await.unwrap();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during loads"
    );
    let (status, _, version) = platform
        .infer(
            "/v2/models/digits/infer",
            &infer_body(&reference.inputs[..1], None),
            &[],
        )
        .await;
    assert_eq!((status, version.as_deref()), (200, Some("3")));

    // Missing and corrupt models: clear errors; the others keep serving.
    let (status, body) = platform
        .admin(
            reqwest::Method::POST,
            "/v2/repository/models/nope/load",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    std::fs::create_dir_all(platform.repository.path().join("broken/1")).unwrap();
    std::fs::write(
        platform.repository.path().join("broken/1/model.onnx"),
        b"\x08\x07garbage",
    )
    .unwrap();
    let (status, body) = platform
        .admin(
            reqwest::Method::POST,
            "/v2/repository/models/broken/load",
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a loadable ONNX model"),
        "{body}"
    );
    let (_, index) = platform
        .admin(reqwest::Method::POST, "/v2/repository/index", None)
        .await;
    let broken = index
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "broken")
        .expect("listed");
    assert_eq!(broken["state"], "FAILED");
    let (status, _, _) = platform
        .infer(
            "/v2/models/digits/infer",
            &infer_body(&reference.inputs[..1], None),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = platform
        .admin(
            reqwest::Method::POST,
            "/v2/repository/models/..%2Fx/load",
            None,
        )
        .await;
    assert!(matches!(status, 400 | 404), "../ in a name: {status}");

    // Unload: 404 afterwards, the other model unaffected.
    let (status, _) = platform
        .admin(
            reqwest::Method::POST,
            "/v2/repository/models/digits-logreg/unload",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = platform
        .infer(
            "/v2/models/digits-logreg/infer",
            &infer_body(&reference.inputs[..1], None),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    stop(platform.app).await;
}

#[tokio::test]
async fn shadow_feedback_and_drift() {
    let platform = up(&[
        ("RELIABLE_INFERENCE_DRIFT_WINDOW", "360"),
        ("RELIABLE_INFERENCE_DRIFT_INTERVAL", "50ms"),
    ]);
    let reference = reference();
    // Shadow every request to version 1; the answers still come from 2.
    let (status, body) = platform
        .admin(
            reqwest::Method::PUT,
            "/v2/repository/models/digits/policy",
            Some(json!({"default_version": 2, "shadow": {"version": 1, "percent": 100.0}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Live accuracy: the whole test split, one request per row, each with
    // its true label as feedback.
    let mut correct = 0;
    for (i, (row, label)) in reference
        .split
        .iter()
        .zip(&reference.split_labels)
        .enumerate()
    {
        let id = format!("row-{i}");
        let (status, body, version) = platform
            .infer(
                "/v2/models/digits/infer",
                &infer_body(std::slice::from_ref(row), Some(&id)),
                &[],
            )
            .await;
        assert_eq!((status, version.as_deref()), (200, Some("2")), "{body}");
        let response = platform
            .http
            .post(format!("{}/v2/models/digits/feedback", platform.base))
            .json(&json!({"id": id, "label": label}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let result: Value = response.json().await.unwrap();
        assert_eq!(result["model_version"], "2");
        if result["correct"] == true {
            correct += 1;
        }
    }
    let accuracy = correct as f64 / reference.split.len() as f64;
    assert!(accuracy > 0.95, "live accuracy {accuracy}");
    let again = platform
        .http
        .post(format!("{}/v2/models/digits/feedback", platform.base))
        .json(&json!({"id": "row-0", "label": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let unknown = platform
        .http
        .post(format!("{}/v2/models/digits/feedback", platform.base))
        .json(&json!({"id": "never", "label": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let drift_of = |metrics: &str, feature: &str| -> Option<f64> {
        let prefix = format!(
            r#"inference_drift_score{{model="digits",version="2",feature="{feature}",statistic="psi"}} "#
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    let max_psi = |metrics: &str| -> f64 {
        (0..64)
            .filter_map(|j| drift_of(metrics, &format!("pixel_{j}")))
            .fold(0.0, f64::max)
    };
    // The window (360 rows) holds the test split: drift below the alert
    // threshold. Scores are published every 50 ms: wait for them.
    let calm = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let metrics = platform.metrics().await;
            if drift_of(&metrics, "prediction").is_some() {
                break max_psi(&metrics);
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("drift scores published");
    assert!(calm < 0.2, "test split drifted: max PSI {calm}");

    // Every pixel +4, over one window: above the threshold.
    for _ in 0..(360 / reference.shifted.len() + 1) {
        let (status, _, _) = platform
            .infer(
                "/v2/models/digits/infer",
                &infer_body(&reference.shifted, None),
                &[],
            )
            .await;
        assert_eq!(status, 200);
    }
    let drifted = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let psi = max_psi(&platform.metrics().await);
            if psi > 0.2 {
                break psi;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("drift over the threshold");
    assert!(drifted > 0.2);

    let metrics = platform.metrics().await;
    assert!(
        metrics.contains(r#"inference_shadow_total{model="digits",version="1",outcome="agree"}"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"inference_feedback_total{model="digits",version="2",outcome="correct"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("inference_policy_changes_total"),
        "{metrics}"
    );
    stop(platform.app).await;
}

/// The value of every series of `name` whose labels hold all of `labels`,
/// summed (0 when there is none).
fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_model_versions_cpu_follows_its_requests_and_weights_are_reported() {
    let platform = up(&[]);
    let rows = reference().inputs;
    let cost = "reliable_cost_cpu_seconds_total";
    let route = r#"route="/v2/models/{name}/versions/{version}/infer""#;
    let before = platform.metrics().await;
    let v1_before = metric_sum(&before, cost, &[route, r#"model="digits:1""#]);
    let v2_before = metric_sum(&before, cost, &[r#"model="digits:2""#]);
    for _ in 0..40 {
        let (status, body, _) = platform
            .infer(
                "/v2/models/digits/versions/1/infer",
                &infer_body(&rows, None),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let after = platform.metrics().await;
    let v1 = metric_sum(
        &after,
        cost,
        &[r#"module="inference""#, route, r#"model="digits:1""#],
    );
    assert!(
        v1 > v1_before,
        "version 1's CPU moves with its requests: {v1_before} -> {v1}\n{after}"
    );
    assert_eq!(
        metric_sum(&after, cost, &[r#"model="digits:2""#]),
        v2_before,
        "version 2 ran nothing"
    );
    assert!(
        !after.lines().any(|l| l.starts_with(cost)
            && l.contains(r#"module="gateway""#)
            && l.contains("model=")),
        "the gateway in front is never charged a model: {after}"
    );
    // Background tasks are charged as tasks.
    assert!(
        after
            .lines()
            .any(|l| l.starts_with(cost) && l.contains(r#"route="task:"#)),
        "{after}"
    );
    let weights = metric_sum(
        &after,
        "reliable_memory_bytes",
        &[r#"module="inference""#, r#"component="model_weights""#],
    );
    assert!(
        weights > 1000.0,
        "the loaded versions' weights: {weights}\n{after}"
    );
    stop(platform.app).await;
}
