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

/// Builds the server's command line from its directory, pid file and port
/// (a closure, so a cluster node can carry its peers' ports).
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
        let mut server = Self {
            name,
            port: crate::free_port(),
            dir,
            command_line: Box::new(command_line),
            server: Mutex::new(None),
            _supervisor: Mutex::new(supervisor),
        };
        // A server that exits at once most likely lost its port to another
        // test between `free_port` and its own bind: it gets another.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(Launch::Exited(why)) if attempts < 3 => {
                    eprintln!("{why}; trying another port");
                    server.port = crate::free_port();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's own directory (its files, its pid file).
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
        self.launch().map_err(io::Error::from)
    }

    fn launch(&self) -> Result<(), Launch> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if server.is_some() {
            return Ok(());
        }
        // What it says goes to a file of its own, for the error below.
        let log = self.dir.join("server.log");
        let output = std::fs::File::create(&log)?;
        let child = (self.command_line)(&self.dir, &self.dir.join("server.pid"), self.port)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()?;
        let child = server.insert(child);
        let deadline = Instant::now() + START_BUDGET;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait()? {
                *server = None;
                return Err(Launch::Exited(format!(
                    "{} on port {} exited at start ({status}); it said: {}",
                    self.name,
                    self.port,
                    last_lines(&log)
                )));
            }
            if Instant::now() > deadline {
                return Err(Launch::Io(io::Error::other(format!(
                    "{} did not listen on port {} within {} s; it said: {}",
                    self.name,
                    self.port,
                    START_BUDGET.as_secs(),
                    last_lines(&log)
                ))));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// How long a server may take to listen: generous, since a loaded 2-core
/// machine (a release build beside the tests) once took a Redis node past
/// 20 s. A server that exits is seen at once, whatever this says.
const START_BUDGET: Duration = Duration::from_secs(60);

/// Why a server did not come up.
enum Launch {
    /// It exited before it listened.
    Exited(String),
    Io(io::Error),
}

impl From<io::Error> for Launch {
    fn from(e: io::Error) -> Self {
        Launch::Io(e)
    }
}

impl From<Launch> for io::Error {
    fn from(launch: Launch) -> Self {
        match launch {
            Launch::Exited(why) => io::Error::other(why),
            Launch::Io(e) => e,
        }
    }
}

/// The last few lines of a server's log, on one line.
fn last_lines(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    let joined = lines.into_iter().rev().collect::<Vec<_>>().join(" | ");
    if joined.is_empty() {
        "nothing".to_string()
    } else {
        joined
    }
}

impl Drop for SupervisedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_exits_at_start_is_reported_with_what_it_said() {
        let started = SupervisedServer::start("exits", |_, _, port| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &format!("echo cannot bind {port} >&2; exit 3")]);
            cmd
        });
        let Err(error) = started else {
            panic!("a server that exits must not be reported as started");
        };
        let message = error.to_string();
        assert!(message.contains("exited at start"), "{message}");
        assert!(message.contains("cannot bind"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
    }

    #[test]
    fn a_listening_server_starts_stops_and_starts_again_on_its_port() {
        let server = SupervisedServer::start("listener", |_, pid_file, port| {
            let mut cmd = Command::new("python3");
            cmd.args([
                "-c",
                "import os, signal, socket, sys\n\
                 open(sys.argv[2], 'w').write(str(os.getpid()))\n\
                 s = socket.socket()\n\
                 s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                 s.listen()\n\
                 signal.pause()",
                &port.to_string(),
            ])
            // The supervisor kills it by this file if the test process dies.
            .arg(pid_file);
            cmd
        })
        .expect("a listening server starts");
        let port = server.port();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        server.stop();
        server.start_again().expect("starts again");
        assert_eq!(server.port(), port);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
}
