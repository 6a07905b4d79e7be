//! Fake module APIs (canary, inference) with the JSON shapes their real
//! routes answer, and a fake key store.

use async_trait::async_trait;
use console::sources::{KeyVerifier, ModuleApi, SourceError};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A module API answering fixed JSON per path.
pub struct FakeApi(pub HashMap<String, Value>);

#[async_trait]
impl ModuleApi for FakeApi {
    async fn get_json(&self, path_and_query: &str) -> Result<Value, SourceError> {
        self.0
            .get(path_and_query)
            .cloned()
            .ok_or_else(|| SourceError::Status {
                what: "fake".into(),
                status: 404,
                detail: path_and_query.into(),
            })
    }

    async fn post_json(&self, path: &str, _body: Value) -> Result<Value, SourceError> {
        self.get_json(path).await
    }
}

pub fn canary_api() -> FakeApi {
    let run = json!({
        "id": "run-1", "name": "links-v2", "target": "gateway/links", "phase": "running",
        "step": 1, "weight": 0.25, "started_at": "2026-12-01T11:00:00Z",
        "step_started_at": "2026-12-01T11:30:00Z", "looks": 4, "metric_errors": 0, "reason": null
    });
    let detail = json!({
        "run": run,
        "decisions": [{
            "seq": 4, "at": "2026-12-01T11:55:00Z", "step": 1, "weight": 0.25,
            "action": "hold", "summary": "canary error ratio within bounds",
            "judgement": {
                "metrics": [{"slo": "shortener-availability", "kind": "proportion", "verdict": "pass",
                    "p_value": 0.42, "effect": 0.001, "n_baseline": 900, "n_canary": 300,
                    "evidence": "bad ratio 0.2% vs 0.1%"}],
                "overall": {"verdict": "pass", "score": 100.0},
                "guard": null
            }
        }]
    });
    FakeApi(HashMap::from([
        (
            "/canary/v1/runs?unfinished=true&limit=20".to_string(),
            json!([run]),
        ),
        ("/canary/v1/runs/run-1".to_string(), detail),
    ]))
}

pub fn inference_api() -> FakeApi {
    FakeApi(HashMap::from([
        (
            "/v2/repository/index".to_string(),
            json!([
                {"name": "digits", "version": "1", "state": "READY", "reason": ""},
                {"name": "digits", "version": "2", "state": "READY", "reason": ""}
            ]),
        ),
        (
            "/v2/repository/models/digits/policy".to_string(),
            json!({"default_version": 1, "canary": {"version": 2, "percent": 10.0}, "sticky_header": null, "shadow": null}),
        ),
    ]))
}

pub struct FakeKeys;

#[async_trait]
impl KeyVerifier for FakeKeys {
    async fn scopes(&self, presented: &str) -> Result<Option<Vec<String>>, SourceError> {
        Ok(match presented {
            "good-key" => Some(vec!["links:write".into(), "console:read".into()]),
            "weak-key" => Some(vec!["links:write".into()]),
            _ => None,
        })
    }
}
