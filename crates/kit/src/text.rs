//! Text appended to a `String` on hot paths without the `fmt` machinery:
//! decimal numbers (by `itoa`) and JSON strings. `write!` goes through `fmt::write`
//! and its padding logic for every value (hundreds of instructions for a
//! number), which showed in the profiles of the rate limiter's headers
//! and the shortener's visit blocks (issue 18).

/// `n` in decimal, appended to `out` (itoa's two digits a step: pushing
/// digit by digit checked capacity and encoded a `char` for each, about
/// 35 instructions a digit).
pub fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `n` in decimal with its sign, appended to `out`.
pub fn push_signed(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `s` as a JSON string, quoted and escaped exactly as `serde_json`
/// writes it: most strings need no escape and are copied as they are.
pub fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a `str` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_format_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            1_733_356_800_000_000,
            u64::MAX,
        ] {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
        for n in [0, -1, 7, -1_733_356_800_000_000, i64::MIN, i64::MAX] {
            let mut out = String::new();
            push_signed(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "example.com",
            "Mozilla/5.0 (X11; Linux x86_64)",
            "quote \" and backslash \\",
            "tab\tnewline\ncarriage\rbell\u{7}nul\0",
            "del \u{7f} and unicode: é ü 漢字 🙂",
            "</script>",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
