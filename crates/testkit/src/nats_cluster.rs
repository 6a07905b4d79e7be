//! A private NATS JetStream cluster: three `nats-server` processes (or
//! any size) on free loopback ports, routed to each other, each with its
//! own store and monitoring port, torn down with the test process like
//! [`crate::NatsServer`].
//!
//! Each node runs from a config file (`nats-server -c NAME.conf`) so that a
//! chaos experiment can start a node again with nothing but that file;
//! [`NatsCluster::dir`] holds `NAME.conf` and `NAME.pid` for every node
//! (links to the node's own files). Readiness is polled, never slept for:
//! the cluster is up once every node reports the same metadata leader and
//! the full cluster size, a node once its `/healthz` answers ok.

use crate::supervised::SupervisedServer;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The cluster's name, as `nats-server --cluster_name` has it.
pub const CLUSTER_NAME: &str = "reliable-test";

/// How long a cluster or a node may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct NatsCluster {
    nodes: Vec<Node>,
    /// `NAME.conf` and `NAME.pid` links, for experiments.
    dir: tempfile::TempDir,
}

struct Node {
    name: String,
    monitor_port: u16,
    server: SupervisedServer,
}

fn config_text(name: &str, dir: &Path, pid_file: &Path, ports: NodePorts, routes: &str) -> String {
    format!(
        "server_name: {name}\n\
         listen: \"127.0.0.1:{client}\"\n\
         http: \"127.0.0.1:{monitor}\"\n\
         pid_file: \"{pid}\"\n\
         jetstream {{ store_dir: \"{store}\" }}\n\
         cluster {{\n  name: {CLUSTER_NAME}\n  listen: \"127.0.0.1:{cluster}\"\n  routes: [{routes}]\n}}\n",
        client = ports.client,
        monitor = ports.monitor,
        cluster = ports.cluster,
        pid = pid_file.display(),
        store = dir.join("store").display(),
    )
}

#[derive(Clone, Copy)]
struct NodePorts {
    client: u16,
    monitor: u16,
    cluster: u16,
}

impl NatsCluster {
    /// Starts a three-node cluster and waits for its metadata leader;
    /// panics with the reason if it cannot.
    pub fn start() -> Self {
        Self::try_start(3).unwrap_or_else(|e| {
            panic!("cannot start a private NATS cluster (is nats-server installed?): {e}")
        })
    }

    pub fn try_start(size: usize) -> io::Result<Self> {
        let cluster_ports: Vec<u16> = (0..size).map(|_| crate::free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("\"nats://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let dir = tempfile::Builder::new()
            .prefix("reliable-nats-cluster-")
            .tempdir()?;
        let mut nodes = Vec::with_capacity(size);
        for (i, cluster_port) in cluster_ports.into_iter().enumerate() {
            let name = format!("n{}", i + 1);
            let monitor_port = crate::free_port();
            let (node_name, routes) = (name.clone(), routes.clone());
            let server = SupervisedServer::start("nats", move |dir, pid_file, port| {
                let ports = NodePorts {
                    client: port,
                    monitor: monitor_port,
                    cluster: cluster_port,
                };
                let config = dir.join("nats.conf");
                let text = config_text(&node_name, dir, pid_file, ports, &routes);
                if let Err(e) = std::fs::write(&config, text) {
                    eprintln!("cannot write {}: {e}", config.display());
                }
                let binary =
                    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_string());
                let mut cmd = Command::new(binary);
                cmd.arg("-c").arg(config);
                cmd
            })?;
            std::os::unix::fs::symlink(
                server.dir().join("nats.conf"),
                dir.path().join(format!("{name}.conf")),
            )?;
            std::os::unix::fs::symlink(
                server.dir().join("server.pid"),
                dir.path().join(format!("{name}.pid")),
            )?;
            nodes.push(Node {
                name,
                monitor_port,
                server,
            });
        }
        let cluster = Self { nodes, dir };
        cluster.wait_for_meta_leader()?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated (what `RELIABLE_NATS_URL`
    /// takes).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.server.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes' names: `n1`, `n2`, ...
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// `NAME.conf` (start a node: `nats-server -c DIR/NAME.conf`) and
    /// `NAME.pid` of every node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pid"))
    }

    /// `http://127.0.0.1:PORT`: a node's monitoring endpoint (`/jsz`,
    /// `/healthz`).
    pub fn monitor_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.node(name).monitor_port)
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node `{name}` in the cluster"))
    }

    /// SIGKILL one node (no clean shutdown) and wait for it to exit.
    pub fn kill(&self, name: &str) {
        self.node(name).server.stop();
    }

    /// Starts a node again (after [`NatsCluster::kill`]) on its port and
    /// store, and waits until its `/healthz` answers ok (it has caught up).
    pub fn restart(&self, name: &str) -> io::Result<()> {
        let node = self.node(name);
        node.server.start_again()?;
        poll(&format!("node {name} healthy"), || {
            get_json(node.monitor_port, "/healthz")
                .filter(|health| health["status"] == "ok")
                .map(|_| ())
        })
    }

    /// The server leading `stream` now, as any live node reports it
    /// (`/jsz` stream details, `cluster.leader`).
    pub fn stream_leader(&self, stream: &str) -> Option<String> {
        self.nodes.iter().find_map(|node| {
            let jsz = get_json(node.monitor_port, "/jsz?acc=%24G&streams=true")?;
            jsz.pointer("/account_details/0/stream_detail")?
                .as_array()?
                .iter()
                .find(|s| s["name"] == stream)?
                .pointer("/cluster/leader")?
                .as_str()
                .filter(|leader| !leader.is_empty())
                .map(str::to_string)
        })
    }

    /// Waits until every node names the same metadata leader and sees the
    /// whole cluster.
    pub fn wait_for_meta_leader(&self) -> io::Result<()> {
        let size = self.nodes.len() as u64;
        poll("a JetStream metadata leader on every node", || {
            let leaders: Option<Vec<String>> = self
                .nodes
                .iter()
                .map(|node| {
                    let jsz = get_json(node.monitor_port, "/jsz")?;
                    let meta = jsz.get("meta_cluster")?;
                    let leader = meta["leader"].as_str().filter(|l| !l.is_empty())?;
                    (meta["cluster_size"].as_u64() == Some(size)).then(|| leader.to_string())
                })
                .collect();
            let leaders = leaders?;
            leaders.windows(2).all(|w| w[0] == w[1]).then_some(())
        })
    }
}

/// Checks `check` every 50 ms until it gives `Some`, for at most
/// [`READY_WITHIN`] (a blocking cousin of [`crate::eventually`], for
/// launchers that run before any runtime).
fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> io::Result<T> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "timed out after {READY_WITHIN:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET http://127.0.0.1:PORT/PATH` as JSON; `None` if it is not up or
/// not JSON (a monitoring endpoint is plain HTTP/1.0 enough for this).
fn get_json(port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}
