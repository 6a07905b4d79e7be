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
//! Not in it: work a request hands to another thread or task (a batching
//! writer, a spawned task). That stays in the process's CPU, and the cost
//! report shows it as the module's or the process's shared line.
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
}

/// Whether to measure the request starting on this thread, and how many
/// requests its CPU stands for. `every` 0 measures none, 1 all.
///
/// A request started while a measured request is being polled on this
/// thread (`reliable up`'s gateway calling a module in-process) is always
/// measured, at the outer one's scale: its CPU is then taken out of the
/// outer request's, so the gateway is charged for its own work only.
pub fn sample(every: u32) -> Option<u32> {
    let active = ACTIVE.with(Cell::get);
    if active != 0 {
        return Some(active);
    }
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
        let outer_scale = ACTIVE.with(|a| a.replace((*this.scale).max(1)));
        let outer_nested = NESTED.with(|n| n.replace(0));
        let before = thread_cpu_nanos();
        let polled = this.inner.poll(cx);
        let elapsed = thread_cpu_nanos().saturating_sub(before);
        let nested = NESTED.with(Cell::get);
        *this.spent_nanos += elapsed.saturating_sub(nested);
        ACTIVE.with(|a| a.set(outer_scale));
        NESTED.with(|n| n.set(outer_nested.saturating_add(elapsed)));
        match polled {
            Poll::Ready(output) => {
                let scaled = this.spent_nanos.saturating_mul(u64::from(*this.scale));
                Poll::Ready((output, scaled))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// (module, route) to its nanoseconds.
type ByLabel = HashMap<(&'static str, Box<str>), Arc<AtomicU64>>;

/// The counters, by (module, route).
#[derive(Default)]
pub struct CpuCounters {
    by_label: RwLock<ByLabel>,
}

/// One (module, route)'s estimated CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCpu {
    pub module: &'static str,
    pub route: String,
    pub nanos: u64,
}

impl CpuCounters {
    /// Adds `nanos` (already scaled by the sampling) to a route.
    pub fn add(&self, module: &'static str, route: &str, nanos: u64) {
        {
            let by_label = self.by_label.read().unwrap_or_else(|e| e.into_inner());
            if let Some(counter) = by_label.get(&(module, route.into())) {
                counter.fetch_add(nanos, Ordering::Relaxed);
                return;
            }
        }
        let mut by_label = self.by_label.write().unwrap_or_else(|e| e.into_inner());
        by_label
            .entry((module, route.into()))
            .or_default()
            .fetch_add(nanos, Ordering::Relaxed);
    }

    /// Every route's total so far, sorted by module and route.
    pub fn snapshot(&self) -> Vec<RouteCpu> {
        let by_label = self.by_label.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<RouteCpu> = by_label
            .iter()
            .map(|((module, route), nanos)| RouteCpu {
                module,
                route: route.to_string(),
                nanos: nanos.load(Ordering::Relaxed),
            })
            .collect();
        all.sort_by(|a, b| (a.module, &a.route).cmp(&(b.module, &b.route)));
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
        out.push_str(" Thread CPU time spent serving requests (estimated from a sample), by module and route\n# TYPE ");
        out.push_str(COST_CPU_SECONDS);
        out.push_str(" counter\n");
        for route in all {
            let _ = writeln!(
                out,
                "{COST_CPU_SECONDS}{{module=\"{}\",route=\"{}\"}} {}",
                escape(route.module),
                escape(&route.route),
                route.nanos as f64 / 1e9
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_in_every_is_sampled_per_thread() {
        let sampled = (0..64).filter(|_| sample(16).is_some()).count();
        assert_eq!(sampled, 4);
        assert!((0..10).all(|_| sample(1) == Some(1)));
        assert!((0..10).all(|_| sample(0).is_none()));
    }

    fn spin(rounds: u64) -> u64 {
        let mut x = 0u64;
        for i in 0..rounds {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        x
    }

    #[test]
    fn a_nested_request_is_measured_at_the_outer_scale_and_left_out_of_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ((inner_scale, inner_nanos), outer_nanos) = runtime.block_on(Measured::new(
            async {
                // As the in-process gateway does: a module's request starts
                // and runs inside the outer request's poll.
                let scale = sample(1000).expect("nested requests are always measured");
                let (_, nanos) = Measured::new(async { spin(5_000_000) }, scale).await;
                (scale, nanos)
            },
            7,
        ));
        assert_eq!(inner_scale, 7);
        assert!(inner_nanos > 0);
        assert!(
            outer_nanos * 10 < inner_nanos,
            "outer {outer_nanos} ns should hold little more than the hand-off, inner {inner_nanos} ns"
        );
        assert_eq!(sample(0), None, "nothing stays active after the poll");
    }

    #[test]
    fn a_busy_future_is_charged_its_cpu_and_a_waiting_one_nothing() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let (_, busy) = runtime.block_on(Measured::new(async { spin(5_000_000) }, 1));
        let (_, waiting) = runtime.block_on(Measured::new(
            async {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            },
            1,
        ));
        assert!(busy > waiting * 10, "busy {busy} ns, waiting {waiting} ns");
    }

    #[test]
    fn counters_render_as_seconds_with_escaped_labels() {
        let counters = CpuCounters::default();
        counters.add("shortener", "/{slug}", 1_500_000_000);
        counters.add("shortener", "/{slug}", 500_000_000);
        counters.add("gateway", "/say \"hi\"", 1);
        let mut out = String::new();
        counters.render_into(&mut out);
        assert!(
            out.contains("# TYPE reliable_cost_cpu_seconds_total counter"),
            "{out}"
        );
        assert!(
            out.contains(
                "reliable_cost_cpu_seconds_total{module=\"shortener\",route=\"/{slug}\"} 2\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("route=\"/say \\\"hi\\\"\"} 0.000000001"),
            "{out}"
        );
    }
}
