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
//!
//! Three deployments, named by the URL's form ([`deployment`]): one
//! server, a master found through Sentinel, or Redis Cluster, each through
//! the crate's own client; the server's mode is checked when connecting
//! and a mismatch is a configuration error ([`connection`]). Each script
//! touches one key, and every key of one limiter key carries that key as
//! its hash tag (`{...}`), so a GCRA state and its budget counters live in
//! one cluster slot. A failover (or a demoted master answering
//! `READONLY`) drops the link like any outage; the reconnect asks the
//! deployment again, so it follows the new master.

mod connection;
mod deployment;
mod scripts;

use crate::local::now_us;
use crate::LimiterError;
use connection::{is_outage, unavailable, Connection, Connector};
use kit::Clock;
use scripts::Scripts;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::AbortHandle;

/// How the adapter talks to Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db` (one server),
    /// `redis+sentinel://h1:26379,h2:26379/MASTER_NAME[/db]` or
    /// `redis+cluster://h1:7000,h2:7001`; a secret if it carries a password.
    pub url: String,
    /// The setting `url` came from, named in configuration errors
    /// (`RELIABLE_REDIS_URL`).
    pub url_setting: String,
    /// Prefix of every key, so limiters can share a Redis. GCRA keys are
    /// `PREFIX{KEY}`, budget counters `PREFIXbudget:{day|month}:{window
    /// start}:{KEY}`, braces included: the limiter key is the hash tag
    /// (with `%` and `}` in it written `%25` and `%7D`).
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
            url_setting: "RELIABLE_REDIS_URL".to_string(),
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
    connector: Connector,
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
        connection: Connection,
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
    /// A malformed URL, or a server in another mode than the URL says
    /// (a cluster node behind `redis://`, a standalone server behind
    /// `redis+cluster://`, a master name the sentinels do not know), is a
    /// [`LimiterError::Config`] naming both.
    pub async fn connect(
        settings: RedisSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LimiterError> {
        let deployment = deployment::parse(&settings.url, &settings.url_setting)?;
        let connector = Connector::new(deployment, settings.url_setting.clone());
        let shared = Arc::new(Shared {
            connector,
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
            Err(e @ LimiterError::Config(_)) => return Err(e),
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

    /// Connects (in the URL's mode, checked) and loads the scripts,
    /// bounded as a whole: a server that accepts connections but never
    /// answers must not keep the link "reconnecting" for ever.
    async fn open(&self) -> Result<Connection, LimiterError> {
        let timeout = self
            .settings
            .decision_timeout
            .max(Duration::from_millis(500));
        let open = async {
            // The client's own timeouts (1 s to connect, 500 ms per
            // answer) are off: this bound and `decision_timeout` govern,
            // so a decision timeout above 500 ms means what it says.
            let mut connection = self.connector.open(timeout).await?;
            // Load the scripts now, so the first decision is one round
            // trip (in a cluster, into every master).
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
    fn connection(self: &Arc<Self>) -> Result<(Connection, u64), LimiterError> {
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
            Err(e @ LimiterError::Config(_)) => {
                // The deployment changed under us (a node now in another
                // mode): said loudly, and retried like an outage.
                tracing::error!(error = %e, "rate-limit Redis is not in the mode its URL names");
                self.give_up();
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
            Ok(Err(e)) if !is_outage(&e) => {
                return Err(LimiterError::Unavailable(e.to_string()));
            }
            Ok(Err(e)) => LimiterError::Unavailable(e.to_string()),
            Err(_) => LimiterError::Timeout,
        };
        self.shared.mark_down(generation);
        Err(failure)
    }

    /// The Redis key of GCRA state or of a budget counter: `PREFIX` then
    /// `kind` then the limiter key as the hash tag.
    fn key(&self, kind: &str, key: &str) -> String {
        format!(
            "{}{kind}{{{}}}",
            self.shared.settings.key_prefix,
            hash_tag(key)
        )
    }
}

/// `key` with `%` and `}` escaped, so the whole of it is the hash tag (a
/// `}` would end the tag early) and two keys never share an escaped form.
fn hash_tag(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['%', '}']) {
        key.replace('%', "%25").replace('}', "%7D").into()
    } else {
        key.into()
    }
}

#[cfg(test)]
mod tests {
    use super::hash_tag;

    #[test]
    fn the_whole_limiter_key_is_the_hash_tag() {
        assert_eq!(hash_tag("anon:10.0.0.1"), "anon:10.0.0.1");
        assert_eq!(hash_tag("a}b"), "a%7Db");
        assert_eq!(hash_tag("a%7Db"), "a%257Db");
        assert_eq!(hash_tag("{x"), "{x");
    }
}
