//! The special functions behind the tests, written out because each is a
//! few lines and the crate should not pull a statistics library for them:
//! the complementary error function (normal tails down to 1e-300), the
//! log-gamma function (exact binomial coefficients for Fisher's test), the
//! hypergeometric upper tail and the Wilson score bound.
//!
//! Accuracy is checked in `tests/known_values.rs` against reference values
//! computed in double precision elsewhere (Python's `math.erfc`, exact
//! rational sums for the hypergeometric).

use std::f64::consts::{PI, SQRT_2};

/// 2/√π.
const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// Complementary error function, `1 - erf(x)`, with a relative error near
/// 1e-15 for every `x`, including the far right tail where `1 - erf(x)`
/// computed naively would be zero.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 1.0 {
        1.0 - erf_series(x)
    } else {
        erfc_continued_fraction(x)
    }
}

/// erf(x) = 2x/√π · e^(-x²) · Σ (2x²)^n / (1·3·…·(2n+1)): every term is
/// positive, so there is no cancellation; used for 0 ≤ x < 1, where
/// erfc(x) > 0.157 and `1 - erf` loses less than one digit.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut n = 0.0;
    while term > sum * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    FRAC_2_SQRT_PI * x * (-x2).exp() * sum
}

/// erfc(x) = e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))),
/// evaluated by the modified Lentz method: for x ≥ 1, a few hundred
/// terms at most.
fn erfc_continued_fraction(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for n in 1..5_000 {
        let a = f64::from(n) / 2.0;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        d = 1.0 / d;
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (PI.sqrt() * f)
}

/// P(Z > z) for a standard normal Z: the one-sided p-value of a z statistic.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / SQRT_2)
}

/// P(Z ≤ z) for a standard normal Z.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: about 15 digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1-x) = π / sin(πx).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// P(X ≥ k) for X hypergeometric: `draws` taken without replacement from
/// a population of `population` items of which `successes` are marked.
///
/// The point probability is computed once from log-gamma, then neighbours
/// by their exact ratio, summing the shorter tail and stopping when terms
/// no longer matter: the cost is a few standard deviations' worth of terms.
pub fn hypergeometric_sf(k: u64, population: u64, successes: u64, draws: u64) -> f64 {
    let (n, big_k, big_n) = (draws, successes, population);
    let lo = (n + big_k).saturating_sub(big_n);
    let hi = n.min(big_k);
    if k <= lo {
        return 1.0;
    }
    if k > hi {
        return 0.0;
    }
    let ln_point =
        |x: u64| ln_choose(big_k, x) + ln_choose(big_n - big_k, n - x) - ln_choose(big_n, n);
    let mean = n as f64 * big_k as f64 / big_n as f64;
    // N - K - n, negative when the marked items outnumber the unmarked draws.
    let others = big_n as f64 - big_k as f64 - n as f64;
    if k as f64 > mean {
        // Upper tail from k: past the mode, terms only decrease.
        let mut term = ln_point(k).exp();
        let mut sum = term;
        let mut x = k;
        while x < hi {
            let xf = x as f64;
            term *= (big_k as f64 - xf) * (n as f64 - xf) / ((xf + 1.0) * (others + xf + 1.0));
            sum += term;
            x += 1;
            if term < sum * 1e-17 {
                break;
            }
        }
        sum.min(1.0)
    } else {
        // 1 - P(X ≤ k-1): the lower tail from k-1 down is the short one.
        let mut x = k - 1;
        let mut term = ln_point(x).exp();
        let mut sum = term;
        while x > lo {
            let xf = x as f64;
            let next =
                term * xf * (others + xf) / ((big_k as f64 - xf + 1.0) * (n as f64 - xf + 1.0));
            sum += next;
            x -= 1;
            if next < sum * 1e-17 && next <= term {
                break;
            }
            term = next;
        }
        (1.0 - sum).max(0.0)
    }
}

/// Lower end of the Wilson score interval for `bad` of `total` with normal
/// quantile `z` (1.96: the 95% two-sided interval). Unlike `bad/total ±
/// z·se`, it stays sensible at 0 or 1 bad events and for tiny totals.
pub fn wilson_lower(bad: u64, total: u64, z: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let n = total as f64;
    let p = bad as f64 / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}
