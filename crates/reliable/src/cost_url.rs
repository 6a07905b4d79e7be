//! `reliable cost --url URL`: the running platform's own measurement, read
//! from `GET /api/v1/cost/allocation` with the key in RELIABLE_API_KEY,
//! printed as the Prometheus path prints (the same table or JSON).
//!
//! Exit codes: 2 for what the operator gave (a window the platform
//! refuses, an invalid RELIABLE_URL), 1 when the platform does not answer
//! or refuses the key, each with the reason.

use crate::cost_api::{AllocationResponse, ALLOCATION_PATH};
use crate::cost_command::{render, Aggregate, CostArgs, Failure, Report};
use crate::cost_live::PricingSource;
use cost::{AllocationSet, Window};

/// The platform's address when neither `--url` nor RELIABLE_URL is given.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

pub(crate) fn report(args: &CostArgs) -> Result<String, Failure> {
    if matches!(
        args.aggregate,
        Aggregate::Namespace | Aggregate::Pod | Aggregate::Container
    ) {
        return Err(Failure::Input(format!(
            "--aggregate {} needs Kubernetes' series (--prometheus); the platform measures module, route, model and key",
            args.aggregate.property()
        )));
    }
    let base = match &args.url {
        Some(url) => url.clone(),
        None => {
            let text = std::env::var("RELIABLE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
            url::Url::parse(&text)
                .map_err(|e| Failure::Input(format!("RELIABLE_URL `{text}`: {e}")))?
        }
    };
    let mut url = base
        .join(ALLOCATION_PATH)
        .map_err(|e| Failure::Input(format!("--url {base}: {e}")))?;
    url.query_pairs_mut()
        .append_pair("window", &args.window)
        .append_pair("aggregate", args.aggregate.property())
        .append_pair("includeIdle", "true")
        .append_pair("shareIdle", if args.share_idle { "true" } else { "false" });
    let key = std::env::var("RELIABLE_API_KEY").ok();
    let answer = fetch(&url, key.as_deref())?;
    let set = answer
        .data
        .into_iter()
        .next()
        .map(|allocations| AllocationSet {
            window: window_of(&allocations, &args.window),
            allocations,
        })
        .ok_or_else(|| Failure::Source(format!("{url}: the answer has no allocation set")))?;
    // The projection extrapolates from the time the platform ran in the
    // window (the lines' minutes), not the whole window.
    let minutes = set
        .allocations
        .values()
        .map(|a| a.minutes)
        .fold(0.0, f64::max);
    let hours = if minutes > 0.0 {
        minutes / 60.0
    } else {
        set.window.hours()
    };
    let note = (answer.pricing == PricingSource::Example).then_some(
        "example prices: the platform has no cost.pricing and uses cost.example.yaml's placeholders",
    );
    render(
        &Report {
            set: &set,
            window: &set.window,
            by: args.aggregate.property(),
            currency: &answer.currency,
            hours,
            note,
        },
        args.json,
    )
}

/// The window the platform answered for, from its lines; the local parse
/// of `text` when there are none.
fn window_of(
    allocations: &std::collections::BTreeMap<String, cost::Allocation>,
    text: &str,
) -> Window {
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    let from_lines = allocations.values().next().and_then(|a| {
        Some(Window {
            start: parse(&a.window.start)?,
            end: parse(&a.window.end)?,
        })
    });
    let now = chrono::Utc::now();
    from_lines
        .or_else(|| Window::parse(text, now).ok())
        .unwrap_or(Window {
            start: now,
            end: now,
        })
}

fn fetch(url: &url::Url, key: Option<&str>) -> Result<AllocationResponse, Failure> {
    let runtime =
        crate::runtime().ok_or_else(|| Failure::Source("no async runtime".to_string()))?;
    runtime.block_on(async {
        let client = crate::cost_command::http_client()?;
        let mut request = client.get(url.clone());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            Failure::Source(format!(
                "the platform at {url} did not answer: {e} (is `reliable up` running?)"
            ))
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Source(format!("{url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| Failure::Source(format!("{url}: not an allocation answer: {e}")));
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(match status.as_u16() {
            400 => Failure::Input(detail),
            401 if key.is_none() => Failure::Source(format!(
                "{url}: HTTP 401: set RELIABLE_API_KEY to a key with the `cost:read` scope"
            )),
            401 | 403 => Failure::Source(format!(
                "{url}: HTTP {}: {detail} (RELIABLE_API_KEY needs the `cost:read` scope)",
                status.as_u16()
            )),
            _ => Failure::Source(format!("{url}: HTTP {}: {detail}", status.as_u16())),
        })
    })
}
