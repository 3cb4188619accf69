//! ChannelData messages (RFC 8656 §12.4) and the first-byte demultiplexing between STUN and
//! ChannelData (RFC 8656 §12, RFC 7983).

/// Size of the ChannelData header (channel number + length).
pub const CHANNEL_DATA_HEADER: usize = 4;
/// First and last channel numbers a client may bind. RFC 8656 §12 narrowed the range to
/// 0x4000-0x4FFF, but RFC 5766 allowed 0x4000-0x7FFF and its clients (coturn's own among
/// them) pick numbers up to 0x7FFF. Every number of the wider range starts with the bits 0b01,
/// so demultiplexing is unaffected (RFC 7983), and turnd accepts it.
pub const MIN_CHANNEL: u16 = 0x4000;
pub const MAX_CHANNEL: u16 = 0x7FFF;

/// What a datagram's first byte says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// 0b00xxxxxx: a STUN message.
    Stun,
    /// 0b01xxxxxx: ChannelData.
    ChannelData,
    /// Anything else (DTLS, RTP, garbage): not for a TURN server.
    Other,
}

/// Classifies a datagram by its first byte.
pub fn classify(buf: &[u8]) -> Framing {
    match buf.first() {
        Some(b) if b & 0xC0 == 0x00 => Framing::Stun,
        Some(b) if b & 0xC0 == 0x40 => Framing::ChannelData,
        _ => Framing::Other,
    }
}

/// Why bytes are not a valid ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelDataError {
    #[error("shorter than a ChannelData header")]
    TooShort,
    #[error("channel number outside 0x4000-0x7FFF")]
    BadChannel,
    #[error("length field beyond the datagram")]
    BadLength,
}

/// A parsed ChannelData message borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u16,
    pub payload: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Parses ChannelData. On UDP the datagram may carry up to 3 padding bytes after the payload
    /// (RFC 8656 §12.5); more trailing bytes, or a payload longer than the datagram, are errors.
    pub fn parse(buf: &'a [u8]) -> Result<Self, ChannelDataError> {
        let (header, rest) = buf.split_first_chunk::<CHANNEL_DATA_HEADER>().ok_or(ChannelDataError::TooShort)?;
        let channel = u16::from_be_bytes([header[0], header[1]]);
        if !(MIN_CHANNEL..=MAX_CHANNEL).contains(&channel) {
            return Err(ChannelDataError::BadChannel);
        }
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if len > rest.len() || rest.len() - len > 3 {
            return Err(ChannelDataError::BadLength);
        }
        Ok(ChannelData { channel, payload: &rest[..len] })
    }

    /// Size of a ChannelData frame for `payload_len` bytes, padded to 4 when `padded` (streams).
    pub fn frame_len(payload_len: usize, padded: bool) -> usize {
        let len = CHANNEL_DATA_HEADER + payload_len;
        if padded {
            len.next_multiple_of(4)
        } else {
            len
        }
    }

    /// Writes the 4-byte header for `payload_len` bytes on `channel` into `header`.
    pub fn write_header(channel: u16, payload_len: u16, header: &mut [u8; CHANNEL_DATA_HEADER]) {
        header[..2].copy_from_slice(&channel.to_be_bytes());
        header[2..].copy_from_slice(&payload_len.to_be_bytes());
    }
}

/// Whether a channel number is one a client may bind.
pub fn valid_channel(channel: u16) -> bool {
    (MIN_CHANNEL..=MAX_CHANNEL).contains(&channel)
}

/// How much of a byte stream the next STUN or ChannelData frame needs (RFC 8656 §12.5: on
/// streams, ChannelData is padded to 4 bytes). Decided from the first 4 bytes, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrame {
    /// Fewer bytes than a frame header: read more.
    NeedHeader,
    /// The next frame is this many bytes long (the buffer may not hold all of it yet).
    Frame(usize),
    /// Not a STUN or ChannelData frame: the stream is not speaking TURN.
    Invalid,
}

/// The length of the frame at the start of `buf` on a stream (TCP or TLS).
pub fn stream_frame(buf: &[u8]) -> StreamFrame {
    let Some(&[b0, b1, l0, l1]) = buf.first_chunk::<4>() else {
        return StreamFrame::NeedHeader;
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    match classify(&[b0]) {
        // A STUN message body is a whole number of 4-byte words (RFC 8489 §5).
        Framing::Stun if len % 4 == 0 => StreamFrame::Frame(super::HEADER_LEN + len),
        Framing::ChannelData if valid_channel(u16::from_be_bytes([b0, b1])) => {
            StreamFrame::Frame(CHANNEL_DATA_HEADER + len.next_multiple_of(4))
        }
        _ => StreamFrame::Invalid,
    }
}

/// Longest frame [`stream_frame`] can announce: a STUN message whose length field is 65532 (the
/// largest whole number of 4-byte words), 12 bytes longer than the longest ChannelData frame (a
/// 65535-byte payload, padded to 65536).
pub const MAX_STREAM_FRAME: usize = super::HEADER_LEN + 65_532;
const _: () = assert!(MAX_STREAM_FRAME >= CHANNEL_DATA_HEADER + 65_536);
