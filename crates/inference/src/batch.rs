//! Dynamic batching, as Triton's dynamic batcher does it.
//!
//! Each loaded model version has one queue and one batcher task. The
//! batcher takes the oldest request, then keeps taking requests until the
//! batch holds `max_batch_size` rows or the oldest request has waited
//! `max_batch_delay` (with no delay it takes only what is already queued:
//! batching without adding latency). The batch's inputs are joined along
//! the batch dimension in arrival order, run once on the compute pool, and
//! the outputs are cut back into each request's rows in the same order.
//! A queue belongs to one version, so batches never mix versions.
//!
//! Each batch's CPU is measured and charged evenly to its requests' routes
//! under their model version's label
//! (`reliable_cost_cpu_seconds_total{module,route,model}`), every batch,
//! so the figure is exact, not a sampled estimate. What a batch costs is
//! more than its run: the batcher's polls that gathered and dispatched it,
//! and its pool thread's wake-up and the hand-back of the previous answers
//! (futex calls and context switches, as costly as the run for a small
//! model). So a pool thread charges to each batch all of its CPU since it
//! finished the previous one, and the batcher's polls (every one measured,
//! about one per batch) go to the next batch it dispatches. Both lag by at
//! most one batch, which a steady load does not notice, and nothing the
//! pool or the batcher spends is left to the process's shared line.
//!
//! The queue is bounded (`queue_capacity` requests): when it is full a
//! request is refused at once (503 with `Retry-After`) rather than held in
//! memory. Time is Tokio's, so tests drive the batching window with a
//! paused clock, except for windows under a millisecond: Tokio's timer
//! ticks in milliseconds, so those are timed by a blocking thread's sleep.

use crate::pool::ComputePool;
use crate::request::Prepared;
use crate::runtime::Runtime;
use kit::cpu_cost::{self, ChargeTo};
use oip::TensorData;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What a request gets back from its batch.
#[derive(Debug)]
pub struct Answer {
    /// Every output of the model for this request's rows: shape and data.
    pub outputs: Vec<(Vec<usize>, TensorData)>,
    /// Time from queueing to the start of its batch's run.
    pub queued: Duration,
    /// Time its batch ran.
    pub compute: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    #[error("the model's queue is full")]
    QueueFull,
    #[error("the model was unloaded")]
    Stopped,
    #[error("{0}")]
    Run(String),
}

/// Tokio's timer fires on millisecond ticks: a shorter wait lasts until
/// the next tick or the one after (a 250 us window measured 1-2 ms, the
/// batcher closing a batch every ~1.5 ms whatever the rate).
const TIMER_TICK: Duration = Duration::from_millis(1);

struct Job {
    request: Prepared,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Answer, BatchError>>,
    /// Where its share of the batch's CPU goes.
    charge: Option<ChargeTo>,
}

type Reply = oneshot::Sender<Result<Answer, BatchError>>;

/// Batching limits of one model version.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_size: usize,
    pub max_batch_delay: Duration,
    pub queue_capacity: usize,
}

/// The way into one version's batcher. Dropping every handle ends the
/// batcher once its queue is drained.
#[derive(Clone)]
pub struct BatchQueue {
    sender: mpsc::Sender<Job>,
}

impl BatchQueue {
    /// Starts the batcher of `runtime`; the returned future is the batcher
    /// task, for the caller to spawn (and track).
    pub fn start(
        runtime: Arc<Runtime>,
        pool: Arc<ComputePool>,
        limits: Limits,
        observe: Arc<dyn Fn(usize) + Send + Sync>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (sender, receiver) = mpsc::channel(limits.queue_capacity.max(1));
        let spent = Arc::new(AtomicU64::new(0));
        let task = batcher(receiver, runtime, pool, limits, observe, spent.clone());
        (Self { sender }, cpu_cost::TaskCpu::adding_to(task, spent))
    }

    /// Queues `request` and waits for its answer. Its share of its batch's
    /// CPU is charged to `charge`.
    pub async fn infer(
        &self,
        request: Prepared,
        charge: Option<ChargeTo>,
    ) -> Result<Answer, BatchError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            enqueued: Instant::now(),
            reply,
            charge,
        };
        self.sender.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BatchError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => BatchError::Stopped,
        })?;
        answer.await.map_err(|_| BatchError::Stopped)?
    }
}

async fn batcher(
    mut receiver: mpsc::Receiver<Job>,
    runtime: Arc<Runtime>,
    pool: Arc<ComputePool>,
    limits: Limits,
    observe: Arc<dyn Fn(usize) + Send + Sync>,
    // This task's CPU so far (its polls, measured by its wrapper).
    batcher_cpu: Arc<AtomicU64>,
) {
    let max_rows = if runtime.batched() {
        limits.max_batch_size.max(1)
    } else {
        1
    };
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let deadline = first.enqueued + limits.max_batch_delay;
        let mut rows = first.request.rows;
        let mut jobs = vec![first];
        // A window shorter than Tokio's timer tick is timed by a thread's
        // sleep (once per batch), not by the timer.
        let mut sleeper: Option<tokio::task::JoinHandle<()>> = None;
        let mut expired = false;
        while rows < max_rows {
            let next = if limits.max_batch_delay.is_zero() || expired {
                receiver.try_recv().ok()
            } else if limits.max_batch_delay < TIMER_TICK {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    expired = true;
                    receiver.try_recv().ok()
                } else {
                    let sleep = sleeper.get_or_insert_with(|| {
                        tokio::task::spawn_blocking(move || std::thread::sleep(left))
                    });
                    tokio::select! {
                        next = receiver.recv() => next,
                        _ = sleep => {
                            expired = true;
                            receiver.try_recv().ok()
                        }
                    }
                }
            } else {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(next) => next,
                    Err(_) => receiver.try_recv().ok(),
                }
            };
            let Some(job) = next else { break };
            if rows + job.request.rows > max_rows {
                carried = Some(job);
                break;
            }
            rows += job.request.rows;
            jobs.push(job);
        }
        observe(rows);
        let runtime = runtime.clone();
        let waited: Vec<Duration> = jobs.iter().map(|j| j.enqueued.elapsed()).collect();
        let dispatched = std::time::Instant::now();
        let gathering = batcher_cpu.swap(0, Ordering::Relaxed);
        let run = move || run_batch(&runtime, jobs, waited, rows, dispatched, gathering);
        if pool.execute(run).await.is_err() {
            // The pool stopped: the jobs were dropped with the closure, so
            // their callers see `Stopped`.
            return;
        }
    }
}

thread_local! {
    /// This pool thread's CPU clock when it last finished a batch's run.
    static LAST_RUN_END: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs one batch on the pool thread, charges its CPU (with the thread's
/// since its previous batch, and `gathering`, the batcher's) to its
/// requests, then answers them.
fn run_batch(
    runtime: &Runtime,
    jobs: Vec<Job>,
    waited: Vec<Duration>,
    rows: usize,
    dispatched: std::time::Instant,
    gathering: u64,
) {
    let cpu_before = LAST_RUN_END
        .with(Cell::get)
        .unwrap_or_else(cpu_cost::thread_cpu_nanos);
    let charges: Vec<ChargeTo> = jobs.iter().filter_map(|j| j.charge.clone()).collect();
    let answers = answer_batch(runtime, jobs, waited, rows, dispatched);
    // Charged before the answers leave, so a caller that has its answer
    // finds its CPU counted; sending them is the next batch's.
    let now = cpu_cost::thread_cpu_nanos();
    LAST_RUN_END.with(|last| last.set(Some(now)));
    let spent = now.saturating_sub(cpu_before).saturating_add(gathering);
    cpu_cost::charge_evenly(charges.iter(), spent);
    for (reply, answer) in answers {
        let _ = reply.send(answer);
    }
}

/// Joins the jobs' inputs, runs them once, cuts the outputs back: each
/// job's reply with its answer.
fn answer_batch(
    runtime: &Runtime,
    jobs: Vec<Job>,
    waited: Vec<Duration>,
    rows: usize,
    dispatched: std::time::Instant,
) -> Vec<(Reply, Result<Answer, BatchError>)> {
    // The batcher's wait (Tokio's clock) plus the pool's (the wall clock).
    let began = std::time::Instant::now();
    let pool_wait = began.saturating_duration_since(dispatched);
    let mut inputs: Vec<TensorData> = Vec::new();
    let mut replies = Vec::with_capacity(jobs.len());
    let mut row_counts = Vec::with_capacity(jobs.len());
    for (job, waited) in jobs.into_iter().zip(waited) {
        let queued = waited + pool_wait;
        if inputs.is_empty() {
            inputs = job.request.inputs;
        } else {
            for (joined, part) in inputs.iter_mut().zip(job.request.inputs) {
                // Same signature, so the same datatypes.
                joined.extend(part);
            }
        }
        row_counts.push(job.request.rows);
        replies.push((job.reply, queued));
    }
    let failed = |replies: Vec<(Reply, Duration)>, error: BatchError| {
        replies
            .into_iter()
            .map(|(reply, _)| (reply, Err(error.clone())))
            .collect()
    };
    let result = runtime.run(inputs, rows);
    let compute = began.elapsed();
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(e) => return failed(replies, BatchError::Run(e.to_string())),
    };
    // Per output: each request's part (rows × elements per row).
    let mut per_request: Vec<Vec<(Vec<usize>, TensorData)>> =
        (0..replies.len()).map(|_| Vec::new()).collect();
    for (shape, data) in outputs {
        if replies.len() == 1 {
            per_request[0].push((shape, data));
            continue;
        }
        let per_row: usize = shape.iter().skip(1).product();
        let sizes: Vec<usize> = row_counts.iter().map(|r| r * per_row).collect();
        let Some(parts) = (shape.first() == Some(&rows))
            .then(|| data.split(&sizes))
            .flatten()
        else {
            let reason = format!(
                "an output of shape {shape:?} cannot be split into the batch's {rows} rows"
            );
            return failed(replies, BatchError::Run(reason));
        };
        for ((slot, part), &request_rows) in per_request.iter_mut().zip(parts).zip(&row_counts) {
            let mut part_shape = shape.clone();
            part_shape[0] = request_rows;
            slot.push((part_shape, part));
        }
    }
    replies
        .into_iter()
        .zip(per_request)
        .map(|((reply, queued), outputs)| {
            let answer = Answer {
                outputs,
                queued,
                compute,
            };
            (reply, Ok(answer))
        })
        .collect()
}

#[cfg(test)]
mod tests;
