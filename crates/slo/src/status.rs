//! The per-SLO report: what `reliable slo status` prints and what `reliable
//! slo gate` decides on, whether it came from the live evaluator or from a
//! Prometheus running the generated rules.

use serde::{Deserialize, Serialize};
use std::fmt::{self, Write};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
/// Every SLO's SLI, budget and burn rates, live.
pub struct StatusReport {
    /// Where the numbers came from (`local` or a Prometheus URL).
    pub source: String,
    pub slos: Vec<SloStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowBurn {
    pub window: String,
    pub burn_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SloStatus {
    pub id: String,
    pub service: String,
    pub name: String,
    /// The objective as a ratio, e.g. 0.999.
    pub objective: f64,
    pub period_seconds: u64,
    /// Good events over the period (1 - error ratio); `None` without data.
    pub sli: Option<f64>,
    /// Share of the period's budget left; negative once overspent.
    pub budget_remaining: Option<f64>,
    /// The budget left as time at a full outage: remaining share x
    /// (1 - objective) x period.
    pub budget_remaining_seconds: Option<f64>,
    /// Burn rate per alert window, shortest first; `None` without data.
    pub burn_rates: Vec<WindowBurn>,
    /// Firing alerts: `page`, `ticket`, `absent`.
    pub firing: Vec<String>,
}

impl SloStatus {
    /// The budget left as time, from the budget share left.
    pub fn remaining_seconds(objective: f64, period_seconds: u64, remaining: f64) -> f64 {
        remaining * (1.0 - objective) * period_seconds as f64
    }
}

fn percent(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(
        || "no data".to_string(),
        |v| format!("{:.*}%", digits, v * 100.0),
    )
}

/// `3d 4h`, `12m 5s`: the two largest units.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".into();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let mut s = seconds.abs().round() as u64;
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    for (unit, size) in units {
        if s >= size && parts.len() < 2 {
            parts.push(format!("{}{unit}", s / size));
            s %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        return "0s".into();
    }
    format!("{sign}{}", parts.join(" "))
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "source: {}", self.source)?;
        for s in &self.slos {
            let mut line = String::new();
            let _ = write!(
                line,
                "\n{}  target {}  over {}\n  SLI {}  budget left {}\n  burn",
                s.id,
                percent(Some(s.objective), 3),
                human_duration(s.period_seconds as f64),
                percent(s.sli, 3),
                match (s.budget_remaining, s.budget_remaining_seconds) {
                    (Some(r), Some(t)) => format!("{:.1}% ({})", r * 100.0, human_duration(t)),
                    _ => "no data".to_string(),
                },
            );
            for b in &s.burn_rates {
                let _ = write!(
                    line,
                    " {}={}",
                    b.window,
                    b.burn_rate.map_or("-".into(), |b| format!("{b:.2}"))
                );
            }
            let firing = if s.firing.is_empty() {
                "none".to_string()
            } else {
                s.firing.join(", ")
            };
            let _ = write!(line, "\n  firing: {firing}");
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_duration(2_592.0), "43m 12s");
        assert_eq!(human_duration(90_000.0), "1d 1h");
        assert_eq!(human_duration(0.2), "0s");
        assert_eq!(human_duration(-3_600.0), "-1h");
    }

    #[test]
    fn budget_time_of_a_thirty_day_three_nines() {
        // 0.1% of 30 days is 43m 12s; half of it left is 21m 36s.
        let s = SloStatus::remaining_seconds(0.999, 30 * 86_400, 0.5);
        assert_eq!(human_duration(s), "21m 36s");
    }
}
