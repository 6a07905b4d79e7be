//! A server process private to one test process: started on a free
//! loopback port with its files in a temporary directory, stoppable and
//! restartable on the same port and files (fault tests), and torn down when
//! the test process exits however it exits. A supervising shell holds the
//! other end of a pipe; when the test process dies the pipe closes, and the
//! shell kills the server by its pid file and removes the directory.

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Builds the server's command line from its directory, pid file and port.
pub(crate) type CommandLine = Box<dyn Fn(&Path, &Path, u16) -> Command + Send + Sync>;

pub(crate) struct SupervisedServer {
    name: &'static str,
    port: u16,
    dir: PathBuf,
    command_line: CommandLine,
    server: Mutex<Option<Child>>,
    /// Keeps the supervisor's stdin open; closed at process exit.
    _supervisor: Mutex<Child>,
}

impl SupervisedServer {
    pub(crate) fn start(
        name: &'static str,
        command_line: impl Fn(&Path, &Path, u16) -> Command + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("reliable-{name}-"))
            .tempdir()?
            .keep();
        let script = format!(
            "read _ ; kill -9 $(cat {pid}) >/dev/null 2>&1 ; rm -rf {dir}",
            pid = dir.join("server.pid").display(),
            dir = dir.display()
        );
        let supervisor = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self {
            name,
            port: crate::free_port(),
            dir,
            command_line: Box::new(command_line),
            server: Mutex::new(None),
            _supervisor: Mutex::new(supervisor),
        };
        server.start_again()?;
        Ok(server)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (its files, its pid file `server.pid`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server (SIGKILL: no clean shutdown) and waits for it.
    pub(crate) fn stop(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and files, and waits
    /// until it accepts connections.
    pub(crate) fn start_again(&self) -> io::Result<()> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if server.is_some() {
            return Ok(());
        }
        let child = (self.command_line)(&self.dir, &self.dir.join("server.pid"), self.port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        *server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{} did not listen within 20 s",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for SupervisedServer {
    fn drop(&mut self) {
        self.stop();
    }
}
