//! STUN messages for the test client: building (`MessageBuilder`) and parsing (`Message`),
//! XOR address encodings and message types. Independent of turnd's own codec.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::client::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

/// Message type field from class and method (the class bits are interleaved).
pub fn message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0FFF;
    ((m & 0x0F80) << 2) | ((m & 0x0070) << 1) | (m & 0x000F) | class.bits()
}

fn split_type(t: u16) -> (Class, u16) {
    let class = match t & 0x0110 {
        0x000 => Class::Request,
        0x010 => Class::Indication,
        0x100 => Class::Success,
        _ => Class::Error,
    };
    let method = ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F);
    (class, method)
}

pub fn random_txid() -> [u8; 12] {
    // Std-only randomness: RandomState is seeded randomly per process; mix in a counter/time.
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; 12];
    for chunk in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let v = h.finish().to_be_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

/// XOR-encoded address attribute value (XOR-MAPPED/PEER/RELAYED-ADDRESS).
pub fn encode_xor_addr(addr: SocketAddr, txid: &[u8; 12]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    let xport = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match addr.ip() {
        IpAddr::V4(ip) => {
            v.extend_from_slice(&[0, 0x01]);
            v.extend_from_slice(&xport.to_be_bytes());
            let x = u32::from(ip) ^ MAGIC_COOKIE;
            v.extend_from_slice(&x.to_be_bytes());
        }
        IpAddr::V6(ip) => {
            v.extend_from_slice(&[0, 0x02]);
            v.extend_from_slice(&xport.to_be_bytes());
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(txid);
            for (a, m) in ip.octets().iter().zip(mask.iter()) {
                v.push(a ^ m);
            }
        }
    }
    v
}

pub fn decode_xor_addr(v: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match v[1] {
        0x01 if v.len() == 8 => {
            let x = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(x)), port))
        }
        0x02 if v.len() == 20 => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(txid);
            let mut o = [0u8; 16];
            for i in 0..16 {
                o[i] = v[4 + i] ^ mask[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => None,
    }
}

/// A STUN message under construction.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    pub class: Class,
    pub method: u16,
    pub txid: [u8; 12],
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl MessageBuilder {
    pub fn new(class: Class, method: u16) -> Self {
        MessageBuilder { class, method, txid: random_txid(), attrs: Vec::new() }
    }

    pub fn attr(mut self, t: u16, v: impl Into<Vec<u8>>) -> Self {
        self.attrs.push((t, v.into()));
        self
    }

    /// Encodes the message, appending MESSAGE-INTEGRITY when `key` is given and FINGERPRINT
    /// when `fingerprint` is set.
    pub fn encode(&self, key: Option<&[u8]>, fingerprint: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&message_type(self.class, self.method).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        b.extend_from_slice(&self.txid);
        for (t, v) in &self.attrs {
            push_attr(&mut b, *t, v);
        }
        if let Some(key) = key {
            let l = b.len() - 20 + 24;
            set_len(&mut b, l);
            let mac = hmac_sha1(key, &b);
            push_attr(&mut b, MESSAGE_INTEGRITY, &mac);
        }
        self.finish(b, fingerprint)
    }

    /// Encodes the message with MESSAGE-INTEGRITY-SHA256 (all 32 bytes) keyed with `key`.
    pub fn encode_sha256(&self, key: &[u8], fingerprint: bool) -> Vec<u8> {
        let mut b = self.encode(None, false);
        let l = b.len() - 20 + 36;
        set_len(&mut b, l);
        let mac = hmac_sha256(key, &b);
        push_attr(&mut b, MESSAGE_INTEGRITY_SHA256, &mac);
        self.finish(b, fingerprint)
    }

    fn finish(&self, mut b: Vec<u8>, fingerprint: bool) -> Vec<u8> {
        if fingerprint {
            push_fingerprint(&mut b);
        }
        let l = b.len() - 20;
        set_len(&mut b, l);
        b
    }
}

/// Writes `len` into the length field of the encoded message `b`.
pub fn set_len(b: &mut [u8], len: usize) {
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Appends FINGERPRINT (RFC 8489 §14.7) to the encoded message `b`, length field included.
pub fn push_fingerprint(b: &mut Vec<u8>) {
    let l = b.len() - 20 + 8;
    set_len(b, l);
    let crc = crc32fast::hash(b) ^ FINGERPRINT_XOR;
    push_attr(b, FINGERPRINT, &crc.to_be_bytes());
}

/// Appends attribute `t` with value `v` and its padding; the length field is left as it is.
pub fn push_attr(b: &mut Vec<u8>, t: u16, v: &[u8]) {
    b.extend_from_slice(&t.to_be_bytes());
    b.extend_from_slice(&(v.len() as u16).to_be_bytes());
    b.extend_from_slice(v);
    while b.len() % 4 != 0 {
        b.push(0);
    }
}

/// A parsed STUN message.
#[derive(Clone, Debug)]
pub struct Message {
    pub class: Class,
    pub method: u16,
    pub txid: [u8; 12],
    /// Attributes in order (type, value without padding).
    pub attrs: Vec<(u16, Vec<u8>)>,
    /// Offset of the MESSAGE-INTEGRITY attribute header, if present.
    mi_offset: Option<usize>,
    raw: Vec<u8>,
}

pub type Response = Message;

impl Message {
    pub fn parse(b: &[u8]) -> Result<Message, String> {
        if b.len() < 20 {
            return Err(format!("short message ({} bytes)", b.len()));
        }
        if b[0] & 0xC0 != 0 {
            return Err("first two bits not zero".into());
        }
        if u32::from_be_bytes([b[4], b[5], b[6], b[7]]) != MAGIC_COOKIE {
            return Err("bad magic cookie".into());
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if len % 4 != 0 || 20 + len != b.len() {
            return Err(format!("length field {len} does not match datagram of {} bytes", b.len()));
        }
        let (class, method) = split_type(u16::from_be_bytes([b[0], b[1]]));
        let mut txid = [0u8; 12];
        txid.copy_from_slice(&b[8..20]);
        let mut attrs = Vec::new();
        let mut mi_offset = None;
        let mut i = 20;
        while i < b.len() {
            if i + 4 > b.len() {
                return Err("truncated attribute header".into());
            }
            let t = u16::from_be_bytes([b[i], b[i + 1]]);
            let l = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            if i + 4 + l > b.len() {
                return Err(format!("attribute 0x{t:04x} overruns message"));
            }
            if t == MESSAGE_INTEGRITY && mi_offset.is_none() {
                mi_offset = Some(i);
            }
            if t == FINGERPRINT {
                if l != 4 || i + 8 != b.len() {
                    return Err("FINGERPRINT not last or bad length".into());
                }
                let want = crc32fast::hash(&b[..i]) ^ FINGERPRINT_XOR;
                let got = u32::from_be_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
                if want != got {
                    return Err(format!("bad FINGERPRINT: got {got:08x}, want {want:08x}"));
                }
            }
            attrs.push((t, b[i + 4..i + 4 + l].to_vec()));
            i += 4 + ((l + 3) & !3);
        }
        if i != b.len() {
            return Err("attribute padding overruns message".into());
        }
        Ok(Message { class, method, txid, attrs, mi_offset, raw: b.to_vec() })
    }

    pub fn get(&self, t: u16) -> Option<&[u8]> {
        self.attrs.iter().find(|(at, _)| *at == t).map(|(_, v)| v.as_slice())
    }

    pub fn has(&self, t: u16) -> bool {
        self.get(t).is_some()
    }

    pub fn is_success(&self) -> bool {
        self.class == Class::Success
    }

    /// (code, reason) of an ERROR-CODE attribute.
    pub fn error(&self) -> Option<(u16, String)> {
        let v = self.get(ERROR_CODE)?;
        if v.len() < 4 {
            return None;
        }
        let code = (v[2] & 0x07) as u16 * 100 + v[3] as u16;
        Some((code, String::from_utf8_lossy(&v[4..]).trim_end_matches('\0').to_string()))
    }

    pub fn error_code(&self) -> Option<u16> {
        self.error().map(|e| e.0)
    }

    pub fn xor_addr(&self, t: u16) -> Option<SocketAddr> {
        decode_xor_addr(self.get(t)?, &self.txid)
    }

    pub fn xor_mapped(&self) -> Option<SocketAddr> {
        self.xor_addr(XOR_MAPPED_ADDRESS)
    }

    pub fn xor_relayed(&self) -> Option<SocketAddr> {
        self.xor_addr(XOR_RELAYED_ADDRESS)
    }

    pub fn xor_peer(&self) -> Option<SocketAddr> {
        self.xor_addr(XOR_PEER_ADDRESS)
    }

    pub fn lifetime(&self) -> Option<u32> {
        let v = self.get(LIFETIME)?;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    pub fn text(&self, t: u16) -> Option<String> {
        self.get(t).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn nonce(&self) -> Option<String> {
        self.text(NONCE)
    }

    pub fn realm(&self) -> Option<String> {
        self.text(REALM)
    }

    pub fn unknown_attributes(&self) -> Vec<u16> {
        self.get(UNKNOWN_ATTRIBUTES)
            .map(|v| v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
            .unwrap_or_default()
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 (32 bytes) against `key`: `None` if absent.
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Option<bool> {
        let mut off = 20;
        for (t, v) in &self.attrs {
            if *t == MESSAGE_INTEGRITY_SHA256 {
                let mut head = self.raw[..off].to_vec();
                set_len(&mut head, off - 20 + 4 + v.len());
                return Some(v.len() == 32 && hmac_sha256(key, &head)[..] == v[..]);
            }
            off += 4 + ((v.len() + 3) & !3);
        }
        None
    }

    /// Checks MESSAGE-INTEGRITY against `key`: `None` if absent, `Some(ok)` otherwise.
    pub fn verify_integrity(&self, key: &[u8]) -> Option<bool> {
        let off = self.mi_offset?;
        let mut head = self.raw[..off].to_vec();
        set_len(&mut head, off - 20 + 24);
        let want = hmac_sha1(key, &head);
        Some(self.raw[off + 4..off + 24] == want)
    }

    pub fn describe(&self) -> String {
        let ty: Vec<String> = self.attrs.iter().map(|(t, _)| format!("0x{t:04x}")).collect();
        format!("{:?} method=0x{:03x} error={:?} attrs=[{}]", self.class, self.method, self.error(), ty.join(","))
    }
}
