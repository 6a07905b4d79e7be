//! Metric names of the module. Labels are bounded: `model` and `version`
//! of loaded versions only, `class` from the model's labels (or the class
//! index), `kind` and `outcome` from fixed lists; never request ids.

/// Histogram: one infer request, end to end inside the module.
pub const REQUEST_DURATION: &str = "inference_request_duration_seconds";
/// Histogram: time a request waited for its batch to start running.
pub const QUEUE_DURATION: &str = "inference_queue_duration_seconds";
/// Histogram: time its batch ran on the compute pool.
pub const COMPUTE_DURATION: &str = "inference_compute_duration_seconds";
/// Histogram: rows per batch run.
pub const BATCH_SIZE: &str = "inference_batch_size";
/// Counter: failed infer requests by `kind` (`bad_input`, `queue_full`,
/// `runtime`, `unloaded`).
pub const ERRORS: &str = "inference_errors_total";
/// Counter: predicted rows by `class`.
pub const PREDICTIONS: &str = "inference_predictions_total";
/// Counter: mirrored requests by `outcome` (`agree`, `disagree`, `error`,
/// `dropped`), labelled with the shadow version; the agreement ratio is
/// agree / (agree + disagree).
pub const SHADOW: &str = "inference_shadow_total";
/// Histogram: a mirrored request on its shadow version.
pub const SHADOW_DURATION: &str = "inference_shadow_duration_seconds";
/// Counter: version loads by `outcome` (`loaded`, `failed`).
pub const MODEL_LOADS: &str = "inference_model_loads_total";

/// Distinct `class` label values kept per version; more are `other`.
pub const MAX_CLASS_LABELS: usize = 256;

pub(crate) fn describe() {
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Infer requests, from decoded body to answer"
    );
    metrics::describe_histogram!(
        QUEUE_DURATION,
        metrics::Unit::Seconds,
        "Time an infer request waited for its batch"
    );
    metrics::describe_histogram!(
        COMPUTE_DURATION,
        metrics::Unit::Seconds,
        "Time the batch of an infer request ran"
    );
    metrics::describe_histogram!(BATCH_SIZE, "Rows per batch run");
    metrics::describe_counter!(ERRORS, "Failed infer requests by kind");
    metrics::describe_counter!(PREDICTIONS, "Predicted rows by class");
    metrics::describe_counter!(SHADOW, "Mirrored requests by outcome against the primary");
    metrics::describe_histogram!(
        SHADOW_DURATION,
        metrics::Unit::Seconds,
        "Mirrored requests on the shadow version"
    );
    metrics::describe_counter!(MODEL_LOADS, "Model version loads by outcome");
}
