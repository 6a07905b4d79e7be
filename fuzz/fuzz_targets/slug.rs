//! `Slug::parse`: the path segment of every redirect and the links API.
//! Properties: an accepted slug is the input itself, within the
//! documented alphabet and length, and parses again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shortener::domain::{Slug, SlugError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Slug::parse(text) {
        Ok(slug) => {
            assert_eq!(slug.as_str(), text);
            assert!((1..=64).contains(&text.len()));
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(Slug::parse(&slug.to_string()), Ok(slug));
        }
        Err(SlugError::Reserved(word)) => assert_eq!(word, text),
        Err(_) => {}
    }
});
