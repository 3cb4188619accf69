//! The `stun_roundtrip` property: parse → re-encode with [`MessageWriter`] → parse gives the
//! same message, also when the attributes are pushed to the largest offsets a message has.

use turnd::stun::{attr, Message, MessageWriter, HEADER_LEN};

/// Largest STUN message: a 20-byte header and a 65532-byte body (16-bit length, 4-byte words).
pub const MAX_MESSAGE: usize = HEADER_LEN + 65_532;
/// A comprehension-optional type turnd neither indexes nor reports: pads the re-encoding.
const FILLER: u16 = 0xC0DE;
const KEY: &[u8] = b"roundtrip key";

/// The attributes a re-encoding carries: those MESSAGE-INTEGRITY protects, less FINGERPRINT
/// (both are written afresh).
fn attrs<'a>(msg: &Message<'a>) -> Vec<(u16, &'a [u8])> {
    msg.attrs().filter(|(t, _)| *t != attr::FINGERPRINT).collect()
}

/// Checks the round trip of `data`, if it is a STUN message. `buf` must be larger than
/// [`MAX_MESSAGE`] (the writer, not the buffer, must refuse an oversized message).
pub fn check(data: &[u8], buf: &mut [u8]) {
    let Ok(first) = Message::parse(data) else { return };
    let expected = attrs(&first);
    let (integrity, fingerprint) = (first.has(attr::MESSAGE_INTEGRITY), first.has(attr::FINGERPRINT));
    let size = HEADER_LEN
        + expected.iter().map(|(_, v)| 4 + v.len().next_multiple_of(4)).sum::<usize>()
        + if integrity { 24 } else { 0 }
        + if fingerprint { 8 } else { 0 };
    // The shifted encoding ends `shift` bytes short of the largest message (past it when < 0).
    let shift = 4 * (usize::from(first.transaction_id()[11] % 64)) as isize - 8;
    let shifted = (MAX_MESSAGE as isize - size as isize - 4 - shift).max(0) as usize;
    for filler in [None, Some(shifted)] {
        let mut w = MessageWriter::new(buf, first.kind(), first.transaction_id());
        if let Some(len) = filler {
            w.attr(FILLER, &vec![0xF1; len]);
        }
        for (t, v) in &expected {
            w.attr(*t, v);
        }
        if integrity {
            w.integrity(KEY);
        }
        if fingerprint {
            w.fingerprint();
        }
        let total = size + filler.map_or(0, |len| 4 + len.next_multiple_of(4));
        let Ok(n) = w.finish() else {
            assert!(total > MAX_MESSAGE, "the writer refused a {total}-byte message");
            continue;
        };
        assert!(total <= MAX_MESSAGE, "the writer wrote a {total}-byte message, longer than STUN allows");
        assert_eq!(n, total);
        let second = Message::parse(&buf[..n]).expect("a re-encoded message parses");
        assert_eq!((second.kind(), second.transaction_id()), (first.kind(), first.transaction_id()));
        let mut got = attrs(&second);
        if filler.is_some() {
            assert_eq!(got.remove(0).0, FILLER);
        }
        // (Values are compared, never printed: they may be 64 KiB long.)
        assert!(got == expected, "the same attributes in the same order");
        for (t, _) in &expected {
            assert!(second.attr(*t) == first.attr(*t), "attribute {t:#06x} found the same in both");
            let first_of_type = expected.iter().find(|(u, _)| u == t).map(|(_, v)| *v);
            assert!(first.attr(*t).is_none_or(|v| Some(v) == first_of_type), "{t:#06x}: its first occurrence");
        }
        assert_eq!(second.unknown(), first.unknown());
        assert_eq!(second.check_integrity(KEY), integrity, "MESSAGE-INTEGRITY verifies");
        assert_eq!(second.has(attr::FINGERPRINT), fingerprint);
    }
}
