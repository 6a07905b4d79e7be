//! Where a template's text ends up decides how a value must be written
//! there: a slug with a `/` would change a URL's path, a quote would end a
//! JSON string, a newline would end a header. Values that come from the
//! run (pool values) are escaped for their context; text the file wrote
//! (literal text, `{{target}}`, `{{vars.X}}`) is kept as written, except
//! inside a JSON string, where everything must be valid JSON.

/// The context a template renders into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// Header values: kept as they are, except control characters, which
    /// are percent-encoded so the header stays valid.
    Plain,
    /// URLs: run-time values are percent-encoded as a path segment needs
    /// (everything but `A-Z a-z 0-9 - . _ ~`); the file's text is kept.
    Url,
    /// The inside of a JSON string: everything is JSON-escaped.
    JsonString,
    /// Raw bodies: everything as it is.
    Raw,
}

impl Escaping {
    /// Appends a run-time value (for example a pool value).
    pub fn dynamic(self, value: &[u8], out: &mut Vec<u8>) {
        match self {
            Escaping::Plain => {
                for &byte in value {
                    if byte < 0x20 || byte == 0x7f {
                        percent_encode_byte(byte, out);
                    } else {
                        out.push(byte);
                    }
                }
            }
            Escaping::Url => {
                for &byte in value {
                    if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                        out.push(byte);
                    } else {
                        percent_encode_byte(byte, out);
                    }
                }
            }
            Escaping::JsonString => json_escape(&String::from_utf8_lossy(value), out),
            Escaping::Raw => out.extend_from_slice(value),
        }
    }

    /// Text the file wrote (literal text, target, vars, env), as it goes
    /// into the compiled template.
    pub fn static_text(self, text: &str, out: &mut String) {
        match self {
            Escaping::Plain | Escaping::Url | Escaping::Raw => out.push_str(text),
            Escaping::JsonString => {
                let mut bytes = Vec::with_capacity(text.len());
                json_escape(text, &mut bytes);
                // JSON escaping of a `str` yields UTF-8.
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn percent_encode_byte(byte: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'%',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 0xf)],
    ]);
}

/// The inside of a JSON string, as RFC 8259 writes it.
fn json_escape(text: &str, out: &mut Vec<u8>) {
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c as usize) >> 4].to_ascii_lowercase());
                out.push(HEX[(c as usize) & 0xf].to_ascii_lowercase());
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(escaping: Escaping, value: &[u8]) -> String {
        let mut out = Vec::new();
        escaping.dynamic(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn url_values_are_encoded_as_a_path_segment() {
        assert_eq!(dynamic(Escaping::Url, b"aZ9-._~"), "aZ9-._~");
        assert_eq!(
            dynamic(Escaping::Url, b"a/b?c=d&e f"),
            "a%2Fb%3Fc%3Dd%26e%20f"
        );
        assert_eq!(dynamic(Escaping::Url, "é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn json_values_stay_inside_their_string() {
        let escaped = dynamic(Escaping::JsonString, b"say \"hi\"\\\n\x01");
        assert_eq!(escaped, r#"say \"hi\"\\\n\u0001"#);
        let parsed: String = serde_json::from_str(&format!("\"{escaped}\"")).unwrap();
        assert_eq!(parsed, "say \"hi\"\\\n\x01");
        // Bytes that are not UTF-8 become U+FFFD, so the body stays JSON.
        assert_eq!(dynamic(Escaping::JsonString, b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn plain_values_keep_everything_but_control_characters() {
        assert_eq!(dynamic(Escaping::Plain, b"Bearer a/b c"), "Bearer a/b c");
        assert_eq!(dynamic(Escaping::Plain, b"a\r\nb"), "a%0D%0Ab");
        assert_eq!(dynamic(Escaping::Raw, b"a\r\nb"), "a\r\nb");
    }

    #[test]
    fn static_text_is_escaped_only_inside_json() {
        let mut url = String::new();
        Escaping::Url.static_text("http://h/a b", &mut url);
        assert_eq!(url, "http://h/a b");
        let mut json = String::new();
        Escaping::JsonString.static_text("a\"b", &mut json);
        assert_eq!(json, "a\\\"b");
    }
}
