//! The OIP v2 tensor decoder, as the inference module runs it on every
//! `POST .../infer` body: the request parsed as `oip::InferRequest`, then
//! each input's `datatype` parsed and `oip::decode` applied to its shape
//! and data; then `TensorData::split` and `extend`, which the batcher uses
//! to join and cut batches, on what decoded.
//! Properties: no panic and no allocation beyond the input's size; an
//! accepted tensor has the datatype asked for, exactly the shape's element
//! count, finite floats within their type's range, and written back as
//! JSON decodes to the same values; a refusal is the first thing wrong
//! (the shape, then the length, then an element that exists); split gives
//! `None` unless the sizes add up, and split then extend is the identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oip::{decode, element_count, Datatype, DecodeError, InferRequest, RawData, TensorData};

/// At most this many parts in one split (a shape like `[1000000, 0]` has
/// no elements but a million rows).
const MAX_PARTS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<InferRequest>(data) else {
        return;
    };
    for input in request.inputs {
        let datatype = match input.datatype.parse::<Datatype>() {
            Ok(datatype) => {
                assert_eq!(datatype.as_str(), input.datatype);
                datatype
            }
            Err(e) => {
                assert!(Datatype::ALL.iter().all(|d| d.as_str() != input.datatype));
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        let count = element_count(&input.shape);
        let sent = input.data.elements.len();
        match decode(datatype, &input.shape, input.data) {
            Ok(decoded) => {
                assert_eq!(decoded.datatype(), datatype);
                assert_eq!(Ok(decoded.len() as u64), count, "shape {:?}", input.shape);
                assert_eq!(decoded.len(), sent);
                in_range(&decoded);
                written_back_decodes_alike(&decoded, datatype, &input.shape);
                split_and_extend(&decoded, &input.shape);
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                match (&count, &error) {
                    (Err(shape_error), _) => assert_eq!(&error, shape_error),
                    (Ok(n), DecodeError::LengthMismatch { expected, got, .. }) => {
                        assert_eq!((expected, *got), (n, sent));
                        assert_ne!(*n, sent as u64);
                    }
                    (Ok(n), DecodeError::WrongElement { index, .. })
                    | (Ok(n), DecodeError::OutOfRange { index, .. }) => {
                        assert_eq!(*n, sent as u64, "{error}");
                        assert!(*index < sent, "{error}");
                    }
                    (Ok(_), other) => panic!("a valid shape refused as {other}"),
                }
            }
        }
    }
});

/// Floats are finite and fit their datatype (FP16 is held as f32).
fn in_range(decoded: &TensorData) {
    match decoded {
        TensorData::Fp16(v) => assert!(v.iter().all(|x| x.is_finite() && x.abs() <= 65504.0)),
        TensorData::Fp32(v) => assert!(v.iter().all(|x| x.is_finite())),
        TensorData::Fp64(v) => assert!(v.iter().all(|x| x.is_finite())),
        _ => {}
    }
}

/// The tensor as a response writes it, read again as a request's data,
/// decodes to the same values (floats within an ulp: serde_json's fast
/// float parser may round the last bit differently).
fn written_back_decodes_alike(decoded: &TensorData, datatype: Datatype, shape: &[i64]) {
    let json = serde_json::to_vec(decoded).expect("a decoded tensor serializes");
    let raw: RawData = serde_json::from_slice(&json).expect("written data reads back");
    let again = decode(datatype, shape, raw)
        .unwrap_or_else(|e| panic!("written back {}: {e}", String::from_utf8_lossy(&json)));
    let close32 = |a: &f32, b: &f32| a == b || (a - b).abs() <= f32::EPSILON * a.abs();
    let close64 = |a: &f64, b: &f64| a == b || (a - b).abs() <= f64::EPSILON * a.abs();
    let same = match (decoded, &again) {
        (TensorData::Fp16(a), TensorData::Fp16(b)) | (TensorData::Fp32(a), TensorData::Fp32(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close32(x, y))
        }
        (TensorData::Fp64(a), TensorData::Fp64(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close64(x, y))
        }
        (a, b) => a == b,
    };
    assert!(same, "{decoded:?} written back decodes to {again:?}");
}

fn split_and_extend(decoded: &TensorData, shape: &[i64]) {
    let len = decoded.len();
    // By rows, as the batcher cuts a batch's output.
    if let Some(&rows) = shape.first() {
        let rows = usize::try_from(rows).expect("a decoded shape is not negative");
        if (1..=MAX_PARTS).contains(&rows) {
            let per_row = len / rows;
            let parts = decoded
                .clone()
                .split(&vec![per_row; rows])
                .expect("rows of a decoded shape add up");
            assert_eq!(parts.len(), rows);
            assert!(parts.iter().all(|p| p.len() == per_row));
            assert_eq!(&join(parts), decoded);
        }
    }
    // Sizes from the shape itself (with the length appended): whatever
    // they are, `Some` exactly when they add up, and never a panic.
    let mut sizes: Vec<usize> = shape
        .iter()
        .take(8)
        .map(|&d| usize::try_from(d).expect("a decoded shape is not negative"))
        .collect();
    sizes.push(len);
    let adds_up = sizes
        .iter()
        .try_fold(0usize, |sum, &s| sum.checked_add(s))
        .is_some_and(|sum| sum == len);
    match decoded.clone().split(&sizes) {
        Some(parts) => {
            assert!(adds_up, "split {len} into {sizes:?}");
            let lens: Vec<usize> = parts.iter().map(TensorData::len).collect();
            assert_eq!(lens, sizes);
            assert_eq!(&join(parts), decoded);
        }
        None => assert!(!adds_up, "split {len} into {sizes:?} refused"),
    }
    // Joining another datatype is refused and changes nothing.
    let mut joined = decoded.clone();
    let other = match decoded {
        TensorData::Bool(_) => TensorData::Int8(vec![0]),
        _ => TensorData::Bool(vec![true]),
    };
    assert!(!joined.extend(other));
    assert_eq!(&joined, decoded);
    // Joined with itself: twice the length, and cut back into two copies.
    assert!(joined.extend(decoded.clone()));
    assert_eq!(joined.len(), 2 * len);
    let halves = joined.split(&[len, len]).expect("halves add up");
    assert!(halves.iter().all(|h| h == decoded));
}

fn join(parts: Vec<TensorData>) -> TensorData {
    let mut parts = parts.into_iter();
    let mut joined = parts.next().expect("at least one part");
    for part in parts {
        assert!(
            joined.extend(part),
            "parts of one tensor share its datatype"
        );
    }
    joined
}
