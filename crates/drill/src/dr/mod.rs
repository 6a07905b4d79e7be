//! The disaster-recovery drill (`reliable drill dr`): the whole loop of
//! losing the platform's state and getting it back, measured.
//!
//! 1. seed: links (one visit each) and orders (each with its published
//!    outbox event) written with bulk SQL into the modules' own tables
//!    (`seed`), fast enough for a million links;
//! 2. start the shortener and orders modules on that store, served on a
//!    loopback port (`platform`), with writers creating links and orders
//!    through their HTTP API and recording every acknowledged id and when
//!    it was acknowledged (`writer`);
//! 3. back up with the `backup` crate while the writers write;
//! 4. destroy the store (the data dir, or every module schema), restore,
//!    start the modules on it again and run the verification probes
//!    (`probes`): random links redirect, orders are readable, the outbox
//!    publishes only what was unpublished at the snapshot;
//! 5. report RTO (destroy -> serving and verified), RPO (every write
//!    acknowledged before the snapshot point must be there; the ones
//!    acknowledged after it and missing are the loss, counted exactly),
//!    and the backup's size and throughput (`report`).
//!
//! The drill works only on a store it owns: a temporary data dir on
//! SQLite, and on PostgreSQL a database whose module schemas are empty
//! (it refuses one that holds data: it would destroy it).

mod platform;
mod probes;
mod report;
mod run;
mod seed;
mod writer;

pub use report::{table, DrReport};
pub use run::{run, DrError};

use kit::storage::Schema;
use std::path::PathBuf;

/// Where the drill runs.
#[derive(Debug, Clone)]
pub enum DrEngine {
    /// A new temporary data dir under `parent` (the system's temporary
    /// directory when `None`).
    Sqlite { parent: Option<PathBuf> },
    /// An empty PostgreSQL database.
    Postgres { url: String },
}

/// One run of the drill.
#[derive(Clone)]
pub struct DrDrill {
    /// Links seeded (each with one visit).
    pub links: u64,
    /// Orders seeded (each with its published outbox event).
    pub orders: u64,
    pub engine: DrEngine,
    /// Every store the platform has: all of them are backed up and
    /// restored, as `reliable backup` does.
    pub schemas: Vec<&'static Schema>,
    /// The program, for the backup's manifest.
    pub created_by: String,
    /// Random seeded links (and as many orders) the probes read back.
    pub probes: usize,
    /// Writes per second of each of the two writers (links, orders).
    pub write_rate: u32,
}

impl DrDrill {
    /// The defaults of `reliable drill dr`: 1,000,000 links and 100,000
    /// orders on SQLite.
    pub fn new(schemas: Vec<&'static Schema>, created_by: String) -> Self {
        Self {
            links: 1_000_000,
            orders: 100_000,
            engine: DrEngine::Sqlite { parent: None },
            schemas,
            created_by,
            probes: 200,
            write_rate: 100,
        }
    }
}
