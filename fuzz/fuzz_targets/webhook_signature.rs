//! The receiver side of webhook signatures (`notifier::channel::verify`).
//! The input is split into a secret, a body and a claimed header.
//! Properties: what the sender signs verifies; a flipped body byte or a
//! changed signature digit does not; an arbitrary header verifies only
//! when it is the real signature (hex case aside): no forgery passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notifier::channel::{signature, verify, SignatureError};
use notifier::Secret;

fuzz_target!(|data: &[u8]| {
    // [secret length][secret][claimed header length][claimed][body...]
    let Some((&secret_len, rest)) = data.split_first() else {
        return;
    };
    let secret_len = usize::from(secret_len % 64).min(rest.len());
    let (secret, rest) = rest.split_at(secret_len);
    let Ok(secret) = std::str::from_utf8(secret) else {
        return;
    };
    let (claimed, body) = match rest.split_first() {
        Some((&n, tail)) => tail.split_at(usize::from(n).min(tail.len())),
        None => (&[][..], rest),
    };

    let header = signature(&Secret::new(secret), body);
    assert_eq!(verify(secret.as_bytes(), body, &header), Ok(()));

    if let Some(first) = body.first() {
        let mut tampered = body.to_vec();
        tampered[0] = first ^ 0x01;
        assert_eq!(
            verify(secret.as_bytes(), &tampered, &header),
            Err(SignatureError::Mismatch)
        );
    }
    let mut forged = header.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert_eq!(
        verify(secret.as_bytes(), body, &forged),
        Err(SignatureError::Mismatch)
    );

    if let Ok(claimed) = std::str::from_utf8(claimed) {
        if verify(secret.as_bytes(), body, claimed).is_ok() {
            assert_eq!(claimed.to_ascii_lowercase(), header, "forged: {claimed}");
        }
    }
});
