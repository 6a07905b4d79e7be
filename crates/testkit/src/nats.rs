//! A private NATS server with JetStream, one per test that needs one.
//!
//! `nats-server -js -p PORT -sd DIR` on a free port with its store in a
//! temporary directory. Like the PostgreSQL server, a supervising shell
//! kills it and removes the directory when the test process exits however
//! it exits. [`NatsServer::stop`] and [`NatsServer::start_again`] let fault
//! tests take the broker away and bring it back on the same port and store.

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    server: Mutex<Option<Child>>,
    /// Keeps the supervisor's stdin open; closed at process exit.
    _supervisor: Mutex<Child>,
}

fn binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_string())
}

impl NatsServer {
    /// Starts a server on a free port; panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| {
            panic!("cannot start a private nats-server (is it installed? scripts/test installs it): {e}")
        })
    }

    pub fn try_start() -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("reliable-nats-")
            .tempdir()?
            .keep();
        let port = crate::free_port();
        let script = format!(
            "read _ ; kill -9 $(cat {dir}/nats.pid) >/dev/null 2>&1 ; rm -rf {dir}",
            dir = dir.display()
        );
        let supervisor = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self {
            port,
            dir,
            server: Mutex::new(None),
            _supervisor: Mutex::new(supervisor),
        };
        server.start_again()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no clean shutdown) and waits for it to exit.
    pub fn stop(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and store, and waits
    /// until it accepts connections.
    pub fn start_again(&self) -> io::Result<()> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if server.is_some() {
            return Ok(());
        }
        let child = Command::new(binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .arg("-P")
            .arg(self.dir.join("nats.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        *server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other("nats-server did not listen within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
