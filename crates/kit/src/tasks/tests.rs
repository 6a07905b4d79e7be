use super::*;
use crate::health::Readiness;

fn dead_task_counter(module: &str, task: &str) -> Option<u64> {
    let needle = format!("{TASK_FAILURES}{{module=\"{module}\",task=\"{task}\"}} ");
    crate::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
}

#[tokio::test]
async fn a_task_that_fails_turns_readiness_false_and_is_counted() {
    crate::metrics::install();
    let supervisor = Supervisor::new();
    let readiness = Readiness::new();
    readiness.add_check(supervisor.readiness_check(&["tasks-unready"]));
    let tasks = supervisor.for_module("tasks-unready");
    assert!(readiness.failures().await.is_empty());

    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    tasks.spawn("pump", OnFailure::Unready, async move {
        let _ = killed.await;
        Err::<(), _>("connection lost for good")
    });
    let _ = kill.send(());
    tasks.shutdown().await;

    let failures = readiness.failures().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].1.contains("tasks-unready/pump"), "{failures:?}");
    assert_eq!(dead_task_counter("tasks-unready", "pump"), Some(1));
    assert_eq!(supervisor.failures()[0].reason, "connection lost for good");
}

#[tokio::test]
async fn a_panicking_exit_task_signals_the_fatal_failure() {
    crate::metrics::install();
    let supervisor = Supervisor::new();
    let tasks = supervisor.for_module("tasks-exit");
    tasks.spawn("relay", OnFailure::Exit, async {
        if true {
            panic!("invariant broken");
        }
        Ok::<(), String>(())
    });
    let failure = supervisor.fatal().await;
    assert_eq!((failure.module, failure.task), ("tasks-exit", "relay"));
    assert!(failure.reason.contains("invariant broken"), "{failure}");
    assert_eq!(dead_task_counter("tasks-exit", "relay"), Some(1));
}

#[tokio::test]
async fn returning_before_shutdown_is_a_death_but_after_it_is_not() {
    let supervisor = Supervisor::new();
    let early = supervisor.for_module("tasks-early");
    early.spawn("loop", OnFailure::Unready, async { Ok::<(), String>(()) });
    // One thread: yielding lets the task run to its end before shutdown.
    tokio::task::yield_now().await;
    early.shutdown().await;
    assert_eq!(supervisor.failures().len(), 1);
    assert_eq!(supervisor.failures()[0].reason, "ended before shutdown");

    let clean = supervisor.for_module("tasks-clean");
    let stop = clean.stop_token();
    clean.spawn("loop", OnFailure::Exit, async move {
        stop.cancelled().await;
        Ok::<(), String>(())
    });
    clean.shutdown().await;
    assert_eq!(supervisor.failures().len(), 1, "a clean stop is no failure");
}

#[tokio::test]
async fn readiness_of_one_module_ignores_another_modules_dead_task() {
    let supervisor = Supervisor::new();
    let other = supervisor.for_module("tasks-other");
    other.spawn("x", OnFailure::Unready, async { Err::<(), _>("boom") });
    other.shutdown().await;
    let mine = supervisor.readiness_check(&["tasks-mine"]);
    assert!(mine.check().await.is_ok());
    let all = supervisor.readiness_check(&[]);
    assert!(all.check().await.is_err());
}
