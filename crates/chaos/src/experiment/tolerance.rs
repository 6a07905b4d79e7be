//! A probe's value against its tolerance. Every bound given must hold;
//! `max_increase` compares with the value the same probe had in the
//! before-check (no baseline yet: the bound is not applied).

use super::model::Tolerance;
use std::fmt;

impl Tolerance {
    /// Whether `value` is within every bound; the first bound it breaks
    /// otherwise.
    pub fn check(&self, value: f64, baseline: Option<f64>) -> Result<(), String> {
        if let Some(min) = self.min {
            if value < min {
                return Err(format!("{} < min {}", show(value), show(min)));
            }
        }
        if let Some(max) = self.max {
            if value > max {
                return Err(format!("{} > max {}", show(value), show(max)));
            }
        }
        if let Some(equals) = self.equals {
            if (value - equals).abs() > f64::EPSILON * equals.abs().max(1.0) {
                return Err(format!("{} != {}", show(value), show(equals)));
            }
        }
        if !self.one_of.is_empty() && !self.one_of.iter().any(|v| v == &value) {
            return Err(format!("{} not one of {}", show(value), list(&self.one_of)));
        }
        if let (Some(increase), Some(base)) = (self.max_increase, baseline) {
            if value - base > increase {
                return Err(format!(
                    "{} is {} above the before-check's {} (max_increase {})",
                    show(value),
                    show(value - base),
                    show(base),
                    show(increase)
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(v) = self.min {
            parts.push(format!(">= {}", show(v)));
        }
        if let Some(v) = self.max {
            parts.push(format!("<= {}", show(v)));
        }
        if let Some(v) = self.equals {
            parts.push(format!("== {}", show(v)));
        }
        if !self.one_of.is_empty() {
            parts.push(format!("in {}", list(&self.one_of)));
        }
        if let Some(v) = self.max_increase {
            parts.push(format!("<= before + {}", show(v)));
        }
        f.write_str(&parts.join(" and "))
    }
}

/// A number as people read it: integers without `.0`, others to 4
/// significant decimals.
pub fn show(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn list(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|v| show(*v)).collect();
    format!("[{}]", items.join(", "))
}
