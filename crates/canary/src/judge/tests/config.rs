//! Configuration: defaults, parsing, and bad values refused with the
//! name of the setting.

use crate::judge::{
    per_look_significance, ConfigError, Judge, JudgeConfig, LatencyConfig, MetricWeight,
    ProportionConfig, ScoringConfig, SloGuardConfig,
};

#[test]
fn defaults_are_valid_and_documented_values() {
    let c = JudgeConfig::default();
    c.validate().unwrap();
    assert_eq!(c.significance, 0.05);
    assert_eq!(
        (
            c.proportion.min_effect,
            c.proportion.min_samples,
            c.proportion.min_expected_bad
        ),
        (0.001, 50, 3.0)
    );
    assert_eq!((c.latency.min_effect, c.latency.min_samples), (0.10, 50));
    assert_eq!((c.scoring.pass, c.scoring.marginal), (95.0, 75.0));
    SloGuardConfig::default().validate().unwrap();
    MetricWeight::default().validate().unwrap();
}

#[test]
fn partial_config_fills_in_defaults() {
    let c: JudgeConfig =
        serde_json::from_str(r#"{"latency": {"min_effect": 0.2}, "scoring": {"marginal": 50}}"#)
            .unwrap();
    assert_eq!(
        c.latency,
        LatencyConfig {
            min_effect: 0.2,
            min_samples: 50
        }
    );
    assert_eq!(
        c.scoring,
        ScoringConfig {
            pass: 95.0,
            marginal: 50.0
        }
    );
    assert_eq!(c.proportion, ProportionConfig::default());
    let w: MetricWeight = serde_json::from_str(r#"{"critical": true}"#).unwrap();
    assert_eq!(
        w,
        MetricWeight {
            weight: 1.0,
            critical: true
        }
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    for (json, key) in [
        (r#"{"signficance": 0.01}"#, "signficance"),
        (r#"{"latency": {"min_efect": 0.2}}"#, "min_efect"),
        (r#"{"scoring": {"passing": 90}}"#, "passing"),
        (r#"{"proportion": {"floor": 0.01}}"#, "floor"),
    ] {
        let err = serde_json::from_str::<JudgeConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("unknown field `{key}`")),
            "{json}: {err}"
        );
    }
    let err = serde_json::from_str::<SloGuardConfig>(r#"{"burn_rate": 14.4}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `burn_rate`"), "{err}");
    let err = serde_json::from_str::<MetricWeight>(r#"{"weigth": 2}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `weigth`"), "{err}");
}

fn field_of(err: ConfigError) -> String {
    match err {
        ConfigError::OutOfRange { field, .. } => field.to_owned(),
        ConfigError::MarginalAbovePass { .. } => "scoring.marginal".to_owned(),
    }
}

#[test]
fn out_of_range_values_are_refused_with_the_field() {
    let base = JudgeConfig::default();
    let cases: Vec<(JudgeConfig, &str)> = vec![
        (
            JudgeConfig {
                significance: 0.0,
                ..base.clone()
            },
            "significance",
        ),
        (
            JudgeConfig {
                significance: 0.5,
                ..base.clone()
            },
            "significance",
        ),
        (
            JudgeConfig {
                significance: f64::NAN,
                ..base.clone()
            },
            "significance",
        ),
        (
            JudgeConfig {
                proportion: ProportionConfig {
                    min_effect: 1.0,
                    ..Default::default()
                },
                ..base.clone()
            },
            "proportion.min_effect",
        ),
        (
            JudgeConfig {
                proportion: ProportionConfig {
                    min_effect: -0.01,
                    ..Default::default()
                },
                ..base.clone()
            },
            "proportion.min_effect",
        ),
        (
            JudgeConfig {
                proportion: ProportionConfig {
                    min_samples: 0,
                    ..Default::default()
                },
                ..base.clone()
            },
            "proportion.min_samples",
        ),
        (
            JudgeConfig {
                proportion: ProportionConfig {
                    min_expected_bad: -1.0,
                    ..Default::default()
                },
                ..base.clone()
            },
            "proportion.min_expected_bad",
        ),
        (
            JudgeConfig {
                latency: LatencyConfig {
                    min_effect: -0.1,
                    ..Default::default()
                },
                ..base.clone()
            },
            "latency.min_effect",
        ),
        (
            JudgeConfig {
                latency: LatencyConfig {
                    min_effect: f64::INFINITY,
                    ..Default::default()
                },
                ..base.clone()
            },
            "latency.min_effect",
        ),
        (
            JudgeConfig {
                latency: LatencyConfig {
                    min_samples: 1,
                    ..Default::default()
                },
                ..base.clone()
            },
            "latency.min_samples",
        ),
        (
            JudgeConfig {
                scoring: ScoringConfig {
                    pass: 101.0,
                    marginal: 75.0,
                },
                ..base.clone()
            },
            "scoring.pass",
        ),
        (
            JudgeConfig {
                scoring: ScoringConfig {
                    pass: 95.0,
                    marginal: -1.0,
                },
                ..base.clone()
            },
            "scoring.marginal",
        ),
        (
            JudgeConfig {
                scoring: ScoringConfig {
                    pass: f64::NAN,
                    marginal: 75.0,
                },
                ..base.clone()
            },
            "scoring.pass",
        ),
        (
            JudgeConfig {
                scoring: ScoringConfig {
                    pass: 70.0,
                    marginal: 75.0,
                },
                ..base.clone()
            },
            "scoring.marginal",
        ),
    ];
    for (config, field) in cases {
        let err = config.validate().unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(field), "{field}: {message}");
        assert_eq!(field_of(err.clone()), field, "{message}");
        // Judge::new refuses the same configuration.
        assert_eq!(Judge::new(config, 10, 2).unwrap_err(), err);
    }
    assert_eq!(
        ScoringConfig {
            pass: 70.0,
            marginal: 75.0
        }
        .validate()
        .unwrap_err()
        .to_string(),
        "scoring.marginal = 75 is above scoring.pass = 70: must be at most the pass score"
    );
    assert_eq!(
        ProportionConfig {
            min_effect: 1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string(),
        "proportion.min_effect = 1: must be at least 0 and below 1"
    );
}

#[test]
fn guard_and_weight_ranges() {
    let base = SloGuardConfig::default();
    for (config, field) in [
        (
            SloGuardConfig {
                objective: 0.0,
                ..base.clone()
            },
            "slo_guard.objective",
        ),
        (
            SloGuardConfig {
                objective: 1.0,
                ..base.clone()
            },
            "slo_guard.objective",
        ),
        (
            SloGuardConfig {
                page_burn_rate: -1.0,
                ..base.clone()
            },
            "slo_guard.page_burn_rate",
        ),
        (
            SloGuardConfig {
                min_total: 0,
                ..base.clone()
            },
            "slo_guard.min_total",
        ),
    ] {
        assert_eq!(field_of(config.validate().unwrap_err()), field);
    }
    for weight in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = MetricWeight {
            weight,
            critical: false,
        }
        .validate()
        .unwrap_err();
        assert_eq!(field_of(err), "weight");
    }
}

#[test]
fn per_look_significance_divides_and_checks() {
    assert_eq!(per_look_significance(0.05, 90, 2), Ok(0.05 / 180.0));
    assert_eq!(per_look_significance(0.05, 1, 1), Ok(0.05));
    assert_eq!(
        field_of(per_look_significance(0.05, 0, 2).unwrap_err()),
        "planned_looks"
    );
    assert_eq!(
        field_of(per_look_significance(0.05, 10, 0).unwrap_err()),
        "metrics"
    );
    assert_eq!(
        field_of(per_look_significance(1.5, 10, 2).unwrap_err()),
        "significance"
    );
    assert_eq!(
        Judge::new(JudgeConfig::default(), 90, 2)
            .unwrap()
            .per_look_significance(),
        0.05 / 180.0
    );
}
