//! Targets in another process, through their admin APIs.
//!
//! Every change is read back from the answer, so the controller always
//! records the split the target reports, not the one it asked for.

use super::{Split, Target, TargetError};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::time::Duration;

/// Longest wait for one admin call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// A path segment, percent-encoded (a route's name may be its prefix,
/// `/links`).
fn segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn call(
    target: &str,
    request: reqwest::RequestBuilder,
    key: Option<&str>,
) -> Result<Value, TargetError> {
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let unreachable = |reason: String| TargetError::Unreachable {
        target: target.to_string(),
        reason,
    };
    let response = request
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let detail = || {
        body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or("no detail")
            .to_string()
    };
    match status.as_u16() {
        200..=299 => Ok(body),
        404 => Err(TargetError::Unknown {
            target: target.to_string(),
            reason: detail(),
        }),
        400..=499 => Err(TargetError::Refused {
            target: target.to_string(),
            reason: format!("HTTP {status}: {}", detail()),
        }),
        _ => Err(unreachable(format!("HTTP {status}: {}", detail()))),
    }
}

/// A gateway route, through `PUT /admin/v1/routes/{name}/split`.
pub struct HttpGateway {
    route: String,
    url: url::Url,
    key: Option<String>,
    client: reqwest::Client,
}

impl HttpGateway {
    pub fn new(admin_url: url::Url, route: &str, key: Option<String>) -> Result<Self, TargetError> {
        let url = admin_url
            .join(&format!("admin/v1/routes/{}/split", segment(route)))
            .map_err(|e| TargetError::Unknown {
                target: format!("gateway/{route}"),
                reason: e.to_string(),
            })?;
        Ok(Self {
            route: route.to_string(),
            url,
            key,
            client: client(),
        })
    }

    fn parse(&self, body: &Value) -> Result<Split, TargetError> {
        let (Some(baseline), Some(canary), Some(percent)) = (
            body["baseline"].as_str(),
            body["canary"].as_str(),
            body["percent"].as_f64(),
        ) else {
            return Err(TargetError::Unreachable {
                target: self.key(),
                reason: format!("the admin API answered {body}, not a split"),
            });
        };
        Ok(Split {
            baseline: baseline.to_string(),
            canary: canary.to_string(),
            percent,
        })
    }
}

#[async_trait]
impl Target for HttpGateway {
    fn key(&self) -> String {
        format!("gateway/{}", self.route)
    }

    async fn split(&self) -> Result<Split, TargetError> {
        let body = call(
            &self.key(),
            self.client.get(self.url.clone()),
            self.key.as_deref(),
        )
        .await?;
        self.parse(&body)
    }

    async fn set_weight(&self, percent: f64, reason: &str) -> Result<Split, TargetError> {
        let request = self
            .client
            .put(self.url.clone())
            .json(&json!({ "percent": percent, "reason": reason }));
        let body = call(&self.key(), request, self.key.as_deref()).await?;
        self.parse(&body)
    }

    async fn promote(&self, reason: &str) -> Result<Split, TargetError> {
        self.set_weight(100.0, reason).await
    }
}

/// A model's serving policy, through `/v2/repository/models/{name}/policy`.
pub struct HttpInference {
    model: String,
    baseline: u64,
    canary: u64,
    url: url::Url,
    key: Option<String>,
    client: reqwest::Client,
}

impl HttpInference {
    /// `base` is the inference API's base (`http://host:8080/`).
    pub fn new(
        base: url::Url,
        model: &str,
        baseline: u64,
        canary: u64,
        key: Option<String>,
    ) -> Result<Self, TargetError> {
        let url = base
            .join(&format!("v2/repository/models/{}/policy", segment(model)))
            .map_err(|e| TargetError::Unknown {
                target: format!("inference/{model}"),
                reason: e.to_string(),
            })?;
        Ok(Self {
            model: model.to_string(),
            baseline,
            canary,
            url,
            key,
            client: client(),
        })
    }

    /// The policy in force, as a JSON object (others' settings kept).
    async fn policy(&self) -> Result<Value, TargetError> {
        let policy = call(
            &self.key(),
            self.client.get(self.url.clone()),
            self.key.as_deref(),
        )
        .await?;
        Ok(if policy.is_object() {
            policy
        } else {
            json!({})
        })
    }

    async fn put(&self, policy: Value) -> Result<Split, TargetError> {
        let request = self.client.put(self.url.clone()).json(&policy);
        let body = call(&self.key(), request, self.key.as_deref()).await?;
        Ok(self.split_of(&body))
    }

    /// The split a policy puts in force, as this canary sees it.
    fn split_of(&self, policy: &Value) -> Split {
        let canary_percent = match policy["canary"]["version"].as_u64() {
            Some(v) if v == self.canary => policy["canary"]["percent"].as_f64().unwrap_or(0.0),
            _ if policy["default_version"].as_u64() == Some(self.canary) => 100.0,
            _ => 0.0,
        };
        Split {
            baseline: self.baseline.to_string(),
            canary: self.canary.to_string(),
            percent: canary_percent,
        }
    }
}

#[async_trait]
impl Target for HttpInference {
    fn key(&self) -> String {
        format!("inference/{}", self.model)
    }

    async fn split(&self) -> Result<Split, TargetError> {
        Ok(self.split_of(&self.policy().await?))
    }

    async fn set_weight(&self, percent: f64, _reason: &str) -> Result<Split, TargetError> {
        // The rest of the policy (sticky header, shadow) is kept.
        let mut policy = self.policy().await?;
        policy["default_version"] = json!(self.baseline);
        policy["canary"] = json!({ "version": self.canary, "percent": percent });
        self.put(policy).await
    }

    async fn promote(&self, _reason: &str) -> Result<Split, TargetError> {
        let mut policy = self.policy().await?;
        policy["default_version"] = json!(self.canary);
        policy["canary"] = Value::Null;
        self.put(policy).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_one_path_segment() {
        assert_eq!(segment("/links"), "%2Flinks");
        assert_eq!(segment("a b"), "a%20b");
        let g = HttpGateway::new("http://gw:8082/".parse().unwrap(), "/links", None).unwrap();
        assert_eq!(
            g.url.as_str(),
            "http://gw:8082/admin/v1/routes/%2Flinks/split"
        );
    }

    #[test]
    fn a_policy_reads_as_the_canary_share() {
        let t = HttpInference::new("http://i/".parse().unwrap(), "digits", 1, 2, None).unwrap();
        let split =
            t.split_of(&json!({"default_version": 1, "canary": {"version": 2, "percent": 30.0}}));
        assert_eq!(split.percent, 30.0);
        assert_eq!(t.split_of(&json!({"default_version": 2})).percent, 100.0);
        assert_eq!(t.split_of(&json!({})).percent, 0.0);
        assert_eq!(
            t.split_of(&json!({"canary": {"version": 3, "percent": 50.0}}))
                .percent,
            0.0
        );
    }
}
