//! The Redis adapter: one limit across every replica.
//!
//! One round trip per call: an atomic Lua script (sent as `EVALSHA`,
//! re-sent as `EVAL` only if the server lost it) that mirrors the shared
//! arithmetic ([`crate::gcra`], [`crate::budget`]); the scripts are in
//! `redis/scripts.rs`. A GCRA key stores its TAT with a `PX` expiry at that
//! TAT and a budget counter expires an hour after its window, so idle keys
//! disappear on their own. Time comes from the caller's injected clock
//! (replicas run NTP; a skew of `d` lets a client through at most
//! `d / emission interval` extra requests), which is what lets tests drive
//! windows without waiting.
//!
//! A dead Redis must not cost every request a connect timeout: a failed
//! or slow decision (over `decision_timeout`) drops the connection and
//! marks the adapter down; while down, decisions fail at once without
//! touching the network. Reconnection happens on demand, not in a
//! background task (which could die unseen and outlive shutdown): the
//! first decision after the backoff has elapsed on the limiter's clock
//! tries to reconnect once, while every other decision keeps failing at
//! once; each failed attempt doubles the backoff, up to 5 s. That one
//! decision may wait up to the connect timeout, once per backoff.

mod scripts;

use crate::local::now_us;
use crate::LimiterError;
use kit::Clock;
use redis::aio::MultiplexedConnection;
use scripts::Scripts;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How the adapter talks to Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`; a secret if it carries a password.
    pub url: String,
    /// Prefix of every key, so limiters can share a Redis. GCRA keys are
    /// `{prefix}{key}`, budget counters `{prefix}budget:{day|month}:{window
    /// start}:{key}`.
    pub key_prefix: String,
    /// Longest a decision (or refund, reservation, settlement) may take
    /// before it counts as a failure.
    pub decision_timeout: Duration,
    /// First wait between reconnect attempts, on the limiter's clock;
    /// doubles up to 5 s. The first decision after it makes the attempt.
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
    client: redis::Client,
    settings: RedisSettings,
    scripts: Scripts,
    clock: Arc<dyn Clock>,
    link: Mutex<Link>,
}

/// The state of the connection to Redis.
enum Link {
    /// Decisions go to Redis. `generation` tells this connection from a
    /// later one, so that a decision failing late on a connection already
    /// replaced does not drop the new one.
    Up {
        connection: MultiplexedConnection,
        generation: u64,
    },
    /// Decisions fail at once until `backoff` has passed since the last
    /// attempt (both on the limiter's clock).
    Down {
        last_attempt_us: i64,
        backoff: Duration,
        generation: u64,
    },
    /// One decision is reconnecting; the others fail at once meanwhile.
    Reconnecting,
}

/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl RedisLimiter {
    /// Connects once (bounded by the decision timeout); if Redis is not
    /// there yet the limiter starts down and decisions reconnect it later.
    pub async fn connect(
        settings: RedisSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LimiterError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| LimiterError::Config(e.to_string()))?;
        let limiter = Self {
            client,
            scripts: Scripts::new(),
            link: Mutex::new(Link::Down {
                last_attempt_us: now_us(clock.as_ref()),
                backoff: settings.reconnect_backoff,
                generation: 0,
            }),
            clock,
            settings,
        };
        match limiter.open().await {
            Ok(connection) => {
                *limiter.link() = Link::Up {
                    connection,
                    generation: 1,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rate-limit Redis unreachable at start; decisions will reconnect");
            }
        }
        Ok(limiter)
    }

    /// True while decisions go to Redis.
    pub fn is_up(&self) -> bool {
        matches!(*self.link(), Link::Up { .. })
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects and loads the script, bounded as a whole: a server that
    /// accepts connections but never answers must not hold the decision
    /// that reconnects.
    async fn open(&self) -> Result<MultiplexedConnection, LimiterError> {
        let timeout = self
            .settings
            .decision_timeout
            .max(Duration::from_millis(500));
        let open = async {
            let mut connection = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(unavailable)?;
            // Load the scripts now, so the first decision is one round trip.
            for script in self.scripts.all() {
                script
                    .prepare_invoke()
                    .load_async(&mut connection)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(connection)
        };
        tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| LimiterError::Timeout)?
    }

    /// The connection for one decision and its generation: the current
    /// one, or a new one if this caller is the one to reconnect.
    async fn connection(&self) -> Result<(MultiplexedConnection, u64), LimiterError> {
        let attempt = {
            let mut link = self.link();
            match *link {
                Link::Up {
                    ref connection,
                    generation,
                } => return Ok((connection.clone(), generation)),
                Link::Reconnecting => return Err(reconnecting()),
                Link::Down {
                    last_attempt_us,
                    backoff,
                    generation,
                } => {
                    let waited_us = now_us(self.clock.as_ref()).saturating_sub(last_attempt_us);
                    // A clock that went back must not postpone the attempt.
                    let due = waited_us < 0 || waited_us as u128 >= backoff.as_micros();
                    if !due {
                        return Err(reconnecting());
                    }
                    *link = Link::Reconnecting;
                    Reconnect {
                        limiter: self,
                        backoff,
                        generation,
                        finished: false,
                    }
                }
            }
        };
        attempt.run().await
    }

    /// Marks the link down after a decision on connection `generation`
    /// failed, unless a newer connection already replaced it.
    fn mark_down(&self, generation: u64) {
        let mut link = self.link();
        if matches!(*link, Link::Up { generation: g, .. } if g == generation) {
            *link = Link::Down {
                last_attempt_us: now_us(self.clock.as_ref()),
                backoff: self.settings.reconnect_backoff,
                generation,
            };
        }
    }
}

/// The one reconnect attempt in progress. Dropped unfinished (the decision
/// that carried it was cancelled), it puts the link back down with the
/// next backoff, so reconnection is never stuck waiting for it.
struct Reconnect<'a> {
    limiter: &'a RedisLimiter,
    backoff: Duration,
    generation: u64,
    finished: bool,
}

impl Reconnect<'_> {
    async fn run(mut self) -> Result<(MultiplexedConnection, u64), LimiterError> {
        let outcome = self.limiter.open().await;
        self.finished = true;
        match outcome {
            Ok(connection) => {
                let generation = self.generation + 1;
                *self.limiter.link() = Link::Up {
                    connection: connection.clone(),
                    generation,
                };
                tracing::info!("rate-limit Redis reachable again");
                Ok((connection, generation))
            }
            Err(e) => {
                tracing::debug!(error = %e, "rate-limit Redis still unreachable");
                self.give_up();
                Err(e)
            }
        }
    }

    fn give_up(&self) {
        *self.limiter.link() = Link::Down {
            last_attempt_us: now_us(self.limiter.clock.as_ref()),
            backoff: self.backoff.saturating_mul(2).min(MAX_BACKOFF),
            generation: self.generation,
        };
    }
}

impl Drop for Reconnect<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.give_up();
        }
    }
}

fn reconnecting() -> LimiterError {
    LimiterError::Unavailable("reconnecting".into())
}

fn unavailable(e: redis::RedisError) -> LimiterError {
    LimiterError::Unavailable(e.to_string())
}

impl RedisLimiter {
    /// Runs one script on the current connection, bounded by the decision
    /// timeout; `build` makes the invocation from the time (microseconds)
    /// read once the connection is there, which is returned with the
    /// answer. A lost connection or a timeout marks the link down; an
    /// error the server answered with does not (a bug, not an outage).
    async fn run<'s, T: redis::FromRedisValue>(
        &'s self,
        build: impl FnOnce(i64) -> Result<redis::ScriptInvocation<'s>, LimiterError> + Send,
    ) -> Result<(T, i64), LimiterError> {
        let (mut connection, generation) = self.connection().await?;
        let now = now_us(self.clock.as_ref());
        let invocation = build(now)?;
        let outcome = tokio::time::timeout(
            self.settings.decision_timeout,
            invocation.invoke_async::<T>(&mut connection),
        )
        .await;
        let failure = match outcome {
            Ok(Ok(value)) => return Ok((value, now)),
            Ok(Err(e)) if !e.is_io_error() && !e.is_connection_dropped() && !e.is_timeout() => {
                return Err(LimiterError::Unavailable(e.to_string()));
            }
            Ok(Err(e)) => LimiterError::Unavailable(e.to_string()),
            Err(_) => LimiterError::Timeout,
        };
        self.mark_down(generation);
        Err(failure)
    }

    /// The Redis key of GCRA state or of a budget counter.
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.settings.key_prefix)
    }
}
