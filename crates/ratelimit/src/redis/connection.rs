//! Opening the link to Redis in the mode its URL names, with the crate's
//! own Sentinel and Cluster clients, and checking that the server agrees.
//!
//! A mode mismatch is a configuration error, said at startup with both
//! modes named ("RELIABLE_REDIS_URL is a cluster URL (redis+cluster://)
//! but 127.0.0.1:6379 has cluster_enabled:0"), never left to surface later
//! as a pool or routing error. The check asks the first server that
//! answers for its `ROLE` (master, replica or sentinel) and, for a data
//! node, `INFO cluster` (`cluster_enabled`).
//!
//! Every open is a fresh look at the deployment: with Sentinel it asks the
//! sentinels for the master again (so a reconnect after a failover follows
//! the new master), and it loads the scripts into the server it reached
//! (a promoted replica may not have them). A `NOSCRIPT` on a live
//! connection is handled per call by the crate, which loads the script and
//! sends `EVALSHA` again.

use super::deployment::Deployment;
use crate::LimiterError;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionInfo, RedisFuture, Role, Value};
use std::time::Duration;

/// A link to whichever node decides: one server (standalone, or the
/// master Sentinel named), or the cluster (each call routed by its key's
/// slot, `MOVED` and `ASK` followed by the crate).
#[derive(Clone)]
pub(crate) enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens links for one deployment.
pub(crate) struct Connector {
    deployment: Deployment,
    /// The setting the URL came from, for messages.
    setting: String,
}

impl Connector {
    pub(crate) fn new(deployment: Deployment, setting: String) -> Self {
        Self {
            deployment,
            setting,
        }
    }

    /// Connects in the URL's mode and checks the server agrees, bounded by
    /// the caller. Scripts are loaded by the caller on the link returned.
    pub(crate) async fn open(&self, bound: Duration) -> Result<Connection, LimiterError> {
        match &self.deployment {
            Deployment::Standalone(info) => {
                let mut connection = single(info).await?;
                self.expect_standalone(&mut connection, info).await?;
                Ok(Connection::Single(connection))
            }
            Deployment::Sentinel {
                sentinels,
                master,
                node,
            } => {
                self.expect_sentinels(sentinels, master).await?;
                let node =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(node.clone());
                let mut client = SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| LimiterError::Config(format!("{}: {e}", self.setting)))?;
                let connection = client
                    .get_async_connection_with_config(&unbounded())
                    .await
                    .map_err(|e| match e.kind() {
                        redis::ErrorKind::MasterNameNotFoundBySentinel => {
                            LimiterError::Config(format!(
                                "{} names master `{master}`, which the sentinels do not know",
                                self.setting
                            ))
                        }
                        _ => unavailable(e),
                    })?;
                Ok(Connection::Single(connection))
            }
            Deployment::Cluster { nodes } => {
                self.expect_cluster(nodes).await?;
                let client = ClusterClient::builder(nodes.clone())
                    .build()
                    .map_err(|e| LimiterError::Config(format!("{}: {e}", self.setting)))?;
                // The crate's own timeouts are set to the open's bound; a
                // decision is bounded by the adapter's decision timeout.
                let config = ClusterConfig::new()
                    .set_connection_timeout(bound)
                    .set_response_timeout(bound);
                let connection = client
                    .get_async_connection_with_config(config)
                    .await
                    .map_err(unavailable)?;
                Ok(Connection::Cluster(connection))
            }
        }
    }

    fn mismatch(&self, form: &str, addr: &ConnectionInfo, server: &str) -> LimiterError {
        LimiterError::Config(format!(
            "{} is {form} but {} {server}",
            self.setting,
            addr.addr()
        ))
    }

    async fn expect_standalone(
        &self,
        connection: &mut MultiplexedConnection,
        info: &ConnectionInfo,
    ) -> Result<(), LimiterError> {
        let form = self.deployment.form();
        match role(connection).await? {
            Role::Sentinel { .. } => Err(self.mismatch(
                form,
                info,
                "is a Sentinel (ROLE: sentinel); use redis+sentinel://HOST:PORT/MASTER_NAME",
            )),
            Role::Replica {
                primary_ip,
                primary_port,
                ..
            } => Err(self.mismatch(
                form,
                info,
                &format!(
                    "is a replica (ROLE: slave of {primary_ip}:{primary_port}) and decisions \
                     write; point it at the master, or use redis+sentinel:// to follow it"
                ),
            )),
            Role::Primary { .. } if cluster_enabled(connection).await? => Err(self.mismatch(
                form,
                info,
                "has cluster_enabled:1; use redis+cluster://HOST:PORT[,HOST:PORT...]",
            )),
            // A master (or a role this crate does not know yet).
            _ => Ok(()),
        }
    }

    /// The first sentinel that answers must be a Sentinel that monitors
    /// `master`.
    async fn expect_sentinels(
        &self,
        sentinels: &[ConnectionInfo],
        master: &str,
    ) -> Result<(), LimiterError> {
        let form = self.deployment.form();
        let (info, mut connection) = first_answering(sentinels).await?;
        match role(&mut connection).await? {
            Role::Sentinel { primary_names } if primary_names.iter().any(|m| m == master) => Ok(()),
            Role::Sentinel { primary_names } => Err(LimiterError::Config(format!(
                "{} names master `{master}`, which the sentinel at {} does not monitor \
                 (it monitors: {})",
                self.setting,
                info.addr(),
                if primary_names.is_empty() {
                    "none".to_string()
                } else {
                    primary_names.join(", ")
                }
            ))),
            _ => {
                let mode = if cluster_enabled(&mut connection).await? {
                    "cluster_enabled:1"
                } else {
                    "cluster_enabled:0"
                };
                Err(self.mismatch(
                    form,
                    info,
                    &format!("is a data node, not a Sentinel ({mode})"),
                ))
            }
        }
    }

    /// The first seed node that answers must have cluster mode on.
    async fn expect_cluster(&self, nodes: &[ConnectionInfo]) -> Result<(), LimiterError> {
        let form = self.deployment.form();
        let (info, mut connection) = first_answering(nodes).await?;
        if let Role::Sentinel { .. } = role(&mut connection).await? {
            return Err(self.mismatch(form, info, "is a Sentinel (ROLE: sentinel)"));
        }
        if !cluster_enabled(&mut connection).await? {
            return Err(self.mismatch(form, info, "has cluster_enabled:0"));
        }
        Ok(())
    }
}

/// The crate's own timeouts off: the caller bounds the open as a whole.
fn unbounded() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(None)
}

async fn single(info: &ConnectionInfo) -> Result<MultiplexedConnection, LimiterError> {
    let client = Client::open(info.clone()).map_err(unavailable)?;
    client
        .get_multiplexed_async_connection_with_config(&unbounded())
        .await
        .map_err(unavailable)
}

/// The first of `nodes` that accepts a connection.
async fn first_answering(
    nodes: &[ConnectionInfo],
) -> Result<(&ConnectionInfo, MultiplexedConnection), LimiterError> {
    let mut last = LimiterError::Unavailable("no Redis node listed".into());
    for info in nodes {
        match single(info).await {
            Ok(connection) => return Ok((info, connection)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn role(connection: &mut MultiplexedConnection) -> Result<Role, LimiterError> {
    redis::cmd("ROLE")
        .query_async(connection)
        .await
        .map_err(unavailable)
}

/// `cluster_enabled:1` in `INFO cluster`.
async fn cluster_enabled(connection: &mut MultiplexedConnection) -> Result<bool, LimiterError> {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(connection)
        .await
        .map_err(unavailable)?;
    Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
}

pub(crate) fn unavailable(e: redis::RedisError) -> LimiterError {
    LimiterError::Unavailable(e.to_string())
}

/// Errors that mean "no master answers here right now" (the link is
/// dropped and opened again, which follows a failover), as opposed to an
/// answer to a bad call.
pub(crate) fn is_outage(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ReadOnly
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::BusyLoading
                )
        )
}
