//! The seed corpus (`fuzz/seeds/<target>/`, written by `src/bin/seeds.rs`): the RFC 5769 test
//! vectors and messages built by turnd's own writer, framed for each target.

use std::net::{Ipv6Addr, SocketAddr};

use turnd::auth::long_term_key;
use turnd::stun::{
    attr, data_indication_prefix, ChannelData, Class, MessageType, MessageWriter, Method, DATA_INDICATION_PREFIX_MAX,
};

use crate::server::{self, Attr, Auth, Client, Frame, Op, Payload, Peer, Request, Setup, Target, User};

/// A named seed.
pub type Seed = (String, Vec<u8>);

/// Writes a message's attributes.
type Body<'f> = &'f dyn Fn(&mut MessageWriter<'_>);

const TXID: [u8; 12] = *b"turnd-seeds!";

fn message(kind: MessageType, body: impl FnOnce(&mut MessageWriter<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut w = MessageWriter::new(&mut buf, kind, &TXID);
    body(&mut w);
    let n = w.finish().expect("seed messages fit 2048 bytes");
    buf.truncate(n);
    buf
}

fn request(method: Method) -> MessageType {
    MessageType::new(method, Class::Request)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("seed address literal")
}

/// Long-term credentials, as a client adds them (nonce of the RFC 5769 vector).
fn signed(w: &mut MessageWriter<'_>) {
    w.attr(attr::USERNAME, b"alice")
        .attr(attr::REALM, b"turnd.fuzz")
        .attr(attr::NONCE, b"f//499k954d6OL34oL9FSTvy64sA")
        .integrity(&long_term_key("alice", "turnd.fuzz", "wonderland"))
        .fingerprint();
}

/// STUN messages: the RFC 5769 vectors (`(name, hex)` pairs) and turnd-built TURN messages.
pub fn stun_messages(rfc5769: &[(String, String)]) -> Vec<Seed> {
    let mut seeds: Vec<Seed> = rfc5769
        .iter()
        .map(|(name, hex)| {
            let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16));
            (format!("rfc5769_{name}"), bytes.collect::<Result<_, _>>().expect("RFC 5769 vectors are hex"))
        })
        .collect();
    let peer4 = addr("8.8.8.8:5000");
    let peer6 = addr("[2606:4700::1111]:443");
    let built: [(&str, MessageType, Body<'_>); 11] = [
        ("binding", request(Method::BINDING), &|w| {
            w.fingerprint();
        }),
        ("allocate_unsigned", request(Method::ALLOCATE), &|w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        }),
        ("allocate", request(Method::ALLOCATE), &|w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
                .u32_attr(attr::LIFETIME, 3600)
                .attr(attr::EVEN_PORT, &[0]);
            w.attr(attr::DONT_FRAGMENT, &[]).attr(attr::SOFTWARE, b"turnd seeds");
            signed(w);
        }),
        ("refresh", request(Method::REFRESH), &|w| {
            w.u32_attr(attr::LIFETIME, 0);
            signed(w);
        }),
        ("create_permission", request(Method::CREATE_PERMISSION), &|w| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer4).xor_address(attr::XOR_PEER_ADDRESS, peer6);
            signed(w);
        }),
        ("channel_bind", request(Method::CHANNEL_BIND), &|w| {
            w.attr(attr::CHANNEL_NUMBER, &[0x40, 0x00, 0, 0]).xor_address(attr::XOR_PEER_ADDRESS, peer4);
            signed(w);
        }),
        ("send", MessageType::new(Method::SEND, Class::Indication), &|w| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer4).attr(attr::DATA, b"hello, peer");
        }),
        ("connect", request(Method::CONNECT), &|w| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer4);
            signed(w);
        }),
        ("allocate_success", MessageType::new(Method::ALLOCATE, Class::Success), &|w| {
            w.xor_address(attr::XOR_RELAYED_ADDRESS, addr("203.0.113.7:50000"))
                .u32_attr(attr::LIFETIME, 600)
                .xor_address(attr::XOR_MAPPED_ADDRESS, addr("198.51.100.1:40000"))
                .address(attr::MAPPED_ADDRESS, addr("198.51.100.1:40000"))
                .integrity(&long_term_key("alice", "turnd.fuzz", "wonderland"));
        }),
        ("unauthorized", MessageType::new(Method::ALLOCATE, Class::Error), &|w| {
            w.error_code(401, "Unauthorized").attr(attr::REALM, b"turnd.fuzz").attr(attr::NONCE, b"AAAAAAAAAAAAAAAA");
        }),
        ("unknown_attribute", MessageType::new(Method::BINDING, Class::Error), &|w| {
            w.error_code(420, "Unknown Attribute").unknown_attributes(&[0x7777, 0x0003]).fingerprint();
        }),
    ];
    seeds.extend(built.into_iter().map(|(name, kind, body)| (name.to_owned(), message(kind, body))));
    seeds.push(("data_indication".to_owned(), data_indication(peer6, b"hello, client")));
    seeds
}

/// A Data indication as `handle_peer` frames one.
fn data_indication(peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut prefix = [0u8; DATA_INDICATION_PREFIX_MAX];
    let n = data_indication_prefix(&mut prefix, &TXID, peer, payload.len() as u16).expect("a short payload");
    let mut out = prefix[..n].to_vec();
    out.extend_from_slice(payload);
    out.resize(n + payload.len().next_multiple_of(4), 0);
    out
}

fn channel_data(channel: u16, payload: &[u8], padded: bool) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    let header: &mut [u8; 4] = (&mut out[..]).try_into().expect("4 bytes");
    ChannelData::write_header(channel, payload.len() as u16, header);
    out.extend_from_slice(payload);
    out.resize(ChannelData::frame_len(payload.len(), padded), 0);
    out
}

/// ChannelData messages (UDP and stream forms) and a STUN message.
pub fn channel_data_seeds(stun: &[Seed]) -> Vec<Seed> {
    vec![
        ("udp".to_owned(), channel_data(0x4000, b"hello", false)),
        ("stream".to_owned(), channel_data(0x4001, b"hello", true)),
        ("empty".to_owned(), channel_data(0x7FFF, b"", false)),
        ("rfc8656_max_channel".to_owned(), channel_data(0x4FFF, &[0xAB; 100], true)),
        stun.iter().find(|(name, _)| name == "send").expect("send seed").clone(),
    ]
}

/// Streams for `stream_framing`: two bytes choosing the read sizes, then frames back to back.
pub fn stream_seeds(stun: &[Seed]) -> Vec<Seed> {
    let mut all = Vec::new();
    for (_, m) in stun {
        all.extend_from_slice(m);
        all.extend(channel_data(0x4000, b"between messages", true));
    }
    let stun_only: Vec<u8> = stun.iter().take(4).flat_map(|(_, m)| m.clone()).collect();
    vec![
        ("byte_by_byte".to_owned(), [&[0u8, 0][..], &all].concat()),
        ("small_reads".to_owned(), [&[5u8, 7][..], &all].concat()),
        ("large_reads".to_owned(), [&[16u8, 1][..], &stun_only].concat()),
        ("garbage_after".to_owned(), [&[3u8, 3][..], &stun_only, b"GET / HTTP/1.1\r\n"].concat()),
    ]
}

/// IPv6 addresses (16 bytes) for `peer_policy`: each embedding form of special IPv4 addresses.
pub fn policy_seeds() -> Vec<Seed> {
    [
        ("mapped_loopback", "::ffff:127.0.0.1"),
        ("compatible_private", "::10.0.0.1"),
        ("nat64_metadata", "64:ff9b::a9fe:a9fe"),
        ("nat64_local", "64:ff9b:1::808:808"),
        ("sixtofour_loopback", "2002:7f00:1::"),
        ("teredo", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
        ("public", "2606:4700:4700::1111"),
        ("loopback", "::1"),
        ("unique_local", "fd00::1"),
    ]
    .into_iter()
    .map(|(name, ip)| (name.to_owned(), ip.parse::<Ipv6Addr>().expect("seed literal").octets().to_vec()))
    .collect()
}

/// Config files: the shipped one and small ones using every table.
pub fn config_seeds(shipped: &str) -> Vec<Seed> {
    let files = [
        ("shipped", shipped),
        ("empty", ""),
        (
            "nat",
            "[server]\nlisten = [\"10.0.0.5:3478\"]\nexternal-ip = \"203.0.113.10/10.0.0.5\"\nmin-port = 50000\nmax-port = 50100\n\n[auth]\nsecrets = [\"a-long-random-secret\"]\n",
        ),
        (
            "users",
            "[auth]\nrealm = \"example.org\"\nnonce-lifetime = 300\n\n[[auth.users]]\nname = \"alice\"\npassword = \"pw\"\n\n[[auth.users]]\nname = \"bob\"\nkey = \"0x0123456789abcdef0123456789abcdef\"\n",
        ),
        (
            "limits_peers",
            "[allocation]\nuser-quota = 10\ntotal-quota = 100\n\n[peers]\nallowed = [\"10.0.0.0/8\"]\ndenied = [\"8.8.8.0/24\", \"::ffff:1.1.1.1/128\"]\n\n[limits]\nmax-connections = 5\nmax-connections-per-ip = 1\n",
        ),
        (
            "api",
            "[server]\ntls-listen = [\"127.0.0.1:5349\"]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n\n[api]\nlisten = \"127.0.0.1:8080\"\nkeys = [\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"]\ncors-origins = [\"*\"]\n\n[api.jwt]\nsecret = \"0123456789abcdef0123456789abcdef\"\nleeway = 30\n",
        ),
        ("syntax_error", "[server\nlisten = 3478\n"),
        // Made tracing-subscriber's filter parser panic before log-level had to be ASCII.
        ("log_level_non_ascii", "[server]\nlog-level = 'x, [{\u{184}}]'\n"),
        // Its field value, compiled as a regular expression, took seconds (libFuzzer's timeout).
        (
            "log_level_field_regex",
            "[server]\nlog-level = 'wu2.-.0,uwsuwu1.-utbf, secolds; 0KKKKKKK[inKKKKKKKKKKKKKKKpassword{I=IIII.....................5suKKKK/KKK1.-.0.uw10sha256:.0u1.-.0*uw.1.0.uw10.0.0.5suwu2.-wu1.-IIIm={}KKKKKKKK1e3%o'\n",
        ),
    ];
    files.into_iter().map(|(name, text)| (name.to_owned(), text.as_bytes().to_vec())).collect()
}

fn req(client: u8, method: Method, auth: Auth, attrs: Vec<Attr>) -> Op {
    Op::Request(Request {
        client: Client::Known(client),
        method,
        class: Class::Request,
        repeat_txid: false,
        fingerprint: false,
        auth,
        user: User(0),
        attrs,
    })
}

fn udp_transport() -> Attr {
    Attr::RequestedTransport(17)
}

/// Scripts for `turn_server`, each a scenario that gets deep into the server.
pub fn server_seeds(stun: &[Seed]) -> Vec<Seed> {
    use Auth::Valid;
    let peer = Peer::Known(0); // 8.8.8.8:5000
    let other_port = Peer::Known(1); // 8.8.8.8:6000
    let relay_of = |n| Peer::Relayed { n, private: false, mapped: false };
    let mut scenarios: Vec<(&str, Setup, Vec<Op>)> = vec![
        ("binding", Setup(0), vec![req(0, Method::BINDING, Auth::None, vec![])]),
        (
            "udp_relay",
            Setup(2),
            vec![
                req(0, Method::ALLOCATE, Auth::None, vec![udp_transport()]),
                req(0, Method::ALLOCATE, Valid, vec![udp_transport(), Attr::Lifetime(1200)]),
                req(0, Method::CREATE_PERMISSION, Valid, vec![Attr::PeerAddress(peer)]),
                req(0, Method::CHANNEL_BIND, Valid, vec![Attr::ChannelNumber(0x4000), Attr::PeerAddress(peer)]),
                Op::ChannelData {
                    client: Client::Known(0),
                    channel: 0x4000,
                    payload: Payload { len: 100, fill: 7 },
                    padded: false,
                },
                // One recvmmsg's worth from the client: a run of three, a datagram on an
                // unbound channel that stops it, and one more.
                Op::Run {
                    client: Client::Known(0),
                    frames: vec![
                        Frame::ChannelData { channel: 0x4000, payload: Payload { len: 1200, fill: 4 }, padded: false },
                        Frame::ChannelData { channel: 0x4000, payload: Payload { len: 1200, fill: 5 }, padded: false },
                        Frame::ChannelData { channel: 0x4000, payload: Payload { len: 700, fill: 6 }, padded: true },
                        Frame::Raw(vec![0x40, 0x01, 0, 1, 9]),
                        Frame::ChannelData { channel: 0x4000, payload: Payload { len: 10, fill: 7 }, padded: false },
                    ],
                },
                Op::Request(Request {
                    client: Client::Known(0),
                    method: Method::SEND,
                    class: Class::Indication,
                    repeat_txid: false,
                    fingerprint: true,
                    auth: Auth::None,
                    user: User(0),
                    attrs: vec![Attr::PeerAddress(other_port), Attr::Data(Payload { len: 1000, fill: 1 })],
                }),
                Op::Peer {
                    target: Target::Client(Client::Known(0)),
                    peer,
                    payload: Payload { len: 1200, fill: 2 },
                    short: false,
                },
                Op::Peer {
                    target: Target::Port(0),
                    peer: other_port,
                    payload: Payload { len: 13, fill: 3 },
                    short: false,
                },
                // Fragmentation needed (relayed), then an echo request (not an error: dropped).
                Op::Icmp { target: Target::Port(0), peer: other_port, v6: false, icmp_type: 3, code: 4, info: 1400 },
                Op::Icmp { target: Target::Port(0), peer: other_port, v6: false, icmp_type: 8, code: 0, info: 0 },
                Op::Advance(400),
                Op::Peer {
                    target: Target::Port(0),
                    peer: other_port,
                    payload: Payload { len: 13, fill: 3 },
                    short: false,
                },
                req(0, Method::REFRESH, Valid, vec![Attr::Lifetime(0)]),
            ],
        ),
        (
            "client_to_client",
            Setup(0x02),
            vec![
                req(0, Method::ALLOCATE, Valid, vec![udp_transport()]),
                req(1, Method::ALLOCATE, Valid, vec![udp_transport(), Attr::DontFragment]),
                req(
                    0,
                    Method::CREATE_PERMISSION,
                    Valid,
                    vec![Attr::PeerAddress(relay_of(0)), Attr::PeerAddress(relay_of(1))],
                ),
                req(
                    1,
                    Method::CREATE_PERMISSION,
                    Valid,
                    vec![Attr::PeerAddress(relay_of(0)), Attr::PeerAddress(relay_of(1))],
                ),
                req(1, Method::CHANNEL_BIND, Valid, vec![Attr::ChannelNumber(0x4001), Attr::PeerAddress(relay_of(0))]),
                Op::Request(Request {
                    client: Client::Known(0),
                    method: Method::SEND,
                    class: Class::Indication,
                    repeat_txid: false,
                    fingerprint: false,
                    auth: Auth::None,
                    user: User(0),
                    attrs: vec![Attr::PeerAddress(relay_of(1)), Attr::Data(Payload { len: 1000, fill: 9 })],
                }),
                Op::ChannelData {
                    client: Client::Known(1),
                    channel: 0x4001,
                    payload: Payload { len: 500, fill: 4 },
                    padded: true,
                },
                Op::Advance(0x7F),
                Op::Close(Client::Known(1)),
            ],
        ),
        (
            "tcp_relay",
            Setup(0),
            vec![
                req(1, Method::ALLOCATE, Valid, vec![Attr::RequestedTransport(6)]),
                req(1, Method::CREATE_PERMISSION, Valid, vec![Attr::PeerAddress(peer)]),
                req(1, Method::CONNECT, Valid, vec![Attr::PeerAddress(peer)]),
                Op::ConnectFinished { n: 0, connected: true },
                Op::Request(Request {
                    client: Client::Other(addr("198.51.100.1:40002"), turnd::turn::Transport::Tcp),
                    method: Method::CONNECTION_BIND,
                    class: Class::Request,
                    repeat_txid: false,
                    fingerprint: false,
                    auth: Valid,
                    user: User(0),
                    attrs: vec![Attr::ConnectionId(0, 0)],
                }),
                Op::PeerConnected { target: Target::Port(0), peer: other_port },
                Op::ConnectionClosed(1),
                req(1, Method::CONNECT, Valid, vec![Attr::PeerAddress(Peer::Known(3))]),
                Op::ConnectFinished { n: 1, connected: false },
            ],
        ),
        (
            "credentials",
            Setup(0x14),
            vec![
                req(3, Method::ALLOCATE, Auth::StaleNonce, vec![udp_transport()]),
                req(3, Method::ALLOCATE, Auth::WrongRealm, vec![udp_transport()]),
                req(3, Method::ALLOCATE, Auth::WrongPassword, vec![udp_transport()]),
                Op::Request(Request {
                    client: Client::Known(3),
                    method: Method::ALLOCATE,
                    class: Class::Request,
                    repeat_txid: false,
                    fingerprint: true,
                    auth: Valid,
                    user: User(2),
                    attrs: vec![udp_transport(), Attr::Raw(0x7777, b"unknown".to_vec())],
                }),
                req(4, Method::ALLOCATE, Valid, vec![udp_transport(), Attr::AddressFamily(2)]),
                req(2, Method::ALLOCATE, Valid, vec![udp_transport(), Attr::ReservationToken]),
                req(2, Method::ALLOCATE, Valid, vec![udp_transport()]),
                req(2, Method::REFRESH, Auth::ExpiredRest, vec![]),
            ],
        ),
    ];
    // Each STUN message seed as a datagram from the first client, after an allocation.
    let datagrams: Vec<Op> = std::iter::once(req(0, Method::ALLOCATE, Valid, vec![udp_transport()]))
        .chain(stun.iter().map(|(_, m)| Op::Datagram(Client::Known(0), m.clone())))
        .collect();
    scenarios.push(("datagrams", Setup(0), datagrams));
    scenarios.into_iter().map(|(name, setup, ops)| (name.to_owned(), server::encode(setup, &ops))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun() -> Vec<Seed> {
        stun_messages(&[])
    }

    #[test]
    fn server_scenarios_reach_what_they_are_named_for() {
        let stats: std::collections::HashMap<String, server::Stats> =
            server_seeds(&stun()).into_iter().map(|(name, script)| (name, server::run(&script))).collect();
        let udp = stats["udp_relay"];
        assert!(udp.successes >= 4 && udp.errors >= 1, "{udp:?}");
        assert!(udp.relayed >= 6 && udp.to_client >= 2 && udp.icmp == 1, "{udp:?}");
        let c2c = stats["client_to_client"];
        assert!(c2c.successes >= 5 && c2c.forwarded >= 2, "{c2c:?}");
        let tcp = stats["tcp_relay"];
        assert!(tcp.connects >= 2 && tcp.bound >= 1 && tcp.attempts >= 1, "{tcp:?}");
        let creds = stats["credentials"];
        assert!(creds.errors >= 5 && creds.successes >= 2, "{creds:?}");
    }

    #[test]
    fn every_seed_passes_its_target() {
        for (_, bytes) in stun() {
            crate::roundtrip::check(&bytes, &mut vec![0; crate::roundtrip::MAX_MESSAGE + 64]);
        }
        for (_, bytes) in stream_seeds(&stun()) {
            assert!(crate::framing::frame(&bytes[2..], |_| 7) > 0);
        }
    }
}
