//! GitOps for canaries: a directory of specs (a Git checkout, a mounted
//! ConfigMap) is read every interval, and a spec whose exact text has not
//! run before is started. Editing a spec (a new model version, new
//! steps) starts its canary; a spec that ran is not run again.

use crate::controller::{Controller, ControllerError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest spec file read.
const MAX_SPEC_BYTES: u64 = 64 * 1024;

/// Watches `dir` until `stop`.
pub async fn run(
    controller: Controller,
    dir: PathBuf,
    interval: Duration,
    stop: CancellationToken,
) {
    // Texts that failed to start, so a bad spec is reported once, not at
    // every read; fixing the file changes its text and tries again.
    let mut refused: HashSet<String> = HashSet::new();
    loop {
        scan(&controller, &dir, &mut refused).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass over `dir`; returns the runs it started.
pub async fn scan(controller: &Controller, dir: &Path, refused: &mut HashSet<String>) -> usize {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "canary watch_dir cannot be read");
            return 0;
        }
    };
    let mut files = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        let small = entry
            .metadata()
            .await
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_SPEC_BYTES);
        if yaml && small {
            files.push(path);
        }
    }
    files.sort();
    let mut started = 0;
    for path in files {
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        if refused.contains(&text) {
            continue;
        }
        match controller.store().has_spec(&text).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "canary store unavailable; watch pass skipped");
                return started;
            }
        }
        match controller.start(&text).await {
            Ok(run) => {
                started += 1;
                tracing::info!(spec = %path.display(), run = %run.id, "canary started from watch_dir");
                controller.note_spec_reload(&path, &run);
            }
            // Another run holds the target: try again next pass.
            Err(ControllerError::AlreadyRunning(_)) => {}
            Err(e) if transient(&e) => {
                tracing::warn!(spec = %path.display(), error = %e, "canary could not start yet");
            }
            Err(e) => {
                tracing::error!(spec = %path.display(), error = %e, "canary spec refused");
                refused.insert(text);
            }
        }
    }
    started
}

fn transient(e: &ControllerError) -> bool {
    match e {
        ControllerError::Target(t) => t.is_transient(),
        ControllerError::Metrics(_) | ControllerError::Store(_) => true,
        _ => false,
    }
}
