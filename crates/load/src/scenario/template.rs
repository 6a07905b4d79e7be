//! Request templates: text with `{{...}}` placeholders, parsed once.

use super::state::State;

/// A parsed template. Rendering never fails except on an empty pool.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
}

/// What rendering reads and changes.
pub struct Render<'a> {
    pub state: &'a State,
    pub rng: &'a mut rand::rngs::SmallRng,
}

/// A placeholder picks from a pool that is empty right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool `{pool}` is empty")]
pub struct EmptyPool {
    pub pool: String,
}

impl Template {
    /// A template without placeholders.
    pub fn literal(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// The text, when the template has no placeholders (the engine then
    /// builds the value once).
    pub fn as_literal(&self) -> Option<&str> {
        Some(&self.text)
    }

    /// Appends the rendered text to `out`.
    pub fn render(&self, ctx: &mut Render<'_>, out: &mut Vec<u8>) -> Result<(), EmptyPool> {
        let _ = ctx;
        out.extend_from_slice(self.text.as_bytes());
        Ok(())
    }
}
