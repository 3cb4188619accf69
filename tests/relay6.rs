//! IPv6 relays (RFC 6156, RFC 8656 §7.2), dual allocations and EVEN-PORT reservations,
//! through the real daemon on loopback (127.0.0.1 and ::1 only).
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::client::*;
use common::message::decode_xor_addr;
use common::{peer_socket, recv_peer, Config, Server};

const USER: &str = "alice";
const PASS: &str = "wonderland";
const WAIT: Duration = Duration::from_secs(5);
const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
const ADDRESS_ERROR_CODE: u16 = 0x8001;
const RESERVATION_TOKEN: u16 = 0x0022;

/// turnd listening on `listen` with relay addresses `relays`, loopback peers allowed.
fn server(listen: &str, relays: &str) -> Server {
    let text = Config { listen: vec![listen.into()], ..Config::default() }.to_toml();
    let text = text.replace("relay-ip = \"127.0.0.1\"", &format!("relay-ip = {relays}"));
    Server::turnd(&text)
}

/// Every XOR-RELAYED-ADDRESS of a response, in order.
fn relayed_addrs(resp: &Response) -> Vec<SocketAddr> {
    resp.attrs
        .iter()
        .filter(|(t, _)| *t == XOR_RELAYED_ADDRESS)
        .map(|(_, v)| decode_xor_addr(v, &resp.txid).expect("XOR-RELAYED-ADDRESS decodes"))
        .collect()
}

/// `payload` goes from the client to `peer_socket` out of `relayed`, and back.
fn round_trip(c: &mut TurnClient, relayed: SocketAddr, peer_socket: &UdpSocket, payload: &[u8]) {
    let peer_addr = peer_socket.local_addr().unwrap();
    c.send_indication(peer_addr, payload);
    let (data, from) = recv_peer(peer_socket);
    assert_eq!((data.as_slice(), from), (payload, relayed), "out of the relayed address of the peer's family");
    peer_socket.send_to(b"back", relayed).unwrap();
    match c.recv_data(WAIT) {
        Some(Incoming::Data { peer, data }) => assert_eq!((peer, data.as_slice()), (peer_addr, &b"back"[..])),
        other => panic!("expected a Data indication from {peer_addr}, got {other:?}"),
    }
}

#[test]
fn ipv6_client_relays_to_an_ipv6_peer() {
    let s = server("[::1]:0", "\"::1\"");
    assert!(s.addr.is_ipv6());
    let mut c = TurnClient::new(s.addr);
    // No REQUESTED-ADDRESS-FAMILY, as browsers: the listener's family (IPv6).
    let relayed = c.allocate(USER, PASS).unwrap();
    assert_eq!(relayed.ip().to_string(), "::1");
    let (p, pa) = peer_socket("[::1]");
    c.create_permission(pa).unwrap();
    round_trip(&mut c, relayed, &p, b"over ipv6");
    // Channels work on the IPv6 relay too.
    c.channel_bind(0x4000, pa).unwrap();
    c.channel_data(0x4000, b"channel6");
    assert_eq!(recv_peer(&p), (b"channel6".to_vec(), relayed));
    // An IPv4 peer has no relay of its family: 443.
    let err = c.create_permission("127.0.0.1:9".parse().unwrap()).unwrap_err();
    assert_eq!(err.code, 443, "{err}");
}

#[test]
fn requested_family_picks_the_relay_and_440_without_one() {
    let s = server("127.0.0.1:0", "[\"127.0.0.1\", \"::1\"]");
    let mut c = TurnClient::new(s.addr);
    let relayed = c.allocate_with(USER, PASS, vec![(REQUESTED_ADDRESS_FAMILY, vec![2, 0, 0, 0])]).unwrap();
    assert_eq!(relayed.ip().to_string(), "::1", "IPv6 relay for an IPv4 client");
    let (p, pa) = peer_socket("[::1]");
    c.create_permission(pa).unwrap();
    round_trip(&mut c, relayed, &p, b"v4 client, v6 peer");

    let s = server("127.0.0.1:0", "\"127.0.0.1\"");
    let mut c = TurnClient::new(s.addr);
    let err = c.allocate_with(USER, PASS, vec![(REQUESTED_ADDRESS_FAMILY, vec![2, 0, 0, 0])]).unwrap_err();
    assert_eq!(err.code, 440, "{err}");
}

#[test]
fn dual_allocation_relays_to_both_families() {
    let s = server("127.0.0.1:0", "[\"127.0.0.1\", \"::1\"]");
    let mut c = TurnClient::new(s.addr);
    c.set_credentials(USER, PASS);
    let resp = c.request(
        ALLOCATE,
        vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]), (ADDITIONAL_ADDRESS_FAMILY, vec![2, 0, 0, 0])],
    );
    assert!(resp.is_success(), "{}", resp.describe());
    let relayed = relayed_addrs(&resp);
    assert_eq!(relayed.len(), 2, "{}", resp.describe());
    assert_eq!((relayed[0].ip().to_string(), relayed[1].ip().to_string()), ("127.0.0.1".into(), "::1".into()));
    assert!(!resp.has(ADDRESS_ERROR_CODE));
    let (p4, pa4) = peer_socket("127.0.0.1");
    let (p6, pa6) = peer_socket("[::1]");
    c.create_permissions(&[pa4, pa6]).unwrap();
    round_trip(&mut c, relayed[0], &p4, b"to the ipv4 peer");
    round_trip(&mut c, relayed[1], &p6, b"to the ipv6 peer");
    // Refresh 0 frees both relayed ports at once.
    c.refresh(0).unwrap();
    for addr in relayed {
        let ip = if addr.is_ipv6() { "[::1]" } else { "127.0.0.1" };
        UdpSocket::bind(format!("{ip}:{}", addr.port())).expect("the relayed port is free again");
    }
}

#[test]
fn dual_allocation_without_an_ipv6_relay_reports_address_error_code() {
    let s = server("127.0.0.1:0", "\"127.0.0.1\"");
    let mut c = TurnClient::new(s.addr);
    c.set_credentials(USER, PASS);
    let resp = c.request(
        ALLOCATE,
        vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]), (ADDITIONAL_ADDRESS_FAMILY, vec![2, 0, 0, 0])],
    );
    assert!(resp.is_success(), "{}", resp.describe());
    assert_eq!(relayed_addrs(&resp).len(), 1);
    assert_eq!(&resp.get(ADDRESS_ERROR_CODE).expect("ADDRESS-ERROR-CODE")[..4], &[2, 0, 4, 40]);
}

#[test]
fn even_port_reservation_gives_the_next_port_to_the_token() {
    let s = server("127.0.0.1:0", "\"127.0.0.1\"");
    let mut rtp = TurnClient::new(s.addr);
    rtp.set_credentials(USER, PASS);
    let resp = rtp.request(ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]), (EVEN_PORT, vec![0x80])]);
    assert!(resp.is_success(), "{}", resp.describe());
    let port = relayed_addrs(&resp)[0].port();
    assert_eq!(port % 2, 0);
    let token = resp.get(RESERVATION_TOKEN).expect("RESERVATION-TOKEN").to_vec();
    // The reserved port is held: nobody else can bind it.
    assert!(UdpSocket::bind(("127.0.0.1", port + 1)).is_err(), "port + 1 is held");
    let mut rtcp = TurnClient::new(s.addr);
    let relayed =
        rtcp.allocate_with(USER, PASS, vec![(RESERVATION_TOKEN, token.clone())]).expect("the token is accepted");
    assert_eq!(relayed.port(), port + 1);
    // The RTCP allocation relays like any other.
    let (p, pa) = peer_socket("127.0.0.1");
    rtcp.create_permission(pa).unwrap();
    round_trip(&mut rtcp, relayed, &p, b"rtcp");
    // Used once.
    let mut again = TurnClient::new(s.addr);
    let err = again.allocate_with(USER, PASS, vec![(RESERVATION_TOKEN, token)]).unwrap_err();
    assert_eq!(err.code, 508, "{err}");
}
