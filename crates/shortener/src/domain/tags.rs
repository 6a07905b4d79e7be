use std::collections::BTreeSet;

/// Most tags one link may carry.
pub const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 64;

/// A label for grouping links: `[A-Za-z0-9_.:-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error("at most {MAX_TAGS} tags are allowed")]
    TooMany,
    #[error(
        "tag `{0}` must be 1 to {MAX_TAG_LEN} characters of letters, digits, '_', '.', ':' or '-'"
    )]
    Invalid(String),
}

impl Tag {
    pub fn parse(value: &str) -> Result<Self, TagError> {
        let ok = !value.is_empty()
            && value.len() <= MAX_TAG_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(value.to_string()))
        } else {
            Err(TagError::Invalid(value.chars().take(MAX_TAG_LEN).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tags of one link: deduplicated, sorted, at most [`MAX_TAGS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, TagError> {
        // Count before parsing so a 10,000-tag request costs nothing.
        if values.len() > MAX_TAGS {
            return Err(TagError::TooMany);
        }
        let set: BTreeSet<Tag> = values
            .iter()
            .map(|v| Tag::parse(v.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self(set.into_iter().collect()))
    }

    /// Tags read back from storage, already valid.
    pub fn from_stored(values: Vec<String>) -> Self {
        let set: BTreeSet<Tag> = values.into_iter().map(Tag).collect();
        Self(set.into_iter().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_and_sorts() {
        let tags = Tags::parse(&["b", "a", "b"]).expect("valid");
        let names: Vec<_> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn rejects_bad_tags() {
        assert_eq!(Tags::parse(&vec!["t"; 10_000]), Err(TagError::TooMany));
        assert!(Tags::parse(&[""]).is_err());
        assert!(Tags::parse(&["a b"]).is_err());
        assert!(Tags::parse(&["x".repeat(65)]).is_err());
    }
}
