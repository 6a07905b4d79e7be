//! What an unquoted scalar means, by the YAML 1.2 core schema: `null`/`~`/
//! nothing, `true`/`false`, decimal, `0x` and `0o` integers, floats with
//! `.inf`/`.nan`, and everything else a string. YAML 1.1's `yes`/`no`/`on`
//! (the "Norway problem") are strings here, as the core schema says.

use serde::de::Unexpected;

/// A scalar resolved to its core-schema type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    /// Integers past 64 bits: most targets refuse them with a range error.
    BigUnsigned(u128),
    BigSigned(i128),
    Float(f64),
    Str(&'a str),
}

/// Resolves `text`; quoted scalars are always strings.
pub(crate) fn resolve(text: &str, quoted: bool) -> Scalar<'_> {
    if quoted {
        return Scalar::Str(text);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        _ => number(text).unwrap_or(Scalar::Str(text)),
    }
}

/// How a scalar shows in an "invalid type" message.
pub(crate) fn unexpected<'a>(scalar: Scalar<'a>) -> Unexpected<'a> {
    match scalar {
        Scalar::Null => Unexpected::Other("null"),
        Scalar::Bool(b) => Unexpected::Bool(b),
        Scalar::Unsigned(n) => Unexpected::Unsigned(n),
        Scalar::Signed(n) => Unexpected::Signed(n),
        Scalar::BigUnsigned(_) | Scalar::BigSigned(_) => Unexpected::Other("integer"),
        Scalar::Float(f) => Unexpected::Float(f),
        Scalar::Str(s) => Unexpected::Str(s),
    }
}

fn number(text: &str) -> Option<Scalar<'_>> {
    if let Some(hex) = text.strip_prefix("0x") {
        return radix(hex, 16);
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return radix(octal, 8);
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if is_digits(unsigned) {
        return Some(match text.parse::<i128>() {
            Ok(n) => integer(n),
            // Past i128: only a huge positive number still fits u128.
            Err(_) => match text.parse::<u128>() {
                Ok(n) => Scalar::BigUnsigned(n),
                Err(_) => Scalar::Float(text.parse().ok()?),
            },
        });
    }
    if is_core_float(text) {
        return text.parse().ok().map(Scalar::Float);
    }
    None
}

fn radix(digits: &str, radix: u32) -> Option<Scalar<'_>> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u128::from_str_radix(digits, radix)
        .ok()
        .map(|n| u64::try_from(n).map_or(Scalar::BigUnsigned(n), Scalar::Unsigned))
}

fn integer(n: i128) -> Scalar<'static> {
    if let Ok(u) = u64::try_from(n) {
        Scalar::Unsigned(u)
    } else if let Ok(i) = i64::try_from(n) {
        Scalar::Signed(i)
    } else if n > 0 {
        // n > u64::MAX, so the cast is exact.
        Scalar::BigUnsigned(n.unsigned_abs())
    } else {
        Scalar::BigSigned(n)
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => is_digits(fraction),
        Some((whole, fraction)) => is_digits(whole) && (fraction.is_empty() || is_digits(fraction)),
        None => is_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| is_digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_types() {
        let cases: &[(&str, Scalar)] = &[
            ("", Scalar::Null),
            ("~", Scalar::Null),
            ("NULL", Scalar::Null),
            ("True", Scalar::Bool(true)),
            ("false", Scalar::Bool(false)),
            ("yes", Scalar::Str("yes")),
            ("off", Scalar::Str("off")),
            ("30", Scalar::Unsigned(30)),
            ("+30", Scalar::Unsigned(30)),
            ("007", Scalar::Unsigned(7)),
            ("-30", Scalar::Signed(-30)),
            ("0x1F", Scalar::Unsigned(31)),
            ("0o17", Scalar::Unsigned(15)),
            ("0x", Scalar::Str("0x")),
            ("0o8", Scalar::Str("0o8")),
            ("18446744073709551616", Scalar::BigUnsigned(1 << 64)),
            ("-9223372036854775809", Scalar::BigSigned(-(1 << 63) - 1)),
            ("1.5", Scalar::Float(1.5)),
            ("-.5", Scalar::Float(-0.5)),
            ("2.", Scalar::Float(2.0)),
            ("1e3", Scalar::Float(1000.0)),
            ("1.5E-2", Scalar::Float(0.015)),
            (".inf", Scalar::Float(f64::INFINITY)),
            ("-.Inf", Scalar::Float(f64::NEG_INFINITY)),
            ("inf", Scalar::Str("inf")),
            ("NaN", Scalar::Str("NaN")),
            (".", Scalar::Str(".")),
            ("1e", Scalar::Str("1e")),
            ("1_000", Scalar::Str("1_000")),
            ("5s", Scalar::Str("5s")),
            ("25ms", Scalar::Str("25ms")),
            ("1.2.3", Scalar::Str("1.2.3")),
            ("-", Scalar::Str("-")),
        ];
        for (text, want) in cases {
            assert_eq!(resolve(text, false), *want, "{text:?}");
        }
        assert!(matches!(resolve(".nan", false), Scalar::Float(f) if f.is_nan()));
    }

    #[test]
    fn quoted_scalars_are_strings() {
        for text in ["30", "true", "null", "", "1.5"] {
            assert_eq!(resolve(text, true), Scalar::Str(text));
        }
    }
}
