//! turnd exercised through the independent client in `common::client`.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::client::*;
use common::{free_udp_port, peer_socket, recv_peer, unix_now, Config, Server};

const USER: &str = "alice";
const PASS: &str = "wonderland";
const WAIT: Duration = Duration::from_secs(5);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn allocated(server: &Server) -> (TurnClient, SocketAddr) {
    let mut c = TurnClient::new(server.addr);
    let relayed = c.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocate as {USER}: {e}"));
    (c, relayed)
}

fn code(r: &Response) -> Option<u16> {
    r.error_code()
}

#[test]
fn allocate_returns_relayed_and_mapped_addresses() {
    let server = Config::default().start();
    let (c, relayed) = allocated(&server);
    assert_eq!(relayed.ip(), LOCALHOST, "relayed address must be on relay-ip");
    assert_ne!(relayed.port(), 0);
    assert_eq!(c.mapped, Some(c.local_addr()), "XOR-MAPPED-ADDRESS in the Allocate response");
    let lt = c.lifetime.expect("Allocate success must carry LIFETIME");
    assert!(lt > 0 && lt <= 3600, "lifetime {lt}");
}

#[test]
fn default_policy_denies_special_purpose_peers() {
    let server = Config::default_policy().start();
    let (mut c, _) = allocated(&server);
    let peers = [
        "127.0.0.1:9",
        "0.0.0.0:9",
        "[::1]:9",
        "[::]:9",
        "[::ffff:127.0.0.1]:9",
        "[::127.0.0.1]:9",
        "169.254.169.254:80",
        "10.0.0.1:9",
        "192.168.1.1:9",
        "100.64.0.1:9",
        "[64:ff9b::a9fe:a9fe]:80",
        "[2002:7f00:1::]:9",
        "[fe80::1]:9",
        "224.0.0.1:9",
    ];
    let mut wrong = Vec::new();
    for p in peers {
        let peer: SocketAddr = p.parse().unwrap();
        // Only CreatePermission: nothing is ever sent to these addresses.
        match c.create_permission(peer) {
            Err(e) if e.code == 403 => {}
            // An IPv6-family peer on an IPv4 allocation may be refused for the family instead.
            Err(e) if e.code == 443 && peer.is_ipv6() => {}
            other => wrong.push(format!("{p}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "CreatePermission must be refused with 403:\n{}", wrong.join("\n"));
    let e = c.channel_bind(0x4000, "169.254.169.254:80".parse().unwrap()).expect_err("ChannelBind to metadata address");
    assert_eq!(e.code, 403, "{e}");
}

#[test]
fn wrong_password_is_rejected_without_allocating() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    let e = c.allocate(USER, "not-the-password").expect_err("wrong password must fail");
    assert_eq!(e.code, 401, "{e}");
    // Same 5-tuple: a 437 here would mean the failed request created an allocation.
    c.allocate(USER, PASS).unwrap_or_else(|e| panic!("correct password after a wrong one: {e}"));
}

#[test]
fn unknown_user_is_rejected() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    let e = c.allocate("mallory", "wonderland").expect_err("unknown user must fail");
    assert_eq!(e.code, 401, "{e}");
}

#[test]
fn rest_credentials_are_accepted() {
    let server = Config::default().start();
    let (user, pass) = rest_credentials("s3cret", "bob", unix_now() + 3600);
    let mut c = TurnClient::new(server.addr);
    c.allocate(&user, &pass).unwrap_or_else(|e| panic!("REST user {user}: {e}"));
}

#[test]
fn expired_rest_username_is_rejected() {
    let server = Config::default().start();
    let (user, pass) = rest_credentials("s3cret", "bob", unix_now() - 60);
    let mut c = TurnClient::new(server.addr);
    let e = c.allocate(&user, &pass).expect_err("expired REST username must fail");
    assert_eq!(e.code, 401, "{e}");
    // A REST password made with another secret fails too (fresh 5-tuple).
    let (user, pass) = rest_credentials("other-secret", "bob", unix_now() + 3600);
    let mut c = TurnClient::new(server.addr);
    let e = c.allocate(&user, &pass).expect_err("REST password from a wrong secret must fail");
    assert_eq!(e.code, 401, "{e}");
}

#[test]
fn refresh_zero_frees_the_relay_port() {
    let port = free_udp_port();
    let server = Config::default().ports(port, port).start();
    let (mut a, ra) = allocated(&server);
    assert_eq!(ra, SocketAddr::new(LOCALHOST, port), "only port of the range");
    let mut b = TurnClient::new(server.addr);
    let e = b.allocate(USER, PASS).expect_err("no port left");
    assert_eq!(e.code, 508, "port exhaustion is 508 Insufficient Capacity: {e}");
    assert_eq!(a.refresh(0).expect("Refresh 0 deletes the allocation"), 0);
    let rb = b.allocate(USER, PASS).unwrap_or_else(|e| panic!("port must be free right after Refresh 0: {e}"));
    assert_eq!(rb, ra);
    // The deleted allocation is gone: refreshing it again is 437.
    let e = a.refresh(600).expect_err("refresh of a deleted allocation");
    assert_eq!(e.code, 437, "{e}");
}

#[test]
fn second_allocate_on_same_five_tuple_is_437() {
    let server = Config::default().start();
    let (mut c, _) = allocated(&server);
    let r = c.request(ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
    assert_eq!(code(&r), Some(437), "{}", r.describe());
}

#[test]
fn data_round_trip_with_indications_and_channels() {
    let server = Config::default().start();
    let (mut c, relayed) = allocated(&server);
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    c.create_permission(peer_addr).expect("CreatePermission for a 127.0.0.1 peer (allowed in config)");

    c.send_indication(peer_addr, b"hello peer");
    let (data, from) = recv_peer(&peer);
    assert_eq!(data, b"hello peer");
    assert_eq!(from, relayed, "the peer must see the relayed address as source");

    peer.send_to(b"hello client", relayed).unwrap();
    match c.recv_data(WAIT) {
        Some(Incoming::Data { peer, data }) => {
            assert_eq!(peer, peer_addr, "XOR-PEER-ADDRESS of the Data indication");
            assert_eq!(data, b"hello client");
        }
        other => panic!("expected a Data indication, got {other:?}"),
    }

    c.channel_bind(0x4000, peer_addr).expect("ChannelBind");
    c.channel_data(0x4000, b"over the channel");
    let (data, from) = recv_peer(&peer);
    assert_eq!(data, b"over the channel");
    assert_eq!(from, relayed);

    peer.send_to(b"back over the channel", relayed).unwrap();
    match c.recv_data(WAIT) {
        Some(Incoming::ChannelData { channel, data }) => {
            assert_eq!(channel, 0x4000);
            assert_eq!(data, b"back over the channel");
        }
        other => panic!("expected ChannelData on 0x4000, got {other:?}"),
    }

    // Odd length (not a multiple of 4) through the channel, both ways; unpadded this time.
    c.channel_data_unpadded(0x4000, b"abcde");
    assert_eq!(recv_peer(&peer).0, b"abcde");
    peer.send_to(b"xyz", relayed).unwrap();
    match c.recv_data(WAIT) {
        Some(Incoming::ChannelData { channel: 0x4000, data }) => assert_eq!(data, b"xyz"),
        other => panic!("expected ChannelData on 0x4000, got {other:?}"),
    }
}

#[test]
fn data_from_peer_without_permission_is_dropped() {
    let server = Config::default().start();
    let (mut c, relayed) = allocated(&server);
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    // Permissions are per IP address (any port), so the stranger uses another loopback IP.
    let stranger = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (Linux loopback covers 127/8)");
    c.create_permission(peer_addr).expect("CreatePermission");
    stranger.send_to(b"not permitted", relayed).unwrap();
    // The permitted peer's datagram, sent after the stranger's, is the first to arrive.
    peer.send_to(b"permitted", relayed).unwrap();
    match c.recv_data(WAIT) {
        Some(Incoming::Data { peer, data }) => {
            assert_eq!((peer, data.as_slice()), (peer_addr, &b"permitted"[..]), "stranger's data was relayed");
        }
        other => panic!("expected the permitted peer's Data indication, got {other:?}"),
    }
}

#[test]
fn client_to_client_with_default_policy() {
    let server = Config::default_policy().start();
    let (mut a, ra) = allocated(&server);
    let (mut b, rb) = allocated(&server);
    a.create_permission(rb).expect("permission for another allocation's relayed address");
    b.create_permission(ra).expect("permission for another allocation's relayed address");
    a.send_indication(rb, b"from a");
    match b.recv_data(WAIT) {
        Some(Incoming::Data { peer, data }) => {
            assert_eq!(peer, ra, "B must see A's relayed address");
            assert_eq!(data, b"from a");
        }
        other => panic!("expected a Data indication at B, got {other:?}"),
    }
    b.channel_bind(0x4001, ra).expect("ChannelBind to A's relayed address");
    b.channel_data(0x4001, b"from b");
    match a.recv_data(WAIT) {
        Some(Incoming::Data { peer, data }) => {
            assert_eq!(peer, rb);
            assert_eq!(data, b"from b");
        }
        other => panic!("expected a Data indication at A, got {other:?}"),
    }
}

#[test]
fn user_quota_limits_allocations_per_user() {
    // Built with common::config's text merge (the builder covers the other tests).
    let server = Server::turnd(&common::config(0, "[allocation]\nuser-quota = 1\n"));
    let (mut a, _) = allocated(&server);
    let mut b = TurnClient::new(server.addr);
    let e = b.allocate(USER, PASS).expect_err("second allocation of the same user");
    assert_eq!(e.code, 486, "{e}");
    a.refresh(0).expect("delete the first allocation");
    b.allocate(USER, PASS).unwrap_or_else(|e| panic!("quota must be released by Refresh 0: {e}"));
}

#[test]
fn total_quota_limits_all_allocations() {
    let mut cfg = Config { total_quota: Some(1), ..Config::default() };
    cfg.users.push(("bob".into(), "builder".into()));
    let server = cfg.start();
    let _a = allocated(&server);
    let mut b = TurnClient::new(server.addr);
    let e = b.allocate("bob", "builder").expect_err("second allocation over the total quota");
    // 486 is per username (RFC 8656 §18); a server-wide limit is a capacity limit: 508.
    assert_eq!(e.code, 508, "{e}");
}

#[test]
fn unknown_comprehension_required_attribute_is_420() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    let b = MessageBuilder::new(Class::Request, BINDING).attr(0x0031, vec![1, 2, 3, 4]);
    let r = c.transact(&b);
    assert_eq!(code(&r), Some(420), "{}", r.describe());
    assert!(r.unknown_attributes().contains(&0x0031), "UNKNOWN-ATTRIBUTES: {:04x?}", r.unknown_attributes());
    // Comprehension-optional unknown attributes are ignored.
    let b = MessageBuilder::new(Class::Request, BINDING).attr(0x8031, vec![1, 2, 3, 4]);
    let r = c.transact(&b);
    assert!(r.is_success(), "{}", r.describe());
}

#[test]
fn binding_reports_client_address() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    let r = c.binding();
    assert!(r.is_success(), "{}", r.describe());
    assert_eq!(r.xor_mapped(), Some(c.local_addr()));
    // Without FINGERPRINT too.
    c.fingerprint = false;
    let r = c.binding();
    assert_eq!(r.xor_mapped(), Some(c.local_addr()), "{}", r.describe());
}

#[test]
fn create_permission_without_peer_address_is_400() {
    let server = Config::default().start();
    let (mut c, _) = allocated(&server);
    let r = c.request(CREATE_PERMISSION, vec![]);
    assert_eq!(code(&r), Some(400), "{}", r.describe());
}

#[test]
fn channel_bind_with_invalid_channel_is_400() {
    let server = Config::default().start();
    let (mut c, _) = allocated(&server);
    let (_peer, peer_addr) = peer_socket("127.0.0.1");
    let e = c.channel_bind(0x3FFF, peer_addr).expect_err("channel 0x3FFF is out of range");
    assert_eq!(e.code, 400, "{e}");
    c.channel_bind(0x4000, peer_addr).expect("a valid channel still binds");
}

#[test]
fn requested_transport_tcp_over_udp_is_400_and_sctp_is_442() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    // RFC 6062 §5.1: a TCP relay needs a TCP/TLS control connection; asked over UDP it is a 400.
    let e = c
        .allocate_with(USER, PASS, vec![(REQUESTED_TRANSPORT, vec![TCP, 0, 0, 0])])
        .expect_err("TCP relaying over a UDP allocation request");
    assert_eq!(e.code, 400, "{e}");
    let e = c.allocate_with(USER, PASS, vec![(REQUESTED_TRANSPORT, vec![132, 0, 0, 0])]).expect_err("SCTP relaying");
    assert_eq!(e.code, 442, "{e}");
    c.allocate(USER, PASS).unwrap_or_else(|e| panic!("UDP allocation after the errors: {e}"));
}

#[test]
fn refresh_without_allocation_is_437() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    c.set_credentials(USER, PASS);
    let r = c.request(REFRESH, vec![(LIFETIME, 600u32.to_be_bytes().to_vec())]);
    assert_eq!(code(&r), Some(437), "{}", r.describe());
}

#[test]
fn refresh_by_another_user_is_441() {
    let mut cfg = Config::default();
    cfg.users.push(("bob".into(), "builder".into()));
    let server = cfg.start();
    let (mut c, _) = allocated(&server);
    c.set_credentials("bob", "builder");
    let r = c.request(REFRESH, vec![(LIFETIME, 600u32.to_be_bytes().to_vec())]);
    assert_eq!(code(&r), Some(441), "{}", r.describe());
    // The allocation still belongs to alice.
    c.set_credentials(USER, PASS);
    c.refresh(600).unwrap_or_else(|e| panic!("owner's refresh after the 441: {e}"));
}

#[test]
fn harness_ready_line_and_config_merge() {
    let l = common::parse_ready_line("ready udp=127.0.0.1:3478 tcp=127.0.0.1:3479").unwrap();
    assert_eq!(l[0], ("udp".to_string(), "127.0.0.1:3478".parse().unwrap()));
    assert_eq!(l.len(), 2);
    assert!(common::parse_ready_line("starting").is_none());
    let t = common::config(3478, "[allocation]\nuser-quota = 2\n[peers]\nallowed = []\n");
    assert!(t.contains("listen = [\"127.0.0.1:3478\"]"), "{t}");
    assert!(t.contains("user-quota = 2"), "{t}");
    assert!(t.contains("allowed = []") && !t.contains("127.0.0.0/8"), "{t}");
    assert_eq!(t.matches("[peers]").count(), 1, "{t}");
}

// A peer's burst reaches the client whole and in order, whatever runs of it turnd batches into
// one GSO send: runs of one size, a shorter datagram ending a run, a longer one starting the
// next, and datagrams without a channel (Data indications) in between.
#[test]
fn a_peer_burst_of_mixed_sizes_arrives_whole_and_in_order() {
    let server = Config::default().start();
    let (mut c, relayed) = allocated(&server);
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    let (unbound, unbound_addr) = peer_socket("127.0.0.1");
    c.channel_bind(0x4001, peer_addr).expect("ChannelBind");
    c.create_permission(unbound_addr).expect("CreatePermission");
    let sizes = [1200, 1200, 1200, 1200, 300, 1200, 1200, 1200, 1400, 1400, 1400, 20, 1200, 1200];
    let mut expected = Vec::new();
    // 42 datagrams: well within the client socket's default receive buffer.
    for round in 0..3u8 {
        for (i, &size) in sizes.iter().enumerate() {
            let payload = vec![round.wrapping_mul(31).wrapping_add(i as u8); size];
            // Every fifth datagram comes from the peer without a channel.
            let (from, channel) = if i % 5 == 4 { (&unbound, None) } else { (&peer, Some(0x4001)) };
            from.send_to(&payload, relayed).unwrap();
            expected.push((channel, payload));
        }
    }
    for (n, (channel, payload)) in expected.iter().enumerate() {
        match (c.recv_data(WAIT), channel) {
            (Some(Incoming::ChannelData { channel: got, data }), Some(want)) => {
                assert_eq!((got, data.len()), (*want, payload.len()), "datagram {n}");
                assert_eq!(&data, payload, "datagram {n}");
            }
            (Some(Incoming::Data { peer, data }), None) => {
                assert_eq!(peer, unbound_addr, "datagram {n}");
                assert_eq!(&data, payload, "datagram {n}");
            }
            (other, _) => panic!("datagram {n} of {}: {other:?}", expected.len()),
        }
    }
}
