use super::*;

fn slo(id: &str, remaining: Option<f64>) -> SloStatus {
    SloStatus {
        id: id.into(),
        service: "s".into(),
        name: id.into(),
        objective: 0.999,
        period_seconds: 30 * 86_400,
        sli: None,
        budget_remaining: remaining,
        budget_remaining_seconds: None,
        burn_rates: vec![],
        firing: vec![],
    }
}

#[test]
fn default_table() {
    let p = Policy::default();
    let verdict = |r: f64, kind| p.decide(&[slo("a", Some(r))], kind, false);
    assert!(verdict(0.8, ReleaseKind::Feature).allowed);
    assert_eq!(verdict(0.8, ReleaseKind::Feature).decision, "ship");
    assert_eq!(verdict(0.4, ReleaseKind::Feature).decision, "caution");
    assert!(verdict(0.4, ReleaseKind::Feature).allowed);
    let v = verdict(0.15, ReleaseKind::Feature);
    assert!(!v.allowed);
    assert_eq!(v.decision, "reliability-first");
    assert!(
        v.reason.starts_with("a: 15.0% of the error budget left"),
        "{}",
        v.reason
    );
    assert!(verdict(0.15, ReleaseKind::Fix).allowed);
    assert_eq!(verdict(0.05, ReleaseKind::Feature).decision, "freeze");
    assert_eq!(verdict(-0.5, ReleaseKind::Feature).decision, "freeze");
    assert!(verdict(-0.5, ReleaseKind::Fix).allowed);
}

#[test]
fn the_worst_slo_decides_and_missing_data_blocks() {
    let p = Policy::default();
    let v = p.decide(
        &[
            slo("a", Some(0.9)),
            slo("b", Some(0.05)),
            slo("c", Some(0.15)),
        ],
        ReleaseKind::Feature,
        false,
    );
    assert_eq!(v.decision, "freeze");
    assert!(v.reason.starts_with("b:"));
    let v = p.decide(
        &[slo("a", Some(0.9)), slo("d", None)],
        ReleaseKind::Fix,
        false,
    );
    assert!(!v.allowed);
    assert!(v.reason.contains("no SLI data"));
    assert!(
        p.decide(
            &[slo("a", Some(0.9)), slo("d", None)],
            ReleaseKind::Fix,
            true
        )
        .allowed
    );
}

#[test]
fn parses_a_policy_file() {
    let text = "version: reliable/v1\nkind: ErrorBudgetPolicy\nrules:\n  - below: 25%\n    decision: slow-down\n    allow: [fix]\n  - below: 0.05\n    decision: stop\n    allow: []\n";
    let p = Policy::parse("p.yaml", text).expect("valid");
    assert_eq!(p.rules()[0].decision, "stop");
    let v = p.decide(&[slo("a", Some(0.01))], ReleaseKind::Fix, false);
    assert!(!v.allowed);
    assert_eq!(
        p.decide(&[slo("a", Some(0.2))], ReleaseKind::Feature, false)
            .decision,
        "slow-down"
    );
}

#[test]
fn bad_policies_name_the_line() {
    let e = Policy::parse(
        "p.yaml",
        "version: reliable/v1\nkind: ErrorBudgetPolicy\nrules:\n  - below: 120%\n    decision: x\n",
    )
    .expect_err("bad");
    assert_eq!(
        e.to_string(),
        "p.yaml:4: field `rules[0].below`: `120%` must be above 0% and at most 100%"
    );
    let e = Policy::parse("p.yaml", "version: reliable/v1\nkind: ErrorBudgetPolicy\nrules:\n  - below: 10%\n    decision: x\n    allow: [deploy]\n").expect_err("bad");
    assert!(e.message.contains("not a release kind"), "{e}");
    assert_eq!(e.line, 6);
}

#[test]
fn the_repository_policy_parses() {
    let text = include_str!("../../../slo/policy/error-budget.yaml");
    let p = Policy::parse("slo/policy/error-budget.yaml", text).expect("valid");
    assert_eq!(p.rules().len(), 3);
}
