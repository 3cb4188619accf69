//! STUN codec (RFC 8489; RFC 5389 clients too): a zero-copy message view with an attribute
//! index, a writer into caller-owned buffers, and ChannelData framing (RFC 8656 §12).
//! Depends on nothing else in turnd; no IO, no clock.

pub mod attr;
mod channel;
mod writer;

pub use channel::{
    classify, stream_frame, valid_channel, ChannelData, ChannelDataError, Framing, StreamFrame, CHANNEL_DATA_HEADER,
    MAX_CHANNEL, MAX_STREAM_FRAME, MIN_CHANNEL,
};
pub use writer::{data_indication_prefix, BufferTooSmall, MessageWriter, DATA_INDICATION_PREFIX_MAX};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The magic cookie of RFC 5389/8489 messages.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;
/// XOR constant of the FINGERPRINT attribute (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Most unknown comprehension-required attributes a message reports in a 420 response.
pub const MAX_UNKNOWN: usize = 8;

/// A STUN method (12 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    pub const BINDING: Method = Method(0x001);
    pub const ALLOCATE: Method = Method(0x003);
    pub const REFRESH: Method = Method(0x004);
    pub const SEND: Method = Method(0x006);
    pub const DATA: Method = Method(0x007);
    pub const CREATE_PERMISSION: Method = Method(0x008);
    pub const CHANNEL_BIND: Method = Method(0x009);
    pub const CONNECT: Method = Method(0x00A);
    pub const CONNECTION_BIND: Method = Method(0x00B);
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);
}

/// The class of a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// Method and class, as carried in the 14-bit message type (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub method: Method,
    pub class: Class,
}

impl MessageType {
    pub const fn new(method: Method, class: Class) -> Self {
        MessageType { method, class }
    }

    /// The 16-bit wire value: method bits M0-M11 interleaved with class bits C0, C1.
    pub fn to_u16(self) -> u16 {
        let m = self.method.0 & 0x0FFF;
        let c: u16 = match self.class {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        };
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    /// Decodes a wire value; the two top bits must be zero.
    pub fn from_u16(v: u16) -> Option<Self> {
        if v & 0xC000 != 0 {
            return None;
        }
        let method = (v & 0x000F) | ((v >> 1) & 0x0070) | ((v >> 2) & 0x0F80);
        let class = match ((v >> 4) & 1) | ((v >> 7) & 2) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::Success,
            _ => Class::Error,
        };
        Some(MessageType { method: Method(method), class })
    }
}

/// Why bytes are not a well-formed STUN message. Copy, never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("shorter than a STUN header")]
    TooShort,
    #[error("not a STUN message (top bits or magic cookie)")]
    NotStun,
    #[error("length field does not match the datagram")]
    BadLength,
    #[error("attribute overruns the message")]
    TruncatedAttribute,
    #[error("attribute after FINGERPRINT")]
    AttributeAfterFingerprint,
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    #[error("malformed address attribute")]
    BadAddress,
    #[error("malformed attribute value")]
    BadAttribute,
}

/// A parsed STUN message borrowing the datagram: header fields plus the offset of the first
/// occurrence of each known attribute. Built by [`Message::parse`] in one pass, no allocation.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    kind: MessageType,
    /// Value offset after the header + 1 of the first occurrence of each [`attr::INDEXED`] type
    /// (0 = absent). Counted from the header's end so that it fits 16 bits (at most 65533).
    index: [u16; attr::INDEXED.len()],
    /// Where the attributes covered by MESSAGE-INTEGRITY end (start of the first MI or
    /// MI-SHA256 attribute), or the message end when there is none. Attributes other than MI-SHA256/FINGERPRINT after MI are
    /// ignored (RFC 8489 §14.5).
    protected_end: usize,
    unknown: [u16; MAX_UNKNOWN],
    unknown_len: u8,
}

impl<'a> Message<'a> {
    /// Parses a whole STUN message. `buf` must be exactly the message (on UDP the datagram).
    ///
    /// Duplicates: only the first occurrence of an attribute is indexed (RFC 8489 §14).
    pub fn parse(buf: &'a [u8]) -> Result<Self, StunError> {
        let header: &[u8; HEADER_LEN] =
            buf.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(StunError::TooShort)?;
        let kind = MessageType::from_u16(u16::from_be_bytes([header[0], header[1]])).ok_or(StunError::NotStun)?;
        if u32::from_be_bytes([header[4], header[5], header[6], header[7]]) != MAGIC_COOKIE {
            return Err(StunError::NotStun);
        }
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if len % 4 != 0 || HEADER_LEN + len != buf.len() {
            return Err(StunError::BadLength);
        }
        let mut msg = Message {
            buf,
            kind,
            index: [0; attr::INDEXED.len()],
            protected_end: buf.len(),
            unknown: [0; MAX_UNKNOWN],
            unknown_len: 0,
        };
        let mut pos = HEADER_LEN;
        let mut after_integrity = false;
        let mut seen_fingerprint = false;
        while pos < buf.len() {
            if seen_fingerprint {
                return Err(StunError::AttributeAfterFingerprint);
            }
            let (t, value_len) = match buf.get(pos..pos + 4) {
                Some(&[a, b, c, d]) => (u16::from_be_bytes([a, b]), usize::from(u16::from_be_bytes([c, d]))),
                _ => return Err(StunError::TruncatedAttribute),
            };
            let value_at = pos + 4;
            let next = value_at + value_len.next_multiple_of(4);
            if next > buf.len() {
                return Err(StunError::TruncatedAttribute);
            }
            let indexable = !after_integrity || t == attr::MESSAGE_INTEGRITY_SHA256 || t == attr::FINGERPRINT;
            if indexable {
                match attr::slot(t) {
                    Some(slot) if msg.index[slot] == 0 => {
                        // value_at <= HEADER_LEN + 65532 (the length field is 16 bits, whole
                        // words), so the stored value is at most 65533.
                        msg.index[slot] = (value_at - HEADER_LEN + 1) as u16;
                    }
                    Some(_) => {}
                    None if attr::is_comprehension_required(t)
                        && usize::from(msg.unknown_len) < MAX_UNKNOWN
                        && !msg.unknown().contains(&t) =>
                    {
                        msg.unknown[usize::from(msg.unknown_len)] = t;
                        msg.unknown_len += 1;
                    }
                    None => {}
                }
            }
            // Whichever integrity attribute comes first ends the protected part (RFC 8489 §14.5,
            // §14.6): after it only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count.
            if (t == attr::MESSAGE_INTEGRITY || t == attr::MESSAGE_INTEGRITY_SHA256) && !after_integrity {
                after_integrity = true;
                msg.protected_end = pos;
            }
            if t == attr::FINGERPRINT {
                seen_fingerprint = true;
                if value_len != 4 {
                    return Err(StunError::BadFingerprint);
                }
            }
            pos = next;
        }
        if let Some(fp) = msg.attr(attr::FINGERPRINT) {
            // FINGERPRINT is last (checked above): the CRC covers everything before it.
            let expected = crc32fast::hash(&buf[..buf.len() - 8]) ^ FINGERPRINT_XOR;
            if attr::decode_u32(fp)? != expected {
                return Err(StunError::BadFingerprint);
            }
        }
        Ok(msg)
    }

    pub fn kind(&self) -> MessageType {
        self.kind
    }

    pub fn method(&self) -> Method {
        self.kind.method
    }

    pub fn class(&self) -> Class {
        self.kind.class
    }

    /// The 96-bit transaction id.
    pub fn transaction_id(&self) -> &'a [u8; 12] {
        // The header was checked to be 20 bytes long in parse().
        self.buf[8..20].try_into().expect("header is 20 bytes")
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Value of the first occurrence of a known attribute type (before MESSAGE-INTEGRITY,
    /// or MI-SHA256/FINGERPRINT after it).
    pub fn attr(&self, attr_type: u16) -> Option<&'a [u8]> {
        let at = usize::from(self.index[attr::slot(attr_type)?]);
        let value_at = at.checked_sub(1)? + HEADER_LEN;
        let len = match self.buf.get(value_at.checked_sub(2)?..value_at)? {
            &[hi, lo] => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return None,
        };
        self.buf.get(value_at..value_at + len)
    }

    /// Whether an attribute is present.
    pub fn has(&self, attr_type: u16) -> bool {
        self.attr(attr_type).is_some()
    }

    /// All attributes in order, up to MESSAGE-INTEGRITY (those it protects).
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs { buf: &self.buf[..self.protected_end], pos: HEADER_LEN }
    }

    /// Comprehension-required attributes turnd does not understand (for 420).
    pub fn unknown(&self) -> &[u16] {
        &self.unknown[..usize::from(self.unknown_len)]
    }

    /// First occurrence of an XOR-encoded address attribute.
    pub fn xor_address(&self, attr_type: u16) -> Option<Result<std::net::SocketAddr, StunError>> {
        self.attr(attr_type).map(|v| attr::decode_xor_address(v, self.transaction_id()))
    }

    /// A 32-bit attribute such as LIFETIME.
    pub fn u32_attr(&self, attr_type: u16) -> Option<Result<u32, StunError>> {
        self.attr(attr_type).map(attr::decode_u32)
    }

    /// A UTF-8 text attribute (USERNAME, REALM, NONCE, SOFTWARE).
    pub fn text(&self, attr_type: u16) -> Option<Result<&'a str, StunError>> {
        self.attr(attr_type).map(|v| std::str::from_utf8(v).map_err(|_| StunError::BadAttribute))
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) with `key`, in constant time.
    /// The HMAC runs over the message up to MI with the length field set to end after MI.
    /// Returns false when there is no MESSAGE-INTEGRITY.
    pub fn check_integrity(&self, key: &[u8]) -> bool {
        let Some(expected) = self.attr(attr::MESSAGE_INTEGRITY) else {
            return false;
        };
        if expected.len() != 20 {
            return false;
        }
        let mac = integrity_hmac(key, self.buf, self.protected_end);
        subtle::ConstantTimeEq::ct_eq(&mac[..], expected).into()
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, RFC 8489 §14.6) with `key`, in constant
    /// time. The value may be truncated to 16..=32 bytes in steps of 4; the HMAC runs over the
    /// message up to the attribute with the length field set to end after it. Returns false when
    /// there is none.
    pub fn check_integrity_sha256(&self, key: &[u8]) -> bool {
        let (Some(expected), Some(start)) =
            (self.attr(attr::MESSAGE_INTEGRITY_SHA256), self.attr_start(attr::MESSAGE_INTEGRITY_SHA256))
        else {
            return false;
        };
        if !(16..=32).contains(&expected.len()) || expected.len() % 4 != 0 {
            return false;
        }
        let mac = integrity_hmac_sha256(key, self.buf, start, expected.len());
        subtle::ConstantTimeEq::ct_eq(&mac[..expected.len()], expected).into()
    }

    /// Offset of the header of the first indexed occurrence of `attr_type`.
    fn attr_start(&self, attr_type: u16) -> Option<usize> {
        let at = usize::from(self.index[attr::slot(attr_type)?]);
        (at.checked_sub(1)? + HEADER_LEN).checked_sub(4)
    }
}

/// HMAC-SHA1 over `buf[..end]` with the header length field rewritten to cover the 24-byte
/// MESSAGE-INTEGRITY attribute that starts at `end` (RFC 8489 §14.5).
pub(crate) fn integrity_hmac(key: &[u8], buf: &[u8], end: usize) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    let length = (end + 24 - HEADER_LEN) as u16;
    mac.update(&buf[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&buf[4..end]);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 over `buf[..end]` with the header length field rewritten to cover a
/// MESSAGE-INTEGRITY-SHA256 attribute of `mac_len` bytes that starts at `end` (RFC 8489 §14.6).
pub(crate) fn integrity_hmac_sha256(key: &[u8], buf: &[u8], end: usize, mac_len: usize) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    let length = (end + 4 + mac_len - HEADER_LEN) as u16;
    mac.update(&buf[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&buf[4..end]);
    mac.finalize().into_bytes().into()
}

/// Iterator over the (type, value) pairs of a message.
pub struct Attrs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.buf.get(self.pos..self.pos + 4)?;
        let t = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let value = self.buf.get(self.pos + 4..self.pos + 4 + len)?;
        self.pos += 4 + len.next_multiple_of(4);
        Some((t, value))
    }
}

#[cfg(test)]
mod tests;
