//! What a proxy must do to headers on the way through.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it
//!   names, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
//!   `Proxy-*`) describe one connection and are never relayed.
//! - The client IP comes from `X-Forwarded-For` only when the peer is a
//!   trusted proxy: [`kit::forwarded`], shared with the modules behind the
//!   gateway, which read the header the gateway writes.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};

pub use kit::forwarded::{
    BadCidr, TrustedProxies, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
};

static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The index of `name` in [`HOP_BY_HOP`] (names are lowercase, as a
/// [`HeaderName`] is): a match on the text, which rules out nearly every
/// other name by its length alone.
fn hop_by_hop_index(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// Removes hop-by-hop headers, including those named by `Connection`.
///
/// Runs twice per proxied request (request and response), and most
/// messages carry one at most (`Connection: keep-alive`, which nginx sends
/// on every response): one pass over the names notes which are there, and
/// only those are removed (a remove is a hash and a probe even for an
/// absent name). A name in `Connection` that is itself hop-by-hop (as
/// `keep-alive` is) or that the message does not carry (as `close`) costs
/// nothing more; only one that names a header present is looked up.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u16;
    // Whether a `Connection` value names anything but hop-by-hop headers
    // (nginx's `keep-alive` does not): read in the same pass, so the
    // common message needs no second lookup of `Connection`.
    let mut names_others = false;
    for (name, value) in headers.iter() {
        if let Some(i) = hop_by_hop_index(name.as_str()) {
            present |= 1 << i;
            if i == 0 && !names_others {
                names_others = connection_tokens(value).any(|token| !is_hop_by_hop(token));
            }
        }
    }
    if present == 0 {
        return;
    }
    if names_others {
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(connection_tokens)
        {
            if is_hop_by_hop(token)
                || !headers
                    .keys()
                    .any(|name| name.as_str().eq_ignore_ascii_case(token))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The names a `Connection` value lists (comma-separated, any case); a
/// value that is not text lists none.
fn connection_tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .ok()
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether a `Connection` token names a hop-by-hop header. Tokens are
/// nearly always lowercase (nginx's `keep-alive`), which the match on the
/// text finds at once; a scan folding case over every name's text cost
/// about 225 instructions a proxied response (issue 18).
fn is_hop_by_hop(token: &str) -> bool {
    hop_by_hop_index(token).is_some()
        || (token.bytes().any(|b| b.is_ascii_uppercase())
            && HOP_BY_HOP
                .iter()
                .any(|name| name.as_str().eq_ignore_ascii_case(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_agrees_with_the_list() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name.as_str()), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index("host"), None);
    }

    #[test]
    fn a_connection_token_is_hop_by_hop_in_any_case() {
        for token in [
            "keep-alive",
            "Keep-Alive",
            "TE",
            "Transfer-Encoding",
            "upgrade",
        ] {
            assert!(is_hop_by_hop(token), "{token}");
        }
        for token in ["close", "Close", "x-secret-hop", "X-Secret-Hop", ""] {
            assert!(!is_hop_by_hop(token), "{token}");
        }
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn connection_names_are_matched_in_any_case_and_absent_ones_cost_nothing() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("Keep-Alive, close"));
        h.append(CONNECTION, HeaderValue::from_static(" X-Secret-Hop ,"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));

        // A header named by `Connection` goes even when it is the only one.
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        h.insert("close", HeaderValue::from_static("1"));
        h.insert(http::header::HOST, HeaderValue::from_static("a"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(http::header::HOST));
    }

    #[test]
    fn a_lone_hop_by_hop_header_is_found_without_connection() {
        for name in [
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert("x-kept", HeaderValue::from_static("1"));
            strip_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name} is stripped");
        }
    }
}
