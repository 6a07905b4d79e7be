//! The run store on both engines: one unfinished run per target (the
//! second start is refused by the database itself), state and decision
//! saved together, finished runs free their target.

use canary::controller::{Action, Decision, Phase, RunState};
use canary::store::RunStore;
use kit::storage::{PoolConfig, StoreError};
use std::time::{Duration, SystemTime};

fn state(id: &str, target: &str) -> RunState {
    RunState {
        id: id.to_string(),
        name: "n".to_string(),
        target: target.to_string(),
        phase: Phase::Running,
        step: 0,
        weight: 5.0,
        started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        step_started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        looks: 0,
        metric_errors: 0,
        reason: None,
    }
}

async fn conformance(store: RunStore) {
    let a = state("a", "gateway/links");
    store.insert(&a, "spec-a").await.unwrap();
    let twice = store.insert(&state("b", "gateway/links"), "spec-b").await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    store
        .insert(&state("c", "inference/digits"), "spec-c")
        .await
        .unwrap();
    assert!(store.has_spec("spec-a").await.unwrap());
    assert!(!store.has_spec("spec-b").await.unwrap());

    let mut a = a;
    a.looks = 1;
    a.step = 1;
    a.weight = 10.0;
    let decision = Decision {
        at: a.started_at + Duration::from_secs(30),
        step: 0,
        weight: 5.0,
        action: Action::Advance { to: 10.0 },
        summary: "passed 5%".into(),
        judgement: None,
    };
    store.save(&a, Some(&decision)).await.unwrap();
    let stored = store.get("a").await.unwrap().expect("stored");
    assert_eq!(stored.state, a);
    assert_eq!(stored.spec, "spec-a");
    let decisions = store.decisions("a", 0, 100).await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].0, 1);
    assert_eq!(decisions[0].1.action, Action::Advance { to: 10.0 });

    let unfinished: Vec<String> = store
        .list(true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state.id)
        .collect();
    assert_eq!(unfinished.len(), 2);

    // Finishing frees the target for the next run.
    a.phase = Phase::RolledBack;
    a.weight = 0.0;
    a.looks = 2;
    store.save(&a, None).await.unwrap();
    store
        .insert(&state("d", "gateway/links"), "spec-d")
        .await
        .unwrap();
    assert_eq!(store.list(false, 10).await.unwrap().len(), 3);
    assert!(store.get("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_keeps_one_unfinished_run_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("canary.db").display());
    conformance(
        RunStore::connect(&url, &PoolConfig::default())
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres_keeps_one_unfinished_run_per_target() {
    let url = testkit::postgres().create_database();
    conformance(
        RunStore::connect(&url, &PoolConfig::default())
            .await
            .unwrap(),
    )
    .await;
}
