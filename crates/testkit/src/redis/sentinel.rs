//! A private Sentinel deployment: a master, one replica and three
//! sentinels (`redis-server CONF --sentinel`, quorum 2) on free ports,
//! each in its own temporary directory, torn down with the test process
//! like [`super::RedisServer`]. A master unreachable for 1 s
//! (`down-after-milliseconds`) is failed over in a few seconds.
//!
//! [`RedisSentinels::start`] returns once the replica's link is up and
//! every sentinel knows the replica and the two other sentinels (they find
//! each other through the master within a couple of seconds), so a
//! failover can be authorised the moment a test kills the master.

use super::cli::{cli, info_field, poll};
use crate::supervised::SupervisedServer;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "reliable";

pub struct RedisSentinels {
    /// The two data nodes: 0 starts as the master, 1 as its replica.
    data: Vec<SupervisedServer>,
    sentinels: Vec<SupervisedServer>,
}

fn data_node(replica_of: Option<u16>) -> io::Result<SupervisedServer> {
    SupervisedServer::start("redis-data", move |dir, pid_file, port| {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(dir)
            .arg("--pidfile")
            .arg(pid_file);
        if let Some(master) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        cmd
    })
}

fn sentinel(master_port: u16) -> io::Result<SupervisedServer> {
    SupervisedServer::start("redis-sentinel", move |dir, pid_file, port| {
        // Sentinel rewrites its file; a restart keeps what it learnt.
        let conf = dir.join("sentinel.conf");
        if !conf.exists() {
            let text = format!(
                "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n"
            );
            if let Err(e) = std::fs::write(&conf, text) {
                eprintln!("cannot write {}: {e}", conf.display());
            }
        }
        let mut cmd = Command::new("redis-server");
        cmd.arg(&conf)
            .arg("--sentinel")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--pidfile")
            .arg(pid_file);
        cmd
    })
}

impl RedisSentinels {
    /// Starts the deployment and waits until a failover could happen;
    /// panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::try_start()
            .unwrap_or_else(|e| panic!("cannot start a private Sentinel deployment: {e}"))
    }

    pub fn try_start() -> io::Result<Self> {
        let master = data_node(None)?;
        let replica = data_node(Some(master.port()))?;
        poll("the replica's link to the master", LIMIT, || {
            let info = cli(replica.port(), &["info", "replication"]).ok()?;
            (info_field(&info, "master_link_status")? == "up").then_some(())
        })?;
        let sentinels = (0..3)
            .map(|_| sentinel(master.port()))
            .collect::<io::Result<Vec<_>>>()?;
        let deployment = Self {
            data: vec![master, replica],
            sentinels,
        };
        poll(
            "every sentinel to know the replica and the others",
            LIMIT,
            || {
                deployment
                    .sentinels
                    .iter()
                    .all(|s| {
                        let Ok(answer) = cli(s.port(), &["sentinel", "master", MASTER_NAME]) else {
                            return false;
                        };
                        let fields: Vec<&str> = answer.lines().collect();
                        let field = |name: &str| {
                            fields
                                .chunks(2)
                                .find(|pair| pair[0] == name)
                                .and_then(|pair| pair.get(1).copied())
                        };
                        field("num-slaves") == Some("1")
                            && field("num-other-sentinels") == Some("2")
                    })
                    .then_some(())
            },
        )?;
        Ok(deployment)
    }

    /// `redis+sentinel://` naming the three sentinels and the master.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port()).collect()
    }

    /// Data node `i`'s port (0 started as the master, 1 as the replica).
    pub fn port(&self, i: usize) -> u16 {
        self.data[i].port()
    }

    /// Data node `i`'s pid file, for a chaos experiment's `process.signal`.
    pub fn pid_file(&self, i: usize) -> PathBuf {
        self.data[i].dir().join("server.pid")
    }

    /// SIGKILL data node `i` and wait for it to exit.
    pub fn kill(&self, i: usize) {
        self.data[i].stop();
    }

    /// The master's port as a sentinel that answers says.
    pub fn master_port(&self) -> io::Result<u16> {
        for s in &self.sentinels {
            let Ok(answer) = cli(
                s.port(),
                &["sentinel", "get-master-addr-by-name", MASTER_NAME],
            ) else {
                continue;
            };
            if let Some(port) = answer.lines().nth(1).and_then(|p| p.trim().parse().ok()) {
                return Ok(port);
            }
        }
        Err(io::Error::other("no sentinel names the master"))
    }

    /// Waits until the sentinels name a master other than data node
    /// `old` and that node says it is a master; returns the new master's
    /// index.
    pub fn wait_failover(&self, old: usize) -> io::Result<usize> {
        poll("the sentinels to promote the replica", LIMIT, || {
            let port = self.master_port().ok()?;
            let new = (0..self.data.len()).find(|&i| i != old && self.port(i) == port)?;
            let info = cli(port, &["info", "replication"]).ok()?;
            (info_field(&info, "role")? == "master").then_some(new)
        })
    }
}
