//! A small, independent STUN/TURN client (RFC 8489 / RFC 8656) over a blocking UDP socket.
//! It deliberately shares no code with turnd: every message is built and parsed here.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub use super::keys::*;
pub use super::message::*;

pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;

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
pub const ICMP_ATTR: u16 = 0x8004;
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
    /// A Data indication carrying ICMP instead of DATA (RFC 8656 §11): an ICMP error about a
    /// datagram relayed to `peer`.
    Icmp { peer: SocketAddr, icmp_type: u8, code: u8, error_data: u32 },
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

    /// Next Data indication (with DATA or ICMP) or ChannelData message within `timeout`; other STUN messages
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
        if let Some(icmp) = m.get(ICMP_ATTR) {
            let [_, _, icmp_type, code, d0, d1, d2, d3] = *icmp else {
                return Err(format!("ICMP attribute of {} bytes", icmp.len()));
            };
            if m.has(DATA_ATTR) {
                return Err("Data indication with both ICMP and DATA".into());
            }
            return Ok(Incoming::Icmp { peer, icmp_type, code, error_data: u32::from_be_bytes([d0, d1, d2, d3]) });
        }
        let data = m.get(DATA_ATTR).ok_or("Data indication without DATA")?.to_vec();
        return Ok(Incoming::Data { peer, data });
    }
    Ok(Incoming::Stun(m))
}
