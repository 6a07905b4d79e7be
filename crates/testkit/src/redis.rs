//! A private Redis, one per test that needs one.
//!
//! `redis-server` on a free loopback port with no persistence and its
//! working directory in a temporary directory. A supervising shell kills
//! it and removes the directory when the test process exits, however it
//! exits. [`RedisServer::stop`] and [`RedisServer::start_again`] let fault
//! tests take Redis away and bring it back on the same port.

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    server: Mutex<Option<Child>>,
    /// Keeps the supervisor's stdin open; closed at process exit.
    _supervisor: Mutex<Child>,
}

impl RedisServer {
    /// Starts a server on a free port; panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| {
            panic!("cannot start a private redis-server (scripts/test installs it): {e}")
        })
    }

    pub fn try_start() -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("reliable-redis-")
            .tempdir()?
            .keep();
        let script = format!(
            "read _ ; kill -9 $(cat {dir}/redis.pid) >/dev/null 2>&1 ; rm -rf {dir}",
            dir = dir.display()
        );
        let supervisor = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self {
            port: crate::free_port(),
            dir,
            server: Mutex::new(None),
            _supervisor: Mutex::new(supervisor),
        };
        server.start_again()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits until it
    /// accepts connections.
    pub fn start_again(&self) -> io::Result<()> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if server.is_some() {
            return Ok(());
        }
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        *server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other("redis-server did not listen within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
