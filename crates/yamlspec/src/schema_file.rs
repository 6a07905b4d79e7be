//! The JSON Schema files that editors load for spec files
//! (`scenarios/scenario.schema.json`, `experiments/experiment.schema.json`)
//! are generated from the spec types; each crate's test calls
//! [`check_schema_file`] so a checked-in copy cannot drift from the code.

use std::path::Path;

/// Compares the checked-in schema at `path` with `schema` (pretty JSON and
/// a final newline). With `UPDATE_SCHEMA` set in the environment it first
/// rewrites the file. The error says how to regenerate it:
/// `update_command` is the test command that does.
pub fn check_schema_file(
    path: &Path,
    schema: &serde_json::Value,
    update_command: &str,
) -> Result<(), String> {
    let generated = serde_json::to_string_pretty(schema)
        .map_err(|e| format!("cannot print the schema: {e}"))?
        + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    if checked_in == generated {
        Ok(())
    } else {
        Err(format!(
            "{} is out of date; regenerate it with `UPDATE_SCHEMA=1 {update_command}`",
            path.display()
        ))
    }
}
