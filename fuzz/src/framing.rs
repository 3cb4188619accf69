//! The `stream_framing` harness: the framing loop of `io/stream.rs` (`read_frames`), sans-IO,
//! fed a byte stream in reads of arbitrary sizes.

use turnd::stun::{classify, stream_frame, ChannelData, Framing, Message, StreamFrame, MAX_STREAM_FRAME};

/// `read_frames`' first buffer size.
const READ_BUFFER: usize = 4096;

/// Frames `stream` as `read_frames` does, reading at most `chunk(i)` bytes the i-th time.
/// Checks that no frame announced is longer than [`MAX_STREAM_FRAME`], that a read always has
/// room (an empty read means end of stream to the real loop), that each complete frame has the
/// length its header announces (and ChannelData parses), and that the frames are the stream.
/// Returns the number of bytes framed.
pub fn frame(stream: &[u8], mut chunk: impl FnMut(usize) -> usize) -> usize {
    let mut buf = vec![0u8; READ_BUFFER];
    let (mut filled, mut read, mut framed, mut reads) = (0, 0, 0, 0);
    loop {
        let mut start = 0;
        loop {
            let n = match stream_frame(&buf[start..filled]) {
                StreamFrame::NeedHeader => break,
                StreamFrame::Invalid => return framed,
                StreamFrame::Frame(n) => n,
            };
            assert!(n <= MAX_STREAM_FRAME, "stream_frame announced {n} bytes, more than MAX_STREAM_FRAME");
            if filled - start < n {
                if n > buf.len() {
                    buf.resize(n.min(MAX_STREAM_FRAME), 0);
                }
                break;
            }
            let frame = &buf[start..start + n];
            assert!(frame == &stream[framed..framed + n], "frames are the stream, in order");
            match classify(frame) {
                Framing::ChannelData => assert!(ChannelData::parse(frame).is_ok(), "a ChannelData frame parses"),
                // A STUN frame has the length its header says; anything else may be wrong.
                _ => assert!(!matches!(
                    Message::parse(frame),
                    Err(turnd::stun::StunError::BadLength | turnd::stun::StunError::TooShort)
                )),
            }
            framed += n;
            start += n;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if read == stream.len() {
            return framed;
        }
        let room = &mut buf[filled..];
        assert!(!room.is_empty(), "buffer full without a complete frame: the read would look like end of stream");
        let n = chunk(reads).clamp(1, room.len()).min(stream.len() - read);
        reads += 1;
        room[..n].copy_from_slice(&stream[read..read + n]);
        (read, filled) = (read + n, filled + n);
    }
}
