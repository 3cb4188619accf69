//! The steps of a `turn_server` script and their byte format: read by [`Op::decode`] from the
//! fuzz input (any bytes are a script), written by [`encode`] for the seeds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use turnd::stun::{Class, Method};
use turnd::turn::policy::PeerPolicy;
use turnd::turn::{FiveTuple, Limits, ServerConfig, Transport};

use super::{FIRST_PORT, PORTS};
use crate::script::{Reader, Writer};

const CLIENTS: [(&str, Transport); 6] = [
    ("198.51.100.1:40000", Transport::Udp),
    ("198.51.100.1:40001", Transport::Tcp),
    ("198.51.100.2:40000", Transport::Tls),
    ("198.51.100.2:40000", Transport::Udp),
    ("[2001:db8::1]:40000", Transport::Udp),
    ("[::ffff:198.51.100.1]:40000", Transport::Tcp),
];

const PEERS: [&str; 10] = [
    "8.8.8.8:5000",
    "8.8.8.8:6000",
    "[::ffff:8.8.4.4]:53",
    "1.1.1.1:3478",
    "127.0.0.1:80",
    "169.254.169.254:80",
    "[64:ff9b::a9fe:a9fe]:80",
    "[2606:4700::1111]:443",
    "10.0.0.5:50000",
    "0.0.0.0:0",
];

const METHODS: [Method; 10] = [
    Method::BINDING,
    Method::ALLOCATE,
    Method::REFRESH,
    Method::SEND,
    Method::DATA,
    Method::CREATE_PERMISSION,
    Method::CHANNEL_BIND,
    Method::CONNECT,
    Method::CONNECTION_BIND,
    Method::CONNECTION_ATTEMPT,
];

/// The server's settings, from the first byte of the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup(pub u8);

impl Setup {
    pub(super) fn relay_ip(self) -> IpAddr {
        if self.0 & 1 != 0 {
            "2001:db8::5".parse().expect("literal")
        } else {
            "10.0.0.5".parse().expect("literal")
        }
    }

    pub(super) fn external_ip(self) -> Option<IpAddr> {
        match (self.0 & 2 != 0, self.0 & 1 != 0) {
            (false, _) => None,
            (true, false) => Some("203.0.113.7".parse().expect("literal")),
            (true, true) => Some("2001:db8:1::7".parse().expect("literal")),
        }
    }

    pub(super) fn config(self) -> ServerConfig {
        ServerConfig {
            relays: turnd::turn::RelayAddrs::single(self.relay_ip(), self.external_ip()),
            default_family: Default::default(),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            user_quota: u32::from((self.0 >> 2) & 3),
            total_quota: u32::from((self.0 >> 4) & 3) * 2,
            // Tight rate and bandwidth limits, so that scripts reach their refusals.
            limits: if self.0 & 0x80 != 0 {
                Limits { allocate_rate: 3, challenge_rate: 3, max_bps: 2000, bps_capacity: 5000 }
            } else {
                Limits::default()
            },
            // Scripts never drain the server, so alternates would never be used.
            alternates: Vec::new(),
            redirect_all: false,
            rfc8489_security: true,
            mobility: true,
        }
    }

    pub(super) fn policy(self) -> PeerPolicy {
        if self.0 & 0x40 == 0 {
            return PeerPolicy::default();
        }
        let net = |s: &str| s.parse().expect("literal");
        PeerPolicy::new(vec![net("127.0.0.0/8"), net("::ffff:169.254.0.0/112")], vec![net("8.8.8.0/24")])
    }
}

/// Who sends: one of [`CLIENTS`], or any address and transport.
#[derive(Debug, Clone, Copy)]
pub enum Client {
    Known(u8),
    Other(SocketAddr, Transport),
}

/// A peer address: one of [`PEERS`], a relayed address of this server, or any address.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Known(u8),
    /// Relay port `FIRST_PORT + n`, on the advertised IP (`mapped`: as IPv4-mapped IPv6) or the
    /// private relay IP.
    Relayed {
        n: u8,
        private: bool,
        mapped: bool,
    },
    Other(SocketAddr),
}

/// `len` bytes of `fill` (long payloads cost the input three bytes).
#[derive(Debug, Clone, Copy)]
pub struct Payload {
    pub len: u16,
    pub fill: u8,
}

/// An allocation named by its client, its relay port, or a raw id.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Client(Client),
    Port(u8),
    Id(u64),
}

/// How a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Valid,
    WrongPassword,
    StaleNonce,
    WrongRealm,
    NoRealm,
    GarbageNonce,
    ExpiredRest,
}

/// A long-term credential user: 0 alice (password), 1 bob (key), 2 REST, 3 unknown.
#[derive(Debug, Clone, Copy)]
pub struct User(pub u8);

#[derive(Debug, Clone)]
pub enum Attr {
    Raw(u16, Vec<u8>),
    RequestedTransport(u8),
    Lifetime(u32),
    PeerAddress(Peer),
    ChannelNumber(u16),
    Data(Payload),
    EvenPort(u8),
    DontFragment,
    AddressFamily(u8),
    ReservationToken,
    /// CONNECTION-ID of the n-th connection the script has seen, or a raw one.
    ConnectionId(u8, u32),
    Username(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub client: Client,
    pub method: Method,
    pub class: Class,
    /// Reuse the previous request's transaction id (a retransmission).
    pub repeat_txid: bool,
    pub fingerprint: bool,
    pub auth: Auth,
    pub user: User,
    pub attrs: Vec<Attr>,
}

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Op {
    /// Arbitrary bytes as a datagram or stream frame.
    Datagram(Client, Vec<u8>),
    Request(Request),
    ChannelData {
        client: Client,
        channel: u16,
        payload: Payload,
        padded: bool,
    },
    /// A datagram from `peer` on an allocation's relay; `short` leaves one byte too few room.
    Peer {
        target: Target,
        peer: Peer,
        payload: Payload,
        short: bool,
    },
    Advance(u32),
    /// The IO shell's answer to the n-th pending Connect.
    ConnectFinished {
        n: u8,
        connected: bool,
    },
    /// A peer connects to a TCP allocation's relayed address.
    PeerConnected {
        target: Target,
        peer: Peer,
    },
    ConnectionClosed(u8),
    /// The client's stream closed: the IO shell ends its allocation.
    Close(Client),
    /// An ICMP error about a datagram an allocation's relay sent to `peer` (RFC 8656 §11).
    Icmp {
        target: Target,
        peer: Peer,
        v6: bool,
        icmp_type: u8,
        code: u8,
        info: u32,
    },
    /// Datagrams one client sent in a row, read in one `recvmmsg`: over UDP the IO shell hands
    /// them to `relay_channel_data_datagrams` together, and each one that stops a run to
    /// `handle_client`.
    Run {
        client: Client,
        frames: Vec<Frame>,
    },
}

/// One datagram of an [`Op::Run`].
#[derive(Debug, Clone)]
pub enum Frame {
    ChannelData { channel: u16, payload: Payload, padded: bool },
    Raw(Vec<u8>),
}

impl Frame {
    /// Most datagrams one `recvmmsg` of the IO shell brings.
    const MAX: u8 = 16;

    fn decode(r: &mut Reader<'_>) -> Self {
        if r.u8() & 1 == 0 {
            let (channel, payload, padded) = (r.u16(), Payload::decode(r), r.u8() & 1 != 0);
            Frame::ChannelData { channel, payload, padded }
        } else {
            let len = usize::from(r.u8());
            Frame::Raw(r.bytes(len).to_vec())
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Frame::ChannelData { channel, payload, padded } => {
                payload.encode(w.u8(0).u16(*channel));
                w.u8(u8::from(*padded));
            }
            Frame::Raw(bytes) => {
                w.u8(1).u8(bytes.len().min(255) as u8).bytes(&bytes[..bytes.len().min(255)]);
            }
        }
    }
}

// ----------------------------------------------------------------------------------------
// Decoding (the fuzz input) and encoding (the seeds) of scripts.

impl Client {
    fn decode(r: &mut Reader<'_>) -> Self {
        match r.u8() {
            b @ 0..=0xEF => Client::Known(b % CLIENTS.len() as u8),
            b => {
                let transport = [Transport::Udp, Transport::Tcp, Transport::Tls][usize::from(b % 3)];
                Client::Other(address(r, b & 8 != 0), transport)
            }
        }
    }

    fn encode(self, w: &mut Writer) {
        match self {
            Client::Known(n) => {
                w.u8(n);
            }
            Client::Other(addr, transport) => {
                let t = match transport {
                    Transport::Udp => 0,
                    Transport::Tcp => 1,
                    Transport::Tls => 2,
                };
                // 0xF0..=0xFF with b % 3 == t and bit 3 = IPv6.
                let b = (0xF0..=0xFF).find(|b: &u8| b % 3 == t && (b & 8 != 0) == addr.is_ipv6()).expect("exists");
                w.u8(b);
                encode_address(w, addr);
            }
        }
    }

    pub(super) fn tuple(self) -> FiveTuple {
        match self {
            Client::Known(n) => {
                let (client, transport) = CLIENTS[usize::from(n) % CLIENTS.len()];
                let client = client.parse().expect("literal");
                let server = if matches!(client, SocketAddr::V6(_)) { "[2001:db8::5]:3478" } else { "10.0.0.5:3478" };
                FiveTuple { client, server: server.parse().expect("literal"), transport }
            }
            Client::Other(client, transport) => {
                FiveTuple { client, server: "10.0.0.5:3478".parse().expect("literal"), transport }
            }
        }
    }
}

fn address(r: &mut Reader<'_>, v6: bool) -> SocketAddr {
    let ip = if v6 { IpAddr::V6(Ipv6Addr::from(r.array::<16>())) } else { IpAddr::V4(Ipv4Addr::from(r.array::<4>())) };
    SocketAddr::new(ip, r.u16())
}

fn encode_address(w: &mut Writer, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => w.bytes(&v4.octets()),
        IpAddr::V6(v6) => w.bytes(&v6.octets()),
    };
    w.u16(addr.port());
}

impl Peer {
    fn decode(r: &mut Reader<'_>) -> Self {
        match r.u8() {
            b @ 0..=0xDF => Peer::Known(b % PEERS.len() as u8),
            b @ 0xE0..=0xEF => Peer::Relayed { n: r.u8(), private: b & 1 != 0, mapped: b & 2 != 0 },
            b => Peer::Other(address(r, b & 1 != 0)),
        }
    }

    fn encode(self, w: &mut Writer) {
        match self {
            Peer::Known(n) => {
                w.u8(n);
            }
            Peer::Relayed { n, private, mapped } => {
                w.u8(0xE0 | u8::from(private) | (u8::from(mapped) << 1)).u8(n);
            }
            Peer::Other(addr) => {
                w.u8(0xF0 | u8::from(addr.is_ipv6()));
                encode_address(w, addr);
            }
        }
    }

    pub(super) fn addr(self, setup: Setup) -> SocketAddr {
        match self {
            Peer::Known(n) => PEERS[usize::from(n) % PEERS.len()].parse().expect("literal"),
            Peer::Relayed { n, private, mapped } => {
                let ip = if private { setup.relay_ip() } else { setup.external_ip().unwrap_or(setup.relay_ip()) };
                let ip = match ip {
                    IpAddr::V4(v4) if mapped => IpAddr::V6(v4.to_ipv6_mapped()),
                    ip => ip,
                };
                SocketAddr::new(ip, FIRST_PORT + u16::from(n) % PORTS)
            }
            Peer::Other(addr) => addr,
        }
    }
}

impl Payload {
    fn decode(r: &mut Reader<'_>) -> Self {
        Payload { len: r.u16(), fill: r.u8() }
    }

    fn encode(self, w: &mut Writer) {
        w.u16(self.len).u8(self.fill);
    }

    pub(super) fn bytes(self) -> Vec<u8> {
        vec![self.fill; usize::from(self.len)]
    }
}

impl Target {
    fn decode(r: &mut Reader<'_>) -> Self {
        match r.u8() {
            0..=0x7F => Target::Client(Client::decode(r)),
            0x80..=0xEF => Target::Port(r.u8()),
            _ => Target::Id(r.u64()),
        }
    }

    fn encode(self, w: &mut Writer) {
        match self {
            Target::Client(c) => {
                w.u8(0);
                c.encode(w);
            }
            Target::Port(n) => {
                w.u8(0x80).u8(n);
            }
            Target::Id(id) => {
                w.u8(0xF0).u32((id >> 32) as u32).u32(id as u32);
            }
        }
    }
}

const AUTHS: [Auth; 8] = [
    Auth::None,
    Auth::Valid,
    Auth::WrongPassword,
    Auth::StaleNonce,
    Auth::WrongRealm,
    Auth::NoRealm,
    Auth::GarbageNonce,
    Auth::ExpiredRest,
];

impl Attr {
    fn decode(r: &mut Reader<'_>) -> Self {
        match r.u8() % 12 {
            0 => {
                let t = r.u16();
                let len = usize::from(r.u8());
                Attr::Raw(t, r.bytes(len).to_vec())
            }
            1 => Attr::RequestedTransport(r.u8()),
            2 => Attr::Lifetime(r.u32()),
            3 => Attr::PeerAddress(Peer::decode(r)),
            4 => Attr::ChannelNumber(r.u16()),
            5 => Attr::Data(Payload::decode(r)),
            6 => Attr::EvenPort(r.u8()),
            7 => Attr::DontFragment,
            8 => Attr::AddressFamily(r.u8()),
            9 => Attr::ReservationToken,
            10 => Attr::ConnectionId(r.u8(), r.u32()),
            _ => {
                let len = usize::from(r.u8());
                Attr::Username(r.bytes(len).to_vec())
            }
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Attr::Raw(t, v) => {
                w.u8(0).u16(*t).u8(v.len().min(255) as u8).bytes(&v[..v.len().min(255)]);
            }
            Attr::RequestedTransport(p) => {
                w.u8(1).u8(*p);
            }
            Attr::Lifetime(s) => {
                w.u8(2).u32(*s);
            }
            Attr::PeerAddress(p) => p.encode(w.u8(3)),
            Attr::ChannelNumber(n) => {
                w.u8(4).u16(*n);
            }
            Attr::Data(p) => p.encode(w.u8(5)),
            Attr::EvenPort(f) => {
                w.u8(6).u8(*f);
            }
            Attr::DontFragment => {
                w.u8(7);
            }
            Attr::AddressFamily(f) => {
                w.u8(8).u8(*f);
            }
            Attr::ReservationToken => {
                w.u8(9);
            }
            Attr::ConnectionId(n, raw) => {
                w.u8(10).u8(*n).u32(*raw);
            }
            Attr::Username(v) => {
                w.u8(11).u8(v.len().min(255) as u8).bytes(&v[..v.len().min(255)]);
            }
        }
    }
}

impl Request {
    fn decode(r: &mut Reader<'_>) -> Self {
        let client = Client::decode(r);
        let method = match r.u8() {
            m @ 0..=0xEF => METHODS[usize::from(m) % METHODS.len()],
            _ => Method(r.u16() & 0x0FFF),
        };
        let class = [Class::Request, Class::Indication, Class::Success, Class::Error][usize::from(r.u8() % 4)];
        let flags = r.u8();
        let user = User(r.u8());
        let count = usize::from(r.u8() % 17);
        let attrs = (0..count).map(|_| Attr::decode(r)).collect();
        Request {
            client,
            method,
            class,
            repeat_txid: flags & 1 != 0,
            fingerprint: flags & 2 != 0,
            auth: AUTHS[usize::from(flags >> 2) % AUTHS.len()],
            user,
            attrs,
        }
    }

    fn encode(&self, w: &mut Writer) {
        self.client.encode(w);
        match METHODS.iter().position(|m| *m == self.method) {
            Some(i) => w.u8(i as u8),
            None => w.u8(0xF0).u16(self.method.0),
        };
        let class = match self.class {
            Class::Request => 0,
            Class::Indication => 1,
            Class::Success => 2,
            Class::Error => 3,
        };
        let auth = AUTHS.iter().position(|a| *a == self.auth).expect("listed") as u8;
        w.u8(class).u8(u8::from(self.repeat_txid) | (u8::from(self.fingerprint) << 1) | (auth << 2));
        w.u8(self.user.0).u8(self.attrs.len() as u8);
        self.attrs.iter().for_each(|a| a.encode(w));
    }
}

impl Op {
    pub(super) fn decode(r: &mut Reader<'_>) -> Self {
        match r.u8() % 11 {
            0 => {
                let client = Client::decode(r);
                let len = usize::from(r.u16());
                Op::Datagram(client, r.bytes(len).to_vec())
            }
            1 => Op::Request(Request::decode(r)),
            2 => {
                let (client, channel, payload, padded) =
                    (Client::decode(r), r.u16(), Payload::decode(r), r.u8() & 1 != 0);
                Op::ChannelData { client, channel, payload, padded }
            }
            3 => Op::Peer {
                target: Target::decode(r),
                peer: Peer::decode(r),
                payload: Payload::decode(r),
                short: r.u8() & 1 != 0,
            },
            4 => Op::Advance(match r.u8() {
                s @ 0..=0x7F => u32::from(s),
                _ => u32::from(r.u16()),
            }),
            5 => Op::ConnectFinished { n: r.u8(), connected: r.u8() & 1 != 0 },
            6 => Op::PeerConnected { target: Target::decode(r), peer: Peer::decode(r) },
            7 => Op::ConnectionClosed(r.u8()),
            8 => Op::Close(Client::decode(r)),
            9 => {
                let (target, peer, v6) = (Target::decode(r), Peer::decode(r), r.u8() & 1 != 0);
                let (icmp_type, code) = (r.u8(), r.u8());
                let info = u32::from(r.u16()) << 16 | u32::from(r.u16());
                Op::Icmp { target, peer, v6, icmp_type, code, info }
            }
            _ => {
                let client = Client::decode(r);
                let n = r.u8() % (Frame::MAX + 1);
                Op::Run { client, frames: (0..n).map(|_| Frame::decode(r)).collect() }
            }
        }
    }

    /// Appends this step in the format [`run`] reads.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Op::Datagram(client, bytes) => {
                client.encode(w.u8(0));
                w.u16(bytes.len() as u16).bytes(bytes);
            }
            Op::Request(request) => request.encode(w.u8(1)),
            Op::ChannelData { client, channel, payload, padded } => {
                client.encode(w.u8(2));
                payload.encode(w.u16(*channel));
                w.u8(u8::from(*padded));
            }
            Op::Peer { target, peer, payload, short } => {
                target.encode(w.u8(3));
                peer.encode(w);
                payload.encode(w);
                w.u8(u8::from(*short));
            }
            Op::Advance(secs) if *secs < 0x80 => {
                w.u8(4).u8(*secs as u8);
            }
            Op::Advance(secs) => {
                w.u8(4).u8(0x80).u16((*secs).min(0xFFFF) as u16);
            }
            Op::ConnectFinished { n, connected } => {
                w.u8(5).u8(*n).u8(u8::from(*connected));
            }
            Op::PeerConnected { target, peer } => {
                target.encode(w.u8(6));
                peer.encode(w);
            }
            Op::ConnectionClosed(n) => {
                w.u8(7).u8(*n);
            }
            Op::Close(client) => client.encode(w.u8(8)),
            Op::Icmp { target, peer, v6, icmp_type, code, info } => {
                target.encode(w.u8(9));
                peer.encode(w);
                w.u8(u8::from(*v6)).u8(*icmp_type).u8(*code).u16((info >> 16) as u16).u16(*info as u16);
            }
            Op::Run { client, frames } => {
                client.encode(w.u8(10));
                w.u8(frames.len().min(usize::from(Frame::MAX)) as u8);
                frames.iter().take(usize::from(Frame::MAX)).for_each(|f| f.encode(w));
            }
        }
    }
}

/// A whole script: the setup byte, then the steps.
pub fn encode(setup: Setup, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(setup.0);
    ops.iter().for_each(|op| op.encode(&mut w));
    w.0
}
