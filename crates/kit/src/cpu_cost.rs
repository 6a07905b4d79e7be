//! CPU per request, by module and route, for cost attribution
//! (docs/operations/cost.md): `reliable_cost_cpu_seconds_total{module,route}`.
//!
//! Cost has to follow the CPU a request spends, not the request count: a
//! 20 ms model call and a 50 us redirect must not cost the same. What is
//! measured is the thread CPU time spent polling the request's future (the
//! thread's CPU clock read before and after each poll), so time waiting on
//! I/O or on other tasks costs nothing, and neither does other work the
//! thread does between polls.
//!
//! Two reads of the thread clock are two system calls (the vDSO does not
//! serve thread clocks), so only one request in `every` is measured, per
//! thread, and its CPU counts `every` times: the counter is an unbiased
//! estimate of the route's CPU, and the data path pays a fraction of a
//! percent for it (docs/performance.md).
//!
//! Work a request hands to another thread is charged where it can be
//! named: a compute pool measures each job on its own thread's clock and
//! charges it with [`ChargeTo`] (the inference module's batches, split
//! evenly over their requests, every batch measured, so never scaled); a
//! handler names the model version its request ran with a [`CostTag`]
//! response extension, which adds the `model` label. A module's supervised
//! background tasks are measured on every poll ([`TaskCpu`], by
//! `TaskSpawner`) under `route="task:<name>"`: they poll far less often
//! than requests arrive (a batching writer wakes once per batch).
//! A connection's own polls (hyper reading and writing, the observe
//! layer's bookkeeping) are measured for the same sampled requests and
//! charged to the route each served ([`connection`]). What is left (a bare
//! spawned task, the runtime's scheduling and reactor) stays in the
//! process's CPU, and the cost report shows it as the shared line.
//!
//! The `metrics` facade has integer counters only, so these are kept here
//! in nanoseconds and rendered into `/metrics` as seconds.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

/// The counter's name.
pub const COST_CPU_SECONDS: &str = "reliable_cost_cpu_seconds_total";

/// The route label of a background task's series: `task:<name>`. HTTP
/// routes start with `/`, so the two never meet.
pub const TASK_ROUTE_PREFIX: &str = "task:";

/// The default of `http.cost_sample_every`.
pub const DEFAULT_SAMPLE_EVERY: u32 = 32;

thread_local! {
    /// Requests seen since this thread last measured one.
    static TICKS: Cell<u32> = const { Cell::new(0) };
    /// The scale of the measured poll running on this thread (0: none).
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
    /// CPU of measured polls nested in the running one, so it can leave
    /// them out.
    static NESTED: Cell<u64> = const { Cell::new(0) };
    /// An unmeasured poll of a connection is running on this thread: the
    /// connection decided its request is not sampled (`connection`).
    static IN_CONNECTION: Cell<bool> = const { Cell::new(false) };
    /// A measured poll of a connection is running on this thread, and no
    /// request inside it has been entered yet (`connection`).
    static CONNECTION_MEASURING: Cell<bool> = const { Cell::new(false) };
    /// The counter the last measured request that finished on this thread
    /// was charged to, for its connection to charge its own CPU to.
    static LAST_CHARGED: Cell<Option<Arc<AtomicU64>>> = const { Cell::new(None) };
}

/// Whether to measure the request starting on this thread, and how many
/// requests its CPU stands for. `every` 0 measures none, 1 all.
///
/// A request started while a measured request is being polled on this
/// thread (`reliable up`'s gateway calling a module in-process) is always
/// measured, at the outer one's scale: its CPU is then taken out of the
/// outer request's, so the gateway is charged for its own work only.
///
/// A request a connection serves follows the connection's decision
/// ([`connection`]): measured inside its measured polls, not otherwise.
pub fn sample(every: u32) -> Option<u32> {
    let active = ACTIVE.with(Cell::get);
    if active != 0 {
        return Some(active);
    }
    if IN_CONNECTION.with(Cell::get) {
        return None;
    }
    tick(every)
}

/// One tick of this thread's sampling: `Some(every)` once in `every` calls.
fn tick(every: u32) -> Option<u32> {
    if every == 0 {
        return None;
    }
    TICKS.with(|ticks| {
        let tick = ticks.get();
        ticks.set(if tick + 1 >= every { 0 } else { tick + 1 });
        (tick == 0).then_some(every)
    })
}

/// The calling thread's CPU time, in nanoseconds.
pub fn thread_cpu_nanos() -> u64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (time.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(time.tv_nsec as u64)
}

pin_project_lite::pin_project! {
    /// A future whose polls are timed on the polling thread's CPU clock,
    /// less the measured requests nested in them. Its output comes with
    /// the CPU it spent times its scale, in nanoseconds.
    pub struct Measured<F> {
        #[pin]
        inner: F,
        scale: u32,
        spent_nanos: u64,
    }
}

impl<F> Measured<F> {
    pub fn new(inner: F, scale: u32) -> Self {
        Self {
            inner,
            scale,
            spent_nanos: 0,
        }
    }
}

impl<F: Future> Future for Measured<F> {
    type Output = (F::Output, u64);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = if CONNECTION_MEASURING.with(|c| c.replace(false)) {
            // The connection's poll around this one is measured and charged
            // to this request's route: reading the clock here too would
            // only split the same charge in two. Requests nested in this
            // one (an in-process module's) are measured on their own.
            let polled = inner.poll(cx);
            CONNECTION_MEASURING.with(|c| c.set(true));
            polled
        } else {
            let (polled, own) = measure_poll(*this.scale, || inner.poll(cx));
            *this.spent_nanos += own;
            polled
        };
        match polled {
            Poll::Ready(output) => {
                let scaled = this.spent_nanos.saturating_mul(u64::from(*this.scale));
                Poll::Ready((output, scaled))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs one poll on the thread's CPU clock, as a measured poll at `scale`
/// (requests started inside it are measured at that scale and left out of
/// it). Returns the poll's result and its own CPU, not scaled.
fn measure_poll<T>(scale: u32, poll: impl FnOnce() -> T) -> (T, u64) {
    let outer_scale = ACTIVE.with(|a| a.replace(scale.max(1)));
    let outer_nested = NESTED.with(|n| n.replace(0));
    let before = thread_cpu_nanos();
    let polled = poll();
    let elapsed = thread_cpu_nanos().saturating_sub(before);
    let nested = NESTED.with(Cell::get);
    ACTIVE.with(|a| a.set(outer_scale));
    NESTED.with(|n| n.set(outer_nested.saturating_add(elapsed)));
    (polled, elapsed.saturating_sub(nested))
}

pin_project_lite::pin_project! {
    /// A background task's future, every poll of it timed on the thread's
    /// CPU clock and added to its counter at once (a task may never end).
    /// Requests the task starts in-process are measured on their own and
    /// left out of it, as for [`Measured`].
    pub struct TaskCpu<F> {
        #[pin]
        inner: F,
        counter: Arc<AtomicU64>,
    }
}

impl<F> TaskCpu<F> {
    /// Charges `inner`'s polls to `module`'s `task:<task>` series.
    pub fn new(inner: F, module: &'static str, task: &str) -> Self {
        let route = format!("{TASK_ROUTE_PREFIX}{task}");
        Self {
            inner,
            counter: counters().counter(module, &route, None),
        }
    }

    /// Adds `inner`'s polls to `spent` (nanoseconds), for a task that
    /// works for requests and hands its CPU on to them (an inference
    /// batcher charges it to each batch's requests).
    pub fn adding_to(inner: F, spent: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            counter: spent,
        }
    }
}

impl<F: Future> Future for TaskCpu<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let (polled, own) = measure_poll(1, || inner.poll(cx));
        this.counter.fetch_add(own, Ordering::Relaxed);
        polled
    }
}

/// The model version a request ran, as a response extension: the observe
/// layer adds it as the `model` label of the request's CPU. The value is
/// `NAME:VERSION` of a loaded version (bounded by what is registered).
#[derive(Debug, Clone)]
pub struct CostTag {
    pub model: Arc<str>,
}

/// Where CPU spent off the request's future is charged: a compute pool's
/// job, measured on the pool thread with [`thread_cpu_nanos`]. Measure every
/// job (a job is far heavier than two clock reads) and charge it unscaled.
#[derive(Debug, Clone)]
pub struct ChargeTo {
    pub module: &'static str,
    pub route: Arc<str>,
    pub model: Option<Arc<str>>,
}

/// Charges a measured request's CPU (already scaled) to its series, and
/// notes the series for the connection serving it ([`connection`]).
pub fn charge_request(module: &'static str, route: &str, model: Option<&str>, nanos: u64) {
    let counter = counters().counter(module, route, model);
    counter.fetch_add(nanos, Ordering::Relaxed);
    LAST_CHARGED.with(|last| last.set(Some(counter)));
}

impl ChargeTo {
    pub fn charge(&self, nanos: u64) {
        counters().add_labelled(self.module, &self.route, self.model.as_deref(), nanos);
    }
}

/// Charges `nanos` evenly to `targets` (the first takes the remainder), so
/// the total is kept exactly.
pub fn charge_evenly<'a>(targets: impl ExactSizeIterator<Item = &'a ChargeTo>, nanos: u64) {
    let count = targets.len() as u64;
    if count == 0 {
        return;
    }
    let share = nanos / count;
    let remainder = nanos % count;
    for (i, target) in targets.enumerate() {
        target.charge(if i == 0 { share + remainder } else { share });
    }
}

/// The labels of one series: module, route and, for inference, the model.
type Labels = (&'static str, Box<str>, Option<Box<str>>);

/// The labels to their nanoseconds.
type ByLabel = HashMap<Labels, Arc<AtomicU64>>;

/// The counters, by (module, route, model).
#[derive(Default)]
pub struct CpuCounters {
    by_label: RwLock<ByLabel>,
}

/// One (module, route)'s estimated CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCpu {
    pub module: &'static str,
    /// A route template, or `task:<name>` for a background task.
    pub route: String,
    /// `NAME:VERSION` of an inference model version, else `None`.
    pub model: Option<String>,
    pub nanos: u64,
}

impl CpuCounters {
    /// Adds `nanos` (already scaled by the sampling) to a route.
    pub fn add(&self, module: &'static str, route: &str, nanos: u64) {
        self.add_labelled(module, route, None, nanos);
    }

    /// Adds `nanos` to a route and, if given, a model version.
    pub fn add_labelled(&self, module: &'static str, route: &str, model: Option<&str>, nanos: u64) {
        self.counter(module, route, model)
            .fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counter of one series, created at zero if new: a caller that
    /// adds often (a task's every poll) keeps it.
    pub fn counter(
        &self,
        module: &'static str,
        route: &str,
        model: Option<&str>,
    ) -> Arc<AtomicU64> {
        let labels: Labels = (module, route.into(), model.map(Into::into));
        {
            let by_label = self.by_label.read().unwrap_or_else(|e| e.into_inner());
            if let Some(counter) = by_label.get(&labels) {
                return counter.clone();
            }
        }
        let mut by_label = self.by_label.write().unwrap_or_else(|e| e.into_inner());
        by_label.entry(labels).or_default().clone()
    }

    /// Every series' total so far, sorted by module, route and model.
    pub fn snapshot(&self) -> Vec<RouteCpu> {
        let by_label = self.by_label.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<RouteCpu> = by_label
            .iter()
            .map(|((module, route, model), nanos)| RouteCpu {
                module,
                route: route.to_string(),
                model: model.as_ref().map(|m| m.to_string()),
                nanos: nanos.load(Ordering::Relaxed),
            })
            .collect();
        all.sort_by(|a, b| (a.module, &a.route, &a.model).cmp(&(b.module, &b.route, &b.model)));
        all
    }

    /// The counters in Prometheus text format.
    pub fn render_into(&self, out: &mut String) {
        let all = self.snapshot();
        if all.is_empty() {
            return;
        }
        out.push_str("# HELP ");
        out.push_str(COST_CPU_SECONDS);
        out.push_str(" Thread CPU time spent serving requests (estimated from a sample) and running background tasks (route task:NAME), by module, route and model version\n# TYPE ");
        out.push_str(COST_CPU_SECONDS);
        out.push_str(" counter\n");
        for route in all {
            let _ = write!(
                out,
                "{COST_CPU_SECONDS}{{module=\"{}\",route=\"{}\"",
                escape(route.module),
                escape(&route.route),
            );
            if let Some(model) = &route.model {
                let _ = write!(out, ",model=\"{}\"", escape(model));
            }
            let _ = writeln!(out, "}} {}", route.nanos as f64 / 1e9);
        }
    }
}

/// The process's counters.
pub fn counters() -> &'static CpuCounters {
    static COUNTERS: OnceLock<CpuCounters> = OnceLock::new();
    COUNTERS.get_or_init(CpuCounters::default)
}

/// A label value in the text format: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

pub mod connection;

#[cfg(test)]
mod tests;
