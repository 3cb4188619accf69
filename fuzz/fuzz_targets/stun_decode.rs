#![no_main]
//! `Message::parse` on any bytes; on what parses, every accessor, on every attribute.
use libfuzzer_sys::fuzz_target;
use turnd::stun::{attr, Message, MessageType, MAX_UNKNOWN};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else { return };
    assert_eq!(data[..2], msg.kind().to_u16().to_be_bytes());
    assert_eq!(MessageType::from_u16(msg.kind().to_u16()), Some(msg.kind()));
    let inside = |v: &[u8]| data.as_ptr_range().start <= v.as_ptr() && v.as_ptr_range().end <= data.as_ptr_range().end;
    for (t, value) in msg.attrs() {
        assert!(inside(value) && msg.attr(t).is_none_or(inside), "attribute values are views of the message");
        let _ = (attr::decode_address(value), attr::decode_xor_address(value, msg.transaction_id()));
        let _ = (attr::decode_error_code(value), attr::decode_u32(value), msg.xor_address(t), msg.u32_attr(t));
        assert!(msg.text(t).is_none_or(|s| s.map_or(true, |s| Some(s.as_bytes()) == msg.attr(t))));
    }
    assert!(msg.unknown().len() <= MAX_UNKNOWN && msg.unknown().iter().all(|t| attr::is_comprehension_required(*t)));
    let _ = msg.check_integrity(b"fuzz key");
});
