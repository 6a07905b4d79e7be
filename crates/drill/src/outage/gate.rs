//! The drill's gate, outside everything: it lets exactly the requests of
//! one tick through, and the drill samples the counters when they have
//! all been answered, so every tick holds the same traffic whatever the
//! machine's speed. Requests waiting at the gate are not timed by the
//! request metrics (it is outside them).

use super::run::DrillError;
use super::Module;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// A tick whose requests are not all answered within this (real) time
/// means the load generator or a module is stuck.
const STALL: Duration = Duration::from_secs(30);

/// The kinds of request, each let through in its own number per tick,
/// so every tick holds exactly the same mix (a random mix would make the
/// SLI's share of a fault wobble, and a page time with it).
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Redirect,
    CreateLink,
    CreateOrder,
}

impl Kind {
    fn of(request: &Request) -> Self {
        let path = request.uri().path();
        match (request.method() == http::Method::POST, path) {
            (true, "/api/v1/orders") => Kind::CreateOrder,
            (true, "/api/v1/links") => Kind::CreateLink,
            _ => Kind::Redirect,
        }
    }

    /// Each kind's requests per tick: `total` split as the load file's
    /// weights (80 redirects, 4 link creates, 16 order creates) over the
    /// running modules, each running kind at least one.
    pub(super) fn quotas(total: u32, modules: &[Module]) -> [u64; 3] {
        let running = [
            modules.contains(&Module::Shortener),
            modules.contains(&Module::Shortener),
            modules.contains(&Module::Orders),
        ];
        let weights = [80.0, 4.0, 16.0];
        let sum: f64 = (0..3).filter(|i| running[*i]).map(|i| weights[i]).sum();
        let mut quotas = [0u64; 3];
        for i in 0..3 {
            if running[i] {
                quotas[i] = ((f64::from(total) * weights[i] / sum).round() as u64).max(1);
            }
        }
        quotas
    }
}

/// Which half of a tick's requests to let through.
#[derive(Debug, Clone, Copy)]
pub(super) enum Half {
    First,
    Second,
}

/// Lets a counted number of requests of each kind through and counts
/// their answers.
pub(super) struct Gate {
    permits: [Semaphore; 3],
    quotas: [u64; 3],
    admitted: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    progress: Notify,
}

impl Gate {
    pub(super) fn new(quotas: [u64; 3]) -> Arc<Self> {
        Arc::new(Self {
            permits: [Semaphore::new(0), Semaphore::new(0), Semaphore::new(0)],
            quotas,
            admitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            progress: Notify::new(),
        })
    }

    /// Lets half of a tick's requests through and waits until they were
    /// answered.
    pub(super) async fn pass(&self, half: Half) -> Result<(), DrillError> {
        let mut n = 0;
        for (permits, quota) in self.permits.iter().zip(self.quotas) {
            let first = quota / 2;
            let count = match half {
                Half::First => first,
                Half::Second => quota - first,
            };
            permits.add_permits(count as usize);
            n += count;
        }
        let target = self.admitted.fetch_add(n, Ordering::SeqCst) + n;
        loop {
            let progressed = self.progress.notified();
            if self.completed.load(Ordering::SeqCst) >= target {
                return Ok(());
            }
            tokio::time::timeout(STALL, progressed)
                .await
                .map_err(|_| DrillError::Stalled(STALL))?;
        }
    }

    pub(super) fn close(&self) {
        for permits in &self.permits {
            permits.close();
        }
    }

    /// Requests answered so far.
    pub(super) fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Requests answered with a 5xx so far.
    pub(super) fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
}

pub(super) async fn gated(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    match gate.permits[Kind::of(&request) as usize].acquire().await {
        Ok(permit) => permit.forget(),
        // The scenario is over; what still waits is not part of it.
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "the drill is over").into_response(),
    }
    let response = next.run(request).await;
    if response.status().is_server_error() {
        gate.failed.fetch_add(1, Ordering::SeqCst);
    }
    gate.completed.fetch_add(1, Ordering::SeqCst);
    gate.progress.notify_one();
    response
}
