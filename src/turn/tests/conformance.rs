//! RFC 8489/8656 processing rules found missing in an audit of the core (2026-12-05): the
//! order of authentication and unknown attributes, indications with unknown attributes,
//! Refresh lifetimes and families, and the bounds on what one request or allocation may hold.

use super::*;

/// An unassigned comprehension-required attribute type.
const UNKNOWN: u16 = 0x7FFF;

/// RFC 8489 §6.3: authentication comes before unknown attributes. Without credentials the
/// answer is the 401 challenge; with bad ones a 401; with good ones the 420, signed (a UDP
/// client discards an unsigned answer to a signed request, §9.2.5).
#[test]
fn unknown_attributes_are_looked_at_after_authentication() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let with_unknown = |w: &mut MessageWriter<'_>| {
        transport_udp(w);
        w.attr(UNKNOWN, &[0; 4]);
    };
    let (_, resp) = h.send(&t, &request(Method::ALLOCATE, 1, None, with_unknown));
    assert_eq!(code(&resp), Some(401), "challenged first");
    let creds = h.login(&t, alice());
    let wrong = Creds { key: long_term_key("alice", REALM, "not-the-password"), ..creds.clone() };
    let (_, resp) = h.send(&t, &request(Method::ALLOCATE, 2, Some(&wrong), with_unknown));
    assert_eq!(code(&resp), Some(401), "bad credentials are a 401 whatever else is in the request");
    let (_, resp) = h.send(&t, &request(Method::ALLOCATE, 3, Some(&creds), with_unknown));
    assert_eq!(code(&resp), Some(420));
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(msg.attr(attr::UNKNOWN_ATTRIBUTES).unwrap(), &UNKNOWN.to_be_bytes());
    assert!(msg.check_integrity(&creds.key), "the 420 to an authenticated request is signed");
    assert_eq!(h.server.table().len(), 0, "and nothing was allocated");
}

/// RFC 8489 §6.3.2: an indication with an unknown comprehension-required attribute is
/// discarded, so a Send carrying one reaches no peer.
#[test]
fn send_indications_with_unknown_attributes_are_discarded() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    let send = send_indication_with(public_peer(), b"hi", &[(UNKNOWN, &[0; 4])]);
    assert_eq!(h.send(&t, &send).0, Outcome::Dropped(Discard::Malformed));
    // Comprehension-optional ones (0x8000 and up) do not matter.
    let send = send_indication_with(public_peer(), b"ok", &[(0xC0FF, &[0; 4])]);
    assert_eq!(h.send(&t, &send).0, Outcome::Relayed { bytes: 2 });
    assert_eq!(h.sent(), vec![(public_peer(), b"ok".to_vec())], "only the second reached the peer");
}

/// RFC 8656 §7.3: a Refresh's desired lifetime is the requested one within the maximum but
/// never below the default; zero still deletes.
#[test]
fn refresh_lifetimes_are_never_below_the_default() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    let lifetime = |resp: &[u8]| Message::parse(resp).unwrap().u32_attr(attr::LIFETIME).unwrap().unwrap();
    // The last one decides when the allocation ends.
    for (asked, granted) in [(1, 600), (599, 600), (900, 900), (99_999, 3600), (30, 600)] {
        let req = request(Method::REFRESH, 6, Some(&creds), |w| {
            w.u32_attr(attr::LIFETIME, asked);
        });
        assert_eq!(lifetime(&h.send(&t, &req).1), granted, "asked for {asked} s");
    }
    h.advance(Duration::from_secs(599));
    assert_eq!(h.server.table().len(), 1, "alive for the default lifetime, not the 30 s asked");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.server.table().len(), 0);
}

/// RFC 8656 §7.3: REQUESTED-ADDRESS-FAMILY in a Refresh names a family the allocation has
/// (443 otherwise); a value that is no family is a 440, as in an Allocate; a malformed one 400.
#[test]
fn refresh_families_are_checked() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    for (value, expected) in [
        ([1, 0, 0, 0], None),
        ([2, 0, 0, 0], Some(443)),
        ([3, 0, 0, 0], Some(440)),
        ([0, 0, 0, 0], Some(440)),
        ([1, 0, 0, 1], Some(400)),
    ] {
        let req = request(Method::REFRESH, 6, Some(&creds), |w| {
            w.attr(attr::REQUESTED_ADDRESS_FAMILY, &value);
        });
        assert_eq!(code(&h.send(&t, &req).1), expected, "family attribute {value:?}");
    }
    assert_eq!(h.server.table().len(), 1);
}

/// One allocation holds at most MAX_CHANNELS channels (each packet scans them). Past that a
/// new channel is a 508 that changes nothing, not even the permission; rebinding one that
/// exists still works.
#[test]
fn channels_per_allocation_are_bounded() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    let peer = |port: u16| SocketAddr::new(public_peer().ip(), port);
    for i in 0..MAX_CHANNELS as u16 {
        assert_eq!(h.bind(&t, &creds, 0x4000 + i, peer(10_000 + i)), None, "channel {i}");
    }
    let next = MAX_CHANNELS as u16;
    assert_eq!(h.bind(&t, &creds, 0x4000 + next, peer(10_000 + next)), Some(508));
    let elsewhere: SocketAddr = "8.8.4.4:5000".parse().unwrap();
    assert_eq!(h.bind(&t, &creds, 0x4000 + next, elsewhere), Some(508));
    assert_eq!(
        h.send(&t, &send_indication(elsewhere, b"x")).0,
        Outcome::Dropped(Discard::NoPermission),
        "the refused ChannelBind installed no permission"
    );
    assert_eq!(h.bind(&t, &creds, 0x4000, peer(10_000)), None, "refreshing a bound channel");
    assert_eq!(h.server.table().with(&t, |a| a.channels.len()), Some(MAX_CHANNELS));
}

/// A CreatePermission that names one new IP twice needs room for one permission, not two.
#[test]
fn create_permission_counts_each_new_ip_once() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    let expires = h.now.mono + Duration::from_secs(300);
    h.server.table().with_mut(&t, |a| {
        for i in 0..MAX_PERMISSIONS as u32 - 1 {
            assert!(a.permit(IpAddr::V4(std::net::Ipv4Addr::from(0x0808_0000 + i)), expires));
        }
    });
    let last: SocketAddr = "9.9.9.9:1".parse().unwrap();
    let req = request(Method::CREATE_PERMISSION, 5, Some(&creds), |w| {
        w.xor_address(attr::XOR_PEER_ADDRESS, last).xor_address(attr::XOR_PEER_ADDRESS, last);
    });
    assert_eq!(code(&h.send(&t, &req).1), None, "one permission left, one new IP");
    assert_eq!(h.server.table().with(&t, |a| a.permissions.len()), Some(MAX_PERMISSIONS));
    let req = request(Method::CREATE_PERMISSION, 6, Some(&creds), |w| {
        w.xor_address(attr::XOR_PEER_ADDRESS, "9.9.9.10:1".parse().unwrap());
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(508), "and now it is full");
}

/// RFC 6062 Connect dials the peer: turnd's own relayed address passes without the policy only
/// when a TCP allocation listens there. The port of a UDP allocation over TCP may be another
/// service of the host, so it is judged by the policy (here: the advertised IP is in a
/// documentation range, refused).
#[test]
fn connect_to_own_addresses_needs_a_tcp_allocation_there() {
    let mut h = Harness::with(config(), vec![], 8);
    let (t, creds, _) = tcp::tcp_allocation(&mut h, 1000);
    let (_, udp_relayed) = h.allocate(&tuple(2000), alice());
    let (other, _, _) = tcp::tcp_allocation(&mut h, 3000);
    let tcp_relayed = h.server.table().with(&other, |a| a.relayed).unwrap();
    let (_, resp) = tcp::connect(&mut h, &t, &creds, udp_relayed, 3);
    assert_eq!(code(&resp), Some(403), "a UDP allocation's port");
    let (outcome, _) = tcp::connect(&mut h, &t, &creds, tcp_relayed, 4);
    assert!(matches!(outcome, Outcome::Connect { peer, .. } if peer == tcp_relayed), "{outcome:?}");
}
