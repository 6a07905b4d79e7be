//! Live accuracy ("continuous evaluation"): callers report the true label
//! of an earlier prediction, and the module counts whether it was right.
//!
//! Offline accuracy says how a version did on last year's test set; only
//! ground truth from production says how it does now. The flow:
//!
//! 1. `POST /v2/models/{name}/infer` answers with a request `id`; the module
//!    [`PredictionMemory::remember`]s what that version predicted for it.
//! 2. Later (a user corrects a label, a parcel arrives, a fraud case closes)
//!    `POST /v2/models/{name}/feedback` with `{"id", "label"}` calls
//!    [`PredictionMemory::feedback`], which compares and counts
//!    `inference_feedback_total{model, version, outcome="correct"|"incorrect"}`.
//!
//! One label per request id: for a request of several rows the module
//! remembers the first row's predicted label (clients that want per-row
//! accuracy send one row per request). Labels are compared as exact
//! strings; the HTTP layer turns a JSON number label into its decimal form
//! (`7` → `"7"`) so it matches a class index predicted as `"7"`.
//!
//! The memory is bounded: the last `capacity` remembered predictions, the
//! oldest evicted first; feedback for an evicted id is [`FeedbackError::UnknownId`],
//! so `capacity` must cover the feedback delay (at 100 requests/s, 100,000
//! entries keep about 17 minutes). Ids are caller-supplied: longer than
//! [`MAX_ID_BYTES`] (or empty) they are not remembered, and they are never
//! metric labels. An entry costs about 170 bytes plus the id's and the
//! predicted label's lengths (the slot 72, the index entry ~32, two small
//! heap allocations); 100,000 entries with 36-byte UUIDs take about 21 MB.
//! Model names are interned, so they cost nothing per entry.
//!
//! # Accuracy as an SLO
//!
//! The counter makes accuracy a ratio of events, the form an SLO needs
//! (good = correct, total = all evaluated predictions). In PromQL, a version's
//! accuracy over the last hour:
//!
//! ```promql
//! sum by (model, version) (rate(inference_feedback_total{outcome="correct"}[1h]))
//!   /
//! sum by (model, version) (rate(inference_feedback_total[1h]))
//! ```
//!
//! and as a Sloth SLO in `slo/inference.yaml` (objective in percent):
//!
//! ```yaml
//! - name: accuracy
//!   objective: 90
//!   description: Evaluated predictions of digits that were correct.
//!   sli:
//!     events:
//!       error_query: sum(rate(inference_feedback_total{model="digits",outcome="incorrect"}[{{.window}}]))
//!       total_query: sum(rate(inference_feedback_total{model="digits"}[{{.window}}]))
//! ```
//!
//! The ratio covers only the predictions that received feedback, which
//! need not be a random sample of all of them. Feedback that could not be
//! matched is counted in `inference_feedback_rejected_total{reason}`
//! (`unknown_id` rising means the memory is too small for the delay).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Counter of evaluated predictions: `{model, version, outcome}`.
pub const FEEDBACK_TOTAL: &str = "inference_feedback_total";

/// Counter of feedback that matched no prediction: `{reason}`, one of
/// `unknown_id`, `wrong_model`, `already_evaluated`.
pub const FEEDBACK_REJECTED_TOTAL: &str = "inference_feedback_rejected_total";

/// The longest request id remembered, in bytes; longer ids are not remembered.
pub const MAX_ID_BYTES: usize = 256;

/// The longest predicted label remembered, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;

/// What the feedback found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Evaluated {
    /// The version that made the prediction.
    pub version: u64,
    /// What it predicted.
    pub predicted: String,
    /// Whether that was the true label.
    pub correct: bool,
}

/// Why feedback was not counted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedbackError {
    /// The id was never remembered, or was evicted since (a 404).
    #[error("no recent prediction has this id (unknown, or too old and forgotten)")]
    UnknownId,
    /// The id belongs to a prediction of another model (a 404: for this
    /// model the id is unknown).
    #[error("this id is not a prediction of this model")]
    WrongModel,
    /// Feedback was already given for this id; it is counted once (a 409).
    #[error("feedback was already given for this id")]
    AlreadyEvaluated,
}

impl FeedbackError {
    /// The `reason` label of the rejection counter.
    fn reason(&self) -> &'static str {
        match self {
            FeedbackError::UnknownId => "unknown_id",
            FeedbackError::WrongModel => "wrong_model",
            FeedbackError::AlreadyEvaluated => "already_evaluated",
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// The `remember` call that wrote this slot: tells a live slot from one
    /// whose id was remembered again later.
    seq: u64,
    id: Arc<str>,
    model: Arc<str>,
    version: u64,
    predicted: Box<str>,
    evaluated: bool,
}

#[derive(Debug, Default)]
struct Memory {
    /// A ring: the `seq`-th remembered prediction is in `slots[seq % capacity]`.
    slots: Vec<Slot>,
    /// Id → the `seq` of its latest prediction, whose slot is still in the ring.
    index: HashMap<Arc<str>, u64>,
    /// One shared copy of each model name.
    models: HashSet<Arc<str>>,
    next_seq: u64,
}

/// The most recent predictions by request id, waiting for their true label.
/// Bounded by `capacity` entries, oldest evicted first; O(1) insert and lookup
/// under one short lock.
#[derive(Debug)]
pub struct PredictionMemory {
    capacity: usize,
    memory: Mutex<Memory>,
}

impl PredictionMemory {
    /// A memory of the last `capacity` predictions (0 remembers nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            memory: Mutex::new(Memory::default()),
        }
    }

    /// How many predictions it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Remembers what (model, version) predicted for request `id`: one label
    /// per id (see the module doc). An id already remembered is replaced by
    /// the new prediction. An empty id or one longer than [`MAX_ID_BYTES`],
    /// or a label longer than [`MAX_LABEL_BYTES`], is not remembered.
    pub fn remember(&self, id: &str, model: &str, version: u64, predicted: &str) {
        if self.capacity == 0 {
            return;
        }
        if id.is_empty() || id.len() > MAX_ID_BYTES || predicted.len() > MAX_LABEL_BYTES {
            tracing::debug!(
                model,
                id_bytes = id.len(),
                label_bytes = predicted.len(),
                "prediction not remembered for feedback: id or label too long, or id empty"
            );
            return;
        }
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let memory = &mut *memory;
        let model = match memory.models.get(model) {
            Some(name) => Arc::clone(name),
            None => {
                let name: Arc<str> = Arc::from(model);
                memory.models.insert(Arc::clone(&name));
                name
            }
        };
        let seq = memory.next_seq;
        memory.next_seq += 1;
        let id: Arc<str> = Arc::from(id);
        let slot = Slot {
            seq,
            id: Arc::clone(&id),
            model,
            version,
            predicted: predicted.into(),
            evaluated: false,
        };
        let at = (seq % self.capacity as u64) as usize;
        if at == memory.slots.len() {
            memory.slots.push(slot);
        } else {
            let old = std::mem::replace(&mut memory.slots[at], slot);
            // Evict the oldest, unless its id was remembered again since.
            if memory.index.get(&old.id) == Some(&old.seq) {
                memory.index.remove(&old.id);
            }
        }
        memory.index.insert(id, seq);
    }

    /// Records the true label. Counts `inference_feedback_total{model, version,
    /// outcome="correct"|"incorrect"}` and returns what happened. Feedback
    /// that matches nothing is counted in `inference_feedback_rejected_total{reason}`.
    pub fn feedback(&self, model: &str, id: &str, label: &str) -> Result<Evaluated, FeedbackError> {
        let result = self.evaluate(model, id, label);
        match &result {
            Ok((model, evaluated)) => {
                let outcome = if evaluated.correct {
                    "correct"
                } else {
                    "incorrect"
                };
                metrics::counter!(
                    FEEDBACK_TOTAL,
                    "model" => model.to_string(),
                    "version" => evaluated.version.to_string(),
                    "outcome" => outcome,
                )
                .increment(1);
            }
            Err(e) => {
                metrics::counter!(FEEDBACK_REJECTED_TOTAL, "reason" => e.reason()).increment(1);
            }
        }
        result.map(|(_, evaluated)| evaluated)
    }

    /// Marks the prediction evaluated; returns its (interned) model name too.
    fn evaluate(
        &self,
        model: &str,
        id: &str,
        label: &str,
    ) -> Result<(Arc<str>, Evaluated), FeedbackError> {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let seq = *memory.index.get(id).ok_or(FeedbackError::UnknownId)?;
        let at = (seq % self.capacity.max(1) as u64) as usize;
        let slot = memory
            .slots
            .get_mut(at)
            .filter(|s| s.seq == seq)
            .ok_or(FeedbackError::UnknownId)?;
        if &*slot.model != model {
            return Err(FeedbackError::WrongModel);
        }
        if slot.evaluated {
            return Err(FeedbackError::AlreadyEvaluated);
        }
        slot.evaluated = true;
        let evaluated = Evaluated {
            version: slot.version,
            predicted: slot.predicted.to_string(),
            correct: &*slot.predicted == label,
        };
        Ok((Arc::clone(&slot.model), evaluated))
    }

    /// The number of predictions remembered (evaluated ones included, until evicted).
    pub fn len(&self) -> usize {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.index.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(line_prefix: &str) -> Option<u64> {
        let needle = format!("{line_prefix} ");
        kit::metrics::render()
            .lines()
            .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
    }

    fn outcomes(model: &str, version: u64, outcome: &str) -> Option<u64> {
        counter(&format!(
            "{FEEDBACK_TOTAL}{{model=\"{model}\",version=\"{version}\",outcome=\"{outcome}\"}}"
        ))
    }

    #[test]
    fn memories_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PredictionMemory>();
    }

    #[test]
    fn correct_and_incorrect_feedback_are_counted() {
        kit::metrics::install();
        let model = "feedback-count-test";
        let memory = PredictionMemory::new(10);
        memory.remember("r1", model, 1, "7");
        memory.remember("r2", model, 1, "3");
        memory.remember("r3", model, 2, "3");
        assert_eq!(memory.len(), 3);

        assert_eq!(
            memory.feedback(model, "r1", "7"),
            Ok(Evaluated {
                version: 1,
                predicted: "7".into(),
                correct: true
            })
        );
        assert_eq!(
            memory.feedback(model, "r2", "8"),
            Ok(Evaluated {
                version: 1,
                predicted: "3".into(),
                correct: false
            })
        );
        assert!(memory.feedback(model, "r3", "3").unwrap().correct);
        assert_eq!(outcomes(model, 1, "correct"), Some(1));
        assert_eq!(outcomes(model, 1, "incorrect"), Some(1));
        assert_eq!(outcomes(model, 2, "correct"), Some(1));
        assert_eq!(outcomes(model, 2, "incorrect"), None);
    }

    #[test]
    fn feedback_given_twice_is_counted_once() {
        kit::metrics::install();
        let model = "feedback-twice-test";
        let memory = PredictionMemory::new(10);
        memory.remember("r1", model, 1, "7");
        assert!(memory.feedback(model, "r1", "7").is_ok());
        assert_eq!(
            memory.feedback(model, "r1", "7"),
            Err(FeedbackError::AlreadyEvaluated)
        );
        assert_eq!(
            memory.feedback(model, "r1", "2"),
            Err(FeedbackError::AlreadyEvaluated)
        );
        assert_eq!(outcomes(model, 1, "correct"), Some(1));
        assert_eq!(outcomes(model, 1, "incorrect"), None);
        assert!(counter(&format!(
            "{FEEDBACK_REJECTED_TOTAL}{{reason=\"already_evaluated\"}}"
        ))
        .is_some_and(|n| n >= 2));
    }

    #[test]
    fn the_oldest_is_evicted_at_capacity() {
        let memory = PredictionMemory::new(3);
        for i in 0..5 {
            memory.remember(&format!("r{i}"), "m", 1, "0");
        }
        assert_eq!(memory.len(), 3);
        for evicted in ["r0", "r1"] {
            assert_eq!(
                memory.feedback("m", evicted, "0"),
                Err(FeedbackError::UnknownId)
            );
        }
        for kept in ["r2", "r3", "r4"] {
            assert!(memory.feedback("m", kept, "0").is_ok(), "{kept}");
        }
        // A long run stays within capacity.
        for i in 0..1000 {
            memory.remember(&format!("x{i}"), "m", 1, "0");
        }
        assert_eq!(memory.len(), 3);
        assert!(memory.feedback("m", "x999", "0").is_ok());
        assert_eq!(
            memory.feedback("m", "x996", "0"),
            Err(FeedbackError::UnknownId)
        );
    }

    #[test]
    fn an_id_remembered_again_is_replaced_and_not_evicted_early() {
        let memory = PredictionMemory::new(3);
        memory.remember("a", "m", 1, "1");
        memory.remember("b", "m", 1, "1");
        memory.remember("a", "m", 2, "2"); // replaces a's first prediction
        assert_eq!(memory.len(), 2);
        memory.remember("c", "m", 1, "1"); // overwrites a's stale slot: a stays
        assert_eq!(memory.len(), 3);
        assert_eq!(
            memory.feedback("m", "a", "2"),
            Ok(Evaluated {
                version: 2,
                predicted: "2".into(),
                correct: true
            })
        );
        memory.remember("d", "m", 1, "1"); // evicts b
        assert_eq!(
            memory.feedback("m", "b", "1"),
            Err(FeedbackError::UnknownId)
        );
        assert_eq!(memory.len(), 3);
    }

    #[test]
    fn unknown_ids_and_other_models_are_refused() {
        let memory = PredictionMemory::new(10);
        assert_eq!(
            memory.feedback("m", "never", "1"),
            Err(FeedbackError::UnknownId)
        );
        memory.remember("r1", "digits", 1, "4");
        assert_eq!(
            memory.feedback("other", "r1", "4"),
            Err(FeedbackError::WrongModel)
        );
        // Refused feedback does not use up the prediction.
        assert!(memory.feedback("digits", "r1", "4").unwrap().correct);
    }

    #[test]
    fn long_or_empty_ids_are_not_remembered() {
        let memory = PredictionMemory::new(10);
        let long = "x".repeat(MAX_ID_BYTES + 1);
        memory.remember(&long, "m", 1, "1");
        memory.remember("", "m", 1, "1");
        memory.remember("ok", "m", 1, &"y".repeat(MAX_LABEL_BYTES + 1));
        assert!(memory.is_empty());
        let longest = "x".repeat(MAX_ID_BYTES);
        memory.remember(&longest, "m", 1, "1");
        assert_eq!(memory.len(), 1);
        assert_eq!(
            memory.feedback("m", &long, "1"),
            Err(FeedbackError::UnknownId)
        );

        let none = PredictionMemory::new(0);
        none.remember("r", "m", 1, "1");
        assert!(none.is_empty());
        assert_eq!(none.feedback("m", "r", "1"), Err(FeedbackError::UnknownId));
    }
}
