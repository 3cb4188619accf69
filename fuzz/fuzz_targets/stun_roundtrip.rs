#![no_main]
//! Parse → re-encode every attribute with `MessageWriter` → parse: the two parses agree (kind,
//! transaction id, attributes and their lookup, integrity, fingerprint), also with the
//! attributes shifted to the largest offsets a message has (see `turnd_fuzz::roundtrip`).
use libfuzzer_sys::fuzz_target;
use turnd_fuzz::roundtrip::{check, MAX_MESSAGE};

fuzz_target!(|data: &[u8]| {
    // Larger than any message, like the IO shell's output buffer.
    let mut buf = vec![0u8; MAX_MESSAGE + 64];
    check(data, &mut buf);
});
