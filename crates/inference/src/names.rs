//! Model names and versions, parsed once at the edge.
//!
//! A model name becomes a directory name in the repository, so it is held
//! to a safe alphabet: `../`, slashes, leading dots and control characters
//! never reach the file system. A version is a positive integer, as in
//! Triton's and KServe's repositories.

use std::fmt;
use std::str::FromStr;

/// A model's name: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("model name must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-' and '.', not starting with '.'")]
    BadName,
    #[error("version must be a positive integer")]
    BadVersion,
}

impl ModelName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && !raw.starts_with('.')
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(NameError::BadName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A model version: a positive integer (`1`, `2`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    pub fn new(v: u64) -> Result<Self, NameError> {
        if v == 0 {
            Err(NameError::BadVersion)
        } else {
            Ok(Self(v))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for Version {
    type Err = NameError;
    fn from_str(raw: &str) -> Result<Self, NameError> {
        // Digits only: no sign, no spaces, no leading zeros beyond "0".
        if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NameError::BadVersion);
        }
        let v: u64 = raw.parse().map_err(|_| NameError::BadVersion)?;
        Version::new(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_walk_the_file_system() {
        for bad in [
            "",
            "../etc",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert_eq!(ModelName::parse(bad), Err(NameError::BadName), "{bad:?}");
        }
        for good in ["digits", "digits-logreg", "resnet_50.v2", "A1"] {
            assert!(ModelName::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn versions_are_positive_integers() {
        assert_eq!("2".parse::<Version>().map(Version::get), Ok(2));
        for bad in [
            "0",
            "-1",
            "+1",
            "1.0",
            "v1",
            "",
            " 1",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }
}
