//! Tensors as the protocol carries them, and the decoder that turns a
//! request's JSON `data` into typed, validated values.
//!
//! The decoder is the first thing untrusted input meets, so it is strict
//! and allocation-bounded: the element count comes from the shape (checked
//! for overflow and against a limit before anything is allocated), nested
//! arrays are flattened row-major, and every element must be of the
//! declared datatype and within its range. NaN and infinities cannot be
//! written in JSON; a number too large for FP32 or FP16 would become one
//! and is refused.

use crate::Datatype;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The most elements one tensor may hold (and so be allocated for); the
/// body limit bounds this long before in practice.
pub const MAX_ELEMENTS: u64 = 1 << 26;

/// How deep `data` may nest (it never needs more than the shape's rank).
const MAX_DEPTH: usize = 32;

/// A tensor's values, flat and row-major, typed by datatype. FP16 values
/// are held as `f32` (checked to fit in FP16).
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Fp16(Vec<f32>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Int8(_) => Datatype::Int8,
            TensorData::Int16(_) => Datatype::Int16,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Uint8(_) => Datatype::Uint8,
            TensorData::Uint16(_) => Datatype::Uint16,
            TensorData::Uint32(_) => Datatype::Uint32,
            TensorData::Uint64(_) => Datatype::Uint64,
            TensorData::Fp16(_) => Datatype::Fp16,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Int8(v) => v.len(),
            TensorData::Int16(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Uint8(v) => v.len(),
            TensorData::Uint16(v) => v.len(),
            TensorData::Uint32(v) => v.len(),
            TensorData::Uint64(v) => v.len(),
            TensorData::Fp16(v) | TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s values (the next rows of a batch); false, and
    /// nothing appended, when the datatypes differ.
    pub fn extend(&mut self, other: TensorData) -> bool {
        macro_rules! same {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => { a.extend(b); true })*
                    _ => false,
                }
            };
        }
        same!(
            Bool, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Fp16, Fp32, Fp64, Bytes
        )
    }

    /// Cuts the values into consecutive parts of `sizes` elements (the
    /// rows of each request of a batch). `None` when the sizes do not add
    /// up to the length.
    pub fn split(self, sizes: &[usize]) -> Option<Vec<TensorData>> {
        // Checked: sizes whose sum overflows add up to nothing (a wrapped
        // sum could equal the length and the cut below would panic).
        let total = sizes
            .iter()
            .try_fold(0usize, |sum, &size| sum.checked_add(size));
        if total != Some(self.len()) {
            return None;
        }
        fn cut<T>(
            mut values: Vec<T>,
            sizes: &[usize],
            wrap: fn(Vec<T>) -> TensorData,
        ) -> Vec<TensorData> {
            let mut parts = Vec::with_capacity(sizes.len());
            // From the back, so each split_off moves only its own part.
            for &size in sizes.iter().rev() {
                let rest = values.len() - size;
                parts.push(wrap(values.split_off(rest)));
            }
            parts.reverse();
            parts
        }
        Some(match self {
            TensorData::Bool(v) => cut(v, sizes, TensorData::Bool),
            TensorData::Int8(v) => cut(v, sizes, TensorData::Int8),
            TensorData::Int16(v) => cut(v, sizes, TensorData::Int16),
            TensorData::Int32(v) => cut(v, sizes, TensorData::Int32),
            TensorData::Int64(v) => cut(v, sizes, TensorData::Int64),
            TensorData::Uint8(v) => cut(v, sizes, TensorData::Uint8),
            TensorData::Uint16(v) => cut(v, sizes, TensorData::Uint16),
            TensorData::Uint32(v) => cut(v, sizes, TensorData::Uint32),
            TensorData::Uint64(v) => cut(v, sizes, TensorData::Uint64),
            TensorData::Fp16(v) => cut(v, sizes, TensorData::Fp16),
            TensorData::Fp32(v) => cut(v, sizes, TensorData::Fp32),
            TensorData::Fp64(v) => cut(v, sizes, TensorData::Fp64),
            TensorData::Bytes(v) => cut(v, sizes, TensorData::Bytes),
        })
    }
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TensorData::Bool(v) => v.serialize(serializer),
            TensorData::Int8(v) => v.serialize(serializer),
            TensorData::Int16(v) => v.serialize(serializer),
            TensorData::Int32(v) => v.serialize(serializer),
            TensorData::Int64(v) => v.serialize(serializer),
            TensorData::Uint8(v) => v.serialize(serializer),
            TensorData::Uint16(v) => v.serialize(serializer),
            TensorData::Uint32(v) => v.serialize(serializer),
            TensorData::Uint64(v) => v.serialize(serializer),
            TensorData::Fp16(v) | TensorData::Fp32(v) => v.serialize(serializer),
            TensorData::Fp64(v) => v.serialize(serializer),
            TensorData::Bytes(v) => v.serialize(serializer),
        }
    }
}

/// One element of `data` as JSON wrote it, before the datatype is applied
/// (the datatype member may come after `data` in the object).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

/// `data` as sent: its elements flattened row-major. Only the request
/// side uses this; [`decode`] applies the datatype.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawData {
    pub elements: Vec<Scalar>,
}

impl<'de> Deserialize<'de> for RawData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut elements = Vec::new();
        deserializer.deserialize_any(Flatten {
            out: &mut elements,
            depth: 0,
        })?;
        Ok(RawData { elements })
    }
}

impl Serialize for RawData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.elements.len()))?;
        for element in &self.elements {
            match element {
                Scalar::Bool(b) => seq.serialize_element(b)?,
                Scalar::Int(i) => seq.serialize_element(i)?,
                Scalar::Uint(u) => seq.serialize_element(u)?,
                Scalar::Float(f) => seq.serialize_element(f)?,
                Scalar::Str(s) => seq.serialize_element(s)?,
            }
        }
        seq.end()
    }
}

/// Visits a value of `data`: a scalar is pushed, an array is descended.
struct Flatten<'a> {
    out: &'a mut Vec<Scalar>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers, booleans or strings (flat or nested)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push(Scalar::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.push(Scalar::Int(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.push(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Uint(v),
        });
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.push(Scalar::Float(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.push(Scalar::Str(v.to_string()));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.out.push(Scalar::Str(v));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("data nests too deep"));
        }
        if self.depth == 0 {
            if let Some(hint) = seq.size_hint() {
                self.out.reserve(hint.min(4096));
            }
        }
        while seq
            .next_element_seed(Flatten {
                out: self.out,
                depth: self.depth + 1,
            })?
            .is_some()
        {
            if self.out.len() as u64 > MAX_ELEMENTS {
                return Err(de::Error::custom("data holds too many elements"));
            }
        }
        Ok(())
    }
}

/// Why an input tensor was refused. Each message names what is wrong; the
/// caller prefixes the input's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("shape has a negative dimension ({0})")]
    NegativeDimension(i64),
    #[error("shape holds more than {MAX_ELEMENTS} elements")]
    TooLarge,
    #[error("shape {shape:?} needs {expected} elements but data has {got}")]
    LengthMismatch {
        shape: Vec<i64>,
        expected: u64,
        got: usize,
    },
    #[error("element {index} is {found}, not a {datatype} value")]
    WrongElement {
        index: usize,
        found: &'static str,
        datatype: Datatype,
    },
    #[error("element {index} ({value}) is out of range for {datatype}")]
    OutOfRange {
        index: usize,
        value: String,
        datatype: Datatype,
    },
}

/// The element count of `shape`, refusing negative dimensions, overflow
/// and tensors over [`MAX_ELEMENTS`].
pub fn element_count(shape: &[i64]) -> Result<u64, DecodeError> {
    let mut count: u64 = 1;
    for &dim in shape {
        let dim = u64::try_from(dim).map_err(|_| DecodeError::NegativeDimension(dim))?;
        count = count.checked_mul(dim).ok_or(DecodeError::TooLarge)?;
        if count > MAX_ELEMENTS {
            return Err(DecodeError::TooLarge);
        }
    }
    Ok(count)
}

/// Applies `datatype` and `shape` to raw `data`: the typed tensor, or the
/// first thing wrong with it.
pub fn decode(datatype: Datatype, shape: &[i64], data: RawData) -> Result<TensorData, DecodeError> {
    let expected = element_count(shape)?;
    if expected != data.elements.len() as u64 {
        return Err(DecodeError::LengthMismatch {
            shape: shape.to_vec(),
            expected,
            got: data.elements.len(),
        });
    }
    let elements = data.elements;
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(collect(elements, datatype, |s| match s {
            Scalar::Bool(b) => Ok(b),
            other => Err(other),
        })?),
        Datatype::Int8 => TensorData::Int8(integers(elements, datatype)?),
        Datatype::Int16 => TensorData::Int16(integers(elements, datatype)?),
        Datatype::Int32 => TensorData::Int32(integers(elements, datatype)?),
        Datatype::Int64 => TensorData::Int64(integers(elements, datatype)?),
        Datatype::Uint8 => TensorData::Uint8(integers(elements, datatype)?),
        Datatype::Uint16 => TensorData::Uint16(integers(elements, datatype)?),
        Datatype::Uint32 => TensorData::Uint32(integers(elements, datatype)?),
        Datatype::Uint64 => TensorData::Uint64(integers(elements, datatype)?),
        Datatype::Fp16 => TensorData::Fp16(floats32(elements, datatype, 65504.0)?),
        Datatype::Fp32 => TensorData::Fp32(floats32(elements, datatype, f32::MAX as f64)?),
        Datatype::Fp64 => {
            let mut out = Vec::with_capacity(elements.len());
            for (index, element) in elements.into_iter().enumerate() {
                out.push(number(index, element, datatype)?);
            }
            TensorData::Fp64(out)
        }
        Datatype::Bytes => TensorData::Bytes(collect(elements, datatype, |s| match s {
            Scalar::Str(s) => Ok(s),
            other => Err(other),
        })?),
    })
}

fn kind(scalar: &Scalar) -> &'static str {
    match scalar {
        Scalar::Bool(_) => "a boolean",
        Scalar::Int(_) | Scalar::Uint(_) => "an integer",
        Scalar::Float(_) => "a number",
        Scalar::Str(_) => "a string",
    }
}

fn collect<T>(
    elements: Vec<Scalar>,
    datatype: Datatype,
    take: impl Fn(Scalar) -> Result<T, Scalar>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        match take(element) {
            Ok(value) => out.push(value),
            Err(other) => {
                return Err(DecodeError::WrongElement {
                    index,
                    found: kind(&other),
                    datatype,
                })
            }
        }
    }
    Ok(out)
}

fn integers<T: TryFrom<i64> + TryFrom<u64>>(
    elements: Vec<Scalar>,
    datatype: Datatype,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        let converted = match &element {
            Scalar::Int(i) => T::try_from(*i).ok(),
            Scalar::Uint(u) => T::try_from(*u).ok(),
            other => {
                return Err(DecodeError::WrongElement {
                    index,
                    found: kind(other),
                    datatype,
                })
            }
        };
        match converted {
            Some(value) => out.push(value),
            None => {
                return Err(DecodeError::OutOfRange {
                    index,
                    value: match element {
                        Scalar::Int(i) => i.to_string(),
                        Scalar::Uint(u) => u.to_string(),
                        _ => String::new(),
                    },
                    datatype,
                })
            }
        }
    }
    Ok(out)
}

/// A JSON number (integer or not) as f64.
fn number(index: usize, element: Scalar, datatype: Datatype) -> Result<f64, DecodeError> {
    match element {
        Scalar::Float(f) => Ok(f),
        Scalar::Int(i) => Ok(i as f64),
        Scalar::Uint(u) => Ok(u as f64),
        other => Err(DecodeError::WrongElement {
            index,
            found: kind(&other),
            datatype,
        }),
    }
}

fn floats32(elements: Vec<Scalar>, datatype: Datatype, max: f64) -> Result<Vec<f32>, DecodeError> {
    let mut out = Vec::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        let value = number(index, element, datatype)?;
        if !value.is_finite() || value.abs() > max {
            return Err(DecodeError::OutOfRange {
                index,
                value: value.to_string(),
                datatype,
            });
        }
        out.push(value as f32);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawData {
        serde_json::from_str(json).expect("valid data")
    }

    #[test]
    fn nested_and_flat_data_decode_alike() {
        let flat = decode(Datatype::Fp32, &[2, 2], raw("[1, 2.5, 3, 4]")).unwrap();
        let nested = decode(Datatype::Fp32, &[2, 2], raw("[[1, 2.5], [3, 4]]")).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat, TensorData::Fp32(vec![1.0, 2.5, 3.0, 4.0]));
    }

    #[test]
    fn length_must_match_the_shape() {
        let err = decode(Datatype::Fp32, &[1, 3], raw("[1, 2]")).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::LengthMismatch {
                expected: 3,
                got: 2,
                ..
            }
        ));
    }

    #[test]
    fn elements_must_be_of_the_datatype() {
        let err = decode(Datatype::Fp32, &[2], raw(r#"[1, "x"]"#)).unwrap_err();
        assert!(
            matches!(err, DecodeError::WrongElement { index: 1, .. }),
            "{err}"
        );
        let err = decode(Datatype::Int64, &[1], raw("[1.5]")).unwrap_err();
        assert!(
            matches!(err, DecodeError::WrongElement { index: 0, .. }),
            "{err}"
        );
        let err = decode(Datatype::Bool, &[1], raw("[1]")).unwrap_err();
        assert!(matches!(err, DecodeError::WrongElement { .. }), "{err}");
        let err = decode(Datatype::Bytes, &[1], raw("[1]")).unwrap_err();
        assert!(matches!(err, DecodeError::WrongElement { .. }), "{err}");
    }

    #[test]
    fn integers_and_floats_are_range_checked() {
        assert!(matches!(
            decode(Datatype::Uint8, &[1], raw("[256]")),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            decode(Datatype::Uint64, &[1], raw("[-1]")),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert_eq!(
            decode(Datatype::Uint64, &[1], raw("[18446744073709551615]")).unwrap(),
            TensorData::Uint64(vec![u64::MAX])
        );
        // Would be +Inf as FP32.
        assert!(matches!(
            decode(Datatype::Fp32, &[1], raw("[1e39]")),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            decode(Datatype::Fp16, &[1], raw("[70000]")),
            Err(DecodeError::OutOfRange { .. })
        ));
    }

    #[test]
    fn shapes_are_bounded_before_allocation() {
        assert_eq!(
            element_count(&[-1, 64]),
            Err(DecodeError::NegativeDimension(-1))
        );
        assert_eq!(
            element_count(&[i64::MAX, i64::MAX]),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(element_count(&[]), Ok(1));
        assert_eq!(element_count(&[0, 64]), Ok(0));
    }

    #[test]
    fn batches_join_and_split_in_order() {
        let mut batch = TensorData::Fp32(vec![1.0, 2.0]);
        assert!(batch.extend(TensorData::Fp32(vec![3.0, 4.0, 5.0, 6.0])));
        assert!(!batch.extend(TensorData::Int64(vec![7])));
        let parts = batch.split(&[2, 0, 4]).unwrap();
        assert_eq!(
            parts,
            vec![
                TensorData::Fp32(vec![1.0, 2.0]),
                TensorData::Fp32(vec![]),
                TensorData::Fp32(vec![3.0, 4.0, 5.0, 6.0])
            ]
        );
        assert!(TensorData::Int8(vec![1]).split(&[2]).is_none());
    }

    #[test]
    fn split_sizes_that_overflow_do_not_add_up() {
        // Found while writing the oip_tensor fuzz target (a shape of
        // `[0, i64::MAX, i64::MAX, 2]`, now in its corpus, split by its
        // dims): the sum of the sizes overflowed, a panic with overflow
        // checks; without them it wrapped to the length and the cut
        // panicked out of bounds.
        let half = usize::MAX / 2 + 1;
        assert!(TensorData::Bool(vec![]).split(&[half, half]).is_none());
        assert!(TensorData::Bool(vec![true])
            .split(&[usize::MAX, 2])
            .is_none());
        assert!(TensorData::Int8(vec![1, 2])
            .split(&[2, usize::MAX])
            .is_none());
    }

    #[test]
    fn nan_cannot_be_sent() {
        assert!(serde_json::from_str::<RawData>("[NaN]").is_err());
        assert!(serde_json::from_str::<RawData>("[Infinity]").is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(serde_json::from_str::<RawData>(&deep).is_err());
    }
}
