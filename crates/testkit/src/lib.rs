//! Test harness: real servers for integration tests, started privately.
//!
//! Tests never use the machine's shared PostgreSQL. [`postgres`] returns a
//! server that is either the one `scripts/test` started for the whole run
//! (`RELIABLE_TEST_POSTGRES_URL`), or, when a test binary runs on its own,
//! a private instance started on a free port in a temporary directory.
//! That instance is stopped and its directory removed when the test process
//! exits: a supervising shell holds the other end of a pipe and tears the
//! server down when the pipe closes, however the process ended.
//!
//! Every test gets a fresh database from [`PgServer::create_database`], so
//! tests run in parallel without seeing each other's rows.
#![forbid(unsafe_code)]

pub mod fault;
pub mod headers;
pub mod llamacpp;
mod nats;
pub mod nats_cluster;
pub mod openai;
pub mod otlp;
pub mod pg_cluster;
pub mod redis;
mod supervised;
pub mod wait;
pub mod webhook;
pub use fault::{echo_server, fault_proxy, FaultyLink};
pub use nats::NatsServer;
pub use nats_cluster::NatsCluster;
pub use pg_cluster::PgCluster;
pub use wait::eventually;

use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// A running PostgreSQL server reachable with trust authentication.
pub struct PgServer {
    host: String,
    port: u16,
    user: String,
    bin_dir: PathBuf,
    /// The data directory, for [`PgServer::restart`]; `None` for a server
    /// given by URL.
    data_dir: Option<PathBuf>,
    /// Keeps the supervisor's stdin open; dropped (closed) at process exit.
    _supervisor: Option<Mutex<Child>>,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static NEXT_DB: AtomicU64 = AtomicU64::new(0);

/// The test PostgreSQL server, started on first use.
pub fn postgres() -> &'static PgServer {
    SERVER.get_or_init(|| match std::env::var("RELIABLE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => PgServer::from_url(&url),
        _ => PgServer::start().unwrap_or_else(|e| panic!("cannot start a private PostgreSQL: {e}")),
    })
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A port nobody listens on right now, and one this process has not
/// handed out before. The port is free only until someone binds it: two
/// tests starting servers at once could otherwise both be given the port
/// the first released and its server has not bound yet, and the second's
/// readiness check would pass on the first's server (then fail when that
/// test ends and kills it).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        if handed_out.insert(port) {
            return port;
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `program args` as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root), directly otherwise.
fn as_db_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn check(status: io::Result<std::process::Output>, what: &str) -> io::Result<()> {
    let out = status?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl PgServer {
    fn from_url(url: &str) -> Self {
        let parsed =
            url::Url::parse(url).unwrap_or_else(|e| panic!("RELIABLE_TEST_POSTGRES_URL: {e}"));
        Self {
            host: parsed.host_str().unwrap_or("127.0.0.1").to_string(),
            port: parsed.port().unwrap_or(5432),
            user: if parsed.username().is_empty() {
                "postgres".into()
            } else {
                parsed.username().into()
            },
            bin_dir: bin_dir(),
            data_dir: None,
            _supervisor: None,
        }
    }

    /// initdb + pg_ctl start in a temp dir on a free port, supervised.
    /// Tuned for speed: `synchronous_commit=off`, so a crash (an immediate
    /// restart) may lose the last acknowledged commits.
    pub fn start() -> io::Result<Self> {
        Self::start_with("-c synchronous_commit=off")
    }

    /// Like [`PgServer::start`] but every acknowledged commit survives a
    /// crash of the server process (`synchronous_commit=on`; `fsync` stays
    /// off since the machine itself does not crash in tests). For fault
    /// tests that restart PostgreSQL with [`PgServer::restart`].
    pub fn start_durable() -> io::Result<Self> {
        Self::start_with("-c synchronous_commit=on")
    }

    fn start_with(commit_option: &str) -> io::Result<Self> {
        let bin = bin_dir();
        let dir = server_dir("reliable-pg-")?;
        let data = dir.join("data");
        check(
            as_db_user(&bin.join("initdb"))
                .args(["-D"])
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ])
                .output(),
            "initdb",
        )?;
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {commit_option} -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        check(
            as_db_user(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(dir.join("log"))
                .args(["-w", "-t", "60", "start"])
                .output(),
            "pg_ctl start",
        )?;
        // The supervisor waits for its stdin to close (this process
        // exiting), then stops the server and removes its directory.
        let script = format!(
            "read _ ; {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1 ; rm -rf {dir}",
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        let supervisor = as_db_user(Path::new("sh"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            bin_dir: bin,
            data_dir: Some(data),
            _supervisor: Some(Mutex::new(supervisor)),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server abruptly (`-m immediate`: no clean shutdown, like
    /// a crash) and starts it again on the same port and data. Only for a
    /// server this process started (fault tests start their own with
    /// [`PgServer::start`]).
    pub fn restart(&self) -> io::Result<()> {
        let data = self
            .data_dir
            .as_ref()
            .ok_or_else(|| io::Error::other("not a server this process started"))?;
        check(
            as_db_user(&self.bin_dir.join("pg_ctl"))
                .arg("-D")
                .arg(data)
                .arg("-l")
                .arg(data.with_file_name("log"))
                .args(["-m", "immediate", "-w", "-t", "60", "restart"])
                .output(),
            "pg_ctl restart",
        )
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let status = Command::new(self.bin_dir.join("createdb"))
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
                &name,
            ])
            .output();
        if let Err(e) = check(status, "createdb") {
            panic!("{e}");
        }
        self.url_of(&name)
    }

    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, database
        )
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// A kept temp directory for a PostgreSQL server's files, owned by the
/// `postgres` user when the tests run as root (initdb refuses root).
pub(crate) fn server_dir(prefix: &str) -> io::Result<std::path::PathBuf> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?.keep();
    if is_root() {
        check(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .output(),
            "chown",
        )?;
    }
    Ok(dir)
}
