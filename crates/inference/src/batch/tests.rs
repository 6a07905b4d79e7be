//! The batcher on a real model (`models/digits`), on Tokio's paused clock.
//!
//! What a test asserts is what went into each batch (the `observe`
//! callback's row counts) and what each request got back, never wall time:
//! with the clock paused, Tokio jumps to the next timer whenever the
//! runtime is idle, e.g. while a pool thread computes a batch. Requests are
//! queued by polling `infer` once ([`submit`]), so a test knows which
//! requests are in the queue before the batcher looks at it.

use super::*;
use crate::manifest::Manifest;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::Poll;

/// Tolerance on probabilities, as in `tests/reference.rs`.
const TOLERANCE: f32 = 1e-5;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[derive(serde::Deserialize)]
struct Expected {
    label: Vec<i64>,
    probabilities: Vec<Vec<f32>>,
}

/// `models/reference/digits.json`: 32 rows and each version's outputs.
#[derive(serde::Deserialize)]
struct Reference {
    inputs: Vec<Vec<f32>>,
    expected: BTreeMap<String, Expected>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let text = std::fs::read_to_string(models().join("reference/digits.json"))
            .expect("the reference set");
        serde_json::from_str(&text).expect("a valid reference set")
    })
}

/// `digits/{version}`, loaded once per test binary.
fn digits(version: u64) -> Arc<Runtime> {
    static LOADED: [OnceLock<Arc<Runtime>>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match version {
        1 => &LOADED[0],
        2 => &LOADED[1],
        _ => panic!("no digits/{version}"),
    };
    slot.get_or_init(|| {
        let dir = models().join(format!("digits/{version}"));
        let onnx = std::fs::read(dir.join("model.onnx")).expect("model.onnx");
        let text = std::fs::read_to_string(dir.join("model.toml")).expect("model.toml");
        let manifest = Manifest::parse(&text).expect("a valid model.toml");
        Arc::new(Runtime::load(&onnx, &manifest).expect("the model loads"))
    })
    .clone()
}

/// A request of the given reference rows, asking for every output.
fn rows(indices: &[usize]) -> Prepared {
    let flat = indices
        .iter()
        .flat_map(|&i| reference().inputs[i].iter().copied())
        .collect();
    Prepared {
        rows: indices.len(),
        inputs: vec![TensorData::Fp32(flat)],
        outputs: vec![0, 1],
    }
}

fn limits(max_batch_size: usize, delay_ms: u64, queue_capacity: usize) -> Limits {
    Limits {
        max_batch_size,
        max_batch_delay: Duration::from_millis(delay_ms),
        queue_capacity,
    }
}

/// Records the row count of every batch, in order.
#[derive(Clone, Default)]
struct Batches(Arc<Mutex<Vec<usize>>>);

impl Batches {
    fn observer(&self) -> Arc<dyn Fn(usize) + Send + Sync> {
        let seen = self.0.clone();
        Arc::new(move |rows| seen.lock().unwrap().push(rows))
    }

    fn get(&self) -> Vec<usize> {
        self.0.lock().unwrap().clone()
    }
}

/// A batcher for `digits/{version}` on a pool of `threads`; its task is
/// not spawned, so requests can be queued before it first runs.
fn batcher(
    version: u64,
    limits: Limits,
    threads: usize,
) -> (
    BatchQueue,
    impl Future<Output = ()> + Send + 'static,
    Batches,
) {
    let pool = Arc::new(ComputePool::new(threads).expect("pool threads"));
    let batches = Batches::default();
    let (queue, task) = BatchQueue::start(digits(version), pool, limits, batches.observer());
    (queue, task, batches)
}

/// Polls `infer` once: that queues its request (or refuses it) then and
/// there, at the current (paused) time.
async fn submit<F: Future + Unpin>(infer: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *infer).poll(cx))).await
}

/// Lets every task that can run do so (the batcher takes what is queued
/// and parks on its timer or the pool). Yielding never moves the paused
/// clock: only an idle runtime does.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Asserts that `answer` holds `digits/{version}`'s outputs for the
/// reference rows `indices`, in that order.
fn assert_answer(answer: &Answer, version: u64, indices: &[usize]) {
    let expected = &reference().expected[&format!("digits/{version}")];
    let runtime = digits(version);
    let position = |name: &str| {
        runtime
            .outputs
            .iter()
            .position(|o| o.name == name)
            .expect("a digits output")
    };
    let (label_shape, labels) = &answer.outputs[position("label")];
    let (prob_shape, probabilities) = &answer.outputs[position("probabilities")];
    assert_eq!(label_shape, &vec![indices.len()]);
    assert_eq!(prob_shape, &vec![indices.len(), 10]);
    let want: Vec<i64> = indices.iter().map(|&i| expected.label[i]).collect();
    assert_eq!(
        labels,
        &TensorData::Int64(want),
        "labels of rows {indices:?}"
    );
    let TensorData::Fp32(got) = probabilities else {
        panic!("probabilities are not FP32");
    };
    for (k, &i) in indices.iter().enumerate() {
        let row = &got[k * 10..(k + 1) * 10];
        for (g, w) in row.iter().zip(&expected.probabilities[i]) {
            assert!(
                (g - w).abs() <= TOLERANCE,
                "digits/{version} row {i}: probabilities {row:?}, expected {:?}",
                expected.probabilities[i]
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_within_the_window_joins_the_batch() {
    let (queue, task, batches) = batcher(2, limits(64, 10, 16), 1);
    tokio::spawn(task);
    let mut a = Box::pin(queue.infer(rows(&[0]), None));
    assert!(submit(&mut a).await.is_pending());
    settle().await; // the batcher holds A and waits until 10 ms
    tokio::time::advance(Duration::from_millis(5)).await;
    settle().await;
    let mut b = Box::pin(queue.infer(rows(&[1]), None));
    assert!(submit(&mut b).await.is_pending());
    let (a, b) = (a.await.expect("A"), b.await.expect("B"));
    assert_eq!(batches.get(), vec![2], "B came 5 ms into A's 10 ms window");
    assert_answer(&a, 2, &[0]);
    assert_answer(&b, 2, &[1]);
}

#[tokio::test(start_paused = true)]
async fn a_request_after_the_window_starts_another_batch() {
    let (queue, task, batches) = batcher(2, limits(64, 1, 16), 1);
    tokio::spawn(task);
    let mut a = Box::pin(queue.infer(rows(&[0]), None));
    assert!(submit(&mut a).await.is_pending());
    settle().await; // the batcher holds A and waits until 1 ms
    tokio::time::advance(Duration::from_millis(5)).await;
    settle().await; // its timer fired: A's batch is closed
    let mut b = Box::pin(queue.infer(rows(&[1]), None));
    assert!(submit(&mut b).await.is_pending());
    let (a, b) = (a.await.expect("A"), b.await.expect("B"));
    assert_eq!(
        batches.get(),
        vec![1, 1],
        "B came 4 ms after A's window closed"
    );
    assert_answer(&a, 2, &[0]);
    assert_answer(&b, 2, &[1]);
}

#[tokio::test(start_paused = true)]
async fn zero_delay_batches_what_is_queued_and_never_waits() {
    let (queue, task, batches) = batcher(2, limits(64, 0, 16), 1);
    let start = Instant::now();
    // Queued before the batcher's task exists, so all three are waiting
    // when it first looks.
    let mut queued: Vec<_> = (0..3)
        .map(|i| Box::pin(queue.infer(rows(&[i]), None)))
        .collect();
    for infer in &mut queued {
        assert!(submit(infer).await.is_pending());
    }
    tokio::spawn(task);
    for (i, infer) in queued.into_iter().enumerate() {
        assert_answer(&infer.await.expect("answered"), 2, &[i]);
    }
    assert_eq!(batches.get(), vec![3]);
    // Alone in the queue, a request is a batch at once.
    assert_answer(
        &queue.infer(rows(&[3]), None).await.expect("answered"),
        2,
        &[3],
    );
    assert_answer(
        &queue.infer(rows(&[4]), None).await.expect("answered"),
        2,
        &[4],
    );
    assert_eq!(batches.get(), vec![3, 1, 1]);
    // No timer was ever set: the paused clock did not move.
    assert_eq!(Instant::now(), start);
}

#[tokio::test(start_paused = true)]
async fn batches_stay_within_max_batch_size_and_never_split_a_request() {
    let (queue, task, batches) = batcher(2, limits(8, 10, 16), 1);
    tokio::spawn(task);
    let requests: Vec<Vec<usize>> = (0..10).map(|k| vec![3 * k, 3 * k + 1, 3 * k + 2]).collect();
    let handles: Vec<_> = requests
        .iter()
        .map(|indices| {
            let (queue, request) = (queue.clone(), rows(indices));
            tokio::spawn(async move { queue.infer(request, None).await })
        })
        .collect();
    for (handle, indices) in handles.into_iter().zip(&requests) {
        let answer = handle.await.expect("no panic").expect("answered");
        assert_answer(&answer, 2, indices);
    }
    let batches = batches.get();
    assert_eq!(batches.iter().sum::<usize>(), 30, "{batches:?}");
    assert!(
        batches.iter().all(|&rows| rows <= 8),
        "over 8 rows: {batches:?}"
    );
    assert!(
        batches.iter().all(|&rows| rows % 3 == 0),
        "a request split: {batches:?}"
    );
    assert!(
        batches.len() >= 4,
        "30 rows need at least 4 batches: {batches:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_request_gets_its_own_rows_back() {
    let (queue, task, batches) = batcher(2, limits(12, 2, 64), 2);
    tokio::spawn(task);
    let handles: Vec<_> = (0..reference().inputs.len())
        .map(|i| {
            let (queue, request) = (queue.clone(), rows(&[i]));
            tokio::spawn(async move { queue.infer(request, None).await })
        })
        .collect();
    assert_eq!(handles.len(), 32);
    for (i, handle) in handles.into_iter().enumerate() {
        let answer = handle.await.expect("no panic").expect("answered");
        assert_answer(&answer, 2, &[i]);
    }
    let batches = batches.get();
    assert_eq!(batches.iter().sum::<usize>(), 32, "{batches:?}");
    assert!(batches.iter().all(|&rows| rows <= 12), "{batches:?}");
    assert!(batches.len() >= 3, "the rows were batched: {batches:?}");
}

#[tokio::test(start_paused = true)]
async fn versions_never_mix() {
    // The two versions' outputs differ, so an answer from the wrong one
    // would fail the 1e-5 comparison.
    let (v1, v2) = (
        &reference().expected["digits/1"],
        &reference().expected["digits/2"],
    );
    let distinct = v1
        .probabilities
        .iter()
        .zip(&v2.probabilities)
        .filter(|(a, b)| {
            a.iter()
                .zip(*b)
                .any(|(x, y)| (x - y).abs() > 10.0 * TOLERANCE)
        })
        .count();
    assert!(
        distinct >= 20,
        "only {distinct} rows tell the versions apart"
    );

    let pool = Arc::new(ComputePool::new(2).expect("pool threads"));
    let mut queues = Vec::new();
    for version in [1, 2] {
        let (queue, task) = BatchQueue::start(
            digits(version),
            pool.clone(),
            limits(16, 1, 64),
            Arc::new(|_| {}),
        );
        tokio::spawn(task);
        queues.push((version, queue));
    }
    let mut handles = Vec::new();
    for i in 0..reference().inputs.len() {
        for (version, queue) in &queues {
            let (queue, request) = (queue.clone(), rows(&[i]));
            let handle = tokio::spawn(async move { queue.infer(request, None).await });
            handles.push((*version, i, handle));
        }
    }
    for (version, i, handle) in handles {
        let answer = handle.await.expect("no panic").expect("answered");
        assert_answer(&answer, version, &[i]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_the_queued_are_answered() {
    let pool = Arc::new(ComputePool::new(1).expect("a pool thread"));
    // Keep the pool's one thread busy until the test says.
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let (running, started) = oneshot::channel();
    pool.execute(move || {
        let _ = running.send(());
        let _ = blocked.recv();
    })
    .await
    .expect("pool running");
    started.await.expect("the blocking job started");

    let batches = Batches::default();
    let (queue, task) = BatchQueue::start(
        digits(2),
        pool.clone(),
        limits(64, 0, 2),
        batches.observer(),
    );
    tokio::spawn(task);
    let mut accepted = Vec::new();
    let refused_at = loop {
        let i = accepted.len();
        assert!(i < 10, "nothing was refused");
        let mut infer = Box::pin(queue.infer(rows(&[i]), None));
        match submit(&mut infer).await {
            Poll::Pending => accepted.push((i, infer)),
            Poll::Ready(Err(BatchError::QueueFull)) => break i,
            Poll::Ready(other) => panic!("request {i}: {other:?}"),
        }
        settle().await; // the batcher takes what it can
    };
    // Accepted: a batch in the pool's queue (2 jobs for 1 thread) twice, a
    // batch waiting for room there, and `queue_capacity` (2) in the queue.
    assert_eq!(refused_at, 5, "accepted {refused_at} before refusing");
    let mut again = Box::pin(queue.infer(rows(&[31]), None));
    assert!(matches!(
        submit(&mut again).await,
        Poll::Ready(Err(BatchError::QueueFull))
    ));
    assert_eq!(
        batches.get(),
        vec![1, 1, 1],
        "the batches handed to the pool"
    );

    release.send(()).expect("the blocking job waits");
    for (i, infer) in accepted {
        assert_answer(&infer.await.expect("answered after release"), 2, &[i]);
    }
    assert_eq!(batches.get().iter().sum::<usize>(), 5);
    // Drained, the queue takes requests again.
    assert_answer(
        &queue.infer(rows(&[31]), None).await.expect("answered"),
        2,
        &[31],
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_every_queue_ends_the_batcher_after_draining() {
    let (queue, task, batches) = batcher(2, limits(64, 10, 16), 1);
    // Three requests queued, then every handle dropped (each infer future
    // holds a clone) before the batcher first runs.
    for i in 0..3 {
        let queue = queue.clone();
        let mut infer = Box::pin(async move { queue.infer(rows(&[i]), None).await });
        assert!(submit(&mut infer).await.is_pending());
    }
    drop(queue);
    let batcher = tokio::spawn(task);
    // The batcher never waits on the pool's computation, so if it does not
    // end, the idle runtime jumps the paused clock to this timeout.
    tokio::time::timeout(Duration::from_secs(60), batcher)
        .await
        .expect("the batcher ended")
        .expect("the batcher did not panic");
    assert_eq!(batches.get(), vec![3], "what was queued still ran");
}

#[tokio::test(start_paused = true)]
async fn a_batchs_cpu_is_charged_evenly_to_its_requests_routes_and_model() {
    let (queue, task, batches) = batcher(1, limits(64, 0, 16), 1);
    let to = |route: &str| {
        Some(ChargeTo {
            module: "inference-batch-test",
            route: route.into(),
            model: Some("digits:1".into()),
        })
    };
    let mut a = Box::pin(queue.infer(rows(&[0, 1, 2]), to("/a")));
    let mut b = Box::pin(queue.infer(rows(&[3]), to("/b")));
    assert!(submit(&mut a).await.is_pending());
    assert!(submit(&mut b).await.is_pending());
    tokio::spawn(task);
    a.await.expect("answered");
    b.await.expect("answered");
    assert_eq!(batches.get(), vec![4], "one batch");
    let charged = |route: &str| {
        cpu_cost::counters()
            .snapshot()
            .into_iter()
            .find(|c| c.module == "inference-batch-test" && c.route == route)
            .map(|c| (c.model, c.nanos))
    };
    let (model_a, a) = charged("/a").expect("charged before the answer");
    let (model_b, b) = charged("/b").expect("charged before the answer");
    assert_eq!(model_a.as_deref(), Some("digits:1"));
    assert_eq!(model_b.as_deref(), Some("digits:1"));
    assert!(b > 0);
    // Split by request, not by row: equal shares, the first one keeping
    // the remainder (under one nanosecond per request).
    assert!(a >= b && a - b < 2, "a {a} ns, b {b} ns");
}

/// What a pool thread spends between two batches (waking up, handing
/// back answers; here a job that burns 3 ms of CPU) is charged to the
/// next batch: nothing the pool does is left unattributed.
#[tokio::test]
async fn a_pool_threads_cpu_between_batches_is_charged_to_the_next_batch() {
    let pool = Arc::new(ComputePool::new(1).expect("one pool thread"));
    let batches = Batches::default();
    let (queue, task) = BatchQueue::start(
        digits(1),
        pool.clone(),
        limits(64, 0, 16),
        batches.observer(),
    );
    tokio::spawn(task);
    let to = |route: &str| {
        Some(ChargeTo {
            module: "inference-gap-test",
            route: route.into(),
            model: None,
        })
    };
    let charged = |route: &str| {
        cpu_cost::counters()
            .snapshot()
            .into_iter()
            .find(|c| c.module == "inference-gap-test" && c.route == route)
            .map_or(0, |c| c.nanos)
    };
    queue
        .infer(rows(&[0]), to("/first"))
        .await
        .expect("answered");
    let first = charged("/first");
    const GAP: u64 = 3_000_000;
    pool.execute(|| {
        let start = cpu_cost::thread_cpu_nanos();
        while cpu_cost::thread_cpu_nanos().saturating_sub(start) < GAP {
            std::hint::black_box(start);
        }
    })
    .await
    .expect("pool running");
    queue
        .infer(rows(&[0]), to("/second"))
        .await
        .expect("answered");
    let second = charged("/second");
    assert!(
        second >= GAP && second > first,
        "the second batch carries the 3 ms spent before it: first {first} ns, second {second} ns"
    );
}

#[test]
fn a_models_weights_are_its_constant_tensors_bytes() {
    for version in [1, 2] {
        let file = std::fs::metadata(models().join(format!("digits/{version}/model.onnx")))
            .expect("model.onnx")
            .len();
        let weights = digits(version).weight_bytes();
        // The file is mostly its initializers: the decoded tensors come
        // close to its size, never far above it.
        assert!(
            weights > file / 2 && weights < file * 2,
            "digits/{version}: {weights} bytes of weights, file {file} bytes"
        );
    }
}
