//! The process's allocator (mimalloc, patched in vendor/mimalloc to take
//! its plain entry points where its blocks are aligned anyway): every
//! alignment a type can ask for is honoured, whether it takes the plain
//! path or the aligned one, for fresh, zeroed and grown allocations, in
//! sizes on both sides of mimalloc's small-block limit (1 KiB) and of its
//! power-of-two fast path (4 KiB).

/// `T`'s vectors of `n` elements, made each way the allocator is called
/// (`alloc`, `alloc_zeroed`, `realloc` growing and shrinking), are
/// aligned for `T`; the zeroed ones read zero.
fn check<T: Clone + Default + PartialEq + std::fmt::Debug>(n: usize) {
    let align = std::mem::align_of::<T>();
    let aligned = |v: &Vec<T>| (v.as_ptr() as usize).is_multiple_of(align);
    let fresh: Vec<T> = Vec::with_capacity(n);
    assert!(aligned(&fresh), "alloc {n} x align {align}");
    let zeroed = vec![T::default(); n];
    assert!(aligned(&zeroed), "alloc_zeroed {n} x align {align}");
    assert!(zeroed.iter().all(|x| *x == T::default()));
    let mut grown = zeroed;
    grown.reserve_exact(n * 3 + 7);
    assert!(aligned(&grown), "realloc up {n} x align {align}");
    grown.truncate(n / 2 + 1);
    grown.shrink_to_fit();
    assert!(aligned(&grown), "realloc down {n} x align {align}");
}

#[derive(Clone, Default, PartialEq, Debug)]
#[repr(align(32))]
struct Align32(u8);

#[derive(Clone, Default, PartialEq, Debug)]
#[repr(align(64))]
struct Align64(u8);

#[derive(Clone, Default, PartialEq, Debug)]
#[repr(align(128))]
struct Align128([u8; 3]);

#[derive(Clone, Default, PartialEq, Debug)]
#[repr(C)]
struct Odd24(u64, u64, u64);

#[test]
fn every_alignment_is_honoured_across_the_size_classes() {
    for n in [
        1, 2, 3, 5, 7, 12, 33, 100, 129, 700, 1_025, 3_000, 5_000, 70_000,
    ] {
        check::<u8>(n);
        check::<u16>(n);
        check::<u32>(n);
        check::<u64>(n);
        check::<u128>(n);
        check::<Odd24>(n);
        check::<Align32>(n);
        check::<Align64>(n);
        check::<Align128>(n);
    }
}

#[test]
fn a_boxed_value_keeps_its_alignment_and_contents() {
    // Boxes of odd sizes with a 16-byte alignment: the plain path.
    let boxes: Vec<Box<[u128; 3]>> = (0..1_000u128)
        .map(|i| Box::new([i, i + 1, i + 2]))
        .collect();
    for (i, b) in boxes.iter().enumerate() {
        assert!((&**b as *const _ as usize).is_multiple_of(16));
        assert_eq!(b[2], i as u128 + 2);
    }
    let big = Box::new(Align128([7, 8, 9]));
    assert!((&*big as *const _ as usize).is_multiple_of(128));
    assert_eq!(big.0, [7, 8, 9]);
}
