//! ICMP errors relayed to clients (RFC 8656 §11): which types, the Data indication's shape, the
//! permission check and the per-allocation rate.

use super::*;

const PORT_UNREACHABLE: PeerIcmp = PeerIcmp { v6: false, icmp_type: 3, code: 3, info: 0 };

impl Harness {
    /// The relay of `from`'s allocation got `icmp` back for a datagram it sent to `peer`.
    fn peer_icmp(
        &mut self,
        from: &FiveTuple,
        peer: SocketAddr,
        icmp: PeerIcmp,
    ) -> Result<(FiveTuple, Vec<u8>), Discard> {
        let id = self.server.table().with(from, |a| a.id).ok_or(Discard::NoAllocation)?;
        let mut out = [0u8; 1500];
        let (to, len) = self.server.handle_peer_icmp(self.now, id, peer, icmp, &mut out)?;
        Ok((to, out[..len].to_vec()))
    }
}

#[test]
fn an_icmp_error_becomes_a_data_indication_with_icmp_and_no_data() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    // Also with a channel to the peer: ChannelData cannot carry ICMP.
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
    let (to, bytes) = h.peer_icmp(&t, public_peer(), PORT_UNREACHABLE).unwrap();
    assert_eq!(to, t);
    let msg = Message::parse(&bytes).expect("a well-formed Data indication");
    assert_eq!(msg.kind(), MessageType::new(Method::DATA, Class::Indication));
    assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), public_peer());
    assert_eq!(msg.attr(attr::ICMP).unwrap(), &[0, 0, 3, 3, 0, 0, 0, 0]);
    assert!(!msg.has(attr::DATA));
    assert_eq!(bytes.len(), 20 + 12 + 12);
    // An IPv6 peer (IPv4-mapped peers are canonical IPv4, like their permissions).
    let mapped: SocketAddr = "[::ffff:8.8.8.8]:4000".parse().unwrap();
    let (_, bytes) = h.peer_icmp(&t, mapped, PORT_UNREACHABLE).unwrap();
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), public_peer());
    // A stream client gets the same message (a STUN message needs no padding of its own).
    let mut s = tuple(2000);
    s.transport = Transport::Tcp;
    let (cs, _) = h.allocate(&s, alice());
    assert_eq!(h.permit(&s, &cs, public_peer()), None);
    assert_eq!(h.peer_icmp(&s, public_peer(), PORT_UNREACHABLE).unwrap().0, s);
}

#[test]
fn error_data_is_the_mtu_for_fragmentation_needed_and_packet_too_big_only() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    let cases = [
        // (v6, type, code, info) → Error Data
        ((false, 3, 4, 1400), 1400), // fragmentation needed and DF set: the next-hop MTU
        ((true, 2, 0, 1280), 1280),  // ICMPv6 packet too big: the MTU
        ((false, 3, 1, 77), 0),      // host unreachable: zero whatever the header said
        ((false, 11, 0, 77), 0),     // time exceeded
        ((true, 1, 4, 77), 0),       // ICMPv6 port unreachable
        ((true, 3, 0, 77), 0),       // ICMPv6 time exceeded
    ];
    for ((v6, icmp_type, code, info), error_data) in cases {
        let icmp = PeerIcmp { v6, icmp_type, code, info };
        let (_, bytes) = h.peer_icmp(&t, public_peer(), icmp).unwrap();
        let msg = Message::parse(&bytes).unwrap();
        let got = attr::decode_icmp(msg.attr(attr::ICMP).unwrap()).unwrap();
        assert_eq!(got, attr::Icmp { icmp_type, code, error_data }, "{icmp:?}");
        h.advance(Duration::from_secs(1));
    }
}

#[test]
fn only_the_types_section_11_lists_are_relayed() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    // ICMPv4: echo reply, source quench, redirect, echo, parameter problem; ICMPv6: parameter
    // problem, echo request and reply; and each family's relayed types under the other's
    // numbering (ICMPv4 1 and 2 are unassigned, ICMPv6 11 too).
    for (v6, icmp_type) in [(false, 0), (false, 1), (false, 2), (false, 4), (false, 5), (false, 8), (false, 12)]
        .into_iter()
        .chain([(true, 4), (true, 11), (true, 128), (true, 129)])
    {
        let icmp = PeerIcmp { v6, icmp_type, code: 0, info: 0 };
        assert_eq!(h.peer_icmp(&t, public_peer(), icmp).unwrap_err(), Discard::IcmpType, "{icmp:?}");
    }
    for (v6, icmp_type) in [(false, 3), (false, 11), (true, 1), (true, 2), (true, 3)] {
        let icmp = PeerIcmp { v6, icmp_type, code: 0, info: 0 };
        assert!(h.peer_icmp(&t, public_peer(), icmp).is_ok(), "{icmp:?}");
        h.advance(Duration::from_secs(1));
    }
}

#[test]
fn icmp_needs_a_permission_for_the_peer_ip_and_a_live_allocation() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.peer_icmp(&t, public_peer(), PORT_UNREACHABLE).unwrap_err(), Discard::NoPermission);
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    // Only the IP is compared: any port of a permitted IP, or port 0 (unknown).
    for port in [4000, 9, 0] {
        let peer = SocketAddr::new(public_peer().ip(), port);
        let (_, bytes) = h.peer_icmp(&t, peer, PORT_UNREACHABLE).unwrap();
        assert_eq!(Message::parse(&bytes).unwrap().xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), peer);
    }
    let other: SocketAddr = "8.8.4.4:4000".parse().unwrap();
    assert_eq!(h.peer_icmp(&t, other, PORT_UNREACHABLE).unwrap_err(), Discard::NoPermission);
    // The permission expires (300 s), and with it the ICMP errors.
    h.advance(PERMISSION_LIFETIME + Duration::from_secs(1));
    assert_eq!(h.peer_icmp(&t, public_peer(), PORT_UNREACHABLE).unwrap_err(), Discard::NoPermission);
    // An allocation that has ended gets nothing.
    let id = h.server.table().with(&t, |a| a.id).unwrap();
    assert_eq!(h.refresh(&t, &creds, 0), None);
    let mut out = [0u8; 1500];
    let gone = h.server.handle_peer_icmp(h.now, id, public_peer(), PORT_UNREACHABLE, &mut out);
    assert_eq!(gone.unwrap_err(), Discard::NoAllocation);
}

#[test]
fn icmp_errors_are_rate_limited_per_allocation() {
    let mut h = Harness::new();
    let (a, b) = (tuple(1000), tuple(2000));
    let (ca, _) = h.allocate(&a, alice());
    let (cb, _) = h.allocate(&b, alice());
    assert_eq!((h.permit(&a, &ca, public_peer()), h.permit(&b, &cb, public_peer())), (None, None));
    let burst = |h: &mut Harness, t: &FiveTuple| {
        (0..20).filter(|_| h.peer_icmp(t, public_peer(), PORT_UNREACHABLE).is_ok()).count()
    };
    assert_eq!(burst(&mut h, &a), ICMP_PER_SECOND as usize);
    assert_eq!(h.peer_icmp(&a, public_peer(), PORT_UNREACHABLE).unwrap_err(), Discard::RateLimited);
    // Another allocation has its own allowance.
    assert_eq!(burst(&mut h, &b), ICMP_PER_SECOND as usize);
    // One interval later one more passes; a second later a whole burst again.
    h.advance(Duration::from_secs(1) / ICMP_PER_SECOND);
    assert_eq!(burst(&mut h, &a), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(burst(&mut h, &a), ICMP_PER_SECOND as usize);
    // Payloads from the peer are not held back by the ICMP rate.
    assert!(h.peer_sends(&a, public_peer(), b"still here").is_ok());
}
