//! A few named headers of a request, found in one pass.
//!
//! `HeaderMap::get` hashes the name and probes the table: about 95
//! instructions for a standard name and 130 for one like `x-request-id`,
//! hashed byte by byte. A request from an API client, a load generator or
//! a link checker carries a handful of headers, and one pass comparing
//! names finds two or three of them for less (issue 18: the observe
//! layer's two lookups and the redirect's two). A browser's request
//! carries more, and past [`SCAN_AT_MOST`] values a lookup per name is
//! cheaper again.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// Up to this many values, one pass; more, one lookup per name.
const SCAN_AT_MOST: usize = 8;

/// The first value of each of `names` in `headers`: what
/// `headers.get(name)` answers, name by name.
pub fn find_headers<'h, const N: usize>(
    headers: &'h HeaderMap,
    names: [&HeaderName; N],
) -> [Option<&'h HeaderValue>; N] {
    if headers.len() > SCAN_AT_MOST {
        return names.map(|name| headers.get(name));
    }
    let mut found = [None; N];
    // A name's values come together, its first value first.
    for (name, value) in headers {
        for (slot, wanted) in found.iter_mut().zip(names) {
            if slot.is_none() && name == wanted {
                *slot = Some(value);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    const X_A: HeaderName = HeaderName::from_static("x-a");

    fn map(entries: &[(&HeaderName, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in entries {
            headers.append((*name).clone(), HeaderValue::from_static(value));
        }
        headers
    }

    /// What one lookup per name answers.
    fn looked_up<'h>(
        headers: &'h HeaderMap,
        names: [&HeaderName; 3],
    ) -> [Option<&'h HeaderValue>; 3] {
        names.map(|name| headers.get(name))
    }

    #[test]
    fn each_name_gets_its_first_value_or_none_as_a_lookup_would() {
        let names = [&header::USER_AGENT, &X_A, &header::REFERER];
        let few = map(&[
            (&header::HOST, "h"),
            (&X_A, "first"),
            (&header::USER_AGENT, "ua"),
            (&X_A, "second"),
        ]);
        assert!(few.len() <= SCAN_AT_MOST);
        let found = find_headers(&few, names);
        assert_eq!(found, looked_up(&few, names));
        assert_eq!(found[1].map(HeaderValue::as_bytes), Some(&b"first"[..]));
        assert_eq!(found[2], None);

        let fillers: Vec<HeaderName> = (0..SCAN_AT_MOST)
            .map(|i| HeaderName::try_from(format!("x-filler-{i}")).expect("valid name"))
            .collect();
        let mut many = few.clone();
        for name in &fillers {
            many.append(name.clone(), HeaderValue::from_static("f"));
        }
        assert!(many.len() > SCAN_AT_MOST);
        assert_eq!(find_headers(&many, names), looked_up(&many, names));
    }

    #[test]
    fn an_empty_map_has_none() {
        assert_eq!(find_headers(&HeaderMap::new(), [&X_A]), [None]);
    }
}
