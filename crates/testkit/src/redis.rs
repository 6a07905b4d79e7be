//! A private Redis, one per test that needs one: `redis-server` on a free
//! loopback port, no persistence, files in a temporary directory, torn
//! down with the test process. [`RedisServer::stop`] and
//! [`RedisServer::start_again`] let fault tests take Redis away and bring
//! it back on the same port.
//!
//! [`RedisCluster`] (3 masters, 3 replicas) and [`RedisSentinels`]
//! (master, replica, 3 sentinels) are the two other deployments the
//! limiter supports, for failover and resharding tests.

mod cli;
mod cluster;
mod sentinel;

pub use cli::{cli, info_field};
pub use cluster::{RedisCluster, SlotMove};
pub use sentinel::{RedisSentinels, MASTER_NAME};

use crate::supervised::SupervisedServer;
use std::io;
use std::path::Path;
use std::process::Command;

pub struct RedisServer(SupervisedServer);

fn command_line(dir: &Path, pid_file: &Path, port: u16) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--pidfile")
        .arg(pid_file);
    cmd
}

impl RedisServer {
    /// Starts a server on a free port; panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| {
            panic!("cannot start a private redis-server (scripts/test installs it): {e}")
        })
    }

    pub fn try_start() -> io::Result<Self> {
        SupervisedServer::start("redis", command_line).map(Self)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.0.port())
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&self) {
        self.0.stop();
    }

    /// Starts the server again on the same port.
    pub fn start_again(&self) -> io::Result<()> {
        self.0.start_again()
    }
}
