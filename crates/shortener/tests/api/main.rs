//! Black-box tests of the shortener's HTTP API: each test starts the module
//! on port 0 with its own SQLite file and an injected clock.

mod helpers;
mod links;
mod read_replica;
mod redirects;
mod replicas;
mod shutdown;
mod targets;
mod visit_ingest;
mod visits;
