//! Writes STUN messages into a caller-owned buffer (no allocation).

use std::net::SocketAddr;

use super::{attr, integrity_hmac, integrity_hmac_sha256, MessageType, FINGERPRINT_XOR, HEADER_LEN, MAGIC_COOKIE};

/// Builds one STUN message in `buf`. Calls never fail one by one: running out of room is
/// remembered and reported by [`MessageWriter::finish`], so callers chain attribute writes.
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
    txid: [u8; 12],
}

/// The buffer was too small for the message, or the message longer than STUN allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer too small for the STUN message")]
pub struct BufferTooSmall;

/// Longest STUN message: the 16-bit length field counts a body of whole 4-byte words.
const MAX_MESSAGE: usize = HEADER_LEN + 0xFFFC;

impl<'b> MessageWriter<'b> {
    /// Starts a message of type `kind` with transaction id `txid`.
    pub fn new(buf: &'b mut [u8], kind: MessageType, txid: &[u8; 12]) -> Self {
        let mut w = MessageWriter { buf, len: 0, overflow: false, txid: *txid };
        if w.buf.len() < HEADER_LEN {
            w.overflow = true;
            return w;
        }
        w.buf[..2].copy_from_slice(&kind.to_u16().to_be_bytes());
        w.buf[2..4].copy_from_slice(&[0, 0]);
        w.buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        w.buf[8..20].copy_from_slice(txid);
        w.len = HEADER_LEN;
        w
    }

    /// Appends an attribute with the given value, zero-padded to 4 bytes.
    pub fn attr(&mut self, attr_type: u16, value: &[u8]) -> &mut Self {
        let padded = value.len().next_multiple_of(4);
        if value.len() > usize::from(u16::MAX) || !self.fits(4 + padded) {
            self.overflow = true;
            return self;
        }
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&attr_type.to_be_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf[at + 4..at + 4 + value.len()].copy_from_slice(value);
        self.buf[at + 4 + value.len()..at + 4 + padded].fill(0);
        self.len = at + 4 + padded;
        self
    }

    /// Appends a 32-bit attribute (LIFETIME, ...).
    pub fn u32_attr(&mut self, attr_type: u16, value: u32) -> &mut Self {
        self.attr(attr_type, &value.to_be_bytes())
    }

    /// Appends an XOR-encoded address (XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS).
    pub fn xor_address(&mut self, attr_type: u16, addr: SocketAddr) -> &mut Self {
        let mut value = [0u8; 20];
        let txid = self.txid;
        let n = attr::encode_address(addr, Some(&txid), &mut value);
        self.attr(attr_type, &value[..n])
    }

    /// Appends a plain address (MAPPED-ADDRESS, ALTERNATE-SERVER).
    pub fn address(&mut self, attr_type: u16, addr: SocketAddr) -> &mut Self {
        let mut value = [0u8; 20];
        let n = attr::encode_address(addr, None, &mut value);
        self.attr(attr_type, &value[..n])
    }

    /// Appends ERROR-CODE (RFC 8489 §14.8).
    pub fn error_code(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut value = [0u8; 4 + 128];
        let reason = truncate_utf8(reason, 128);
        value[2] = (code / 100) as u8;
        value[3] = (code % 100) as u8;
        value[4..4 + reason.len()].copy_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &value[..4 + reason.len()])
    }

    /// Appends ICMP (RFC 8656 §18.13).
    pub fn icmp(&mut self, icmp: attr::Icmp) -> &mut Self {
        self.attr(attr::ICMP, &attr::encode_icmp(icmp))
    }

    /// Appends UNKNOWN-ATTRIBUTES listing `types`.
    pub fn unknown_attributes(&mut self, types: &[u16]) -> &mut Self {
        let mut value = [0u8; 2 * super::MAX_UNKNOWN];
        let types = &types[..types.len().min(super::MAX_UNKNOWN)];
        for (chunk, t) in value.chunks_exact_mut(2).zip(types) {
            chunk.copy_from_slice(&t.to_be_bytes());
        }
        self.attr(attr::UNKNOWN_ATTRIBUTES, &value[..2 * types.len()])
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 with `key`) over everything written so far.
    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        if !self.fits(24) {
            self.overflow = true;
            return self;
        }
        let mac = integrity_hmac(key, self.buf, self.len);
        self.attr(attr::MESSAGE_INTEGRITY, &mac)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256 with `key`, all 32 bytes) over everything
    /// written so far (RFC 8489 §14.6).
    pub fn integrity_sha256(&mut self, key: &[u8]) -> &mut Self {
        if !self.fits(36) {
            self.overflow = true;
            return self;
        }
        let mac = integrity_hmac_sha256(key, self.buf, self.len, 32);
        self.attr(attr::MESSAGE_INTEGRITY_SHA256, &mac)
    }

    /// Appends FINGERPRINT; must be the last attribute.
    pub fn fingerprint(&mut self) -> &mut Self {
        if !self.fits(8) {
            self.overflow = true;
            return self;
        }
        self.set_length(self.len + 8);
        let crc = crc32fast::hash(&self.buf[..self.len]) ^ FINGERPRINT_XOR;
        self.u32_attr(attr::FINGERPRINT, crc)
    }

    /// Writes the final length into the header and returns the message size.
    pub fn finish(&mut self) -> Result<usize, BufferTooSmall> {
        if self.overflow {
            return Err(BufferTooSmall);
        }
        self.set_length(self.len);
        Ok(self.len)
    }

    /// Whether `n` more bytes fit both the buffer and the longest STUN message (a larger buffer
    /// must not let the 16-bit length field wrap).
    fn fits(&self, n: usize) -> bool {
        !self.overflow && self.len + n <= self.buf.len().min(MAX_MESSAGE)
    }

    fn set_length(&mut self, total: usize) {
        let body = (total - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&body.to_be_bytes());
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Longest prefix [`data_indication_prefix`] writes: header, XOR-PEER-ADDRESS (IPv6), DATA header.
pub const DATA_INDICATION_PREFIX_MAX: usize = HEADER_LEN + 4 + 20 + 4;

/// Writes everything of a Data indication (RFC 8656 §10.3) that comes before its payload: the
/// header, XOR-PEER-ADDRESS and the DATA attribute header. The payload follows directly, padded
/// with zeros to 4 bytes by the caller. Returns the prefix length (36 for IPv4, 48 for IPv6), or
/// `None` when the payload is too long for a STUN message: over 65516 bytes from an IPv4 peer,
/// 65504 from IPv6 (a UDP datagram from an IPv4 peer never is; data a stream client sends to
/// another allocation of this server can be).
pub fn data_indication_prefix(
    out: &mut [u8; DATA_INDICATION_PREFIX_MAX],
    txid: &[u8; 12],
    peer: SocketAddr,
    payload_len: u16,
) -> Option<usize> {
    let mut addr = [0u8; 20];
    let addr_len = attr::encode_address(peer, Some(txid), &mut addr);
    let prefix = HEADER_LEN + 4 + addr_len + 4;
    let body = u16::try_from((prefix - HEADER_LEN) + usize::from(payload_len).next_multiple_of(4)).ok()?;
    let kind = MessageType::new(super::Method::DATA, super::Class::Indication);
    out[..2].copy_from_slice(&kind.to_u16().to_be_bytes());
    out[2..4].copy_from_slice(&body.to_be_bytes());
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..20].copy_from_slice(txid);
    out[20..22].copy_from_slice(&attr::XOR_PEER_ADDRESS.to_be_bytes());
    out[22..24].copy_from_slice(&(addr_len as u16).to_be_bytes());
    out[24..24 + addr_len].copy_from_slice(&addr[..addr_len]);
    out[24 + addr_len..26 + addr_len].copy_from_slice(&attr::DATA.to_be_bytes());
    out[26 + addr_len..28 + addr_len].copy_from_slice(&payload_len.to_be_bytes());
    Some(prefix)
}
