//! Wiring the probes and the public status page into `up` / `serve`.
//!
//! - the store: `probes.db` under the data dir in `up` (and in `serve`
//!   without a database URL), else the `probes` schema of
//!   `RELIABLE_DATABASE_URL`; `reliable status` opens the same one;
//! - the probes: `probes.checks` plus, in `up` with
//!   `probes.shortener_redirect` on, the built-in redirect probe, whose
//!   link a tracked task seeds through the public API once it serves;
//! - writes to incident notes need a gateway API key with `status:write`,
//!   checked against the gateway's key store ([`GatewayKeys`]).

use anyhow::Context as _;
use async_trait::async_trait;
use axum::http::HeaderMap;
use gateway::keys::{ApiKey, KeyStore, Scope, KEY_PREFIX};
use kit::changes::ChangeRecorder;
use kit::module::Ports;
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use probe::{AuthFailure, ProbeStore, WriteAuthorizer};
use std::sync::Arc;
use std::time::Duration;

use crate::settings::Config;

/// Where the probes' store lives (see the module docs).
pub fn store_url(config: &Config, embedded: bool) -> String {
    match (embedded, config.shared_database_url()) {
        (false, Some(url)) => url.to_string(),
        _ => format!("sqlite://{}", config.data_dir.join("probes.db").display()),
    }
}

/// Where the gateway keeps its keys (as `database_url_of` chooses).
fn keys_url(config: &Config, embedded: bool) -> String {
    config.gateway_keys_url(embedded)
}

/// Starts the probes on `tasks` and returns the status page's routes
/// (none with `status.enabled = false`).
pub async fn start(
    config: &Config,
    embedded: bool,
    shortener_runs: bool,
    public_url: &str,
    ports: &Ports,
    clock: Arc<dyn Clock>,
    tasks: &TaskSpawner,
) -> anyhow::Result<Option<kit::http::Routes>> {
    if !config.probes.enabled && !config.status.enabled {
        return Ok(None);
    }
    let store = ProbeStore::open(
        &store_url(config, embedded),
        &kit::storage::PoolConfig::default(),
    )
    .await
    .context("opening the probes store")?;
    let mut specs = Vec::new();
    if config.probes.enabled {
        let public = url::Url::parse(public_url).context("the public URL")?;
        // Built in for `up` only: in `serve`, probes are the operator's.
        if embedded && shortener_runs && config.probes.shortener_redirect {
            // A listener on a private PKI is trusted through its own CA.
            let ca_file = config.tls.ca_file.clone();
            specs.push(probe::builtin::shortener_redirect(
                &public,
                config.probes.shortener_redirect_interval,
                ca_file.clone(),
            ));
            seed_when_serving(public, ca_file, tasks);
        }
        specs.extend(config.probes.checks.iter().cloned());
    }
    let results = probe::runner::start(&specs, Some(store.clone()), clock.clone(), tasks)?;
    if !config.status.enabled {
        return Ok(None);
    }
    let keys = gateway::keys::connect(&keys_url(config, embedded), &config.gateway.database)
        .await
        .context("opening the gateway's key store for status:write")?;
    let page = probe::StatusPage::new(
        config.status.clone(),
        store,
        results,
        clock,
        Arc::new(GatewayKeys(keys)),
        ChangeRecorder::from_ports(ports),
    );
    Ok(Some(page.routes()))
}

/// Seeds the redirect probe's link once the listener answers (a few
/// tries: the task starts before the server does).
fn seed_when_serving(public: url::Url, ca_file: Option<std::path::PathBuf>, tasks: &TaskSpawner) {
    let stop = tasks.stop_token();
    tasks.spawn("probe-seed", OnFailure::Unready, async move {
        let client = probe::check::HttpClient::new(ca_file.as_deref())?;
        let mut last = String::new();
        for attempt in 0..30u32 {
            if attempt > 0 {
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            match probe::builtin::seed_link(&client, &public).await {
                Ok(()) => {
                    tracing::info!(slug = probe::builtin::SLUG, "status probe link ready");
                    // Nothing more to do; stay until shutdown so the
                    // supervisor does not count an early end.
                    stop.cancelled().await;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        tracing::warn!(error = %last, "could not seed the status probe's link; the shortener-redirect probe will fail");
        stop.cancelled().await;
        Ok::<(), String>(())
    });
}

/// `status:write` checked against the gateway's keys; the actor is the
/// key's name.
pub struct GatewayKeys(pub Arc<dyn KeyStore>);

#[async_trait]
impl WriteAuthorizer for GatewayKeys {
    async fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<String, AuthFailure> {
        let presented = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .filter(|t| t.trim_start().starts_with(KEY_PREFIX))
            })
            .ok_or(AuthFailure::Missing)?;
        let key = ApiKey::parse(presented.trim()).map_err(|_| AuthFailure::Rejected)?;
        let stored = self.0.find(&key.hash()).await.map_err(|e| {
            tracing::error!(error = %e, "API key lookup failed");
            AuthFailure::Unavailable
        })?;
        let stored = stored
            .filter(|k| k.revoked_at.is_none())
            .ok_or(AuthFailure::Rejected)?;
        let wanted = Scope::parse(scope).map_err(|_| AuthFailure::Forbidden(scope.to_string()))?;
        if !stored.scopes.contains(&wanted) {
            return Err(AuthFailure::Forbidden(scope.to_string()));
        }
        Ok(format!("key:{}", stored.name.as_str()))
    }
}
