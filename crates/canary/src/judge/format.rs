//! Number formatting for evidence lines: short, and the same everywhere.

/// A p-value: three decimals down to 0.001, then scientific.
pub fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// A ratio as a percentage with enough decimals for 99.9% SLOs.
pub fn percent(ratio: f64) -> String {
    let pct = ratio * 100.0;
    if pct != 0.0 && pct.abs() < 0.1 {
        format!("{pct:.3}%")
    } else {
        format!("{pct:.2}%")
    }
}

/// A signed difference of ratios in percentage points.
pub fn points(diff: f64) -> String {
    let pp = diff * 100.0;
    if pp != 0.0 && pp.abs() < 0.1 {
        format!("{pp:+.3} pp")
    } else {
        format!("{pp:+.2} pp")
    }
}

/// An unsigned floor in percentage points.
pub fn floor_points(diff: f64) -> String {
    let pp = diff * 100.0;
    if pp != 0.0 && pp < 0.1 {
        format!("{pp:.3} pp")
    } else {
        format!("{pp:.2} pp")
    }
}

/// A duration given in seconds (the unit of Prometheus histograms).
pub fn seconds(s: f64) -> String {
    let a = s.abs();
    if !s.is_finite() {
        format!("{s}")
    } else if a >= 1.0 {
        format!("{s:.2} s")
    } else if a >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}
