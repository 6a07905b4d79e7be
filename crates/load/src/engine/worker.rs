//! A scenario's load, spread over a few OS threads that share nothing
//! while it runs, as wrk2 does.
//!
//! Each thread runs a single-threaded Tokio runtime with its share of the
//! connections ("slots") and, in the open model, every T-th arrival of the
//! schedule. Its dispatcher waits on a precise timer and releases due
//! arrivals as semaphore permits, several at a time when they fall due
//! within [`BATCH_WINDOW`] of each other; an idle slot takes the next
//! arrival and sends it, and a slot that finishes a request releases the
//! arrivals overdue by more than that window, so a runtime busy with
//! answers does not leave them waiting for the timer to be polled. The
//! answers themselves do not wake the thread: the dispatcher reads them
//! when it wakes for a batch ([`super::harvest`]). Nothing
//! crosses threads per request: the hand-off is a wake-up within the same
//! runtime. Latency counts from the arrival's due time, so
//! an arrival that waited for a free slot carries its wait (no coordinated
//! omission). The generator's own lateness, from the moment a request
//! could have gone (due, and a slot free) to the moment it went, is
//! recorded apart, so a slow generator never passes for a slow server.

use super::client::{Connector, Origin};
use super::exchange::{settle, Executed, Prepared, SharedHttp2, Slot};
use super::harvest::{Eager, Harvester, HARVEST_INTERVAL};
use super::schedule::Schedule;
use super::timer::PreciseTimer;
use crate::results::{record, Stats};
use crate::scenario::{Render, State};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// In the closed model a slot whose request failed at the transport level
/// waits this long before the next, rather than spinning on refusals.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// What a scenario's threads share, fixed when it starts.
pub(crate) struct ScenarioRun {
    pub requests: Vec<Prepared>,
    /// Cumulative weights, for the weighted pick.
    pub cumulative_weights: Vec<u64>,
    pub connector: Connector,
    pub schedule: Option<Schedule>,
    pub state: Arc<State>,
    /// The schedule's zero.
    pub start: Instant,
    /// Arrivals due before this are warmup: sent, not recorded.
    pub measure_from: Instant,
    /// No arrival is due from here on.
    pub end: Instant,
    /// Requests in flight at `end` get until `end + grace`.
    pub grace: Duration,
    /// Set to end the run early (a threshold aborted it).
    pub stop: Arc<AtomicBool>,
    pub threads: usize,
    pub connections: usize,
}

impl ScenarioRun {
    fn pick(&self, rng: &mut SmallRng) -> usize {
        let total = self.cumulative_weights.last().copied().unwrap_or(0);
        if self.requests.len() < 2 || total == 0 {
            return 0;
        }
        let x = rng.random_range(0..total);
        self.cumulative_weights.partition_point(|&c| c <= x)
    }
}

/// One thread's share of a scenario, read by the collector every second.
pub(crate) struct Shard {
    /// Per request index: what happened since the last collection.
    pub interval: Mutex<Vec<Stats>>,
    pub in_flight: AtomicU64,
    /// Open model: arrivals released by the dispatcher and taken by slots.
    pub released: AtomicU64,
    pub taken: AtomicU64,
    /// Open model: slots waiting for an arrival, or woken with one they
    /// have not taken yet.
    pub idle_slots: AtomicU64,
    /// Set when the thread has ended and recorded everything.
    pub done: AtomicBool,
}

impl Shard {
    pub(crate) fn new(requests: usize) -> Self {
        Self {
            interval: Mutex::new(vec![Stats::default(); requests]),
            in_flight: AtomicU64::new(0),
            released: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            idle_slots: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    /// Arrivals due and waiting for a free slot.
    pub(crate) fn queued(&self) -> u64 {
        self.released
            .load(Ordering::Relaxed)
            .saturating_sub(self.taken.load(Ordering::Relaxed))
    }

    /// Some arrival released so far will find no idle slot: the thread is
    /// behind its schedule. Right after a release, the permits not yet
    /// taken are mostly those the woken slots are about to take, so
    /// [`Shard::queued`] alone is not the test.
    fn behind(&self) -> bool {
        self.queued() > self.idle_slots.load(Ordering::Relaxed)
    }
}

/// Runs thread `thread` of the scenario to its end. Blocking: call it on
/// its own OS thread.
pub(crate) fn run_thread(run: Arc<ScenarioRun>, shard: Arc<Shard>, thread: usize) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("load: cannot start a generator thread: {e}");
            shard.done.store(true, Ordering::SeqCst);
            return;
        }
    };
    runtime.block_on(drive(run, shard.clone(), thread));
    shard.done.store(true, Ordering::SeqCst);
}

async fn drive(run: Arc<ScenarioRun>, shard: Arc<Shard>, thread: usize) {
    let slots = share(run.connections, run.threads, thread);
    let http2: SharedHttp2 = Arc::default();
    let origins: Vec<Origin> = run
        .requests
        .iter()
        .filter_map(|r| r.fixed_origin().cloned())
        .fold(Vec::new(), |mut seen, o| {
            if !seen.contains(&o) {
                seen.push(o);
            }
            seen
        });
    let arrivals = Arc::new(Semaphore::new(0));
    let harvester = open_model_harvester(&run);
    let mut tasks = tokio::task::JoinSet::new();
    for slot_index in 0..slots {
        let mut slot = Slot::new(run.connector.clone(), http2.clone(), harvester.clone());
        let run = run.clone();
        let shard = shard.clone();
        let arrivals = arrivals.clone();
        let origins = origins.clone();
        let seed = (thread as u64) << 32 | slot_index as u64;
        tasks.spawn(async move {
            for origin in &origins {
                slot.warm(origin).await;
            }
            let rng = SmallRng::seed_from_u64(rand::random::<u64>() ^ seed);
            if run.schedule.is_some() {
                open_slot(slot, rng, &run, &shard, &arrivals, thread).await;
            } else {
                closed_slot(slot, rng, &run, &shard).await;
            }
        });
    }
    let harvester = harvester.as_deref();
    let work = async {
        if let Some(schedule) = &run.schedule {
            dispatch(schedule, &run, &shard, &arrivals, thread, harvester).await;
            arrivals.close();
        }
        let joined = async { while tasks.join_next().await.is_some() {} };
        match harvester {
            // The requests still out are read by a harvest of their own.
            Some(harvester) => tokio::select! {
                () = joined => {}
                () = harvest_forever(harvester) => {}
            },
            None => joined.await,
        }
    };
    tokio::select! {
        biased;
        () = work => {}
        () = keep_timers_ahead(keeper_period(&run)) => {}
    }
}

/// The open model reads its plain HTTP/1.1 answers at the dispatcher's
/// wake-ups ([`super::harvest`]); the closed model reads each as it
/// comes, since its next request waits for it.
fn open_model_harvester(run: &ScenarioRun) -> Option<Arc<Harvester>> {
    if run.schedule.is_none() || run.connector.http2() {
        return None;
    }
    match Harvester::new() {
        Ok(harvester) => Some(Arc::new(harvester)),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::Unsupported {
                eprintln!("load: answers read as they come ({e})");
            }
            None
        }
    }
}

/// Harvests every [`HARVEST_INTERVAL`] once the dispatcher has ended,
/// for the requests still out; never returns.
async fn harvest_forever(harvester: &Harvester) {
    loop {
        harvest(Some(harvester));
        tokio::time::sleep(HARVEST_INTERVAL).await;
    }
}

fn harvest(harvester: Option<&Harvester>) {
    if let Some(harvester) = harvester {
        if let Err(e) = harvester.harvest() {
            // A private epoll on live descriptors does not fail; if it
            // does, the requests waiting on it time out and say so.
            eprintln!("load: reading answers failed: {e}");
        }
    }
}

/// Sleeps until `wake`, or for at most a [`HARVEST_INTERVAL`] while
/// answers are awaited; a longer sleep ends early when a request starts
/// waiting for its answer (at low rates the next arrival can be seconds
/// away). While arrivals queue for a connection (`behind`), it ends as
/// soon as an answer comes, so the queue drains at the server's pace.
async fn pause(
    timer: &mut Option<PreciseTimer>,
    harvester: Option<&Harvester>,
    eager: &mut Eager,
    behind: bool,
    wake: Instant,
) {
    let Some(harvester) = harvester else {
        return sleep_until(timer, wake).await;
    };
    let soon = Instant::now() + HARVEST_INTERVAL;
    if behind {
        tokio::select! {
            () = sleep_until(timer, wake.min(soon)) => {}
            () = harvester.ready(eager) => {}
        }
        return;
    }
    eager.off();
    if harvester.waiting() || wake <= soon {
        return sleep_until(timer, wake.min(soon)).await;
    }
    tokio::select! {
        () = sleep_until(timer, wake) => {}
        () = harvester.first_waiter() => {}
    }
}

/// Keeps one timer in this thread's timer wheel, always due before any
/// request's deadline, and never returns.
///
/// Every request is bounded by a Tokio timeout. Tokio wakes its parked
/// driver (a write to the runtime's eventfd, then an extra `epoll_wait`
/// and read) whenever a timer is registered earlier than the wake-up it
/// parked for, and an empty wheel counts as no wake-up at all. In the open
/// model the wheel empties between batches, so each request's timeout cost
/// those syscalls: measured at 0.95 eventfd writes per request and about
/// 5% of the generator's CPU at 20,000/s. With this timer armed no later
/// than `period` from any moment, and `period` no longer than the shortest
/// request timeout, a new deadline is never the earliest.
async fn keep_timers_ahead(period: Duration) {
    loop {
        tokio::time::sleep(period).await;
    }
}

/// The shortest request timeout, between 1 ms and 1 s: the keeper wakes at
/// most once a second when timeouts are long, and never more often than
/// Tokio's timer can tell apart.
fn keeper_period(run: &ScenarioRun) -> Duration {
    run.requests
        .iter()
        .map(|r| r.plan.timeout)
        .min()
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(1), Duration::from_secs(1))
}

/// This thread's share of `total` when split over `threads`.
fn share(total: usize, threads: usize, thread: usize) -> usize {
    total / threads + usize::from(thread < total % threads)
}

/// Releases this thread's arrivals (every `threads`-th, from `thread`) as
/// they fall due, and reads the answers that came in meanwhile (a
/// harvest) each time it wakes.
///
/// The dispatcher is not the only one to release them: every slot that
/// finishes a request releases the arrivals overdue by more than
/// [`BATCH_WINDOW`] ([`release_due`]), which the dispatcher would already
/// have released had it run. A busy runtime polls its I/O driver, and so
/// sees the dispatcher's timer fire, only between batches of tasks (every
/// 61 polls in Tokio), so a dispatcher alone released arrivals a
/// millisecond or more late whenever answers came back in a burst; the
/// finishing slots are exactly the ones that can take them. Arrivals not
/// yet overdue by the window are left to the dispatcher: released early by
/// a slot, they would go out one by one, and their answers wake the thread
/// one by one (measured: 0.80 context switches per request instead of
/// 0.62, and 8% more CPU).
async fn dispatch(
    schedule: &Schedule,
    run: &ScenarioRun,
    shard: &Shard,
    arrivals: &Semaphore,
    thread: usize,
    harvester: Option<&Harvester>,
) {
    let mut timer = match PreciseTimer::new() {
        Ok(timer) => Some(timer),
        Err(e) => {
            eprintln!("load: no precise timer ({e}), using the runtime's 1 ms timer");
            None
        }
    };
    let mut eager = Eager::default();
    while !run.stop.load(Ordering::Relaxed) {
        // Answers first: the connections they free can take the arrivals.
        harvest(harvester);
        let Some(due) = release_due(schedule, run, shard, arrivals, thread, Instant::now()) else {
            break;
        };
        let due_of = |k: u64| {
            let n = k * run.threads as u64 + thread as u64;
            let due = run.start + schedule.due(n)?;
            (due < run.end).then_some(due)
        };
        let next = shard.released.load(Ordering::Relaxed);
        let wake = last_due_within(due_of, next, due + BATCH_WINDOW);
        pause(&mut timer, harvester, &mut eager, shard.behind(), wake).await;
    }
    // The caller closes `arrivals` next, and a closed semaphore refuses even
    // the permits it still holds: the arrival released a moment ago would
    // be dropped before any connection could take it. Keep the schedule
    // open to its end, so an arrival is dropped only when no connection
    // came free in time; a run stopped early ends now.
    while Instant::now() < run.end && !run.stop.load(Ordering::Relaxed) {
        pause(&mut timer, harvester, &mut eager, shard.behind(), run.end).await;
        harvest(harvester);
    }
    // A connection whose answer came by the end came free in time: read
    // what arrived, and yield, so that the slots it frees (and those the
    // runtime finds ready as it yields) take the queued arrivals before
    // the caller closes the semaphore. Woken tasks run before this one.
    harvest(harvester);
    tokio::task::yield_now().await;
}

/// Releases every arrival of this thread's share due by `now`, and returns
/// when the next one is due (`None` past the schedule's end). The count of
/// arrivals released so far is the cursor: the thread's runtime runs one
/// task at a time, so no two calls interleave.
fn release_due(
    schedule: &Schedule,
    run: &ScenarioRun,
    shard: &Shard,
    arrivals: &Semaphore,
    thread: usize,
    now: Instant,
) -> Option<Instant> {
    let first = shard.released.load(Ordering::Relaxed);
    let mut k = first;
    let upcoming = loop {
        let n = k * run.threads as u64 + thread as u64;
        let Some(offset) = schedule.due(n) else {
            break None;
        };
        let due = run.start + offset;
        if due >= run.end {
            break None;
        }
        if due > now {
            break Some(due);
        }
        k += 1;
    };
    if k > first {
        shard.released.store(k, Ordering::Relaxed);
        arrivals.add_permits(usize::try_from(k - first).unwrap_or(usize::MAX));
    }
    upcoming
}

/// Arrivals due within this much of the next one are released together,
/// at the last one's due time: one timer wake-up (and, as their answers
/// come back together, fewer socket wake-ups) for several arrivals. Each
/// wake-up of an idle thread costs more CPU than a request, so this is
/// the open model's main saving; the price is lateness below this window,
/// reported as such, and counted in the latency (which runs from the due
/// time). Sparse arrivals (further apart than this) are not delayed.
const BATCH_WINDOW: Duration = Duration::from_micros(200);

/// At most this many arrivals are looked ahead for one wake-up.
const BATCH_MAX: u64 = 64;

/// The due time of the last arrival, from the `k`-th on, due no later
/// than `limit`; the `k`-th's own due time when the next is later.
/// `due_of(k)` is this thread's `k`-th arrival, `None` past the end.
fn last_due_within(due_of: impl Fn(u64) -> Option<Instant>, k: u64, limit: Instant) -> Instant {
    let Some(mut last) = due_of(k) else {
        return limit;
    };
    for next in k + 1..k + BATCH_MAX {
        match due_of(next) {
            Some(due) if due <= limit => last = due,
            _ => break,
        }
    }
    last
}

/// Sleeps until `deadline` on the precise timer, falling back to the
/// runtime's (1 ms) timer for good if the precise one fails.
async fn sleep_until(timer: &mut Option<PreciseTimer>, deadline: Instant) {
    let slept = match timer.as_mut() {
        Some(timer) => timer.sleep_until(deadline).await,
        None => {
            tokio::time::sleep_until(deadline.into()).await;
            Ok(())
        }
    };
    if let Err(e) = slept {
        eprintln!("load: precise timer failed ({e}), using the runtime's 1 ms timer");
        *timer = None;
    }
}

async fn open_slot(
    mut slot: Slot,
    mut rng: SmallRng,
    run: &ScenarioRun,
    shard: &Shard,
    arrivals: &Semaphore,
    thread: usize,
) {
    let Some(schedule) = &run.schedule else {
        return;
    };
    let mut free_since = Instant::now();
    loop {
        shard.idle_slots.fetch_add(1, Ordering::Relaxed);
        let acquired = arrivals.acquire().await;
        shard.idle_slots.fetch_sub(1, Ordering::Relaxed);
        match acquired {
            Ok(permit) => permit.forget(),
            Err(_closed) => return,
        }
        if run.stop.load(Ordering::Relaxed) {
            return;
        }
        let k = shard.taken.fetch_add(1, Ordering::Relaxed);
        let n = k * run.threads as u64 + thread as u64;
        let Some(offset) = schedule.due(n) else {
            return;
        };
        let due = run.start + offset;
        let sent_at = Instant::now();
        let could_go = due.max(free_since);
        let index = run.pick(&mut rng);
        let request = &run.requests[index];
        let executed = send(&mut slot, &mut rng, run, shard, request, sent_at).await;
        let finished = Instant::now();
        // A harvested answer is read after it arrived; its latency ends
        // when it arrived.
        let answered = match &executed {
            Executed::Sent {
                answer: Some(answer),
                ..
            } => answer
                .received_at
                .map_or(finished, |at| at.clamp(sent_at, finished)),
            _ => finished,
        };
        let measured = due >= run.measure_from && due < run.end;
        record_into(shard, index, |stats| {
            if measured && matches!(executed, Executed::Sent { .. }) {
                record(
                    &mut stats.lateness,
                    sent_at.saturating_duration_since(could_go),
                );
            }
            settle(
                request,
                executed,
                answered.saturating_duration_since(due),
                stats,
                &run.state,
                measured,
            );
        });
        free_since = finished;
        if let Some(overdue) = finished.checked_sub(BATCH_WINDOW) {
            if !run.stop.load(Ordering::Relaxed) {
                release_due(schedule, run, shard, arrivals, thread, overdue);
            }
        }
    }
}

async fn closed_slot(mut slot: Slot, mut rng: SmallRng, run: &ScenarioRun, shard: &Shard) {
    tokio::time::sleep_until(run.start.into()).await;
    loop {
        let sent_at = Instant::now();
        if sent_at >= run.end || run.stop.load(Ordering::Relaxed) {
            return;
        }
        let index = run.pick(&mut rng);
        let request = &run.requests[index];
        let executed = send(&mut slot, &mut rng, run, shard, request, sent_at).await;
        let transport_error = matches!(
            executed,
            Executed::Sent {
                outcome: crate::results::Outcome::TransportError,
                ..
            }
        );
        let skipped = matches!(executed, Executed::Skipped);
        let measured = sent_at >= run.measure_from;
        record_into(shard, index, |stats| {
            settle(
                request,
                executed,
                sent_at.elapsed(),
                stats,
                &run.state,
                measured,
            );
        });
        if transport_error || skipped {
            // Refusals and empty pools would otherwise spin.
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}

/// Sends one request on `slot`, counted in flight while it is out.
async fn send(
    slot: &mut Slot,
    rng: &mut SmallRng,
    run: &ScenarioRun,
    shard: &Shard,
    request: &Prepared,
    sent_at: Instant,
) -> Executed {
    let deadline = (sent_at + request.plan.timeout).min(run.end + run.grace);
    shard.in_flight.fetch_add(1, Ordering::Relaxed);
    let mut render = Render {
        state: &run.state,
        rng,
    };
    let executed = slot.execute(request, &mut render, deadline.into()).await;
    shard.in_flight.fetch_sub(1, Ordering::Relaxed);
    executed
}

fn record_into(shard: &Shard, index: usize, f: impl FnOnce(&mut Stats)) {
    if let Ok(mut interval) = shard.interval.lock() {
        if let Some(stats) = interval.get_mut(index) {
            f(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_arrivals_share_a_wake_up_and_sparse_ones_do_not() {
        let zero = Instant::now();
        let every = |micros: u64, count: u64| {
            move |k: u64| (k < count).then(|| zero + Duration::from_micros(k * micros))
        };
        let limit = |k: u64, micros: u64| zero + Duration::from_micros(k * micros) + BATCH_WINDOW;
        // 100 us apart: the first three (0, 100, 200 us) go together.
        let wake = last_due_within(every(100, 1_000), 0, limit(0, 100));
        assert_eq!(wake, zero + Duration::from_micros(200));
        // 1 ms apart: each at its own due time, never later.
        let wake = last_due_within(every(1_000, 1_000), 5, limit(5, 1_000));
        assert_eq!(wake, zero + Duration::from_millis(5));
        // The schedule's end stops the batch.
        let wake = last_due_within(every(100, 2), 0, limit(0, 100));
        assert_eq!(wake, zero + Duration::from_micros(100));
        // 1 us apart: at most BATCH_MAX together.
        let wake = last_due_within(every(1, 1_000_000), 0, limit(0, 1));
        assert_eq!(wake, zero + Duration::from_micros(BATCH_MAX - 1));
    }

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for total in [1usize, 2, 7, 64, 65] {
            for threads in [1usize, 2, 3] {
                let shares: Vec<usize> = (0..threads).map(|t| share(total, threads, t)).collect();
                assert_eq!(shares.iter().sum::<usize>(), total);
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1));
            }
        }
    }
}
