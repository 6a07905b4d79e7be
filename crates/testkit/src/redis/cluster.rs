//! A private Redis Cluster: 3 masters and 3 replicas (node `i + 3`
//! replicates node `i`), each a `redis-server --cluster-enabled yes` on
//! free ports (client and bus) in its own temporary directory, torn down
//! with the test process like [`super::RedisServer`].
//!
//! Built by hand rather than with `redis-cli --cluster create`, which
//! waits in whole seconds: slots assigned (`CLUSTER ADDSLOTSRANGE`),
//! epochs set, nodes met, replicas attached, then polled until every node
//! says `cluster_state:ok` and every replica's link is up. A node timeout
//! of 1 s makes a killed master's replica take over in about two seconds.
//! [`RedisCluster::begin_move`] moves a slot the way `redis-cli --cluster
//! reshard` does (`MIGRATING` / `IMPORTING`, `MIGRATE`, `SETSLOT NODE`),
//! in steps a test can interleave with its calls.

use super::cli::{cli, info_field, poll};
use crate::supervised::SupervisedServer;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How long setup and failover waits may take before they are errors.
const LIMIT: Duration = Duration::from_secs(30);

pub struct RedisCluster {
    nodes: Vec<SupervisedServer>,
    /// Each node's cluster bus port (`--cluster-port`), for `CLUSTER MEET`.
    bus_ports: Vec<u16>,
}

const SLOTS: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

fn node(bus_port: u16) -> io::Result<SupervisedServer> {
    SupervisedServer::start("redis-cluster", move |dir, pid_file, port| {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(dir)
            .arg("--pidfile")
            .arg(pid_file);
        cmd
    })
}

impl RedisCluster {
    /// Starts 3 masters and 3 replicas and waits until the cluster is ok;
    /// panics with the reason if it cannot.
    ///
    /// A cluster whose setup fails is torn down and built again on new
    /// ports, twice at most: a node can lose its bus port to another test
    /// between `free_port` and its bind after its client port listened,
    /// and then exits (CI saw `cluster myid` refused once in many runs).
    pub fn start() -> Self {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start() {
                Ok(cluster) => return cluster,
                Err(e) if attempts < 3 => {
                    eprintln!("a private Redis Cluster failed to start ({e}); building it again");
                }
                Err(e) => panic!("cannot start a private Redis Cluster: {e}"),
            }
        }
    }

    pub fn try_start() -> io::Result<Self> {
        let bus_ports: Vec<u16> = (0..6).map(|_| crate::free_port()).collect();
        let nodes = bus_ports
            .iter()
            .map(|&bus| node(bus))
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = Self { nodes, bus_ports };
        let ids: Vec<String> = (0..6).map(|i| cluster.id(i)).collect::<io::Result<_>>()?;
        for (i, (first, last)) in SLOTS.iter().enumerate() {
            cli(
                cluster.port(i),
                &[
                    "cluster",
                    "addslotsrange",
                    &first.to_string(),
                    &last.to_string(),
                ],
            )?;
        }
        for i in 0..6 {
            cli(
                cluster.port(i),
                &["cluster", "set-config-epoch", &(i + 1).to_string()],
            )?;
        }
        for i in 1..6 {
            cli(
                cluster.port(0),
                &[
                    "cluster",
                    "meet",
                    "127.0.0.1",
                    &cluster.port(i).to_string(),
                    &cluster.bus_ports[i].to_string(),
                ],
            )?;
        }
        for replica in 3..6 {
            let master = &ids[replica - 3];
            poll("a replica to learn its master", LIMIT, || {
                cli(cluster.port(replica), &["cluster", "nodes"])
                    .ok()
                    .filter(|nodes| nodes.contains(master.as_str()))
            })?;
            cli(cluster.port(replica), &["cluster", "replicate", master])?;
        }
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// `redis+cluster://` naming the three first masters as seeds.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = (0..3)
            .map(|i| format!("127.0.0.1:{}", self.port(i)))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Node `i`'s client port (0..3 started as masters, 3..6 as replicas).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// Node `i`'s pid file, for a chaos experiment's `process.signal`.
    pub fn pid_file(&self, i: usize) -> PathBuf {
        self.nodes[i].dir().join("server.pid")
    }

    /// Node `i`'s cluster id.
    pub fn id(&self, i: usize) -> io::Result<String> {
        Ok(cli(self.port(i), &["cluster", "myid"])?.trim().to_string())
    }

    /// SIGKILL node `i` and wait for it to exit.
    pub fn kill(&self, i: usize) {
        self.nodes[i].stop();
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> io::Result<u16> {
        let answer = cli(self.port(self.live()?), &["cluster", "keyslot", key])?;
        answer
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("CLUSTER KEYSLOT answered {answer}")))
    }

    /// The node that serves `slot` now, as a live node sees the cluster.
    pub fn master_of(&self, slot: u16) -> io::Result<usize> {
        let nodes = cli(self.port(self.live()?), &["cluster", "nodes"])?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (first, last) = range.split_once('-').unwrap_or((range, range));
                matches!((first.parse::<u16>(), last.parse::<u16>()), (Ok(f), Ok(l)) if f <= slot && slot <= l)
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                if let Some(i) = (0..6).find(|&i| self.port(i) == port) {
                    return Ok(i);
                }
            }
        }
        Err(io::Error::other(format!(
            "no live master serves slot {slot}"
        )))
    }

    /// Waits until every live node says `cluster_state:ok` and every live
    /// replica's link to its master is up.
    pub fn wait_ok(&self) -> io::Result<()> {
        poll("cluster_state:ok on every live node", LIMIT, || {
            let all_ok = self.live_nodes().iter().all(|&i| {
                let Ok(info) = cli(self.port(i), &["cluster", "info"]) else {
                    return false;
                };
                let Ok(replication) = cli(self.port(i), &["info", "replication"]) else {
                    return false;
                };
                info_field(&info, "cluster_state").as_deref() == Some("ok")
                    && (info_field(&replication, "role").as_deref() == Some("master")
                        || info_field(&replication, "master_link_status").as_deref() == Some("up"))
            });
            all_ok.then_some(())
        })
    }

    /// After master `killed` died: waits until another node serves its
    /// slots and the cluster is ok again; returns that node.
    pub fn wait_promoted(&self, killed: usize, slot: u16) -> io::Result<usize> {
        let promoted = poll("a replica to take over the slot", LIMIT, || {
            self.master_of(slot).ok().filter(|&i| i != killed)
        })?;
        self.wait_ok()?;
        Ok(promoted)
    }

    fn live_nodes(&self) -> Vec<usize> {
        (0..6)
            .filter(|&i| cli(self.port(i), &["ping"]).is_ok())
            .collect()
    }

    fn live(&self) -> io::Result<usize> {
        self.live_nodes()
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("no cluster node answers"))
    }

    /// Starts moving `slot` to node `to`: `IMPORTING` there, `MIGRATING`
    /// on its owner. Keys stay where they are until
    /// [`SlotMove::migrate_keys`].
    pub fn begin_move(&self, slot: u16, to: usize) -> io::Result<SlotMove<'_>> {
        let from = self.master_of(slot)?;
        let slot_text = slot.to_string();
        cli(
            self.port(to),
            &[
                "cluster",
                "setslot",
                &slot_text,
                "importing",
                &self.id(from)?,
            ],
        )?;
        cli(
            self.port(from),
            &["cluster", "setslot", &slot_text, "migrating", &self.id(to)?],
        )?;
        Ok(SlotMove {
            cluster: self,
            slot,
            from,
            to,
        })
    }
}

/// A slot on its way from one master to another.
pub struct SlotMove<'a> {
    cluster: &'a RedisCluster,
    slot: u16,
    from: usize,
    to: usize,
}

impl SlotMove<'_> {
    /// `MIGRATE`s every key of the slot; the old owner answers `ASK` for
    /// them from now on.
    pub fn migrate_keys(&self) -> io::Result<usize> {
        let (from, to) = (self.cluster.port(self.from), self.cluster.port(self.to));
        let mut moved = 0;
        loop {
            let keys = cli(
                from,
                &["cluster", "getkeysinslot", &self.slot.to_string(), "100"],
            )?;
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                return Ok(moved);
            }
            let to_port = to.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &to_port, "", "0", "5000", "keys"];
            args.extend(&keys);
            cli(from, &args)?;
            moved += keys.len();
        }
    }

    /// Gives the slot to its new owner on every master: the old one
    /// answers `MOVED` from now on.
    pub fn finish(self) -> io::Result<()> {
        let id = self.cluster.id(self.to)?;
        let slot = self.slot.to_string();
        for i in [self.to, self.from] {
            cli(
                self.cluster.port(i),
                &["cluster", "setslot", &slot, "node", &id],
            )?;
        }
        self.cluster.wait_ok()
    }
}
