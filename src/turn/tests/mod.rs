//! Sans-IO tests of the TURN core: simulated time, fake relay sockets, no network.
// The simulated clock starts at one real instant and is only ever advanced by the tests.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::auth::{long_term_key, rest_password, rest_username, Key, UserSecret};
use crate::stun::{attr, ChannelData, Message, MessageType, MessageWriter};

const REALM: &str = "turnd.test";
const SECRET: &str = "s3cret";
const T0: u64 = 1_800_000_000;

type Sent = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// A relay that records what it sends; dropping it returns its port to the pool.
struct FakeRelay {
    port: u16,
    sent: Sent,
    pool: Arc<Mutex<Vec<u16>>>,
}

impl Relay for FakeRelay {
    fn send_to(&self, payload: &[u8], peer: SocketAddr) {
        self.sent.lock().unwrap().push((peer, payload.to_vec()));
    }

    /// Records a run as one entry: the payloads joined, to tell runs apart from datagrams.
    fn send_run(&self, payloads: &[&[u8]], peer: SocketAddr) -> bool {
        if payloads.len() < 2 {
            payloads.iter().for_each(|p| self.send_to(p, peer));
            return false;
        }
        self.sent.lock().unwrap().push((peer, payloads.join(&b"|"[..])));
        true
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        self.pool.lock().unwrap().push(self.port);
    }
}

struct FakePorts {
    pool: Arc<Mutex<Vec<u16>>>,
    sent: Sent,
}

impl RelayProvider for FakePorts {
    type Relay = FakeRelay;
    fn open(&mut self, _id: AllocId, options: RelayOptions) -> Result<(FakeRelay, u16), OpenError> {
        let mut pool = self.pool.lock().unwrap();
        let pick = pool.iter().position(|p| !options.even_port || p % 2 == 0).ok_or(OpenError::Exhausted)?;
        let port = pool.remove(pick);
        Ok((FakeRelay { port, sent: self.sent.clone(), pool: self.pool.clone() }, port))
    }

    fn open_pair(&mut self, _id: AllocId, _options: RelayOptions) -> Result<(FakeRelay, u16, FakeRelay), OpenError> {
        let mut pool = self.pool.lock().unwrap();
        let port = *pool.iter().find(|&&p| p % 2 == 0 && pool.contains(&(p + 1))).ok_or(OpenError::Exhausted)?;
        pool.retain(|&p| p != port && p != port + 1);
        let relay = |port| FakeRelay { port, sent: self.sent.clone(), pool: self.pool.clone() };
        Ok((relay(port), port, relay(port + 1)))
    }
}

struct Harness {
    server: Server<FakeRelay>,
    ports: FakePorts,
    now: Now,
    start: Instant,
}

fn config() -> ServerConfig {
    ServerConfig {
        relays: RelayAddrs::single("127.0.0.1".parse().unwrap(), Some("203.0.113.7".parse().unwrap())),
        default_family: DefaultFamily::Listener,
        default_lifetime: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(3600),
        user_quota: 0,
        total_quota: 0,
        limits: Default::default(),
        alternates: vec![],
        redirect_all: false,
        rfc8489_security: true,
        mobility: false,
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(config(), vec![], 3)
    }

    fn with(config: ServerConfig, allowed: Vec<ipnet::IpNet>, ports: u16) -> Self {
        let creds = Credentials::new(
            REALM,
            vec![SECRET.into()],
            ':',
            vec![
                ("alice".into(), UserSecret::Password("wonderland".into())),
                ("bob".into(), UserSecret::Password("builder".into())),
            ],
        );
        let server = Server::new(config, creds, NonceMinter::with_key([7; 32], 600), PeerPolicy::new(allowed, vec![]));
        let start = Instant::now();
        Harness {
            server,
            ports: FakePorts {
                pool: Arc::new(Mutex::new((0..ports).map(|i| 50_000 + i).collect())),
                sent: Arc::default(),
            },
            now: Now { mono: start, unix: T0 },
            start,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.unix += d.as_secs();
        self.server.expire(self.now.mono);
    }

    fn send(&mut self, from: &FiveTuple, packet: &[u8]) -> (Outcome, Vec<u8>) {
        let mut out = vec![0u8; 70_000];
        let outcome = self.server.handle_client(self.now, from, packet, &mut self.ports, &mut out);
        let bytes = match outcome {
            Outcome::Reply(n) | Outcome::ReplyFrom { len: n, .. } | Outcome::Bound { len: n, .. } => out[..n].to_vec(),
            Outcome::Forward { start, end, .. } => out[start..end].to_vec(),
            _ => Vec::new(),
        };
        (outcome, bytes)
    }

    fn sent(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut *self.ports.sent.lock().unwrap())
    }
}

fn tuple(port: u16) -> FiveTuple {
    FiveTuple {
        client: SocketAddr::from(([127, 0, 0, 1], port)),
        server: "127.0.0.1:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

/// Credentials a test client signs with.
#[derive(Clone)]
struct Creds {
    user: String,
    key: Key,
    nonce: String,
}

fn alice() -> Creds {
    Creds { user: "alice".into(), key: long_term_key("alice", REALM, "wonderland"), nonce: String::new() }
}

/// Builds a request; `creds` with a nonce adds USERNAME/REALM/NONCE/MESSAGE-INTEGRITY.
fn request(method: Method, txid: u8, creds: Option<&Creds>, attrs: impl FnOnce(&mut MessageWriter<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), &[txid; 12]);
    attrs(&mut w);
    if let Some(c) = creds {
        w.attr(attr::USERNAME, c.user.as_bytes())
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, c.nonce.as_bytes())
            .integrity(&c.key);
    }
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

fn transport_udp(w: &mut MessageWriter<'_>) {
    w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
}

/// The error code of a response, or None for success.
fn code(bytes: &[u8]) -> Option<u16> {
    let msg = Message::parse(bytes).expect("response parses");
    match msg.class() {
        Class::Success => None,
        Class::Error => Some(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap().0),
        c => panic!("unexpected class {c:?}"),
    }
}

impl Harness {
    /// Gets a nonce from a 401 and returns credentials carrying it.
    fn login(&mut self, from: &FiveTuple, mut creds: Creds) -> Creds {
        let (_, resp) = self.send(from, &request(Method::ALLOCATE, 1, None, transport_udp));
        assert_eq!(code(&resp), Some(401));
        let msg = Message::parse(&resp).unwrap();
        assert_eq!(msg.text(attr::REALM).unwrap().unwrap(), REALM);
        assert!(!msg.has(attr::MESSAGE_INTEGRITY), "challenges carry no integrity");
        creds.nonce = msg.text(attr::NONCE).unwrap().unwrap().to_string();
        creds
    }

    /// Allocates for `from` and returns the credentials and relayed address.
    fn allocate(&mut self, from: &FiveTuple, creds: Creds) -> (Creds, SocketAddr) {
        let creds = self.login(from, creds);
        let (_, resp) = self.send(from, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp));
        assert_eq!(code(&resp), None, "allocate succeeds");
        let msg = Message::parse(&resp).unwrap();
        assert!(msg.check_integrity(&creds.key));
        assert_eq!(msg.xor_address(attr::XOR_MAPPED_ADDRESS).unwrap().unwrap(), from.client);
        (creds, msg.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap())
    }

    fn permit(&mut self, from: &FiveTuple, creds: &Creds, peer: SocketAddr) -> Option<u16> {
        let req = request(Method::CREATE_PERMISSION, 3, Some(creds), |w| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer);
        });
        code(&self.send(from, &req).1)
    }

    fn bind(&mut self, from: &FiveTuple, creds: &Creds, number: u16, peer: SocketAddr) -> Option<u16> {
        let req = request(Method::CHANNEL_BIND, 4, Some(creds), |w| {
            w.attr(attr::CHANNEL_NUMBER, &[(number >> 8) as u8, number as u8, 0, 0])
                .xor_address(attr::XOR_PEER_ADDRESS, peer);
        });
        code(&self.send(from, &req).1)
    }

    fn refresh(&mut self, from: &FiveTuple, creds: &Creds, lifetime: u32) -> Option<u16> {
        let req = request(Method::REFRESH, 5, Some(creds), |w| {
            w.u32_attr(attr::LIFETIME, lifetime);
        });
        code(&self.send(from, &req).1)
    }

    /// A datagram from `peer` arriving on the relay of `from`'s allocation.
    fn peer_sends(
        &mut self,
        from: &FiveTuple,
        peer: SocketAddr,
        payload: &[u8],
    ) -> Result<(FiveTuple, Vec<u8>), Discard> {
        let id = self.server.table().with(from, |a| a.id).ok_or(Discard::NoAllocation)?;
        let mut buf = vec![0u8; DATA_INDICATION_HEADROOM + payload.len() + PEER_TAILROOM];
        buf[DATA_INDICATION_HEADROOM..][..payload.len()].copy_from_slice(payload);
        let (to, range) = self.server.handle_peer(self.now, id, peer, &mut buf, payload.len())?;
        Ok((to, buf[range].to_vec()))
    }
}

fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    send_indication_with(peer, data, &[])
}

/// A Send indication with `extra` attributes after DATA.
fn send_indication_with(peer: SocketAddr, data: &[u8], extra: &[(u16, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(Method::SEND, Class::Indication), &[9; 12]);
    w.xor_address(attr::XOR_PEER_ADDRESS, peer).attr(attr::DATA, data);
    for (kind, value) in extra {
        w.attr(*kind, value);
    }
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

/// A public peer (8.8.8.8 stands for "somewhere on the Internet"; nothing is sent anywhere).
fn public_peer() -> SocketAddr {
    "8.8.8.8:4000".parse().unwrap()
}

#[test]
fn binding_returns_the_mapped_address_and_echoes_fingerprint() {
    let mut h = Harness::new();
    let req = request(Method::BINDING, 1, None, |w| {
        w.fingerprint();
    });
    let (_, resp) = h.send(&tuple(1000), &req);
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(msg.class(), Class::Success);
    assert_eq!(msg.xor_address(attr::XOR_MAPPED_ADDRESS).unwrap().unwrap(), tuple(1000).client);
    assert!(msg.has(attr::FINGERPRINT));
    assert_eq!(msg.transaction_id(), &[1; 12]);
}

#[test]
fn allocate_relays_both_ways_with_send_and_data_indications() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, relayed) = h.allocate(&t, alice());
    assert_eq!(relayed.ip().to_string(), "203.0.113.7", "advertises the external IP");
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    assert_eq!(h.send(&t, &send_indication(public_peer(), b"hello")).0, Outcome::Relayed { bytes: 5 });
    assert_eq!(h.sent(), vec![(public_peer(), b"hello".to_vec())]);

    let (to, bytes) = h.peer_sends(&t, public_peer(), b"world").unwrap();
    assert_eq!(to, t);
    let msg = Message::parse(&bytes).expect("a well-formed Data indication");
    assert_eq!(msg.kind(), MessageType::new(Method::DATA, Class::Indication));
    assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), public_peer());
    assert_eq!(msg.attr(attr::DATA).unwrap(), b"world");
    // Another port of the same IP is covered by the permission; another IP is not.
    let same_ip: SocketAddr = "8.8.8.8:9".parse().unwrap();
    assert!(h.peer_sends(&t, same_ip, b"x").is_ok());
    assert_eq!(h.peer_sends(&t, "8.8.4.4:9".parse().unwrap(), b"x").unwrap_err(), Discard::NoPermission);
    assert_eq!(
        h.send(&t, &send_indication("8.8.4.4:9".parse().unwrap(), b"x")).0,
        Outcome::Dropped(Discard::NoPermission)
    );
}

#[test]
fn channels_carry_data_both_ways() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
    let (outcome, _) = h.send(&t, &[0x40, 0x01, 0x00, 0x03, b'a', b'b', b'c', 0]);
    assert_eq!(outcome, Outcome::Relayed { bytes: 3 });
    assert_eq!(h.sent(), vec![(public_peer(), b"abc".to_vec())]);
    let (_, bytes) = h.peer_sends(&t, public_peer(), b"reply").unwrap();
    let cd = ChannelData::parse(&bytes).unwrap();
    assert_eq!((cd.channel, cd.payload), (0x4001, &b"reply"[..]));
    assert_eq!(bytes.len(), 4 + 5, "no padding on UDP");
    // An unbound channel is dropped.
    assert_eq!(h.send(&t, &[0x40, 0x02, 0x00, 0x00]).0, Outcome::Dropped(Discard::NoChannel));
}

#[test]
fn channel_data_is_padded_on_streams() {
    let mut h = Harness::new();
    let mut t = tuple(1000);
    t.transport = Transport::Tcp;
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
    let (_, bytes) = h.peer_sends(&t, public_peer(), b"reply").unwrap();
    assert_eq!(bytes.len(), 12);
    assert_eq!(&bytes[9..], &[0, 0, 0]);
}

#[test]
fn channel_rebinding_rules() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    let other: SocketAddr = "8.8.4.4:5000".parse().unwrap();
    assert_eq!(h.refresh(&t, &creds, 3600), None);
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None, "refresh of the same binding");
    assert_eq!(h.bind(&t, &creds, 0x4001, other), Some(400), "channel bound to another peer");
    assert_eq!(h.bind(&t, &creds, 0x4002, public_peer()), Some(400), "peer bound to another channel");
    assert_eq!(h.bind(&t, &creds, 0x3FFF, other), Some(400), "below the channel range");
    assert_eq!(h.bind(&t, &creds, 0x8000, other), Some(400), "above the channel range");
    // After expiry plus the 5-minute cooldown the number is free for another peer.
    h.advance(Duration::from_secs(601));
    let creds = h.login(&t, creds);
    assert_eq!(h.bind(&t, &creds, 0x4001, other), Some(400), "cooldown keeps the number");
    h.advance(Duration::from_secs(300));
    assert_eq!(h.bind(&t, &creds, 0x4001, other), None);
}

#[test]
fn permissions_and_channels_expire_on_simulated_time() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.refresh(&t, &creds, 3600), None);
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
    h.advance(Duration::from_secs(299));
    assert!(h.peer_sends(&t, public_peer(), b"x").is_ok());
    h.advance(Duration::from_secs(2));
    assert_eq!(h.peer_sends(&t, public_peer(), b"x").unwrap_err(), Discard::NoPermission, "permission: 300 s");
    // The channel lives 600 s; refreshing the permission alone brings traffic back.
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    assert_eq!(h.send(&t, &[0x40, 0x01, 0, 1, 7, 0, 0, 0]).0, Outcome::Relayed { bytes: 1 });
    h.advance(Duration::from_secs(300));
    assert_eq!(h.send(&t, &[0x40, 0x01, 0, 1, 7, 0, 0, 0]).0, Outcome::Dropped(Discard::NoChannel), "channel: 600 s");
}

#[test]
fn allocations_expire_and_refresh_extends_them() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    h.advance(Duration::from_secs(599));
    assert_eq!(h.refresh(&t, &creds, 1200), None);
    h.advance(Duration::from_secs(1199));
    let creds = h.login(&t, creds);
    assert_eq!(h.server.table().len(), 1);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.server.table().len(), 0, "expired after the refreshed lifetime");
    assert_eq!(h.ports.pool.lock().unwrap().len(), 3, "its relay port is back in the pool");
    assert_eq!(h.refresh(&t, &creds, 600), Some(437));
}

#[test]
fn lifetimes_are_clamped() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).u32_attr(attr::LIFETIME, 99_999);
    });
    let (_, resp) = h.send(&t, &req);
    assert_eq!(Message::parse(&resp).unwrap().u32_attr(attr::LIFETIME).unwrap().unwrap(), 3600);
    let req = request(Method::REFRESH, 6, Some(&creds), |w| {
        w.u32_attr(attr::LIFETIME, 30);
    });
    let (_, resp) = h.send(&t, &req);
    // Never below the default (RFC 8656 §7.3; more in conformance.rs).
    assert_eq!(Message::parse(&resp).unwrap().u32_attr(attr::LIFETIME).unwrap().unwrap(), 600);
}

#[test]
fn refresh_zero_frees_the_port_at_once() {
    let mut h = Harness::with(config(), vec![], 1);
    let (a, b) = (tuple(1000), tuple(1001));
    let (creds, relayed) = h.allocate(&a, alice());
    let creds_b = h.login(&b, alice());
    let (_, resp) = h.send(&b, &request(Method::ALLOCATE, 2, Some(&creds_b), transport_udp));
    assert_eq!(code(&resp), Some(508), "the only port is taken");
    assert_eq!(h.refresh(&a, &creds, 0), None);
    let (_, resp) = h.send(&b, &request(Method::ALLOCATE, 7, Some(&creds_b), transport_udp));
    assert_eq!(code(&resp), None);
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(msg.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap(), relayed);
}

#[test]
fn second_allocate_is_437_but_a_retransmission_is_answered_again() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, relayed) = h.allocate(&t, alice());
    let (_, again) = h.send(&t, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp));
    assert_eq!(code(&again), None, "same transaction id: the same success");
    assert_eq!(Message::parse(&again).unwrap().xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap(), relayed);
    let (_, resp) = h.send(&t, &request(Method::ALLOCATE, 8, Some(&creds), transport_udp));
    assert_eq!(code(&resp), Some(437));
    assert!(Message::parse(&resp).unwrap().check_integrity(&creds.key), "authenticated errors are signed");
}

#[test]
fn error_401_for_missing_integrity_wrong_password_unknown_user_and_expired_rest() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    let wrong = Creds { key: long_term_key("alice", REALM, "nope"), ..creds.clone() };
    assert_eq!(code(&h.send(&t, &request(Method::ALLOCATE, 2, Some(&wrong), transport_udp)).1), Some(401));
    assert_eq!(h.server.table().len(), 0, "no allocation on a wrong password");
    let unknown = Creds { user: "mallory".into(), key: long_term_key("mallory", REALM, "x"), ..creds.clone() };
    assert_eq!(code(&h.send(&t, &request(Method::ALLOCATE, 2, Some(&unknown), transport_udp)).1), Some(401));
    let expired_name = rest_username(T0 - 1, "carol", ':');
    let expired = Creds {
        key: long_term_key(&expired_name, REALM, &rest_password(SECRET, &expired_name)),
        user: expired_name,
        ..creds.clone()
    };
    assert_eq!(code(&h.send(&t, &request(Method::ALLOCATE, 2, Some(&expired), transport_udp)).1), Some(401));
    // A valid REST credential works.
    let name = rest_username(T0 + 3600, "carol", ':');
    let rest = Creds { key: long_term_key(&name, REALM, &rest_password(SECRET, &name)), user: name, ..creds };
    assert_eq!(code(&h.send(&t, &request(Method::ALLOCATE, 2, Some(&rest), transport_udp)).1), None);
}

#[test]
fn error_400_for_malformed_requests() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    // MESSAGE-INTEGRITY without USERNAME.
    let req = request(Method::ALLOCATE, 2, None, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).integrity(&creds.key);
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(400));
    // Allocate without REQUESTED-TRANSPORT.
    assert_eq!(code(&h.send(&t, &request(Method::ALLOCATE, 2, Some(&creds), |_| {})).1), Some(400));
    let (creds, _) = h.allocate(&t, alice());
    // CreatePermission without XOR-PEER-ADDRESS.
    assert_eq!(code(&h.send(&t, &request(Method::CREATE_PERMISSION, 3, Some(&creds), |_| {})).1), Some(400));
    // An unknown method.
    assert_eq!(code(&h.send(&t, &request(Method(0x0FF), 3, Some(&creds), |_| {})).1), Some(400));
}

#[test]
fn error_420_lists_the_unknown_attributes() {
    let mut h = Harness::new();
    let req = request(Method::BINDING, 1, None, |w| {
        w.attr(0x0031, b"?").attr(0xC000, b"optional is fine");
    });
    let (_, resp) = h.send(&tuple(1000), &req);
    assert_eq!(code(&resp), Some(420));
    assert_eq!(Message::parse(&resp).unwrap().attr(attr::UNKNOWN_ATTRIBUTES).unwrap(), &[0x00, 0x31]);
}

#[test]
fn error_438_for_a_stale_nonce_then_success_with_the_new_one() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let mut creds = h.login(&t, alice());
    h.advance(Duration::from_secs(601));
    let (_, resp) = h.send(&t, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp));
    assert_eq!(code(&resp), Some(438));
    let msg = Message::parse(&resp).unwrap();
    creds.nonce = msg.text(attr::NONCE).unwrap().unwrap().to_string();
    assert_eq!(msg.text(attr::REALM).unwrap().unwrap(), REALM);
    let (_, resp) = h.send(&t, &request(Method::ALLOCATE, 3, Some(&creds), transport_udp));
    assert_eq!(code(&resp), None);
    // A nonce minted for another client IP is not valid here.
    let other = FiveTuple { client: "127.0.0.2:1000".parse().unwrap(), ..t };
    assert_eq!(code(&h.send(&other, &request(Method::ALLOCATE, 4, Some(&creds), transport_udp)).1), Some(438));
}

#[test]
fn error_440_and_442_for_unsupported_family_and_transport() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(440));
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[132, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(442), "SCTP");
    // TCP relays (RFC 6062) need a TCP or TLS control connection: over UDP it is a 400.
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[6, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(400));
    assert_eq!(h.server.table().len(), 0);
}

#[test]
fn error_403_for_forbidden_peers_and_443_for_the_wrong_family() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    for peer in [
        "127.0.0.1:80",
        "0.0.0.0:80",
        "[::ffff:127.0.0.1]:80",
        "[::127.0.0.1]:80",
        "169.254.169.254:80",
        "10.0.0.1:80",
        "192.168.1.1:80",
        "100.64.0.1:80",
        "224.0.0.1:80",
    ] {
        let peer: SocketAddr = peer.parse().unwrap();
        assert_eq!(h.permit(&t, &creds, peer), Some(403), "{peer}");
        assert_eq!(h.bind(&t, &creds, 0x4001, peer), Some(403), "{peer}");
    }
    for peer in ["[::1]:80", "[::]:80", "[64:ff9b::a9fe:a9fe]:80", "[2002:7f00:1::]:80", "[fe80::1]:80"] {
        let peer: SocketAddr = peer.parse().unwrap();
        let refused = h.permit(&t, &creds, peer);
        assert!(matches!(refused, Some(403) | Some(443)), "{peer}: {refused:?}");
    }
    assert_eq!(h.permit(&t, &creds, "[2001:db8::1]:80".parse().unwrap()), Some(443));
    assert!(h.sent().is_empty(), "nothing was sent anywhere");
}

#[test]
fn allowed_peers_open_the_policy() {
    let mut h = Harness::with(config(), vec!["127.0.0.0/8".parse().unwrap()], 3);
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.permit(&t, &creds, "127.0.0.1:9".parse().unwrap()), None);
    assert_eq!(h.permit(&t, &creds, "10.0.0.1:9".parse().unwrap()), Some(403));
}

#[test]
fn error_441_for_another_user_and_437_without_allocation() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (_, _) = h.allocate(&t, alice());
    let bob = Creds { user: "bob".into(), key: long_term_key("bob", REALM, "builder"), nonce: String::new() };
    let bob = h.login(&tuple(2000), bob);
    // Bob's nonce was minted for the same client IP, so it is valid on t's 5-tuple too.
    assert_eq!(h.refresh(&t, &bob, 600), Some(441));
    assert_eq!(h.permit(&t, &bob, public_peer()), Some(441));
    assert_eq!(h.refresh(&tuple(3000), &bob, 600), Some(437));
    assert_eq!(h.permit(&tuple(3000), &bob, public_peer()), Some(437));
}

#[test]
fn error_486_for_the_user_quota_and_508_for_total_quota_and_ports() {
    let mut h = Harness::with(ServerConfig { user_quota: 1, ..config() }, vec![], 3);
    let (creds, _) = h.allocate(&tuple(1000), alice());
    let t2 = tuple(1001);
    assert_eq!(code(&h.send(&t2, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp)).1), Some(486));
    // The quota is per user: bob may still allocate.
    let bob = Creds { user: "bob".into(), key: long_term_key("bob", REALM, "builder"), nonce: String::new() };
    h.allocate(&tuple(1002), bob);
    // Ending alice's allocation gives her quota back.
    assert_eq!(h.refresh(&tuple(1000), &creds, 0), None);
    assert_eq!(code(&h.send(&t2, &request(Method::ALLOCATE, 3, Some(&creds), transport_udp)).1), None);

    let mut h = Harness::with(ServerConfig { total_quota: 1, ..config() }, vec![], 3);
    let (creds, _) = h.allocate(&tuple(1000), alice());
    assert_eq!(code(&h.send(&t2, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp)).1), Some(508));
}

#[test]
fn even_port_is_honoured_and_unknown_tokens_refused() {
    let mut h = Harness::with(config(), vec![], 4);
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::EVEN_PORT, &[0]);
    });
    let (_, resp) = h.send(&t, &req);
    let relayed = Message::parse(&resp).unwrap().xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    assert_eq!(relayed.port() % 2, 0);
    let req = request(Method::ALLOCATE, 3, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::RESERVATION_TOKEN, &[1; 8]);
    });
    assert_eq!(code(&h.send(&tuple(1001), &req).1), Some(508), "a token turnd never issued");
}

#[test]
fn own_relayed_addresses_are_reached_in_process_with_the_default_policy() {
    let mut h = Harness::new();
    let (a, b) = (tuple(1000), tuple(2000));
    let (ca, ra) = h.allocate(&a, alice());
    let (cb, rb) = h.allocate(&b, alice());
    assert_eq!(h.permit(&a, &ca, rb), None, "own relayed address allowed");
    // B has no permission for A yet: dropped.
    assert_eq!(h.send(&a, &send_indication(rb, b"hi")).0, Outcome::Dropped(Discard::NoPermission));
    assert_eq!(h.permit(&b, &cb, ra), None);
    let (outcome, bytes) = h.send(&a, &send_indication(rb, b"hi"));
    assert!(matches!(outcome, Outcome::Forward { to, .. } if to == b), "{outcome:?}");
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), ra);
    assert_eq!(msg.attr(attr::DATA).unwrap(), b"hi");
    // With a channel on B's side, B gets ChannelData.
    assert_eq!(h.bind(&b, &cb, 0x4005, ra), None);
    let (_, bytes) = h.send(&a, &send_indication(rb, b"ch"));
    assert_eq!(ChannelData::parse(&bytes).unwrap(), ChannelData { channel: 0x4005, payload: b"ch" });
    // A port of our own IP with no allocation behind it is not reached: the permission for
    // the IP does not extend to other ports of this host unless the policy allows the IP.
    let nowhere = SocketAddr::new(rb.ip(), 1);
    assert_eq!(h.send(&a, &send_indication(nowhere, b"x")).0, Outcome::Dropped(Discard::NoPermission));
    assert_eq!(h.permit(&a, &ca, nowhere), Some(403), "and cannot get a permission of its own");
    assert!(h.sent().is_empty());
}

#[test]
fn payloads_too_long_for_a_data_indication_are_dropped() {
    // Found by fuzz/ turn_server: a payload of more than 65516 bytes (IPv4 peer) made a Data
    // indication whose 16-bit length wrapped, and a stream client would have read the rest of
    // the payload as frames of its own. Such payloads come from stream clients, delivered to
    // another allocation in-process; with a channel they still go, as ChannelData.
    let mut h = Harness::new();
    let (mut a, mut b) = (tuple(1000), tuple(2000));
    (a.transport, b.transport) = (Transport::Tcp, Transport::Tcp);
    let (ca, ra) = h.allocate(&a, alice());
    let (cb, rb) = h.allocate(&b, alice());
    assert_eq!((h.permit(&a, &ca, rb), h.permit(&b, &cb, ra)), (None, None));
    assert_eq!(h.bind(&a, &ca, 0x4001, rb), None);
    let channel_data = |len: usize| {
        let mut packet = vec![0x40, 0x01, (len >> 8) as u8, len as u8];
        packet.resize(ChannelData::frame_len(len, true), 7);
        packet
    };
    let (outcome, bytes) = h.send(&a, &channel_data(65_516));
    assert!(matches!(outcome, Outcome::Forward { to, .. } if to == b), "{outcome:?}");
    assert_eq!(Message::parse(&bytes).unwrap().attr(attr::DATA).map(<[u8]>::len), Some(65_516));
    for len in [65_517, 65_535] {
        assert_eq!(h.send(&a, &channel_data(len)).0, Outcome::Dropped(Discard::Malformed), "{len}");
    }
    assert_eq!(h.bind(&b, &cb, 0x4002, ra), None);
    let (_, bytes) = h.send(&a, &channel_data(65_535));
    assert_eq!(ChannelData::parse(&bytes).map(|cd| (cd.channel, cd.payload.len())), Ok((0x4002, 65_535)));
}

#[test]
fn garbage_and_indications_get_no_answer() {
    let mut h = Harness::new();
    let t = tuple(1000);
    for packet in [&[][..], &[0xFF; 40][..], &[0x00, 0x01, 0x00][..], &[0x40, 0x00][..]] {
        assert!(matches!(h.send(&t, packet).0, Outcome::Dropped(_)));
    }
    // A Send indication without an allocation is dropped silently.
    assert_eq!(h.send(&t, &send_indication(public_peer(), b"x")).0, Outcome::Dropped(Discard::NoAllocation));
    let _ = h.start;
}

fn rest_creds(secret: &str, user: &str) -> Creds {
    let name = rest_username(T0 + 3600, user, ':');
    Creds { key: long_term_key(&name, REALM, &rest_password(secret, &name)), user: name, nonce: String::new() }
}

#[test]
fn reload_swaps_secrets_and_keeps_allocations_relaying() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (old, _) = h.allocate(&t, rest_creds(SECRET, "carol"));
    assert_eq!(h.permit(&t, &old, public_peer()), None);
    let rotated = Credentials::new(REALM, vec!["n3w".into()], ':', vec![]);
    h.server.reload(config(), rotated, PeerPolicy::new(vec![], vec![]));
    // The allocation made with the removed secret keeps relaying ...
    assert_eq!(h.send(&t, &send_indication(public_peer(), b"still")).0, Outcome::Relayed { bytes: 5 });
    // ... but its next Refresh is refused: the secret that signed it is gone.
    assert_eq!(h.refresh(&t, &old, 600), Some(401));
    // The new secret works for new allocations; the old one does not.
    let t2 = tuple(2000);
    h.allocate(&t2, rest_creds("n3w", "dave"));
    let stale = h.login(&tuple(3000), rest_creds(SECRET, "erin"));
    let (_, resp) = h.send(&tuple(3000), &request(Method::ALLOCATE, 9, Some(&stale), transport_udp));
    assert_eq!(code(&resp), Some(401));
}

#[test]
fn reload_changes_quotas_and_policy() {
    let mut h = Harness::new();
    let creds = Credentials::new(
        REALM,
        vec![SECRET.into()],
        ':',
        vec![("alice".into(), UserSecret::Password("wonderland".into()))],
    );
    h.server.reload(
        ServerConfig { user_quota: 1, ..config() },
        creds,
        PeerPolicy::new(vec!["127.0.0.0/8".parse().unwrap()], vec![]),
    );
    let (c, _) = h.allocate(&tuple(1000), alice());
    assert_eq!(h.permit(&tuple(1000), &c, "127.0.0.1:9".parse().unwrap()), None, "new allowed-peers apply");
    let (_, resp) = h.send(&tuple(1001), &request(Method::ALLOCATE, 2, Some(&c), transport_udp));
    assert_eq!(code(&resp), Some(486), "new user quota applies");
}

#[test]
fn draining_refuses_new_allocations_and_keeps_existing_ones() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    h.server.drain();
    let (_, resp) = h.send(&tuple(1001), &request(Method::ALLOCATE, 2, Some(&creds), transport_udp));
    assert_eq!(code(&resp), Some(508));
    assert!(Message::parse(&resp).unwrap().check_integrity(&creds.key), "signed: the client authenticated");
    assert_eq!(h.send(&t, &send_indication(public_peer(), b"on")).0, Outcome::Relayed { bytes: 2 });
    assert_eq!(h.refresh(&t, &creds, 600), None, "existing allocations may refresh while draining");
    let (_, again) = h.send(&t, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp));
    assert_eq!(code(&again), None, "a retransmitted Allocate is still answered");
}

mod burst;
mod conformance;
mod counts;
mod family;
mod icmp;
mod limits;
mod mobility;
mod rfc5780;
mod sha256;
mod tcp;
