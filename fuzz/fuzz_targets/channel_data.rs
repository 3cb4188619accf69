#![no_main]
//! `ChannelData::parse` and `stream_frame` on any bytes: a stream frame is at most
//! MAX_STREAM_FRAME, ChannelData's frame length is its padded payload, and a complete frame
//! parses as what its first byte says.
use libfuzzer_sys::fuzz_target;
use turnd::stun::{classify, stream_frame, valid_channel, ChannelData, Framing, Message, StreamFrame, StunError};
use turnd::stun::{CHANNEL_DATA_HEADER, MAX_STREAM_FRAME};

fuzz_target!(|data: &[u8]| {
    let frame = stream_frame(data);
    if let Ok(cd) = ChannelData::parse(data) {
        assert!(valid_channel(cd.channel) && cd.payload == &data[CHANNEL_DATA_HEADER..][..cd.payload.len()]);
        assert_eq!(frame, StreamFrame::Frame(ChannelData::frame_len(cd.payload.len(), true)));
    }
    let StreamFrame::Frame(n) = frame else { return };
    assert!(n <= MAX_STREAM_FRAME, "stream_frame announced {n} bytes, more than MAX_STREAM_FRAME");
    let Some(whole) = data.get(..n) else { return };
    match classify(whole) {
        Framing::ChannelData => assert!(ChannelData::parse(whole).is_ok(), "a whole ChannelData frame parses"),
        Framing::Stun => assert!(!matches!(Message::parse(whole), Err(StunError::BadLength | StunError::TooShort))),
        Framing::Other => panic!("stream_frame framed neither STUN nor ChannelData"),
    }
});
