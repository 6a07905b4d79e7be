use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("may only contain {0}")]
    InvalidCharacter(&'static str),
}

/// `[A-Za-z0-9_.:-]{1,max}`: what customer ids and SKUs look like in the
/// systems that send them, and nothing that needs escaping in URLs or logs.
fn parse_token(value: &str, max: usize) -> Result<String, IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.len() > max {
        return Err(IdError::TooLong(max));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(IdError::InvalidCharacter(
            "letters, digits, '_', '.', ':' and '-'",
        ));
    }
    Ok(value.to_string())
}

macro_rules! token_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(value: &str) -> Result<Self, IdError> {
                parse_token(value, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_type!(
    /// The customer an order belongs to, as the caller's system names it.
    CustomerId,
    64
);
token_type!(
    /// A stock-keeping unit.
    Sku,
    64
);

/// A server-generated order id: `ord_` and 32 lowercase hex digits
/// (128 random bits), so ids reveal neither volume nor order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    pub fn generate() -> Self {
        Self(format!("ord_{:032x}", rand::random::<u128>()))
    }

    pub fn parse(value: &str) -> Result<Self, IdError> {
        let hex = value
            .strip_prefix("ord_")
            .ok_or(IdError::InvalidCharacter("`ord_` and 32 hex digits"))?;
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(IdError::InvalidCharacter("`ord_` and 32 hex digits"));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client's `Idempotency-Key`: 1 to 255 visible ASCII characters
/// (a UUID fits; a whole request body does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(value: &str) -> Result<Self, IdError> {
        if value.is_empty() {
            return Err(IdError::Empty);
        }
        if value.len() > Self::MAX_LEN {
            return Err(IdError::TooLong(Self::MAX_LEN));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::InvalidCharacter("visible ASCII characters"));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_accept_their_alphabet_and_refuse_the_rest() {
        assert!(CustomerId::parse("cust-42:eu.west_1").is_ok());
        assert_eq!(CustomerId::parse(""), Err(IdError::Empty));
        assert_eq!(Sku::parse(&"x".repeat(65)), Err(IdError::TooLong(64)));
        for bad in ["a b", "a/b", "ü", "a\n", "a?b"] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn order_ids_round_trip_and_reject_lookalikes() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()), Ok(id.clone()));
        assert_ne!(OrderId::generate(), id);
        for bad in [
            "",
            "ord_",
            "ord_123",
            "xyz_00000000000000000000000000000000",
            "ord_0000000000000000000000000000000G",
            "ord_0000000000000000000000000000000A",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("4f0c2c1e-0b8a-4b0e-9f51-1a2b3c4d5e6f").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(256)),
            Err(IdError::TooLong(255))
        );
        assert_eq!(IdempotencyKey::parse(""), Err(IdError::Empty));
        assert!(IdempotencyKey::parse("a b").is_err());
    }
}
