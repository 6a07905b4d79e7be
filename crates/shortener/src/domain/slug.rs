use rand::Rng;
use std::borrow::Borrow;
use std::fmt;

/// Paths the platform serves itself: a link may never shadow them.
const RESERVED: &[&str] = &["api", "healthz", "readyz", "metrics", "status"];
const MAX_LEN: usize = 64;
/// Generated slugs use letters and digits only, so they read well aloud.
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Which bytes a slug may hold, by value: one load a byte on the redirect
/// path, where three range tests a byte cost about 170 instructions for a
/// five-letter slug.
const SLUG_BYTE: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        allowed[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    allowed
};

/// The path segment of a short link: `[A-Za-z0-9_-]{1,64}`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlugError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("may only contain letters, digits, '-' and '_'")]
    InvalidCharacter,
    #[error("`{0}` is reserved")]
    Reserved(String),
}

impl Slug {
    pub fn parse(value: &str) -> Result<Self, SlugError> {
        Self::check(value).map(|valid| Self(valid.to_owned()))
    }

    /// What [`Slug::parse`] checks, without making a slug: the redirect
    /// looks its cache up by the checked text and allocates a slug only
    /// when it must ask the store.
    pub fn check(value: &str) -> Result<&str, SlugError> {
        if value.is_empty() {
            return Err(SlugError::Empty);
        }
        if value.len() > MAX_LEN {
            return Err(SlugError::TooLong);
        }
        if !value.bytes().all(|b| SLUG_BYTE[usize::from(b)]) {
            return Err(SlugError::InvalidCharacter);
        }
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(value)) {
            return Err(SlugError::Reserved(value.to_string()));
        }
        Ok(value)
    }

    /// A random slug of `len` characters (57 symbols: no look-alikes such as
    /// `l`/`1`/`O`/`0`); 7 characters give 1.9e12 possibilities.
    pub fn generate(len: usize) -> Self {
        let mut rng = rand::rng();
        let len = len.clamp(1, MAX_LEN);
        let s: String = (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        // The alphabet contains no reserved word of this length with certainty
        // only by chance; fall back to a longer slug if we hit one.
        match Self::parse(&s) {
            Ok(slug) => slug,
            Err(_) => Self::generate(len + 1),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Slug {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["a", "A-b_c", "0123", &"x".repeat(64)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_byte_table_is_the_alphabet() {
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(SLUG_BYTE[usize::from(b)], allowed, "byte {b}");
        }
    }

    #[test]
    fn rejects_bad_slugs() {
        assert_eq!(Slug::parse(""), Err(SlugError::Empty));
        assert_eq!(Slug::parse(&"x".repeat(65)), Err(SlugError::TooLong));
        for bad in ["a/b", "a b", "a.b", "ü", "a%20", "..", "a?b", "a#b"] {
            assert_eq!(Slug::parse(bad), Err(SlugError::InvalidCharacter), "{bad}");
        }
        for reserved in [
            "api", "healthz", "readyz", "metrics", "status", "API", "Metrics", "Status",
        ] {
            assert!(
                matches!(Slug::parse(reserved), Err(SlugError::Reserved(_))),
                "{reserved}"
            );
        }
    }

    #[test]
    fn generated_slugs_are_valid_and_distinct() {
        let slugs: std::collections::HashSet<_> = (0..1000).map(|_| Slug::generate(7)).collect();
        assert!(slugs.len() > 990);
        assert!(slugs
            .iter()
            .all(|s| s.as_str().len() == 7 && Slug::parse(s.as_str()).is_ok()));
    }
}
