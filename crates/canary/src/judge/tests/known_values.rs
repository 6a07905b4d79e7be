//! The statistics against values computed independently: Python's
//! `math.erfc`/`math.lgamma`, exact rational hypergeometric sums, a
//! brute-force pair count with midranks for Mann-Whitney.

use crate::judge::math::{erfc, hypergeometric_sf, ln_gamma, normal_cdf, normal_sf, wilson_lower};
use crate::judge::proportion::{fisher_exact_greater, test_greater, z_test_greater};
use crate::judge::{mann_whitney_greater, Counts, Method, RankTestError};

fn counts(bad: u64, total: u64) -> Counts {
    Counts { bad, total }
}

fn close(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= rel * expected.abs() || actual == expected
}

#[test]
fn erfc_matches_reference_values_to_fourteen_digits() {
    // Python 3 math.erfc.
    let reference = [
        (0.0, 1.0),
        (0.1, 0.8875370839817152),
        (0.5, 0.4795001221869535),
        (0.99, 0.1614919304446302),
        (1.0, 0.15729920705028513),
        (1.01, 0.1531895037717233),
        (1.2, 0.08968602177036465),
        (1.7, 0.016209541409225436),
        (1.5, 0.033894853524689274),
        (1.99, 0.004888586800383003),
        (2.0, 0.004677734981047265),
        (2.5, 0.0004069520174449589),
        (3.0, 2.2090496998585438e-05),
        (4.0, 1.541725790028002e-08),
        (5.0, 1.5374597944280351e-12),
        (6.0, 2.1519736712498916e-17),
        (8.0, 1.1224297172982928e-29),
        (10.0, 2.088487583762545e-45),
        (15.0, 7.212994172451206e-100),
        (20.0, 5.3958656116079005e-176),
        (26.0, 5.663192408856143e-296),
        (-1.0, 1.842700792949715),
        (-3.0, 1.9999779095030015),
    ];
    for (x, expected) in reference {
        let got = erfc(x);
        assert!(
            close(got, expected, 1e-13),
            "erfc({x}) = {got:e}, expected {expected:e}"
        );
    }
    assert!(erfc(f64::NAN).is_nan());
    assert_eq!(erfc(40.0), 0.0);
}

#[test]
fn normal_tails_are_symmetric_and_known() {
    // Φ(1.959963984540054) = 0.975, Φ(1.6448536269514722) = 0.95.
    assert!(close(normal_cdf(1.959963984540054), 0.975, 1e-14));
    assert!(close(normal_sf(1.6448536269514722), 0.05, 1e-13));
    assert!(close(normal_sf(-1.6448536269514722), 0.95, 1e-14));
    assert!(close(normal_cdf(0.0), 0.5, 1e-15));
    for z in [-8.0, -2.0, -0.3, 0.0, 0.7, 3.0, 8.0] {
        assert!((normal_cdf(z) + normal_sf(z) - 1.0).abs() < 1e-15, "z={z}");
    }
    // Far tail, relative: P(Z > 10) = 7.619853024160527e-24.
    assert!(close(normal_sf(10.0), 7.619853024160527e-24, 1e-13));
}

#[test]
fn ln_gamma_matches_reference() {
    let reference = [
        (0.5, 0.5723649429247004),
        (1.0, 0.0),
        (2.0, 0.0),
        (3.5, 1.2009736023470738),
        (10.0, 12.801827480081467),
        (100.0, 359.1342053695754),
        (1000.5, 5908.674175848678),
        (1e6, 12815504.569147611),
    ];
    for (x, expected) in reference {
        let got = ln_gamma(x);
        assert!(
            (got - expected).abs() <= 1e-13 * expected.abs().max(1.0),
            "lnΓ({x}) = {got}, expected {expected}"
        );
    }
}

#[test]
fn fisher_matches_hand_checked_tables() {
    // Lady tasting tea: 3 of 4 vs 1 of 4 bad. P = (C(4,3)C(4,1) + C(4,4)C(4,0)) / C(8,4) = 17/70.
    let p = fisher_exact_greater(&counts(3, 4), &counts(1, 4));
    assert!(close(p, 17.0 / 70.0, 1e-12), "{p}");
    // Exact rational sums (Python fractions + math.comb).
    let cases = [
        ((26, 500), (3, 3000), 1.445079219833687e-19),
        ((5, 100), (2, 1900), 5.495280232842563e-06),
        ((2, 50), (1, 950), 0.007121450107422051),
        ((40, 200), (30, 300), 0.0013645828200545469),
        // Below the expected count: the complement branch.
        ((10, 1000), (30, 3000), 0.561005006996079),
        ((3, 1000), (10, 3000), 0.6677764580931832),
        ((190, 200), (280, 300), 0.28508599240547333),
    ];
    for ((b1, n1), (b2, n2), expected) in cases {
        let p = fisher_exact_greater(
            &Counts { bad: b1, total: n1 },
            &Counts { bad: b2, total: n2 },
        );
        assert!(
            close(p, expected, 1e-9),
            "{b1}/{n1} vs {b2}/{n2}: {p:e}, expected {expected:e}"
        );
    }
    // No bad event anywhere, or canary cleaner than baseline: no evidence.
    assert_eq!(fisher_exact_greater(&counts(0, 100), &counts(0, 100)), 1.0);
    assert!(fisher_exact_greater(&counts(0, 100), &counts(5, 100)) > 0.99);
}

#[test]
fn hypergeometric_tail_edges() {
    // Support bounds: k at or below the minimum → 1, above the maximum → 0.
    assert_eq!(hypergeometric_sf(0, 10, 3, 4), 1.0);
    assert_eq!(hypergeometric_sf(4, 10, 3, 4), 0.0);
    // Every item marked: X = draws surely.
    assert_eq!(hypergeometric_sf(4, 10, 10, 4), 1.0);
    // P(X ≥ 3) = C(3,3)C(7,1)/C(10,4) = 7/210.
    assert!(close(hypergeometric_sf(3, 10, 3, 4), 7.0 / 210.0, 1e-12));
}

#[test]
fn z_test_matches_hand_computation() {
    // 120/10000 vs 100/10000: pooled 0.011, se = √(0.011·0.989·2e-4),
    // z = (0.002 − 1e-4)/se = 1.288083789685613.
    let p = z_test_greater(&counts(120, 10_000), &counts(100, 10_000));
    assert!(close(p, 0.09885839875215773, 1e-12), "{p}");
    let p = z_test_greater(&counts(5200, 100_000), &counts(5000, 100_000));
    assert!(close(p, 0.021554827947211808, 1e-12), "{p}");
    assert_eq!(z_test_greater(&counts(0, 10), &counts(0, 10)), 1.0);
    assert_eq!(z_test_greater(&counts(0, 0), &counts(0, 10)), 1.0);
}

#[test]
fn the_switch_picks_fisher_for_rare_events_and_z_for_large_counts() {
    let rare = test_greater(&counts(26, 500), &counts(3, 3000)).unwrap();
    assert_eq!(rare.method, Method::FisherExact);
    let large = test_greater(&counts(5200, 100_000), &counts(5000, 100_000)).unwrap();
    assert_eq!(large.method, Method::ZTest);
    // Just below the switch both methods agree closely: the switch does not
    // jump. Smallest expected cell here = 40,000 · 1,999/80,000 = 999.5.
    let canary = counts(1050, 40_000);
    let baseline = counts(949, 40_000);
    let fisher = fisher_exact_greater(&canary, &baseline);
    let z = z_test_greater(&canary, &baseline);
    assert_eq!(
        test_greater(&canary, &baseline).unwrap().method,
        Method::FisherExact
    );
    assert!((fisher / z - 1.0).abs() < 0.05, "fisher {fisher:e} z {z:e}");
}

#[test]
fn mann_whitney_textbook_example_with_ties() {
    // canary 3 4 4 5 7 8 8 9, baseline 1 2 3 4 4 6 7. Midranks give
    // R₁ = 79, U = 79 − 8·9/2 = 43 (= brute-force pair count), tie groups
    // 3(×2), 4(×4), 7(×2), 8(×2): Σ(t³−t) = 6+60+6+6 = 78,
    // var = 8·7/12 · (16 − 78/(15·14)) = 72.9333…, z = (43 − 28 − ½)/√var.
    let canary: Vec<(f64, u64)> = [3., 4., 4., 5., 7., 8., 8., 9.]
        .iter()
        .map(|&v| (v, 1))
        .collect();
    let baseline: Vec<(f64, u64)> = [1., 2., 3., 4., 4., 6., 7.]
        .iter()
        .map(|&v| (v, 1))
        .collect();
    let mw = mann_whitney_greater(&canary, &baseline).unwrap();
    assert_eq!(mw.u, 43.0);
    assert_eq!((mw.n_canary, mw.n_baseline), (8, 7));
    assert!(close(mw.z, 1.6978720954921258, 1e-12), "z {}", mw.z);
    assert!(
        close(mw.p_value, 0.04476595247398177, 1e-10),
        "p {}",
        mw.p_value
    );
    assert!(close(mw.common_language, 43.0 / 56.0, 1e-15));

    // The same data as weights (what a histogram gives) → the same test.
    let canary_w = [(3.0, 1), (4.0, 2), (5.0, 1), (7.0, 1), (8.0, 2), (9.0, 1)];
    let baseline_w = [(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 2), (6.0, 1), (7.0, 1)];
    let weighted = mann_whitney_greater(&canary_w, &baseline_w).unwrap();
    assert_eq!(weighted, mw);

    // Swapping sides: U' = n₁n₂ − U, and no evidence the other way.
    let swapped = mann_whitney_greater(&baseline, &canary).unwrap();
    assert_eq!(swapped.u, 56.0 - 43.0);
    assert!(swapped.p_value > 0.9);
}

#[test]
fn mann_whitney_degenerate_inputs() {
    // All tied: no evidence.
    let all_tied = mann_whitney_greater(&[(1.0, 100)], &[(1.0, 300)]).unwrap();
    assert_eq!(all_tied.p_value, 1.0);
    assert_eq!(all_tied.common_language, 0.5);
    assert_eq!(
        mann_whitney_greater(&[], &[(1.0, 3)]),
        Err(RankTestError::Empty("canary"))
    );
    assert_eq!(
        mann_whitney_greater(&[(1.0, 3)], &[(2.0, 0)]),
        Err(RankTestError::Empty("baseline"))
    );
    assert_eq!(
        mann_whitney_greater(&[(1.0, 1), (f64::NAN, 1)], &[(2.0, 1)]),
        Err(RankTestError::NotANumber {
            side: "canary",
            index: 1
        })
    );
    // Complete separation of two histograms: tiny p, CL = 1.
    let sep = mann_whitney_greater(&[(5.0, 50)], &[(0.0, 400), (1.0, 550)]).unwrap();
    assert_eq!(sep.common_language, 1.0);
    assert!(sep.p_value < 1e-25, "{}", sep.p_value);
}

#[test]
fn wilson_lower_bound_matches_reference() {
    // Python, z = 1.96.
    let cases = [
        ((3, 60), 0.01714919117914121),
        ((2, 40), 0.013820377146101093),
        ((1, 10), 0.01787574951572113),
        ((5, 100), 0.021543361456313564),
        ((26, 500), 0.035730019909626536),
    ];
    for ((bad, total), expected) in cases {
        let got = wilson_lower(bad, total, 1.96);
        assert!(
            close(got, expected, 1e-12),
            "{bad}/{total}: {got} vs {expected}"
        );
    }
    assert_eq!(wilson_lower(0, 100, 1.96), 0.0);
    assert_eq!(wilson_lower(0, 0, 1.96), 0.0);
}
