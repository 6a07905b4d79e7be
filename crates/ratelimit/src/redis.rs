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
//! A dead Redis must not cost requests a connect timeout: a failed or
//! slow decision (over `decision_timeout`) drops the connection and marks
//! the adapter down; while down, decisions fail at once without touching
//! the network. Reconnection happens on demand: the first decision after
//! the backoff has elapsed on the limiter's clock starts one attempt in a
//! task and fails at once like the others, so no request waits for a
//! connect (a blackholed Redis would hold it for the whole connect
//! timeout). The attempt's task is owned by the limiter and aborted when
//! it is dropped, so it cannot outlive shutdown; each failed attempt
//! doubles the backoff, up to 5 s.

mod scripts;

use crate::local::now_us;
use crate::LimiterError;
use kit::Clock;
use redis::aio::MultiplexedConnection;
use scripts::Scripts;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::AbortHandle;

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
    shared: Arc<Shared>,
}

/// What decisions and the reconnect task both use.
struct Shared {
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
    /// A task is reconnecting; decisions fail at once meanwhile.
    Reconnecting { attempt: AbortHandle },
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
        let shared = Arc::new(Shared {
            client,
            scripts: Scripts::new(),
            link: Mutex::new(Link::Down {
                last_attempt_us: now_us(clock.as_ref()),
                backoff: settings.reconnect_backoff,
                generation: 0,
            }),
            clock,
            settings,
        });
        match shared.open().await {
            Ok(connection) => {
                *shared.link() = Link::Up {
                    connection,
                    generation: 1,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rate-limit Redis unreachable at start; decisions will reconnect");
            }
        }
        Ok(Self { shared })
    }

    /// True while decisions go to Redis.
    pub fn is_up(&self) -> bool {
        matches!(*self.shared.link(), Link::Up { .. })
    }

    /// True while a reconnect attempt is under way.
    pub fn is_reconnecting(&self) -> bool {
        matches!(*self.shared.link(), Link::Reconnecting { .. })
    }
}

impl Drop for RedisLimiter {
    fn drop(&mut self) {
        if let Link::Reconnecting { attempt } = &*self.shared.link() {
            attempt.abort();
        }
    }
}

impl Shared {
    fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects and loads the scripts, bounded as a whole: a server that
    /// accepts connections but never answers must not keep the link
    /// "reconnecting" for ever.
    async fn open(&self) -> Result<MultiplexedConnection, LimiterError> {
        let timeout = self
            .settings
            .decision_timeout
            .max(Duration::from_millis(500));
        let open = async {
            // The client's own timeouts (1 s to connect, 500 ms per
            // answer) are off: this bound and `decision_timeout` govern,
            // so a decision timeout above 500 ms means what it says.
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(None)
                .set_response_timeout(None);
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
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

    /// The connection for one decision and its generation, if the link is
    /// up. A decision that finds the backoff elapsed starts the reconnect
    /// task; it and every decision until that task succeeds fail at once.
    fn connection(self: &Arc<Self>) -> Result<(MultiplexedConnection, u64), LimiterError> {
        let mut link = self.link();
        match *link {
            Link::Up {
                ref connection,
                generation,
            } => Ok((connection.clone(), generation)),
            Link::Reconnecting { .. } => Err(reconnecting()),
            Link::Down {
                last_attempt_us,
                backoff,
                generation,
            } => {
                let waited_us = now_us(self.clock.as_ref()).saturating_sub(last_attempt_us);
                // A clock that went back must not postpone the attempt.
                let due = waited_us < 0 || waited_us as u128 >= backoff.as_micros();
                if due {
                    let reconnect = Reconnect {
                        shared: Arc::clone(self),
                        backoff,
                        generation,
                        finished: false,
                    };
                    // Spawned under the lock: the task cannot finish (and
                    // set the link) before it is recorded as running.
                    let attempt = tokio::spawn(reconnect.run()).abort_handle();
                    *link = Link::Reconnecting { attempt };
                }
                Err(reconnecting())
            }
        }
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

/// The one reconnect attempt in progress, run by its own task. Dropped
/// unfinished (the limiter was dropped and aborted it), it puts the link
/// back down with the next backoff, so it is never stuck reconnecting.
struct Reconnect {
    shared: Arc<Shared>,
    backoff: Duration,
    generation: u64,
    finished: bool,
}

impl Reconnect {
    async fn run(mut self) {
        let outcome = self.shared.open().await;
        self.finished = true;
        match outcome {
            Ok(connection) => {
                *self.shared.link() = Link::Up {
                    connection,
                    generation: self.generation + 1,
                };
                tracing::info!("rate-limit Redis reachable again");
            }
            Err(e) => {
                tracing::debug!(error = %e, "rate-limit Redis still unreachable");
                self.give_up();
            }
        }
    }

    fn give_up(&self) {
        *self.shared.link() = Link::Down {
            last_attempt_us: now_us(self.shared.clock.as_ref()),
            backoff: self.backoff.saturating_mul(2).min(MAX_BACKOFF),
            generation: self.generation,
        };
    }
}

impl Drop for Reconnect {
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
        let (mut connection, generation) = self.shared.connection()?;
        let now = now_us(self.shared.clock.as_ref());
        let invocation = build(now)?;
        let outcome = tokio::time::timeout(
            self.shared.settings.decision_timeout,
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
        self.shared.mark_down(generation);
        Err(failure)
    }

    /// The Redis key of GCRA state or of a budget counter.
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.shared.settings.key_prefix)
    }
}
