//! A small, independent STUN/TURN client (RFC 8489 / RFC 8656) over a blocking UDP socket.
//! It deliberately shares no code with turnd: every message is built and parsed here.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub use super::keys::*;

pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

// Methods.
pub const BINDING: u16 = 0x001;
pub const ALLOCATE: u16 = 0x003;
pub const REFRESH: u16 = 0x004;
pub const SEND: u16 = 0x006;
pub const DATA: u16 = 0x007;
pub const CREATE_PERMISSION: u16 = 0x008;
pub const CHANNEL_BIND: u16 = 0x009;

// Attributes.
pub const MAPPED_ADDRESS: u16 = 0x0001;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const CHANNEL_NUMBER: u16 = 0x000C;
pub const LIFETIME: u16 = 0x000D;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const DATA_ATTR: u16 = 0x0013;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const EVEN_PORT: u16 = 0x0018;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const DONT_FRAGMENT: u16 = 0x001A;
pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
pub const PASSWORD_ALGORITHM: u16 = 0x001D;
pub const USERHASH: u16 = 0x001E;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
pub const SOFTWARE: u16 = 0x8022;
pub const FINGERPRINT: u16 = 0x8028;

pub const UDP: u8 = 17;
pub const TCP: u8 = 6;

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

/// An error response (or a client-side failure with code 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StunError {
    pub code: u16,
    pub reason: String,
}

impl fmt::Display for StunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for StunError {}

fn to_result(r: &Message) -> Result<(), StunError> {
    match r.class {
        Class::Success => Ok(()),
        _ => {
            let (code, reason) =
                r.error().unwrap_or((0, format!("error response without ERROR-CODE: {}", r.describe())));
            Err(StunError { code, reason })
        }
    }
}

/// Something the server sent that is not the response to an outstanding request.
#[derive(Clone, Debug)]
pub enum Incoming {
    /// A Data indication.
    Data { peer: SocketAddr, data: Vec<u8> },
    /// A ChannelData message.
    ChannelData { channel: u16, data: Vec<u8> },
    /// Any other STUN message.
    Stun(Message),
}

struct Creds {
    user: String,
    pass: String,
    realm: Option<String>,
    nonce: Option<String>,
    /// PASSWORD-ALGORITHMS of the last challenge (RFC 8489 §9.2.3).
    algorithms: Option<Vec<u8>>,
}

/// How the client uses RFC 8489's security features when the server offers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rfc8489 {
    /// PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256 when the nonce cookie's
    /// password-algorithms bit is set and PASSWORD-ALGORITHMS lists SHA-256.
    pub sha256: bool,
    /// USERHASH instead of USERNAME when the username-anonymity bit is set.
    pub userhash: bool,
    /// Leave PASSWORD-ALGORITHMS out (what a client sees when an attacker strips it).
    pub strip_algorithms: bool,
}

/// A TURN client on one UDP socket (one 5-tuple).
pub struct TurnClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    creds: Option<Creds>,
    pub relayed: Option<SocketAddr>,
    pub mapped: Option<SocketAddr>,
    pub lifetime: Option<u32>,
    /// Add FINGERPRINT to every request (default true).
    pub fingerprint: bool,
    /// RFC 8489 features to use (default none: an RFC 5389 client).
    pub rfc8489: Rfc8489,
    pending: VecDeque<Incoming>,
}

/// Per-request wait: the request is retransmitted after 1 s and 3 s, then given up at 7 s.
const RETRANSMITS_AT: [u64; 2] = [1000, 3000];
const REQUEST_TIMEOUT: Duration = Duration::from_millis(7000);

impl TurnClient {
    pub fn new(server: SocketAddr) -> TurnClient {
        let bind = if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
        let sock = UdpSocket::bind(bind).expect("bind client socket");
        TurnClient {
            sock,
            server,
            creds: None,
            relayed: None,
            mapped: None,
            lifetime: None,
            fingerprint: true,
            rfc8489: Rfc8489::default(),
            pending: VecDeque::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Sets the credentials used by later requests; realm and nonce already learned are kept.
    pub fn set_credentials(&mut self, user: &str, pass: &str) {
        let (realm, nonce, algorithms) = match self.creds.take() {
            Some(c) => (c.realm, c.nonce, c.algorithms),
            None => (None, None, None),
        };
        self.creds = Some(Creds { user: user.into(), pass: pass.into(), realm, nonce, algorithms });
    }

    pub fn key(&self) -> Option<Vec<u8>> {
        let c = self.creds.as_ref()?;
        if self.uses_sha256() {
            return Some(long_term_key_sha256(&c.user, c.realm.as_deref()?, &c.pass));
        }
        Some(long_term_key(&c.user, c.realm.as_deref()?, &c.pass))
    }

    /// Whether the next request uses SHA-256: asked for, and offered by the current nonce and
    /// challenge.
    pub fn uses_sha256(&self) -> bool {
        let Some(c) = self.creds.as_ref() else { return false };
        let offered = c.nonce.as_deref().and_then(nonce_features).is_some_and(|(algs, _)| algs);
        let listed = c.algorithms.as_ref().is_some_and(|l| l.chunks(4).any(|e| e[..2] == [0, 2]));
        self.rfc8489.sha256 && offered && listed
    }

    /// Whether the next request names its user by USERHASH.
    fn uses_userhash(&self) -> bool {
        let offered = self.nonce().as_deref().and_then(nonce_features).is_some_and(|(_, anon)| anon);
        self.rfc8489.userhash && offered
    }

    pub fn nonce(&self) -> Option<String> {
        self.creds.as_ref()?.nonce.clone()
    }

    /// Sends raw bytes to the server.
    pub fn send_raw(&self, b: &[u8]) {
        self.sock.send_to(b, self.server).expect("send to server");
    }

    /// Sends `msg` (already encoded) and waits for the response with `txid`, retransmitting.
    /// Panics if no response arrives within the timeout.
    pub fn transact_raw(&mut self, bytes: &[u8], txid: [u8; 12]) -> Message {
        let start = Instant::now();
        self.send_raw(bytes);
        let mut next = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            let elapsed = start.elapsed();
            if elapsed >= REQUEST_TIMEOUT {
                panic!("no response from {} within {:?}", self.server, REQUEST_TIMEOUT);
            }
            let mut wait = REQUEST_TIMEOUT - elapsed;
            if next < RETRANSMITS_AT.len() {
                let at = Duration::from_millis(RETRANSMITS_AT[next]);
                if elapsed >= at {
                    self.send_raw(bytes);
                    next += 1;
                    continue;
                }
                wait = wait.min(at - elapsed);
            }
            self.sock.set_read_timeout(Some(wait.max(Duration::from_millis(1)))).unwrap();
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => panic!("recv from server: {e}"),
            };
            if from != self.server {
                continue;
            }
            match classify(&buf[..n]) {
                Ok(Incoming::Stun(m)) if m.txid == txid && matches!(m.class, Class::Success | Class::Error) => {
                    return m
                }
                Ok(Incoming::Stun(m)) if matches!(m.class, Class::Success | Class::Error) => {} // stale response
                Ok(other) => self.pending.push_back(other),
                Err(e) => panic!("unparseable datagram from server: {e}: {:02x?}", &buf[..n]),
            }
        }
    }

    /// Sends an unauthenticated request built from `b` and returns the response.
    pub fn transact(&mut self, b: &MessageBuilder) -> Message {
        let bytes = b.encode(None, self.fingerprint);
        self.transact_raw(&bytes, b.txid)
    }

    /// Binding request; returns the response.
    pub fn binding(&mut self) -> Message {
        let b = MessageBuilder::new(Class::Request, BINDING);
        self.transact(&b)
    }

    /// Sends an authenticated request (credentials from `set_credentials`/`allocate`). If no
    /// nonce is known yet, first learns REALM/NONCE from the 401; retries once on 438 (stale
    /// nonce). Panics if a response carries a MESSAGE-INTEGRITY that does not verify, or if a
    /// success response to an authenticated request lacks one.
    pub fn request(&mut self, method: u16, attrs: Vec<(u16, Vec<u8>)>) -> Response {
        let mut retried_438 = false;
        let mut learned_401 = false;
        for _ in 0..3 {
            let mut b = MessageBuilder::new(Class::Request, method);
            let creds = self.creds.as_ref().expect("request() needs credentials");
            let authed = creds.nonce.is_some() && creds.realm.is_some();
            let sha256 = authed && self.uses_sha256();
            if authed {
                let realm = creds.realm.clone().unwrap();
                b = if self.uses_userhash() {
                    b.attr(USERHASH, userhash(&creds.user, &realm))
                } else {
                    b.attr(USERNAME, creds.user.as_bytes())
                };
                b = b.attr(REALM, realm.into_bytes()).attr(NONCE, creds.nonce.clone().unwrap().into_bytes());
                if sha256 {
                    b = b.attr(PASSWORD_ALGORITHM, vec![0, 2, 0, 0]);
                    if !self.rfc8489.strip_algorithms {
                        b = b.attr(PASSWORD_ALGORITHMS, creds.algorithms.clone().unwrap());
                    }
                }
            }
            for (t, v) in &attrs {
                if *t == XOR_PEER_ADDRESS_PENDING {
                    let a: SocketAddr = String::from_utf8_lossy(v).parse().expect("peer marker");
                    b.attrs.push((XOR_PEER_ADDRESS, encode_xor_addr(a, &b.txid)));
                } else {
                    b.attrs.push((*t, v.clone()));
                }
            }
            let key = if authed { self.key() } else { None };
            let bytes = match &key {
                Some(key) if sha256 => b.encode_sha256(key, self.fingerprint),
                _ => b.encode(key.as_deref(), self.fingerprint),
            };
            let resp = self.transact_raw(&bytes, b.txid);
            if let Some(key) = &key {
                let verified = if sha256 { resp.verify_integrity_sha256(key) } else { resp.verify_integrity(key) };
                if let Some(ok) = verified {
                    assert!(ok, "response MESSAGE-INTEGRITY does not verify: {}", resp.describe());
                } else if resp.is_success() {
                    panic!(
                        "success response to an authenticated request has no MESSAGE-INTEGRITY: {}",
                        resp.describe()
                    );
                }
            }
            let code = resp.error_code();
            let c = self.creds.as_mut().unwrap();
            if code == Some(401) && !authed && !learned_401 {
                learned_401 = true;
                c.realm = resp.realm().or(c.realm.take());
                c.nonce = resp.nonce();
                c.algorithms = resp.get(PASSWORD_ALGORITHMS).map(<[u8]>::to_vec);
                if c.nonce.is_some() && c.realm.is_some() {
                    continue;
                }
            } else if code == Some(438) && !retried_438 {
                retried_438 = true;
                if let Some(n) = resp.nonce() {
                    c.nonce = Some(n);
                    c.algorithms = resp.get(PASSWORD_ALGORITHMS).map(<[u8]>::to_vec);
                    if let Some(r) = resp.realm() {
                        c.realm = Some(r);
                    }
                    continue;
                }
            } else if code == Some(401) {
                // Remember a fresh nonce for the next attempt, if the server gave one.
                if let Some(n) = resp.nonce() {
                    c.nonce = Some(n);
                    c.algorithms = resp.get(PASSWORD_ALGORITHMS).map(<[u8]>::to_vec);
                }
                if let Some(r) = resp.realm() {
                    c.realm = Some(r);
                }
            }
            return resp;
        }
        unreachable!("request loop is bounded and returns")
    }

    /// Allocate (UDP) with long-term credentials; returns the relayed address.
    pub fn allocate(&mut self, user: &str, pass: &str) -> Result<SocketAddr, StunError> {
        self.allocate_with(user, pass, vec![])
    }

    /// Allocate with extra attributes; REQUESTED-TRANSPORT UDP is added unless given.
    pub fn allocate_with(
        &mut self,
        user: &str,
        pass: &str,
        extra: Vec<(u16, Vec<u8>)>,
    ) -> Result<SocketAddr, StunError> {
        let same_user = self.creds.as_ref().map(|c| c.user == user && c.pass == pass).unwrap_or(false);
        if !same_user {
            self.set_credentials(user, pass);
        }
        // A fresh allocation attempt always starts with the unauthenticated request.
        if let Some(c) = self.creds.as_mut() {
            c.nonce = None;
        }
        let mut attrs = extra;
        if !attrs.iter().any(|(t, _)| *t == REQUESTED_TRANSPORT) {
            attrs.insert(0, (REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]));
        }
        let resp = self.request(ALLOCATE, attrs);
        to_result(&resp)?;
        let relayed = resp.xor_relayed().ok_or_else(|| StunError {
            code: 0,
            reason: format!("Allocate success without XOR-RELAYED-ADDRESS: {}", resp.describe()),
        })?;
        self.relayed = Some(relayed);
        self.mapped = resp.xor_mapped();
        self.lifetime = resp.lifetime();
        Ok(relayed)
    }

    /// Refresh with the given lifetime; returns the granted lifetime.
    pub fn refresh(&mut self, lifetime: u32) -> Result<u32, StunError> {
        let resp = self.request(REFRESH, vec![(LIFETIME, lifetime.to_be_bytes().to_vec())]);
        to_result(&resp)?;
        let lt = resp.lifetime().unwrap_or(0);
        self.lifetime = Some(lt);
        if lifetime == 0 {
            self.relayed = None;
        }
        Ok(lt)
    }

    pub fn create_permission(&mut self, peer: SocketAddr) -> Result<(), StunError> {
        self.create_permissions(&[peer])
    }

    pub fn create_permissions(&mut self, peers: &[SocketAddr]) -> Result<(), StunError> {
        let attrs = peers.iter().map(|p| peer_attr(*p)).collect();
        to_result(&self.request(CREATE_PERMISSION, attrs))
    }

    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Result<(), StunError> {
        let ch = vec![(channel >> 8) as u8, channel as u8, 0, 0];
        to_result(&self.request(CHANNEL_BIND, vec![(CHANNEL_NUMBER, ch), peer_attr(peer)]))
    }

    /// Send indication to `peer` (no authentication, as RFC 8656 requires).
    pub fn send_indication(&self, peer: SocketAddr, data: &[u8]) {
        let mut b = MessageBuilder::new(Class::Indication, SEND);
        let xp = encode_xor_addr(peer, &b.txid);
        b = b.attr(XOR_PEER_ADDRESS, xp).attr(DATA_ATTR, data.to_vec());
        self.send_raw(&b.encode(None, self.fingerprint));
    }

    /// ChannelData message (padded to a multiple of 4 as over stream transports; the padding
    /// is allowed over UDP too).
    pub fn channel_data(&self, channel: u16, data: &[u8]) {
        self.send_raw(&encode_channel_data(channel, data, true));
    }

    /// ChannelData message without padding (the usual form over UDP).
    pub fn channel_data_unpadded(&self, channel: u16, data: &[u8]) {
        self.send_raw(&encode_channel_data(channel, data, false));
    }

    /// Next datagram from the server that is not a response to a request, within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<Incoming> {
        if let Some(x) = self.pending.pop_front() {
            return Some(x);
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.server => {
                    return Some(classify(&buf[..n]).unwrap_or_else(|e| panic!("bad datagram from server: {e}")))
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    /// Next Data indication or ChannelData message within `timeout`; other STUN messages
    /// are skipped (at most 100 of them).
    pub fn recv_data(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        for _ in 0..100 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Incoming::Stun(_) => continue,
                x => return Some(x),
            }
        }
        None
    }
}

/// Placeholder type for an XOR-PEER-ADDRESS whose encoding depends on the transaction id,
/// which `request` only picks per attempt; it is never put on the wire.
const XOR_PEER_ADDRESS_PENDING: u16 = 0xFFFF;

/// An XOR-PEER-ADDRESS attribute for `TurnClient::request` (encoded with the final txid).
pub fn peer_attr(a: SocketAddr) -> (u16, Vec<u8>) {
    (XOR_PEER_ADDRESS_PENDING, a.to_string().into_bytes())
}

pub fn encode_channel_data(channel: u16, data: &[u8], pad: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + data.len() + 3);
    b.extend_from_slice(&channel.to_be_bytes());
    b.extend_from_slice(&(data.len() as u16).to_be_bytes());
    b.extend_from_slice(data);
    if pad {
        while b.len() % 4 != 0 {
            b.push(0);
        }
    }
    b
}

/// Classifies a datagram from the server.
pub fn classify(b: &[u8]) -> Result<Incoming, String> {
    if b.is_empty() {
        return Err("empty datagram".into());
    }
    if (0x40..=0x7F).contains(&b[0]) {
        if b.len() < 4 {
            return Err("short ChannelData".into());
        }
        let channel = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if 4 + len > b.len() {
            return Err(format!("ChannelData length {len} exceeds datagram of {}", b.len()));
        }
        return Ok(Incoming::ChannelData { channel, data: b[4..4 + len].to_vec() });
    }
    let m = Message::parse(b)?;
    if m.class == Class::Indication && m.method == DATA {
        let peer = m.xor_peer().ok_or("Data indication without XOR-PEER-ADDRESS")?;
        let data = m.get(DATA_ATTR).ok_or("Data indication without DATA")?.to_vec();
        return Ok(Incoming::Data { peer, data });
    }
    Ok(Incoming::Stun(m))
}
