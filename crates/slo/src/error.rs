//! Spec errors that say where: file, line and field.

use std::fmt;

/// One problem in a spec: the file, the 1-based line (0 when the whole file
/// is at fault), the field path (e.g. `slos[0].objective`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a set of specs, so one run reports them all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_line_and_field() {
        let e = SpecError {
            file: "slo/a.yaml".into(),
            line: 7,
            field: "slos[0].objective".into(),
            message: "must be below 100".into(),
        };
        assert_eq!(
            e.to_string(),
            "slo/a.yaml:7: field `slos[0].objective`: must be below 100"
        );
    }
}
