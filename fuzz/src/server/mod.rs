//! The `turn_server` harness: the whole sans-IO [`Server`] driven by a script of steps (client
//! datagrams and requests from arbitrary addresses, signed or not, peer datagrams, simulated
//! time, RFC 6062 events), with fake relay sockets from a small port pool. After every step it
//! checks what the IO shell relies on: replies and forwards lie inside the buffer and are
//! well-formed answers to what was sent, authenticated answers verify, and every live
//! allocation holds exactly one port. At the end, time runs out and everything must be freed.
// The simulated clock starts at one real instant (taken once) and only the script advances it.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use turnd::auth::{long_term_key, rest_password, rest_username, Credentials, Key, NonceMinter, UserSecret, NONCE_LEN};
use turnd::stun::{
    attr, classify, stream_frame, ChannelData, Class, Framing, Message, MessageType, MessageWriter, Method,
    StreamFrame, HEADER_LEN,
};
use turnd::turn::policy::canonical;
use turnd::turn::{
    AllocId, Discard, FiveTuple, Now, OpenError, Outcome, PeerIcmp, Relay, RelayOptions, RelayProvider, Server,
    Transport, DATA_INDICATION_HEADROOM, PEER_TAILROOM,
};

use crate::script::Reader;

mod ops;

pub use ops::*;

/// Relay ports the fake provider hands out (50000..50000+PORTS); few, so exhaustion is reached.
pub const PORTS: u16 = 6;
const FIRST_PORT: u16 = 50_000;
const REALM: &str = "turnd.fuzz";
const SECRET: &str = "fuzz-secret";
const NONCE_KEY: [u8; 32] = [9; 32];
const NONCE_LIFETIME: u64 = 600;
const T0: u64 = 1_800_000_000;
/// Most steps one input runs (keeps every execution short).
const MAX_STEPS: usize = 64;
/// Largest STUN message a stream can carry (20-byte header, 65532-byte body).
const MAX_MESSAGE: usize = HEADER_LEN + 65_532;
/// The IO shell's output buffer (`io/worker.rs`): headroom, the largest datagram, tailroom.
const OUT_LEN: usize = DATA_INDICATION_HEADROOM + 65_535 + PEER_TAILROOM;

// ----------------------------------------------------------------------------------------
// The fakes.

type Pool = Arc<Mutex<Vec<u16>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A relay socket that counts what it sends; dropping it gives its port back.
pub struct FakeRelay {
    port: u16,
    pool: Pool,
    sent: AtomicUsize,
}

impl Relay for FakeRelay {
    fn send_to(&self, _payload: &[u8], _peer: SocketAddr) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        let mut pool = lock(&self.pool);
        assert!(!pool.contains(&self.port), "port {} given back twice", self.port);
        pool.push(self.port);
    }
}

struct FakePorts {
    pool: Pool,
    ipv6: bool,
}

impl RelayProvider for FakePorts {
    type Relay = FakeRelay;

    fn open(&mut self, _id: AllocId, options: RelayOptions) -> Result<(FakeRelay, u16), OpenError> {
        if options.ipv6 != self.ipv6 {
            return Err(OpenError::FamilyNotSupported);
        }
        let mut pool = lock(&self.pool);
        let at = pool.iter().position(|p| !options.even_port || p % 2 == 0).ok_or(OpenError::Exhausted)?;
        let port = pool.remove(at);
        Ok((FakeRelay { port, pool: Arc::clone(&self.pool), sent: AtomicUsize::new(0) }, port))
    }
}

// ----------------------------------------------------------------------------------------
// The harness.

/// What a script got the server to do (the seeds' test checks that they go deep).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub successes: usize,
    pub errors: usize,
    pub relayed: usize,
    /// Client packets delivered in-process to another allocation.
    pub forwarded: usize,
    /// Peer datagrams framed for a client.
    pub to_client: usize,
    /// ICMP errors relayed to a client.
    pub icmp: usize,
    pub connects: usize,
    pub attempts: usize,
    pub bound: usize,
}

/// A Connect or ConnectionAttempt the script may answer or bind.
struct Pending {
    connection: u32,
    /// Transaction id of the Connect request (None for a ConnectionAttempt).
    txid: Option<[u8; 12]>,
}

struct Harness {
    setup: Setup,
    server: Server<FakeRelay>,
    ports: FakePorts,
    minter: NonceMinter,
    now: Now,
    txid: [u8; 12],
    next_txid: u64,
    pending: Vec<Pending>,
    out: Vec<u8>,
    stats: Stats,
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Runs a script; panics when a property fails. With TURND_FUZZ_TRACE set, prints each step
/// (to read a crash: `TURND_FUZZ_TRACE=1 cargo +nightly fuzz run turn_server <artifact>`).
pub fn run(data: &[u8]) -> Stats {
    static TRACE: OnceLock<bool> = OnceLock::new();
    let trace = *TRACE.get_or_init(|| std::env::var_os("TURND_FUZZ_TRACE").is_some());
    let mut r = Reader::new(data);
    let mut h = Harness::new(Setup(r.u8()));
    if trace {
        eprintln!("{:?}: relay {}, {:?}", h.setup, h.setup.relay_ip(), h.setup.config());
    }
    for _ in 0..MAX_STEPS {
        if r.is_empty() {
            break;
        }
        let op = Op::decode(&mut r);
        if trace {
            eprintln!("{op:?}");
        }
        h.step(op);
        h.check_ports();
    }
    // Every allocation ends when its lifetime does, and gives its port back.
    h.advance(2 * 86_400);
    assert_eq!(h.server.table().len(), 0, "allocations left after their lifetimes");
    assert_eq!(lock(&h.ports.pool).len(), usize::from(PORTS), "relay ports not given back");
    h.stats
}

impl Harness {
    fn new(setup: Setup) -> Self {
        let users = vec![
            ("alice".into(), UserSecret::Password("wonderland".into())),
            ("bob".into(), UserSecret::Key(long_term_key("bob", REALM, "builder"))),
        ];
        let credentials = Credentials::new(REALM, vec![SECRET.into()], ':', users);
        let nonces = NonceMinter::with_key(NONCE_KEY, NONCE_LIFETIME);
        let server = Server::new(setup.config(), credentials, nonces, setup.policy());
        let pool = Arc::new(Mutex::new((FIRST_PORT..FIRST_PORT + PORTS).collect()));
        Harness {
            setup,
            server,
            ports: FakePorts { pool, ipv6: setup.relay_ip().is_ipv6() },
            minter: NonceMinter::with_key(NONCE_KEY, NONCE_LIFETIME),
            now: Now { mono: start(), unix: T0 },
            txid: [0; 12],
            next_txid: 0,
            pending: Vec::new(),
            out: vec![0; OUT_LEN],
            stats: Stats::default(),
        }
    }

    fn advance(&mut self, secs: u32) {
        self.now.mono += Duration::from_secs(secs.into());
        self.now.unix += u64::from(secs);
        self.server.expire(self.now.mono);
    }

    /// Live allocations and free ports add up to the pool: none leaks, none is shared.
    fn check_ports(&self) {
        let free = lock(&self.ports.pool).len();
        assert_eq!(self.server.table().len() + free, usize::from(PORTS), "allocations vs relay ports");
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Datagram(client, bytes) => self.client_packet(client.tuple(), &bytes, None),
            Op::Request(request) => self.request(&request),
            Op::ChannelData { client, channel, payload, padded } => {
                self.client_packet(client.tuple(), &channel_data(channel, payload, padded), None);
            }
            Op::Peer { target, peer, payload, short } => {
                self.peer_datagram(target, peer.addr(self.setup), payload, short)
            }
            Op::Advance(secs) => self.advance(secs),
            Op::ConnectFinished { n, connected } => self.connect_finished(n, connected),
            Op::PeerConnected { target, peer } => self.peer_connected(target, peer.addr(self.setup)),
            Op::ConnectionClosed(n) => {
                if let Some(i) = self.pending_index(n) {
                    self.server.connection_closed(self.pending.swap_remove(i).connection);
                }
            }
            Op::Close(client) => self.server.client_disconnected(&client.tuple()),
            Op::Icmp { target, peer, v6, icmp_type, code, info } => {
                self.peer_icmp(target, peer.addr(self.setup), PeerIcmp { v6, icmp_type, code, info })
            }
            Op::Run { client, frames } => self.client_run(client.tuple(), &frames),
        }
    }

    /// What the IO shell does with datagrams one client sent in a row (over UDP): runs of
    /// ChannelData to `relay_channel_data_datagrams`, each datagram that stops one to
    /// `handle_client` (checked as any other), then the rest.
    fn client_run(&mut self, tuple: FiveTuple, frames: &[Frame]) {
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| match f {
                Frame::ChannelData { channel, payload, padded } => channel_data(*channel, *payload, *padded),
                Frame::Raw(bytes) => bytes.clone(),
            })
            .collect();
        let datagrams: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let mut at = 0;
        while let Some(&first) = datagrams.get(at) {
            if tuple.transport == Transport::Udp && classify(first) == Framing::ChannelData {
                let run = self.server.relay_channel_data_datagrams(self.now, &tuple, &datagrams[at..]);
                let relayed = datagrams[at..].get(..run.messages).expect("relayed no more than it was given");
                let bytes: usize =
                    relayed.iter().map(|d| payload_of(d).expect("only ChannelData is relayed in a run").len()).sum();
                assert_eq!(run.bytes, bytes, "a run's bytes are its payloads'");
                assert!(run.batched * 2 <= run.messages, "a batched send carries two or more");
                self.stats.relayed += run.messages;
                if run.messages > 0 {
                    at += run.messages;
                    continue;
                }
            }
            self.client_packet(tuple, first, None);
            at += 1;
        }
    }

    fn pending_index(&self, n: u8) -> Option<usize> {
        (!self.pending.is_empty()).then(|| usize::from(n) % self.pending.len())
    }

    /// Sends `packet` from `tuple` and checks the outcome; `key` is what the packet was signed with.
    fn client_packet(&mut self, tuple: FiveTuple, packet: &[u8], key: Option<Key>) {
        let outcome = self.server.handle_client(self.now, &tuple, packet, &mut self.ports, &mut self.out);
        match outcome {
            Outcome::Reply(n) => {
                assert!(n <= self.out.len(), "reply past the buffer");
                match check_reply(packet, &self.out[..n], key.as_ref()) {
                    Class::Success => self.stats.successes += 1,
                    _ => self.stats.errors += 1,
                }
            }
            Outcome::ReplyFrom { .. } => panic!("an RFC 5780 answer from a server without RFC 5780"),
            Outcome::Bound { connection, len, .. } => {
                assert!(len <= self.out.len(), "ConnectionBind reply past the buffer");
                assert_ne!(tuple.transport, Transport::Udp, "ConnectionBind over UDP");
                let reply = check_reply(packet, &self.out[..len], key.as_ref());
                assert_eq!(reply, Class::Success, "Bound carries a success");
                assert!(self.pending.iter().any(|p| p.connection == connection), "bound an unknown connection");
                self.stats.bound += 1;
            }
            Outcome::Relayed { bytes } => {
                let payload = payload_of(packet).expect("only Send and ChannelData are relayed");
                assert_eq!(bytes, payload.len(), "relayed something else than the payload");
                self.stats.relayed += 1;
            }
            Outcome::Forward { to, start, end } => {
                assert!(start <= end && end <= self.out.len(), "forward range {start}..{end} past the buffer");
                assert!(self.server.table().with(&to, |_| ()).is_some(), "forward to a client without allocation");
                let payload = payload_of(packet).expect("only Send and ChannelData are forwarded");
                let from = self.server.table().with(&tuple, |a| a.relayed).expect("forwarded by an allocation");
                check_to_client(&to, &self.out[start..end], payload, from);
                self.stats.forwarded += 1;
            }
            Outcome::Connect { connection, allocation, from, peer } => {
                let msg = Message::parse(packet).expect("Connect answers a STUN request");
                assert_eq!(msg.method(), Method::CONNECT);
                assert_ne!(tuple.transport, Transport::Udp, "Connect over UDP");
                assert_eq!(from.ip(), self.setup.relay_ip(), "connects from the relay IP");
                assert_eq!(self.server.table().with(&tuple, |a| a.id), Some(allocation));
                assert_eq!(canonical(peer.ip()), peer.ip(), "dials a canonical peer");
                self.pending.push(Pending { connection, txid: Some(*msg.transaction_id()) });
                self.stats.connects += 1;
            }
            Outcome::Dropped(_) => {}
        }
    }

    fn request(&mut self, req: &Request) {
        if !req.repeat_txid {
            self.next_txid += 1;
            self.txid[4..].copy_from_slice(&self.next_txid.to_be_bytes());
        }
        let tuple = req.client.tuple();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let txid = self.txid;
        let mut w = MessageWriter::new(&mut buf, MessageType::new(req.method, req.class), &txid);
        for a in &req.attrs {
            match a {
                Attr::Raw(t, v) => w.attr(*t, v),
                Attr::RequestedTransport(p) => w.attr(attr::REQUESTED_TRANSPORT, &[*p, 0, 0, 0]),
                Attr::Lifetime(s) => w.u32_attr(attr::LIFETIME, *s),
                Attr::PeerAddress(p) => w.xor_address(attr::XOR_PEER_ADDRESS, p.addr(self.setup)),
                Attr::ChannelNumber(n) => w.attr(attr::CHANNEL_NUMBER, &[(n >> 8) as u8, *n as u8, 0, 0]),
                Attr::Data(p) => w.attr(attr::DATA, &p.bytes()),
                Attr::EvenPort(f) => w.attr(attr::EVEN_PORT, &[*f]),
                Attr::DontFragment => w.attr(attr::DONT_FRAGMENT, &[]),
                Attr::AddressFamily(f) => w.attr(attr::REQUESTED_ADDRESS_FAMILY, &[*f, 0, 0, 0]),
                Attr::ReservationToken => w.attr(attr::RESERVATION_TOKEN, &[1; 8]),
                Attr::ConnectionId(n, raw) => {
                    let id = self.pending_index(*n).map_or(*raw, |i| self.pending[i].connection);
                    w.u32_attr(attr::CONNECTION_ID, id)
                }
                Attr::Username(v) => w.attr(attr::USERNAME, v),
            };
        }
        let key = sign(&mut w, &self.minter, self.now, tuple.client.ip(), req.auth, req.user);
        if req.fingerprint {
            w.fingerprint();
        }
        // A script may ask for more than a STUN message holds: nothing to send then.
        let Ok(n) = w.finish() else { return };
        self.client_packet(tuple, &buf[..n], key);
    }

    fn allocation(&self, target: Target) -> AllocId {
        let id = match target {
            Target::Client(c) => self.server.table().with(&c.tuple(), |a| a.id),
            Target::Port(n) => {
                let port = FIRST_PORT + u16::from(n) % PORTS;
                self.server.table().by_relayed(SocketAddr::new(self.setup.relay_ip(), port))
            }
            Target::Id(id) => Some(AllocId(id)),
        };
        id.unwrap_or(AllocId(u64::MAX))
    }

    fn peer_datagram(&mut self, target: Target, peer: SocketAddr, payload: Payload, short: bool) {
        let len = usize::from(payload.len);
        let mut buf = vec![0u8; DATA_INDICATION_HEADROOM + len + PEER_TAILROOM - usize::from(short)];
        buf[DATA_INDICATION_HEADROOM..][..len].fill(payload.fill);
        let id = self.allocation(target);
        match self.server.handle_peer(self.now, id, peer, &mut buf, len) {
            Ok((to, range)) => {
                assert!(!short, "framed into a buffer without tailroom");
                assert!(range.start <= range.end && range.end <= buf.len(), "peer frame {range:?} past the buffer");
                assert_eq!(self.server.table().with(&to, |a| a.id), Some(id), "delivered to another client");
                check_to_client(&to, &buf[range], &payload.bytes(), peer);
                self.stats.to_client += 1;
            }
            Err(why) => assert!(!short || why == Discard::Malformed, "no tailroom is Malformed, not {why:?}"),
        }
    }

    fn peer_icmp(&mut self, target: Target, peer: SocketAddr, icmp: PeerIcmp) {
        let id = self.allocation(target);
        let mut out = [0u8; 64];
        let Ok((to, len)) = self.server.handle_peer_icmp(self.now, id, peer, icmp, &mut out) else { return };
        assert!(icmp.is_relayed(), "relayed an ICMP type RFC 8656 §11 does not list: {icmp:?}");
        assert_eq!(self.server.table().with(&to, |a| a.id), Some(id), "ICMP delivered to another client");
        let frame = &out[..len];
        if to.transport != Transport::Udp {
            assert_eq!(stream_frame(frame), StreamFrame::Frame(len), "stream frame length");
        }
        let msg = Message::parse(frame).expect("the ICMP Data indication parses");
        assert_eq!(msg.kind(), MessageType::new(Method::DATA, Class::Indication));
        assert!(!msg.has(attr::DATA), "an ICMP Data indication carries no DATA");
        let got = attr::decode_icmp(msg.attr(attr::ICMP).expect("has ICMP")).expect("ICMP decodes");
        assert_eq!((got.icmp_type, got.code), (icmp.icmp_type, icmp.code));
        let from = msg.xor_address(attr::XOR_PEER_ADDRESS).expect("has XOR-PEER-ADDRESS").expect("decodes");
        assert_eq!(from, SocketAddr::new(canonical(peer.ip()), peer.port()), "ICMP Data indication's peer");
        self.stats.icmp += 1;
    }

    fn connect_finished(&mut self, n: u8, connected: bool) {
        let Some(i) = self.pending_index(n) else { return };
        let Pending { connection, txid } = self.pending[i];
        let mut out = vec![0u8; 1500];
        let answer = self.server.connect_finished(self.now, connection, connected, &mut out);
        let Some((control, len)) = answer else { return };
        let txid = txid.expect("only a Connect is answered");
        let msg = Message::parse(&out[..len]).expect("Connect answer is a STUN message");
        assert_eq!((msg.method(), msg.transaction_id()), (Method::CONNECT, &txid));
        assert_ne!(control.transport, Transport::Udp);
        let signer = self.server.table().with(&control, |a| a.key).expect("answered on a live allocation");
        let key = signer.key.as_bytes();
        let signed = if signer.sha256 { msg.check_integrity_sha256(key) } else { msg.check_integrity(key) };
        assert!(signed, "Connect answer signed with the allocation's key");
        assert_eq!(msg.class() == Class::Success, connected);
        if !connected {
            self.pending.swap_remove(i);
        }
    }

    fn peer_connected(&mut self, target: Target, peer: SocketAddr) {
        let id = self.allocation(target);
        let mut out = vec![0u8; 1500];
        let Some((control, connection, len)) = self.server.peer_connected(self.now, id, peer, &mut out) else { return };
        assert_eq!(self.server.table().with(&control, |a| (a.id, a.tcp)), Some((id, true)));
        let msg = Message::parse(&out[..len]).expect("ConnectionAttempt is a STUN message");
        assert_eq!(msg.kind(), MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication));
        assert_eq!(msg.u32_attr(attr::CONNECTION_ID), Some(Ok(connection)));
        let announced = msg.xor_address(attr::XOR_PEER_ADDRESS).expect("has XOR-PEER-ADDRESS").expect("decodes");
        assert_eq!(announced, SocketAddr::new(canonical(peer.ip()), peer.port()));
        self.pending.push(Pending { connection, txid: None });
        self.stats.attempts += 1;
    }
}

/// Adds USERNAME, REALM, NONCE and MESSAGE-INTEGRITY as `auth` says; returns the key signed with.
fn sign(w: &mut MessageWriter<'_>, minter: &NonceMinter, now: Now, ip: IpAddr, auth: Auth, user: User) -> Option<Key> {
    if auth == Auth::None {
        return None;
    }
    let rest_expiry = if auth == Auth::ExpiredRest { now.unix - 1 } else { now.unix + 3600 };
    let (name, password) = match user.0 % 4 {
        0 => ("alice".to_owned(), "wonderland".to_owned()),
        1 => ("bob".to_owned(), "builder".to_owned()),
        2 => {
            let name = rest_username(rest_expiry, "carol", ':');
            let password = rest_password(SECRET, &name);
            (name, password)
        }
        _ => ("mallory".to_owned(), "x".to_owned()),
    };
    let password = if auth == Auth::WrongPassword { format!("{password}!") } else { password };
    let mut nonce = [0u8; NONCE_LEN];
    let minted = match auth {
        Auth::StaleNonce => minter.mint(now.unix.saturating_sub(NONCE_LIFETIME + 1), ip, &mut nonce),
        _ => minter.mint(now.unix, ip, &mut nonce),
    };
    let nonce = if auth == Auth::GarbageNonce { "garbage-nonce" } else { minted };
    let realm = if auth == Auth::WrongRealm { "other.realm" } else { REALM };
    w.attr(attr::USERNAME, name.as_bytes());
    if auth != Auth::NoRealm {
        w.attr(attr::REALM, realm.as_bytes());
    }
    w.attr(attr::NONCE, nonce.as_bytes());
    let key = long_term_key(&name, realm, &password);
    w.integrity(&key);
    Some(key)
}

/// A reply to `request` must answer it: same transaction and method, a response class, an
/// ERROR-CODE on errors, MESSAGE-INTEGRITY only for a signed request and then valid under its
/// key, FINGERPRINT when the request had one. Returns the reply's class.
fn check_reply(request: &[u8], reply: &[u8], key: Option<&Key>) -> Class {
    let req = Message::parse(request).expect("only STUN requests are answered");
    assert_eq!(req.class(), Class::Request, "answered a {:?}", req.class());
    let msg = Message::parse(reply).expect("reply is a well-formed STUN message");
    assert_eq!(msg.transaction_id(), req.transaction_id(), "reply to another transaction");
    assert_eq!(msg.method(), req.method(), "reply of another method");
    match msg.class() {
        Class::Success => {}
        Class::Error => {
            let value = msg.attr(attr::ERROR_CODE).expect("error reply carries ERROR-CODE");
            let (code, _) = attr::decode_error_code(value).expect("ERROR-CODE decodes");
            assert!((300..700).contains(&code), "error code {code}");
        }
        class => panic!("reply of class {class:?}"),
    }
    if msg.has(attr::MESSAGE_INTEGRITY) {
        let key = key.expect("MESSAGE-INTEGRITY on the reply to an unsigned request");
        assert!(msg.check_integrity(key), "reply's MESSAGE-INTEGRITY does not verify");
    }
    assert_eq!(msg.has(attr::FINGERPRINT), req.has(attr::FINGERPRINT), "FINGERPRINT answered in kind");
    msg.class()
}

/// A ChannelData message (`padded` to a multiple of four, as streams need).
fn channel_data(channel: u16, payload: Payload, padded: bool) -> Vec<u8> {
    let mut packet = vec![0u8; 4];
    let header: &mut [u8; 4] = (&mut packet[..4]).try_into().expect("4 bytes");
    ChannelData::write_header(channel, payload.len, header);
    packet.extend(payload.bytes());
    if padded {
        packet.resize(ChannelData::frame_len(usize::from(payload.len), true), 0);
    }
    packet
}

/// The payload a client packet asks to relay: ChannelData's, or a Send indication's DATA.
fn payload_of(packet: &[u8]) -> Option<&[u8]> {
    match classify(packet) {
        Framing::ChannelData => ChannelData::parse(packet).ok().map(|cd| cd.payload),
        _ => Message::parse(packet).ok()?.attr(attr::DATA),
    }
}

/// A frame for a client must be what its transport carries: ChannelData (padded on streams)
/// or a Data indication from `peer`, carrying exactly `payload`.
fn check_to_client(to: &FiveTuple, frame: &[u8], payload: &[u8], peer: SocketAddr) {
    if to.transport != Transport::Udp {
        assert_eq!(stream_frame(frame), StreamFrame::Frame(frame.len()), "stream frame length");
    }
    match classify(frame) {
        Framing::ChannelData => {
            let cd = ChannelData::parse(frame).expect("ChannelData to a client parses");
            assert!(cd.payload == payload, "ChannelData carries the payload");
        }
        Framing::Stun => {
            let msg = Message::parse(frame).expect("Data indication to a client parses");
            assert_eq!(msg.kind(), MessageType::new(Method::DATA, Class::Indication));
            assert!(msg.attr(attr::DATA) == Some(payload), "the Data indication carries the payload");
            let from = msg.xor_address(attr::XOR_PEER_ADDRESS).expect("has XOR-PEER-ADDRESS").expect("decodes");
            assert_eq!(from, SocketAddr::new(canonical(peer.ip()), peer.port()), "Data indication's peer");
        }
        Framing::Other => panic!("neither ChannelData nor STUN to a client"),
    }
}
