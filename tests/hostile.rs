//! Hostile input sent over the wire to the real daemon: malformed framing, attribute tricks,
//! bad integrity, abusive ChannelData and ChannelBind, oversized usernames, REST usernames that
//! do not parse, garbage on TCP. Each case checks the answer (a STUN error code, or a silent
//! drop) and that turnd still serves others afterwards. All traffic is on loopback.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::client::*;
use common::{unix_now, Config, Server};

const USER: &str = "alice";
const PASS: &str = "wonderland";
const REALM_NAME: &str = "turnd.test";
/// How long a silent drop is waited for.
const SILENCE: Duration = Duration::from_millis(300);
/// How long an expected answer is waited for.
const WAIT: Duration = Duration::from_secs(5);
/// Largest UDP payload over IPv4 (65535 - 8 - 20), and the largest STUN message within it.
const MAX_UDP_PAYLOAD: usize = 65_507;
const MAX_UDP_STUN: usize = MAX_UDP_PAYLOAD / 4 * 4;

/// A UDP socket that sends bytes exactly as given and reads what comes back.
struct Raw {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Raw {
    fn new(server: &Server) -> Raw {
        Raw { sock: UdpSocket::bind("127.0.0.1:0").expect("bind"), server: server.addr }
    }

    /// Another handle on the socket (and so the 5-tuple) of `client`.
    fn of(client: &TurnClient) -> Raw {
        Raw { sock: client.sock.try_clone().expect("clone socket"), server: client.server }
    }

    fn send(&self, case: &str, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).unwrap_or_else(|e| panic!("{case}: send: {e}"));
    }

    /// The next datagram from the server within `within`.
    fn recv(&self, within: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65_536];
        for _ in 0..100 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == self.server => return Some(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
                Err(e) => panic!("recv: {e}"),
            }
        }
        None
    }

    /// Sends a request and returns the response with its transaction id (three tries, 1 s each).
    fn exchange(&self, case: &str, bytes: &[u8]) -> Message {
        let txid = &bytes[8..20];
        for _ in 0..3 {
            self.send(case, bytes);
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Some(reply) = self.recv(deadline.saturating_duration_since(Instant::now())) {
                let msg = Message::parse(&reply).unwrap_or_else(|e| panic!("{case}: unparseable answer: {e}"));
                if msg.txid == txid {
                    return msg;
                }
            }
        }
        panic!("{case}: no answer from turnd");
    }

    /// Sends `bytes` and checks that nothing comes back within [`SILENCE`].
    fn silent(&self, case: &str, bytes: &[u8]) {
        self.send(case, bytes);
        if let Some(reply) = self.recv(SILENCE) {
            panic!("{case}: expected a silent drop, got {:02x?}", &reply[..reply.len().min(40)]);
        }
    }

    /// Sends a request and checks the error code of the answer (`None`: success).
    #[track_caller]
    fn expect(&self, case: &str, bytes: &[u8], code: Option<u16>) -> Message {
        let resp = self.exchange(case, bytes);
        assert_eq!(resp.error_code(), code, "{case}: {}", resp.describe());
        resp
    }
}

/// What a hand-built request needs to be signed: username, long-term key, a valid nonce.
#[derive(Clone)]
struct Signer {
    user: String,
    key: Vec<u8>,
    nonce: String,
}

impl Signer {
    /// Credentials of `client` after it authenticated (nonces are per client IP, so they also
    /// sign requests from other loopback sockets).
    fn of(client: &TurnClient, user: &str) -> Signer {
        Signer { user: user.into(), key: client.key().expect("key"), nonce: client.nonce().expect("nonce") }
    }

    /// A nonce for `user`/`pass` from a 401 challenge, without allocating.
    fn new(server: &Server, user: &str, pass: &str) -> Signer {
        let mut c = TurnClient::new(server.addr);
        c.set_credentials(user, pass);
        let r = c.request(REFRESH, vec![(LIFETIME, 600u32.to_be_bytes().to_vec())]);
        assert_eq!(r.error_code(), Some(437), "Refresh without allocation: {}", r.describe());
        Signer::of(&c, user)
    }

    /// `b` with USERNAME, REALM and NONCE appended.
    fn creds(&self, b: MessageBuilder) -> MessageBuilder {
        b.attr(USERNAME, self.user.as_bytes()).attr(REALM, REALM_NAME.as_bytes()).attr(NONCE, self.nonce.as_bytes())
    }

    /// `b` with credentials, MESSAGE-INTEGRITY and FINGERPRINT.
    fn sign(&self, b: MessageBuilder) -> Vec<u8> {
        self.creds(b).encode(Some(&self.key), true)
    }

    /// `b` signed, then `tail` after MESSAGE-INTEGRITY, then FINGERPRINT.
    fn sign_with_tail(&self, b: MessageBuilder, tail: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = self.creds(b).encode(Some(&self.key), false);
        for (t, v) in tail {
            push_attr(&mut bytes, *t, v);
        }
        push_fingerprint(&mut bytes);
        bytes
    }
}

/// Attributes as (type, value) pairs, in order.
type Attrs = Vec<(u16, Vec<u8>)>;

fn request(method: u16) -> MessageBuilder {
    MessageBuilder::new(Class::Request, method)
}

fn allocate_request() -> MessageBuilder {
    request(ALLOCATE).attr(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])
}

fn channel_attr(number: u16) -> Vec<u8> {
    vec![(number >> 8) as u8, number as u8, 0, 0]
}

/// A ChannelBind of `number` to `peer`, signed.
fn channel_bind(s: &Signer, number: u16, peer: SocketAddr) -> Vec<u8> {
    let b = request(CHANNEL_BIND).attr(CHANNEL_NUMBER, channel_attr(number));
    let xp = encode_xor_addr(peer, &b.txid);
    s.sign(b.attr(XOR_PEER_ADDRESS, xp))
}

fn peer_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The next datagram at a peer socket within `within`.
fn peer_recv(peer: &UdpSocket, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    peer.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 2048];
    peer.recv_from(&mut buf).ok().map(|(n, from)| (buf[..n].to_vec(), from))
}

/// An allocation relaying to a peer over channel 0x4000: the "existing allocation" every
/// family of cases checks afterwards.
struct Relaying {
    client: TurnClient,
    relayed: SocketAddr,
    peer: UdpSocket,
}

impl Relaying {
    fn new(server: &Server) -> Relaying {
        let mut client = TurnClient::new(server.addr);
        let relayed = client.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocate: {e}"));
        let (peer, peer_addr) = peer_socket();
        client.channel_bind(0x4000, peer_addr).unwrap_or_else(|e| panic!("ChannelBind: {e}"));
        Relaying { client, relayed, peer }
    }

    /// Checks a round trip through the relay, both ways.
    fn still_relays(&mut self, after: &str) {
        let payload = format!("after {after}");
        self.client.channel_data(0x4000, payload.as_bytes());
        let got = peer_recv(&self.peer, WAIT);
        assert_eq!(got, Some((payload.into_bytes(), self.relayed)), "{after}: the allocation stopped relaying out");
        self.peer.send_to(b"back", self.relayed).unwrap();
        match self.client.recv_data(WAIT) {
            Some(Incoming::ChannelData { channel: 0x4000, data }) if data == b"back" => {}
            other => panic!("{after}: the allocation stopped relaying back: {other:?}"),
        }
    }
}

/// A Binding from a new socket gets its success response, and turnd is still running.
fn serves_others(server: &Server, after: &str) {
    assert!(server.is_running(), "{after}: turnd exited");
    let mut other = TurnClient::new(server.addr);
    let r = other.binding();
    assert!(r.is_success(), "{after}: Binding from another socket: {}", r.describe());
    assert_eq!(r.xor_mapped(), Some(other.local_addr()), "{after}: XOR-MAPPED-ADDRESS");
}

/// A valid Binding request, unsigned, without FINGERPRINT.
fn binding() -> Vec<u8> {
    request(BINDING).encode(None, false)
}

/// A Binding request with `body` as its attribute bytes and `len` in its length field.
fn binding_with_body(len: u16, body: &[u8]) -> Vec<u8> {
    let mut b = binding();
    b.extend_from_slice(body);
    set_len(&mut b, len.into());
    b
}

#[test]
fn malformed_stun_framing_is_dropped_silently() {
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let raw = Raw::new(&server);
    let software = |len: u16| [&[0x80, 0x22][..], &len.to_be_bytes(), b"abcd"].concat();
    let mut bad_cookie = binding();
    bad_cookie[4] ^= 0xFF;
    let mut top_bits = binding();
    top_bits[0] |= 0xC0;
    let mut wrong_fingerprint = request(BINDING).encode(None, true);
    let last = wrong_fingerprint.len() - 1;
    wrong_fingerprint[last] ^= 0x01;
    let mut fingerprint_not_last = request(BINDING).encode(None, true);
    push_attr(&mut fingerprint_not_last, SOFTWARE, b"late");
    let l = fingerprint_not_last.len() - 20;
    set_len(&mut fingerprint_not_last, l);
    let mut fingerprint_too_long = binding();
    push_attr(&mut fingerprint_too_long, FINGERPRINT, &[0; 8]);
    set_len(&mut fingerprint_too_long, 12);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty datagram", vec![]),
        ("1-byte datagram", vec![0x00]),
        ("truncated header (19 bytes)", binding()[..19].to_vec()),
        ("length field beyond the datagram (8, header only)", binding_with_body(8, &[])),
        ("length field beyond the datagram (65532)", binding_with_body(65_532, &software(4))),
        ("length field short of the datagram", binding_with_body(0, &software(4))),
        ("length not a multiple of 4 (6)", binding_with_body(6, &software(2)[..6])),
        ("length not a multiple of 4 (9)", binding_with_body(9, &[software(4), vec![0]].concat())),
        ("attribute length overflowing the message", binding_with_body(8, &software(0x00FF))),
        ("attribute length 0xFFFF", binding_with_body(8, &software(0xFFFF))),
        ("attribute padding overflowing the message", binding_with_body(8, &software(5))),
        ("bad magic cookie", bad_cookie),
        ("top two bits set", top_bits),
        ("wrong FINGERPRINT", wrong_fingerprint),
        ("attribute after FINGERPRINT", fingerprint_not_last),
        ("FINGERPRINT of 8 bytes", fingerprint_too_long),
    ];
    for (case, bytes) in &cases {
        raw.silent(case, bytes);
    }
    // The sender itself is not held against: its next valid request is answered.
    let r = raw.exchange("valid Binding from the hostile socket", &binding());
    assert!(r.is_success(), "valid Binding after the malformed ones: {}", r.describe());
    serves_others(&server, "malformed framing");
    relaying.still_relays("malformed framing");
}

#[test]
fn duplicate_attributes_first_occurrence_wins() {
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let s = Signer::new(&server, USER, PASS);
    let transport = |t: u8| (REQUESTED_TRANSPORT, vec![t, 0, 0, 0]);
    let lifetime = |secs: u32| (LIFETIME, secs.to_be_bytes().to_vec());
    // (case, extra attributes, expected code, expected lifetime). Each on a fresh 5-tuple.
    let cases: [(&str, Attrs, Option<u16>, Option<u32>); 4] = [
        ("REQUESTED-TRANSPORT UDP then SCTP", vec![transport(UDP), transport(132)], None, Some(600)),
        ("REQUESTED-TRANSPORT SCTP then UDP", vec![transport(132), transport(UDP)], Some(442), None),
        ("LIFETIME 1200 then 60", vec![transport(UDP), lifetime(1200), lifetime(60)], None, Some(1200)),
        ("LIFETIME 60 then 1200", vec![transport(UDP), lifetime(60), lifetime(1200)], None, Some(600)),
    ];
    for (case, attrs, code, granted) in cases {
        let mut b = request(ALLOCATE);
        b.attrs = attrs;
        let r = Raw::new(&server).expect(case, &s.sign(b), code);
        assert_eq!(r.lifetime(), granted, "{case}: LIFETIME granted");
    }
    // Two USERNAMEs: the first is the one authenticated (the key is alice's).
    for (case, names, code) in [
        ("USERNAME alice then mallory", ["alice", "mallory"], None),
        ("USERNAME mallory then alice", ["mallory", "alice"], Some(401)),
    ] {
        let b = allocate_request().attr(USERNAME, names[0]).attr(USERNAME, names[1]);
        let bytes = b.attr(REALM, REALM_NAME).attr(NONCE, s.nonce.as_bytes()).encode(Some(&s.key), true);
        Raw::new(&server).expect(case, &bytes, code);
    }
    // Two XOR-PEER-ADDRESSes in a ChannelBind: the channel goes to the first.
    let mut c = TurnClient::new(server.addr);
    c.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocate: {e}"));
    let raw = Raw::of(&c);
    let s = Signer::of(&c, USER);
    let ((first, first_addr), (second, second_addr)) = (peer_socket(), peer_socket());
    let metadata: SocketAddr = "169.254.169.254:80".parse().unwrap();
    for (case, number, peers, code) in [
        ("XOR-PEER-ADDRESS forbidden then allowed", 0x4001, [metadata, first_addr], Some(403)),
        ("XOR-PEER-ADDRESS first then second peer", 0x4002, [first_addr, second_addr], None),
    ] {
        let b = request(CHANNEL_BIND).attr(CHANNEL_NUMBER, channel_attr(number));
        let (x0, x1) = (encode_xor_addr(peers[0], &b.txid), encode_xor_addr(peers[1], &b.txid));
        raw.expect(case, &s.sign(b.attr(XOR_PEER_ADDRESS, x0).attr(XOR_PEER_ADDRESS, x1)), code);
    }
    c.channel_data(0x4002, b"to the first");
    assert_eq!(peer_recv(&first, WAIT).map(|r| r.0), Some(b"to the first".to_vec()), "channel 0x4002 → first");
    assert_eq!(peer_recv(&second, SILENCE), None, "the second XOR-PEER-ADDRESS got the data");
    serves_others(&server, "duplicate attributes");
    relaying.still_relays("duplicate attributes");
}

#[test]
fn attributes_after_message_integrity_are_ignored() {
    // RFC 8489 §14.5: only FINGERPRINT (and MESSAGE-INTEGRITY-SHA256) may follow
    // MESSAGE-INTEGRITY; anything else after it is ignored.
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let s = Signer::new(&server, USER, PASS);
    let unknown = (0x0031, vec![1, 2, 3, 4]);
    let case = "unknown comprehension-required attribute before MESSAGE-INTEGRITY (control)";
    Raw::new(&server).expect(case, &s.sign(allocate_request().attr(unknown.0, unknown.1.clone())), Some(420));
    let case = "REQUESTED-TRANSPORT only after MESSAGE-INTEGRITY";
    let tail = [(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])];
    Raw::new(&server).expect(case, &s.sign_with_tail(request(ALLOCATE), &tail), Some(400));
    let case = "unknown attribute, LIFETIME and USERNAME after MESSAGE-INTEGRITY";
    let tail = [unknown, (LIFETIME, 1200u32.to_be_bytes().to_vec()), (USERNAME, b"mallory".to_vec())];
    let r = Raw::new(&server).expect(case, &s.sign_with_tail(allocate_request(), &tail), None);
    assert_eq!(r.lifetime(), Some(600), "{case}: the LIFETIME after MESSAGE-INTEGRITY was used");
    assert_eq!(r.verify_integrity(&s.key), Some(true), "{case}: answer signed with alice's key");
    serves_others(&server, "attributes after MESSAGE-INTEGRITY");
    relaying.still_relays("attributes after MESSAGE-INTEGRITY");
}

#[test]
fn message_integrity_over_the_wrong_length_is_401() {
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let s = Signer::new(&server, USER, PASS);
    let raw = Raw::new(&server);
    // The HMAC must run over the header with its length field ending right after
    // MESSAGE-INTEGRITY (RFC 8489 §14.5). These sign with other lengths in that field.
    for (case, extra) in
        [("length covering FINGERPRINT too", 24 + 8), ("length without MESSAGE-INTEGRITY", 0), ("length + 4", 28)]
    {
        let mut bytes = s.creds(allocate_request()).encode(None, false);
        let len = bytes.len() - 20 + extra;
        set_len(&mut bytes, len);
        let mac = hmac_sha1(&s.key, &bytes);
        push_attr(&mut bytes, MESSAGE_INTEGRITY, &mac);
        push_fingerprint(&mut bytes);
        let r = raw.expect(case, &bytes, Some(401));
        assert!(r.nonce().is_some() && r.realm().is_some(), "{case}: a 401 challenge: {}", r.describe());
    }
    // The same request signed over the right length allocates on that very 5-tuple.
    raw.expect("MESSAGE-INTEGRITY over the right length", &s.sign(allocate_request()), None);
    serves_others(&server, "MESSAGE-INTEGRITY over a wrong length");
    relaying.still_relays("MESSAGE-INTEGRITY over a wrong length");
}

#[test]
fn abusive_channel_data_is_dropped_and_bad_channel_numbers_are_400() {
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let mut c = TurnClient::new(server.addr);
    let relayed = c.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocate: {e}"));
    let (raw, s) = (Raw::of(&c), Signer::of(&c, USER));
    let (peer, peer_addr) = peer_socket();
    for number in [0x0000, 0x3FFF, 0x8000, 0xBFFF, 0xFFFF] {
        let case = format!("ChannelBind to 0x{number:04X}");
        raw.expect(&case, &channel_bind(&s, number, peer_addr), Some(400));
    }
    // The whole RFC 5766 range binds, up to 0x7FFF (README, "Behaviour worth knowing").
    raw.expect("ChannelBind to 0x4000", &channel_bind(&s, 0x4000, peer_addr), None);
    let (other_peer, other_addr) = peer_socket();
    raw.expect("ChannelBind to 0x7FFF", &channel_bind(&s, 0x7FFF, other_addr), None);
    let cases: [(&str, Vec<u8>); 8] = [
        ("ChannelData longer than the datagram", [&[0x40, 0x00, 0x00, 0x64][..], b"short"].concat()),
        ("ChannelData length 0xFFFF in 8 bytes", vec![0x40, 0x00, 0xFF, 0xFF, 1, 2, 3, 4]),
        ("ChannelData with more than padding after it", [&[0x40, 0x00, 0x00, 0x01][..], &[7; 8]].concat()),
        ("ChannelData header cut short", vec![0x40, 0x00, 0x00]),
        ("ChannelData on unbound 0x4001", vec![0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4]),
        ("ChannelData on unbound 0x7FFE", vec![0x7F, 0xFE, 0x00, 0x04, 1, 2, 3, 4]),
        ("ChannelData on 0x3FFF", vec![0x3F, 0xFF, 0x00, 0x04, 1, 2, 3, 4]),
        ("ChannelData on 0x8000", vec![0x80, 0x00, 0x00, 0x04, 1, 2, 3, 4]),
    ];
    for (case, bytes) in &cases {
        raw.silent(case, bytes);
    }
    // Nothing reached either peer: the first datagram each sees is the one sent after.
    c.channel_data_unpadded(0x4000, b"sentinel");
    assert_eq!(
        peer_recv(&peer, WAIT),
        Some((b"sentinel".to_vec(), relayed)),
        "a dropped ChannelData reached 0x4000's peer"
    );
    c.channel_data_unpadded(0x7FFF, b"top");
    assert_eq!(peer_recv(&other_peer, WAIT), Some((b"top".to_vec(), relayed)), "channel 0x7FFF relays");
    serves_others(&server, "abusive ChannelData");
    relaying.still_relays("abusive ChannelData");
}

#[test]
fn conflicting_channel_binds_are_400() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    let relayed = c.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocate: {e}"));
    let (raw, s) = (Raw::of(&c), Signer::of(&c, USER));
    let ((a, a_addr), (b, b_addr)) = (peer_socket(), peer_socket());
    raw.expect("bind 0x4000 to peer A", &channel_bind(&s, 0x4000, a_addr), None);
    raw.expect("rebind bound 0x4000 to peer B", &channel_bind(&s, 0x4000, b_addr), Some(400));
    raw.expect("bind 0x4001 to peer A, which has 0x4000", &channel_bind(&s, 0x4001, a_addr), Some(400));
    raw.expect("refresh 0x4000 to peer A", &channel_bind(&s, 0x4000, a_addr), None);
    raw.expect("bind 0x4001 to peer B", &channel_bind(&s, 0x4001, b_addr), None);
    // The refused binds changed nothing: each channel reaches its own peer.
    c.channel_data(0x4000, b"for A");
    assert_eq!(peer_recv(&a, WAIT), Some((b"for A".to_vec(), relayed)), "0x4000 still goes to A");
    c.channel_data(0x4001, b"for B");
    assert_eq!(peer_recv(&b, WAIT), Some((b"for B".to_vec(), relayed)), "0x4001 goes to B");
    assert_eq!(peer_recv(&a, SILENCE), None, "A got more than its own datagram");
    serves_others(&server, "conflicting ChannelBinds");
}

#[test]
fn malformed_xor_peer_address_is_400() {
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let mut c = TurnClient::new(server.addr);
    c.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocate: {e}"));
    let (raw, s) = (Raw::of(&c), Signer::of(&c, USER));
    let (peer, peer_addr) = peer_socket();
    let good = encode_xor_addr(peer_addr, &[0; 12]);
    let with_family = |family: u8, len: usize| {
        let mut v = good.clone();
        v[1] = family;
        v.resize(len, 0);
        v
    };
    let cases: [(&str, Vec<u8>); 9] = [
        ("family 0x00", with_family(0x00, 8)),
        ("family 0x03", with_family(0x03, 8)),
        ("family 0xFF", with_family(0xFF, 8)),
        ("IPv4 family with 20 bytes", with_family(0x01, 20)),
        ("IPv6 family with 8 bytes", with_family(0x02, 8)),
        ("IPv4 family with 7 bytes", with_family(0x01, 7)),
        ("IPv4 family with 12 bytes", with_family(0x01, 12)),
        ("no address (4 bytes)", with_family(0x01, 4)),
        ("empty", vec![]),
    ];
    for (case, value) in &cases {
        let b = request(CREATE_PERMISSION).attr(XOR_PEER_ADDRESS, value.clone());
        raw.expect(&format!("CreatePermission, XOR-PEER-ADDRESS {case}"), &s.sign(b), Some(400));
        let b = request(CHANNEL_BIND).attr(CHANNEL_NUMBER, channel_attr(0x4005)).attr(XOR_PEER_ADDRESS, value.clone());
        raw.expect(&format!("ChannelBind, XOR-PEER-ADDRESS {case}"), &s.sign(b), Some(400));
        // A Send indication cannot be answered: it is dropped.
        let b = MessageBuilder::new(Class::Indication, SEND).attr(XOR_PEER_ADDRESS, value.clone());
        raw.silent(
            &format!("Send indication, XOR-PEER-ADDRESS {case}"),
            &b.attr(DATA_ATTR, b"x".to_vec()).encode(None, true),
        );
    }
    // A well-formed CreatePermission in the same allocation still works, and nothing was sent.
    c.create_permission(peer_addr).unwrap_or_else(|e| panic!("CreatePermission after the 400s: {e}"));
    c.send_indication(peer_addr, b"first");
    assert_eq!(peer_recv(&peer, WAIT).map(|r| r.0), Some(b"first".to_vec()), "a malformed Send reached the peer");
    serves_others(&server, "malformed XOR-PEER-ADDRESS");
    relaying.still_relays("malformed XOR-PEER-ADDRESS");
}

#[test]
fn rest_usernames_with_bad_timestamps_are_401() {
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    for (case, expiry) in [
        ("non-numeric timestamp", "soon"),
        ("hex timestamp", "0x7fffffff"),
        ("negative timestamp", "-1"),
        ("empty timestamp", ""),
        ("u64 overflow (99999999999999999999)", "99999999999999999999"),
        ("u64::MAX + 1", "18446744073709551616"),
        ("21 digits", "000000000000000000001"),
        ("timestamp with spaces", " 9999999999"),
    ] {
        // A password that is right for the username under the server's secret: only the
        // timestamp is wrong.
        let (user, pass) = rest_credentials_raw("s3cret", &format!("{expiry}:bob"));
        let mut c = TurnClient::new(server.addr);
        let e = c.allocate(&user, &pass).expect_err(case);
        assert_eq!(e.code, 401, "{case}: {e}");
        assert!(server.is_running(), "{case}: turnd exited");
    }
    // The largest timestamp that fits is a valid (far-future) expiry, not an overflow.
    let (user, pass) = rest_credentials("s3cret", "bob", u64::MAX);
    TurnClient::new(server.addr).allocate(&user, &pass).unwrap_or_else(|e| panic!("expiry u64::MAX: {e}"));
    let (user, pass) = rest_credentials("s3cret", "bob", unix_now() + 60);
    TurnClient::new(server.addr).allocate(&user, &pass).unwrap_or_else(|e| panic!("a good REST username: {e}"));
    serves_others(&server, "bad REST timestamps");
    relaying.still_relays("bad REST timestamps");
}

/// A REST username taken as given and its password under `secret`.
fn rest_credentials_raw(secret: &str, username: &str) -> (String, String) {
    use base64::Engine;
    let pass = base64::engine::general_purpose::STANDARD.encode(hmac_sha1(secret.as_bytes(), username.as_bytes()));
    (username.to_string(), pass)
}

/// A signed Allocate whose USERNAME, `prefix` then 'a's, makes the message `total` bytes long,
/// with the password `password` gives for that username; returns it and the USERNAME's length.
fn allocate_with_long_username(
    s: &Signer,
    prefix: &str,
    password: impl Fn(&str) -> String,
    total: usize,
) -> (Vec<u8>, usize) {
    let short = Signer { user: String::new(), ..s.clone() }.sign(allocate_request());
    // USERNAME's value takes what the rest leaves; a multiple of 4, so it needs no padding.
    let len = (total - short.len()) / 4 * 4;
    let user: String = prefix.chars().chain(std::iter::repeat('a')).take(len).collect();
    let key = long_term_key(&user, REALM_NAME, &password(&user));
    let bytes = Signer { user, key, ..s.clone() }.sign(allocate_request());
    assert_eq!(bytes.len(), total, "message size");
    (bytes, len)
}

#[test]
fn the_longest_username_a_datagram_or_a_stream_frame_carries() {
    // A 64 KiB USERNAME fits neither: an attribute is at most 65535 bytes, a UDP datagram
    // 65507, a STUN message over TCP 20 + 65532. These are the longest that fit.
    let server = Config::default().start();
    let mut relaying = Relaying::new(&server);
    let s = Signer::new(&server, USER, PASS);
    let raw = Raw::new(&server);
    let (bytes, len) = allocate_with_long_username(&s, "", |_| PASS.into(), MAX_UDP_STUN);
    let case = format!("USERNAME of {len} bytes in a {}-byte datagram", bytes.len());
    // RFC 8489 §14.3: USERNAME is fewer than 509 bytes; a longer one is a bad request, even
    // validly signed by whoever holds the REST secret.
    raw.expect(&case, &bytes, Some(400));
    let expiry = format!("{}:", unix_now() + 600);
    let (bytes, len) = allocate_with_long_username(&s, &expiry, |u| rest_credentials_raw("s3cret", u).1, MAX_UDP_STUN);
    raw.expect(&format!("validly signed REST USERNAME of {len} bytes"), &bytes, Some(400));
    // 508 bytes is the longest allowed: that one allocates.
    let user = format!("{expiry}{}", "u".repeat(508 - expiry.len()));
    let mut client = TurnClient::new(server.addr);
    client.allocate(&user, &rest_credentials_raw("s3cret", &user).1).expect("a 508-byte REST username allocates");
    serves_others(&server, "long USERNAME over UDP");

    let tcp = server.listener("tcp").expect("tcp listener");
    let mut conn = TcpConn::connect(tcp);
    let (bytes, len) = allocate_with_long_username(&s, "", |_| PASS.into(), 20 + 65_532);
    conn.expect(&format!("USERNAME of {len} bytes in a {}-byte TCP frame", bytes.len()), &bytes, Some(400));
    conn.expect("Binding on the same connection", &binding(), None);
    serves_others(&server, "long USERNAME over TCP");
    relaying.still_relays("long USERNAME");
}

/// A TCP connection to turnd speaking framed STUN (RFC 8656 §12.5).
struct TcpConn {
    stream: TcpStream,
}

impl TcpConn {
    fn connect(addr: SocketAddr) -> TcpConn {
        let stream = TcpStream::connect(addr).expect("connect over TCP");
        stream.set_nodelay(true).unwrap();
        TcpConn { stream }
    }

    /// The next STUN or ChannelData frame within `within`; `Err` with the reason otherwise.
    fn frame(&mut self, within: Duration) -> Result<Vec<u8>, String> {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut head = [0u8; 4];
        self.stream.read_exact(&mut head).map_err(|e| format!("frame header: {e}"))?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let rest = if head[0] & 0xC0 == 0x40 { len.next_multiple_of(4) } else { 16 + len };
        let mut frame = head.to_vec();
        frame.resize(4 + rest, 0);
        self.stream.read_exact(&mut frame[4..]).map_err(|e| format!("frame body: {e}"))?;
        Ok(frame)
    }

    fn exchange(&mut self, case: &str, bytes: &[u8]) -> Message {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("{case}: write: {e}"));
        for _ in 0..10 {
            let frame = self.frame(WAIT).unwrap_or_else(|e| panic!("{case}: no answer: {e}"));
            if let Ok(Incoming::Stun(m)) = classify(&frame) {
                if m.txid == bytes[8..20] {
                    return m;
                }
            }
        }
        panic!("{case}: no answer among 10 frames");
    }

    #[track_caller]
    fn expect(&mut self, case: &str, bytes: &[u8], code: Option<u16>) -> Message {
        let resp = self.exchange(case, bytes);
        assert_eq!(resp.error_code(), code, "{case}: {}", resp.describe());
        resp
    }

    /// Whether turnd closes the connection within `within` (reading and dropping anything else).
    fn closed_by_server(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 512];
        for _ in 0..1000 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

/// Allocates over `conn` (UDP relay, TCP control connection) and binds channel 0x4000 to `peer`.
fn allocate_over_tcp(conn: &mut TcpConn, peer: SocketAddr) -> SocketAddr {
    let r = conn.expect("unauthenticated Allocate over TCP", &allocate_request().encode(None, true), Some(401));
    let nonce = r.nonce().expect("NONCE in the 401");
    let s = Signer { user: USER.into(), key: long_term_key(USER, REALM_NAME, PASS), nonce };
    let r = conn.expect("Allocate over TCP", &s.sign(allocate_request()), None);
    conn.expect("ChannelBind over TCP", &channel_bind(&s, 0x4000, peer), None);
    r.xor_relayed().expect("XOR-RELAYED-ADDRESS")
}

#[test]
fn tcp_garbage_closes_only_that_connection() {
    let server = Config::default().start();
    let tcp = server.listener("tcp").expect("tcp listener");
    let (peer, peer_addr) = peer_socket();
    let mut good = TcpConn::connect(tcp);
    let relayed = allocate_over_tcp(&mut good, peer_addr);
    let not_stun = [0xFF; 64].to_vec();
    let mut odd_length = binding();
    set_len(&mut odd_length, 6);
    odd_length.extend_from_slice(&[0; 6]);
    for (case, bytes) in [
        ("0xFF bytes", not_stun),
        ("a STUN header whose length is not a multiple of 4", odd_length),
        ("ChannelData on 0x8000", vec![0x80, 0x00, 0x00, 0x04, 1, 2, 3, 4]),
        ("ChannelData on 0x3FFF", vec![0x3F, 0xFF, 0x00, 0x03, 1, 2, 3, 0]),
    ] {
        let mut bad = TcpConn::connect(tcp);
        bad.expect(&format!("{case}: Binding first"), &binding(), None);
        // The server may close while the bytes are still being written.
        let _ = bad.stream.write_all(&bytes);
        assert!(bad.closed_by_server(WAIT), "{case}: the connection stayed open");
        // The other connection and its allocation are untouched.
        let payload = format!("after {case}");
        good.stream.write_all(&encode_channel_data(0x4000, payload.as_bytes(), true)).unwrap();
        assert_eq!(peer_recv(&peer, WAIT), Some((payload.into_bytes(), relayed)), "{case}: relaying over TCP stopped");
        peer.send_to(b"back", relayed).unwrap();
        let frame = good.frame(WAIT).unwrap_or_else(|e| panic!("{case}: nothing relayed back over TCP: {e}"));
        assert_eq!(frame, [&[0x40, 0x00, 0x00, 0x04][..], b"back"].concat(), "{case}: ChannelData back over TCP");
    }
    // A well-framed message that is not STUN (bad magic cookie), after the first, is dropped;
    // the connection stays and answers the next request.
    let mut framed = TcpConn::connect(tcp);
    framed.expect("Binding first", &binding(), None);
    let mut bad_cookie = binding();
    bad_cookie[4] ^= 0xFF;
    framed.stream.write_all(&bad_cookie).unwrap();
    framed.expect("Binding after a framed non-STUN message", &binding(), None);
    good.expect("Binding on the allocation's connection", &binding(), None);
    serves_others(&server, "TCP garbage");
}
