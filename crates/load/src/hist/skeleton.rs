//! The parts of a plan the reports read (executor model, expected
//! statuses), rebuilt from a file: a merge has no scenario file to compile.

use crate::plan::{Executor, RequestPlan, ScenarioPlan, SetupStep, StatusSet};
use crate::results::ScenarioResults;
use crate::scenario::Template;
use http::Method;
use std::time::Duration;

pub(super) fn skeleton_request(name: &str, expect_status: StatusSet) -> RequestPlan {
    RequestPlan {
        name: name.to_string(),
        weight: 1,
        method: Method::GET,
        url: Template::literal(""),
        headers: Vec::new(),
        body: None,
        captures: Vec::new(),
        checks: Vec::new(),
        expect_status,
        timeout: Duration::from_secs(1),
    }
}

pub(super) fn skeleton_step(name: &str, expect_status: StatusSet) -> SetupStep {
    SetupStep {
        request: skeleton_request(name, expect_status),
        repeat: 0,
        concurrency: 1,
        insecure_tls: false,
    }
}

/// Only the model (open or closed) of the executor matters to the reports.
pub(super) fn skeleton_scenario(
    results: &ScenarioResults,
    requests: Vec<RequestPlan>,
) -> ScenarioPlan {
    let duration = results.duration;
    let executor = if results.executor == "constant-connections" {
        Executor::ConstantConnections { duration }
    } else {
        Executor::ConstantArrivalRate {
            rate: results.target_rate.unwrap_or(0.0),
            duration,
        }
    };
    ScenarioPlan {
        name: results.name.clone(),
        executor,
        start: results.start,
        connections: results.connections,
        http2: false,
        insecure_tls: false,
        warmup: Duration::ZERO,
        requests,
    }
}
