//! A private NATS server with JetStream, one per test that needs one:
//! `nats-server -js` on a free loopback port with its store in a temporary
//! directory, torn down with the test process. [`NatsServer::stop`] and
//! [`NatsServer::start_again`] let fault tests take the broker away and
//! bring it back on the same port and store.

use crate::supervised::SupervisedServer;
use std::io;
use std::path::Path;
use std::process::Command;

pub struct NatsServer(SupervisedServer);

fn command_line(dir: &Path, pid_file: &Path, port: u16) -> Command {
    let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_string());
    let mut cmd = Command::new(binary);
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .arg("-P")
        .arg(pid_file);
    cmd
}

impl NatsServer {
    /// Starts a server on a free port; panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| {
            panic!("cannot start a private nats-server (is it installed? scripts/test installs it): {e}")
        })
    }

    pub fn try_start() -> io::Result<Self> {
        SupervisedServer::start("nats", command_line).map(Self)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port())
    }

    /// Kills the server (SIGKILL: no clean shutdown) and waits for it to exit.
    pub fn stop(&self) {
        self.0.stop();
    }

    /// Starts the server (again) on the same port and store.
    pub fn start_again(&self) -> io::Result<()> {
        self.0.start_again()
    }
}
