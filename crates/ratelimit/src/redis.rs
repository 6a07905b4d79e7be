//! The Redis adapter: one limit across every replica.
//!
//! One round trip per decision: an atomic Lua script (sent as `EVALSHA`,
//! re-sent as `EVAL` only if the server lost it) reads the key's TAT,
//! applies the same GCRA step as [`crate::gcra::step`] and stores the new
//! TAT with a `PX` expiry at that TAT, so idle keys disappear on their
//! own. Time comes from the caller's injected clock (replicas run NTP; a
//! skew of `d` lets a client through at most `d / emission interval`
//! extra requests), which is what lets tests drive windows without waiting.
//!
//! A dead Redis must not cost every request a connect timeout: a failed
//! or slow decision (over `decision_timeout`) drops the connection and
//! marks the adapter down; while down, decisions fail at once without
//! touching the network, and one background task reconnects with backoff.

use crate::gcra::{Decision, Step};
use crate::local::now_us;
use crate::{LimiterError, Quota, RateLimiter};
use kit::Clock;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now <= tolerance then
  local new_tat = tat + interval
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
  return {1, new_tat}
end
return {0, tat}
";

/// How the adapter talks to Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`; a secret if it carries a password.
    pub url: String,
    /// Prefix of every key, so limiters can share a Redis.
    pub key_prefix: String,
    /// Longest a decision may take before it counts as a failure.
    pub decision_timeout: Duration,
    /// First wait between reconnect attempts; doubles up to 5 s.
    pub reconnect_backoff: Duration,
}

impl RedisSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "reliable:rl:".to_string(),
            decision_timeout: Duration::from_millis(50),
            reconnect_backoff: Duration::from_millis(100),
        }
    }
}

pub struct RedisLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    settings: RedisSettings,
    script: redis::Script,
    clock: Arc<dyn Clock>,
    connection: Mutex<Option<MultiplexedConnection>>,
    /// Set while the background task is reconnecting, so only one runs.
    reconnecting: AtomicBool,
}

impl RedisLimiter {
    /// Connects once (bounded by the decision timeout); if Redis is not
    /// there yet the limiter starts down and keeps trying in the background.
    pub async fn connect(
        settings: RedisSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LimiterError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| LimiterError::Config(e.to_string()))?;
        let inner = Arc::new(Inner {
            client,
            script: redis::Script::new(SCRIPT),
            clock,
            connection: Mutex::new(None),
            reconnecting: AtomicBool::new(false),
            settings,
        });
        match inner.open().await {
            Ok(connection) => inner.set_connection(Some(connection)),
            Err(e) => {
                tracing::warn!(error = %e, "rate-limit Redis unreachable at start; reconnecting in the background");
                inner.clone().start_reconnecting();
            }
        }
        Ok(Self { inner })
    }

    /// True while decisions go to Redis.
    pub fn is_up(&self) -> bool {
        self.inner.current().is_some()
    }
}

impl Inner {
    fn current(&self) -> Option<MultiplexedConnection> {
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_connection(&self, connection: Option<MultiplexedConnection>) {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = connection;
    }

    async fn open(&self) -> Result<MultiplexedConnection, LimiterError> {
        let timeout = self
            .settings
            .decision_timeout
            .max(Duration::from_millis(500));
        let mut connection =
            tokio::time::timeout(timeout, self.client.get_multiplexed_async_connection())
                .await
                .map_err(|_| LimiterError::Timeout)?
                .map_err(unavailable)?;
        // Load the script now, so the first decision is one round trip.
        self.script
            .prepare_invoke()
            .load_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(connection)
    }

    fn start_reconnecting(self: Arc<Self>) {
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            let mut backoff = self.settings.reconnect_backoff;
            loop {
                tokio::time::sleep(backoff).await;
                match self.open().await {
                    Ok(connection) => {
                        self.set_connection(Some(connection));
                        self.reconnecting.store(false, Ordering::Release);
                        tracing::info!("rate-limit Redis reachable again");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "rate-limit Redis still unreachable");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

fn unavailable(e: redis::RedisError) -> LimiterError {
    LimiterError::Unavailable(e.to_string())
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterError> {
        let Some(mut connection) = self.inner.current() else {
            return Err(LimiterError::Unavailable("reconnecting".into()));
        };
        let now = now_us(self.inner.clock.as_ref());
        let mut invocation = self
            .inner
            .script
            .key(format!("{}{key}", self.inner.settings.key_prefix));
        invocation
            .arg(now)
            .arg(quota.emission_interval_us())
            .arg(quota.tolerance_us());
        let outcome = tokio::time::timeout(
            self.inner.settings.decision_timeout,
            invocation.invoke_async::<(i64, i64)>(&mut connection),
        )
        .await;
        let failure = match outcome {
            Ok(Ok((allowed, tat_us))) => {
                let step = Step {
                    allowed: allowed == 1,
                    tat_us,
                };
                return Ok(Decision::of(step, now, quota));
            }
            Ok(Err(e)) if !e.is_io_error() && !e.is_connection_dropped() && !e.is_timeout() => {
                // The server answered with an error: a bug or a
                // misconfigured server, not an outage.
                return Err(LimiterError::Unavailable(e.to_string()));
            }
            Ok(Err(e)) => LimiterError::Unavailable(e.to_string()),
            Err(_) => LimiterError::Timeout,
        };
        self.inner.set_connection(None);
        self.inner.clone().start_reconnecting();
        Err(failure)
    }
}
