//! A PostgreSQL primary with a streaming standby, for failover and read
//! replica tests.
//!
//! [`PgCluster::start`] runs `initdb` for the primary, `pg_basebackup -R`
//! from it for the standby (which then streams the primary's WAL), each on
//! a free port in one temporary directory. Replication is asynchronous
//! until [`PgCluster::set_synchronous`] names the standby in the primary's
//! `synchronous_standby_names`: from then on a commit is acknowledged only
//! once the standby has flushed its WAL, so a failover loses no
//! acknowledged commit. The faults: [`PgCluster::kill_primary`] (SIGKILL of
//! the postmaster), [`PgCluster::promote_standby`] (`pg_ctl promote`),
//! [`PgCluster::pause_replay`] (the standby falls behind on purpose).
//!
//! Everything waits by polling (`pg_isready`, queries), bounded; nothing
//! sleeps for a fixed time. Both servers are stopped and the directory
//! removed when the cluster is dropped or the test process exits
//! (a supervising shell, as for [`crate::PgServer`]).

use super::{as_db_user, bin_dir, check, free_port};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server gets to start, stop, stream or be promoted.
const LIMIT: Duration = Duration::from_secs(60);
/// How often a condition is checked while waiting.
const EVERY: Duration = Duration::from_millis(20);
/// The standby's `application_name`, as `synchronous_standby_names` names it.
pub const STANDBY_NAME: &str = "standby1";

/// One server of the cluster.
struct Node {
    data: PathBuf,
    port: u16,
}

/// A primary and its streaming standby on this machine.
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    primary: Node,
    standby: Node,
    supervisor: Mutex<Option<Child>>,
}

impl PgCluster {
    /// A primary and a standby streaming from it directly, asynchronous
    /// (see [`PgCluster::set_synchronous`]).
    pub fn start() -> io::Result<Self> {
        Self::start_inner(None)
    }

    /// Like [`PgCluster::start`], but the standby streams from
    /// `127.0.0.1:replication_port` (a fault proxy the caller puts in
    /// front of [`PgCluster::primary_port`]); it retries every 100 ms
    /// until something listens there.
    pub fn start_via(replication_port: u16) -> io::Result<Self> {
        Self::start_inner(Some(replication_port))
    }

    fn start_inner(replication_port: Option<u16>) -> io::Result<Self> {
        let bin = bin_dir();
        let dir = crate::server_dir("reliable-pgcluster-")?;
        let primary = Node {
            data: dir.join("primary"),
            port: free_port(),
        };
        let standby = Node {
            data: dir.join("standby"),
            port: free_port(),
        };
        let supervisor = supervise(&bin, &dir, &[&primary.data, &standby.data])?;
        let cluster = Self {
            bin,
            dir,
            primary,
            standby,
            supervisor: Mutex::new(Some(supervisor)),
        };
        cluster.init_primary()?;
        cluster.start_node(&cluster.primary, "primary")?;
        cluster.init_standby(replication_port.unwrap_or(cluster.primary.port))?;
        cluster.start_node(&cluster.standby, "standby")?;
        if replication_port.is_none() {
            cluster.wait_streaming()?;
        }
        Ok(cluster)
    }

    fn init_primary(&self) -> io::Result<()> {
        check(
            as_db_user(&self.bin.join("initdb"))
                .arg("-D")
                .arg(&self.primary.data)
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
        )
    }

    fn init_standby(&self, upstream_port: u16) -> io::Result<()> {
        check(
            as_db_user(&self.bin.join("pg_basebackup"))
                .args(["-h", "127.0.0.1", "-p", &self.primary.port.to_string()])
                .args(["-U", "postgres", "-X", "stream", "-R", "--no-sync", "-D"])
                .arg(&self.standby.data)
                .output(),
            "pg_basebackup",
        )?;
        // Later lines of postgresql.auto.conf win over the ones -R wrote.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.standby.data.join("postgresql.auto.conf"))?;
        writeln!(
            conf,
            "primary_conninfo = 'host=127.0.0.1 port={upstream_port} user=postgres application_name={STANDBY_NAME}'\n\
             wal_retrieve_retry_interval = '100ms'"
        )
    }

    fn start_node(&self, node: &Node, name: &str) -> io::Result<()> {
        // fsync off: nodes are killed, the machine is not, so the page
        // cache keeps what was written.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 -c wal_receiver_status_interval=1s",
            node.port,
            self.dir.display()
        );
        check(
            as_db_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&node.data)
                .args(["-o", &options, "-l"])
                .arg(self.dir.join(format!("{name}.log")))
                .args(["-w", "-t", "60", "start"])
                .output(),
            &format!("pg_ctl start ({name})"),
        )
    }

    pub fn primary_port(&self) -> u16 {
        self.primary.port
    }

    pub fn standby_port(&self) -> u16 {
        self.standby.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(port: u16, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{database}")
    }

    /// Creates `database` on the primary (the standby gets it by
    /// replication) and returns the primary's URL of it.
    pub fn create_database(&self, database: &str) -> io::Result<String> {
        self.sql(
            self.primary.port,
            "postgres",
            &format!("CREATE DATABASE {database}"),
        )?;
        Ok(Self::url(self.primary.port, database))
    }

    /// Runs `sql` with psql on the server at `port`; returns its output
    /// (unaligned, tuples only), trimmed.
    pub fn sql(&self, port: u16, database: &str, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(["-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "psql on port {port}: {sql}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until the standby streams from the primary.
    pub fn wait_streaming(&self) -> io::Result<()> {
        self.wait_for("the standby to stream", || {
            Ok(self.sql(
                self.primary.port,
                "postgres",
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )? == "1")
        })
    }

    /// Synchronous (`on`: commits wait for the standby's flush) or
    /// asynchronous replication; waits until the primary reports it.
    pub fn set_synchronous(&self, on: bool) -> io::Result<()> {
        let names = if on { STANDBY_NAME } else { "" };
        self.sql(
            self.primary.port,
            "postgres",
            &format!("ALTER SYSTEM SET synchronous_standby_names = '{names}'"),
        )?;
        self.sql(self.primary.port, "postgres", "SELECT pg_reload_conf()")?;
        let want = if on { "sync" } else { "async" };
        self.wait_for("the standby's sync state", || {
            Ok(self.sql(
                self.primary.port,
                "postgres",
                "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'",
            )? == want)
        })
    }

    /// The primary's postmaster pid (for a pidfile a chaos experiment
    /// signals).
    pub fn primary_pid(&self) -> io::Result<u32> {
        postmaster_pid(&self.primary.data)
    }

    /// SIGKILL of the primary's postmaster (a crashed node); returns once
    /// its port refuses connections.
    pub fn kill_primary(&self) -> io::Result<()> {
        let pid = self.primary_pid()?;
        check(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output(),
            "kill -KILL",
        )?;
        self.wait_for("the primary to go down", || {
            Ok(!self.accepts_connections(self.primary.port))
        })
    }

    /// `pg_ctl promote`: the standby becomes a primary; waits until it
    /// accepts writes.
    pub fn promote_standby(&self) -> io::Result<()> {
        check(
            as_db_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.standby.data)
                .args(["-w", "-t", "60", "promote"])
                .output(),
            "pg_ctl promote",
        )?;
        self.wait_for("the promoted standby to accept writes", || {
            Ok(self.sql(self.standby.port, "postgres", "SELECT pg_is_in_recovery()")? == "f")
        })
    }

    /// Stops WAL replay on the standby: it keeps receiving but falls
    /// behind (a replica lagging).
    pub fn pause_replay(&self) -> io::Result<()> {
        self.sql(
            self.standby.port,
            "postgres",
            "SELECT pg_wal_replay_pause()",
        )
        .map(drop)
    }

    pub fn resume_replay(&self) -> io::Result<()> {
        self.sql(
            self.standby.port,
            "postgres",
            "SELECT pg_wal_replay_resume()",
        )
        .map(drop)
    }

    /// Waits until the standby has replayed everything the primary has
    /// written so far.
    pub fn wait_replayed(&self) -> io::Result<()> {
        let target = self.sql(self.primary.port, "postgres", "SELECT pg_current_wal_lsn()")?;
        self.wait_for("the standby to replay", || {
            Ok(self.sql(
                self.standby.port,
                "postgres",
                &format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"),
            )? == "t")
        })
    }

    fn accepts_connections(&self, port: u16) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> io::Result<bool>) -> io::Result<()> {
        let deadline = Instant::now() + LIMIT;
        loop {
            // A query may fail while a server starts or stops: keep polling.
            if let Ok(true) = done() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "timed out after {LIMIT:?} waiting for {what}"
                )));
            }
            std::thread::sleep(EVERY);
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let supervisor = self
            .supervisor
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = supervisor {
            // Closing its stdin makes it stop both servers and clean up.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

fn postmaster_pid(data: &Path) -> io::Result<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid"))?;
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| io::Error::other("postmaster.pid has no pid"))
}

/// A shell that waits for its stdin to close (the cluster dropped or this
/// process gone), then stops every server and removes `dir`.
fn supervise(bin: &Path, dir: &Path, data: &[&Path]) -> io::Result<Child> {
    let pg_ctl = bin.join("pg_ctl");
    let stops: String = data
        .iter()
        .map(|d| {
            format!(
                "{} -D {} -m immediate stop >/dev/null 2>&1 ; ",
                pg_ctl.display(),
                d.display()
            )
        })
        .collect();
    let script = format!("read _ ; {stops} rm -rf {}", dir.display());
    as_db_user(Path::new("sh"))
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
