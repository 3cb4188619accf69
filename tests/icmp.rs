//! ICMP errors about relayed datagrams come back to the client as Data indications with an ICMP
//! attribute (RFC 8656 §11), and DONT-FRAGMENT's oversized datagrams as "fragmentation needed".
//! Every datagram goes to a loopback port nothing listens on (bound, noted, closed).
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::client::*;
use common::Config;

const USER: &str = "alice";
const PASS: &str = "wonderland";
const REALM_NAME: &str = "turnd.test";
const WAIT: Duration = Duration::from_secs(5);

/// A loopback UDP port that was just closed: datagrams to it get "port unreachable".
fn closed_port(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).expect("bind a loopback port").local_addr().unwrap()
}

fn has_ipv6_loopback() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Waits for the ICMP Data indication about `peer`; panics on anything else.
#[track_caller]
fn expect_icmp(c: &mut TurnClient, peer: SocketAddr, icmp_type: u8, code: u8) {
    match c.recv_data(WAIT) {
        Some(Incoming::Icmp { peer: from, icmp_type: t, code: k, error_data }) => {
            assert_eq!((from, t, k), (peer, icmp_type, code), "the ICMP error about the closed port");
            assert_eq!(error_data, 0, "Error Data is zero for anything but fragmentation needed");
        }
        other => panic!("expected a Data indication with ICMP {icmp_type}/{code}, got {other:?}"),
    }
}

/// Whether the allocation of `c` still relays both ways.
#[track_caller]
fn still_relays(c: &mut TurnClient, relayed: SocketAddr, ip: &str) {
    let peer = UdpSocket::bind((ip, 0)).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    c.create_permission(peer_addr).expect("CreatePermission for a live peer");
    c.send_indication(peer_addr, b"ping");
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).expect("the live peer hears the relay");
    assert_eq!((&buf[..n], from), (&b"ping"[..], relayed));
    peer.send_to(b"pong", relayed).unwrap();
    match c.recv_data(WAIT) {
        Some(Incoming::Data { peer, data }) => assert_eq!((peer, data), (peer_addr, b"pong".to_vec())),
        other => panic!("expected the live peer's Data indication, got {other:?}"),
    }
}

#[test]
fn a_send_to_a_closed_port_comes_back_as_icmp_port_unreachable() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    let relayed = c.allocate(USER, PASS).expect("allocate");
    let closed = closed_port("127.0.0.1");
    c.create_permission(closed).expect("CreatePermission for 127.0.0.1 (loopback allowed in tests)");
    c.send_indication(closed, b"anyone there?");
    // ICMPv4 destination unreachable (3), port unreachable (3).
    expect_icmp(&mut c, closed, 3, 3);
    // ChannelData to the same port: the error still comes as a Data indication.
    c.channel_bind(0x4000, closed).expect("ChannelBind");
    c.channel_data(0x4000, b"and now?");
    expect_icmp(&mut c, closed, 3, 3);
    still_relays(&mut c, relayed, "127.0.0.1");
}

#[test]
fn icmpv6_port_unreachable_on_an_ipv6_relay() {
    if !has_ipv6_loopback() {
        eprintln!("no ::1 on this machine: skipped");
        return;
    }
    let server = Config { listen: vec!["[::1]:0".into()], relay_ip: "::1".into(), ..Config::default() }.start();
    let mut c = TurnClient::new(server.addr);
    let relayed = c.allocate(USER, PASS).expect("allocate an IPv6 relay");
    assert!(relayed.is_ipv6());
    let closed = closed_port("::1");
    c.create_permission(closed).expect("CreatePermission for ::1");
    c.send_indication(closed, b"anyone there?");
    // ICMPv6 destination unreachable (1), port unreachable (4).
    expect_icmp(&mut c, closed, 1, 4);
    still_relays(&mut c, relayed, "::1");
}

/// A TCP control connection speaking framed STUN.
struct Stream(TcpStream);

impl Stream {
    fn frame(&mut self) -> Vec<u8> {
        let mut head = [0u8; 4];
        self.0.read_exact(&mut head).expect("a frame from turnd");
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let rest = if head[0] & 0xC0 == 0x40 { len.next_multiple_of(4) } else { 16 + len };
        let mut frame = head.to_vec();
        frame.resize(4 + rest, 0);
        self.0.read_exact(&mut frame[4..]).expect("the rest of the frame");
        frame
    }

    fn transact(&mut self, bytes: &[u8]) -> Message {
        self.0.write_all(bytes).expect("write to turnd");
        for _ in 0..10 {
            if let Ok(Incoming::Stun(m)) = classify(&self.frame()) {
                if m.txid == bytes[8..20] {
                    return m;
                }
            }
        }
        panic!("no answer among 10 frames");
    }
}

#[test]
fn an_oversized_send_under_dont_fragment_comes_back_as_fragmentation_needed() {
    // Loopback's MTU (65536) holds the largest UDP datagram, so only a payload over 65507
    // bytes is too big, and only a TCP client can send one (in a Send indication of up to
    // 65532 bytes). It must not go out, and the client learns why, with the MTU.
    let server = Config::default().start();
    let mut s = Stream(TcpStream::connect(server.listener("tcp").expect("tcp listener")).unwrap());
    s.0.set_read_timeout(Some(WAIT)).unwrap();
    let allocate = || {
        MessageBuilder::new(Class::Request, ALLOCATE).attr(REQUESTED_TRANSPORT, [17, 0, 0, 0]).attr(DONT_FRAGMENT, [])
    };
    let nonce = s.transact(&allocate().encode(None, true)).nonce().expect("a 401 with NONCE");
    let key = long_term_key(USER, REALM_NAME, PASS);
    let signed = |b: MessageBuilder| {
        b.attr(USERNAME, USER).attr(REALM, REALM_NAME).attr(NONCE, nonce.as_bytes()).encode(Some(&key), true)
    };
    let r = s.transact(&signed(allocate()));
    assert!(r.is_success(), "Allocate with DONT-FRAGMENT: {}", r.describe());
    let closed = closed_port("127.0.0.1");
    let permission = MessageBuilder::new(Class::Request, CREATE_PERMISSION);
    let permission = permission.clone().attr(XOR_PEER_ADDRESS, encode_xor_addr(closed, &permission.txid));
    assert!(s.transact(&signed(permission)).is_success(), "CreatePermission");

    let send = MessageBuilder::new(Class::Indication, SEND);
    let send =
        send.clone().attr(XOR_PEER_ADDRESS, encode_xor_addr(closed, &send.txid)).attr(DATA_ATTR, vec![7; 65_510]);
    s.0.write_all(&send.encode(None, false)).unwrap();
    let frame = s.frame();
    match classify(&frame) {
        Ok(Incoming::Icmp { peer, icmp_type: 3, code: 4, error_data }) => {
            // The kernel names the destination's IP; its port when it knows it, else 0.
            assert_eq!(peer.ip(), closed.ip());
            assert!(peer.port() == closed.port() || peer.port() == 0, "{peer}");
            // The path MTU as the kernel reports it: loopback's 65536, capped at the largest IP
            // packet (65535) by recent kernels.
            assert!((65_535..=65_536).contains(&error_data), "the MTU of loopback, not {error_data}");
        }
        other => panic!("expected ICMP fragmentation needed, got {other:?}"),
    }
    // The connection and turnd carry on.
    let binding = MessageBuilder::new(Class::Request, BINDING).encode(None, false);
    assert!(s.transact(&binding).is_success());
}
