//! Address families (RFC 8656 §7.2, RFC 6156): family selection and the default family, dual
//! allocations (ADDITIONAL-ADDRESS-FAMILY, ADDRESS-ERROR-CODE), 443 for a peer of a family the
//! allocation has no relay for, and EVEN-PORT reservations (RESERVATION-TOKEN).

use super::*;

const V6_PUBLIC: &str = "[2606:4700::1111]:4000";

fn v6_relay() -> RelayAddr {
    RelayAddr { ip: "::1".parse().unwrap(), external: Some("2001:db8::7".parse().unwrap()) }
}

fn dual_config() -> ServerConfig {
    ServerConfig { relays: config().relays.with(v6_relay()), ..config() }
}

fn tuple6(port: u16) -> FiveTuple {
    FiveTuple {
        client: SocketAddr::new("::1".parse().unwrap(), port),
        server: "[::1]:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn family_attr(t: u16, ipv6: bool) -> impl FnOnce(&mut MessageWriter<'_>) {
    move |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(t, &[if ipv6 { 2 } else { 1 }, 0, 0, 0]);
    }
}

/// Every XOR-RELAYED-ADDRESS of a response, in order.
fn relayed_addrs(resp: &[u8]) -> Vec<SocketAddr> {
    let msg = Message::parse(resp).unwrap();
    msg.attrs()
        .filter(|(t, _)| *t == attr::XOR_RELAYED_ADDRESS)
        .map(|(_, v)| attr::decode_xor_address(v, msg.transaction_id()).unwrap())
        .collect()
}

impl Harness {
    /// Allocates for `from` with `attrs` and returns the credentials and the response.
    fn allocate_with(
        &mut self,
        from: &FiveTuple,
        txid: u8,
        attrs: impl FnOnce(&mut MessageWriter<'_>),
    ) -> (Creds, Vec<u8>) {
        let creds = self.login(from, alice());
        let (_, resp) = self.send(from, &request(Method::ALLOCATE, txid, Some(&creds), attrs));
        (creds, resp)
    }
}

#[test]
fn the_requested_family_is_granted_or_440() {
    let mut h = Harness::with(dual_config(), vec![], 8);
    let (_, resp) = h.allocate_with(&tuple(1000), 2, family_attr(attr::REQUESTED_ADDRESS_FAMILY, true));
    assert_eq!(relayed_addrs(&resp), vec!["[2001:db8::7]:50000".parse().unwrap()], "IPv6 for an IPv4 client");
    let (_, resp) = h.allocate_with(&tuple6(1000), 2, family_attr(attr::REQUESTED_ADDRESS_FAMILY, false));
    assert_eq!(relayed_addrs(&resp)[0].ip().to_string(), "203.0.113.7", "IPv4 for an IPv6 client");

    // One family configured: the other is a 440, an unknown family too, a malformed value a 400.
    let mut h = Harness::new();
    let (creds, resp) = h.allocate_with(&tuple(1000), 2, family_attr(attr::REQUESTED_ADDRESS_FAMILY, true));
    assert_eq!(code(&resp), Some(440));
    let req = request(Method::ALLOCATE, 3, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&tuple(1000), &req).1), Some(440));
    let req = request(Method::ALLOCATE, 4, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 1]);
    });
    assert_eq!(code(&h.send(&tuple(1000), &req).1), Some(400));
    assert_eq!(h.server.table().len(), 0);
}

#[test]
fn default_family_modes() {
    let v4: fn(&SocketAddr) -> bool = |a| a.is_ipv4();
    let v6: fn(&SocketAddr) -> bool = |a| a.is_ipv6();
    // (relays, mode, client, expected family or 440)
    let v4_only = config().relays;
    let v6_only = RelayAddrs::default().with(v6_relay());
    let dual = dual_config().relays;
    #[rustfmt::skip]
    type Case = (RelayAddrs, DefaultFamily, FiveTuple, Option<fn(&SocketAddr) -> bool>);
    let cases: Vec<Case> = vec![
        (dual, DefaultFamily::Listener, tuple(1000), Some(v4)),
        (dual, DefaultFamily::Listener, tuple6(1000), Some(v6)),
        // The listener's family has no relay: the other family, as before IPv6 relays existed.
        (v4_only, DefaultFamily::Listener, tuple6(1000), Some(v4)),
        (v6_only, DefaultFamily::Listener, tuple(1000), Some(v6)),
        (dual, DefaultFamily::Ipv4, tuple6(1000), Some(v4)),
        (dual, DefaultFamily::Ipv6, tuple(1000), Some(v6)),
        // RFC 8656 §7.2: no IPv4 relay and no REQUESTED-ADDRESS-FAMILY is a 440 in ipv4 mode.
        (v6_only, DefaultFamily::Ipv4, tuple(1000), None),
        (v4_only, DefaultFamily::Ipv6, tuple6(1000), None),
    ];
    for (i, (relays, mode, t, expected)) in cases.into_iter().enumerate() {
        let mut h = Harness::with(ServerConfig { relays, default_family: mode, ..config() }, vec![], 4);
        let (_, resp) = h.allocate_with(&t, 2, transport_udp);
        match expected {
            Some(family) => {
                let relayed = relayed_addrs(&resp);
                assert!(relayed.len() == 1 && family(&relayed[0]), "case {i}: {relayed:?}");
            }
            None => assert_eq!(code(&resp), Some(440), "case {i}"),
        }
    }
}

#[test]
fn dual_allocation_answers_two_relayed_addresses_and_relays_both_families() {
    let mut h = Harness::with(dual_config(), vec![], 8);
    let t = tuple(1000);
    let (creds, resp) = h.allocate_with(&t, 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    let relayed = relayed_addrs(&resp);
    assert_eq!(relayed.len(), 2, "two XOR-RELAYED-ADDRESS");
    assert!(relayed[0].is_ipv4() && relayed[1].is_ipv6(), "IPv4 first: {relayed:?}");
    assert!(!Message::parse(&resp).unwrap().has(attr::ADDRESS_ERROR_CODE));
    // A retransmission gets the same answer.
    let again = request(Method::ALLOCATE, 2, Some(&creds), family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    assert_eq!(relayed_addrs(&h.send(&t, &again).1), relayed);

    // Permissions of both families; data goes out and comes back on either.
    let (p4, p6): (SocketAddr, SocketAddr) = (public_peer(), V6_PUBLIC.parse().unwrap());
    assert_eq!(h.permit(&t, &creds, p4), None);
    assert_eq!(h.permit(&t, &creds, p6), None);
    assert_eq!(h.bind(&t, &creds, 0x4001, p6), None);
    h.send(&t, &send_indication(p4, b"four"));
    h.send(&t, &send_indication(p6, b"six"));
    assert_eq!(h.sent(), vec![(p4, b"four".to_vec()), (p6, b"six".to_vec())]);
    let (to, framed) = h.peer_sends(&t, p6, b"back").unwrap();
    assert_eq!((to, &framed[4..]), (t, &b"back"[..]), "as ChannelData on the bound channel");
    // Refresh may name either family.
    for ipv6 in [false, true] {
        let req = request(Method::REFRESH, 6, Some(&creds), |w| {
            w.attr(attr::REQUESTED_ADDRESS_FAMILY, &[if ipv6 { 2 } else { 1 }, 0, 0, 0]);
        });
        assert_eq!(code(&h.send(&t, &req).1), None);
    }
    // Ending it frees both ports.
    assert_eq!(h.refresh(&t, &creds, 0), None);
    assert_eq!(h.ports.pool.lock().unwrap().len(), 8);
}

#[test]
fn dual_allocation_under_the_draft_code_point_coturn_sends() {
    let mut h = Harness::with(dual_config(), vec![], 8);
    let (_, resp) = h.allocate_with(&tuple(1000), 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT, true));
    let relayed = relayed_addrs(&resp);
    assert!(relayed.len() == 2 && relayed[1].is_ipv6(), "{relayed:?}");
}

#[test]
fn dual_allocation_with_one_family_reports_address_error_code() {
    let mut h = Harness::new();
    let (_, resp) = h.allocate_with(&tuple(1000), 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    assert_eq!(code(&resp), None, "partial success");
    let relayed = relayed_addrs(&resp);
    assert!(relayed.len() == 1 && relayed[0].is_ipv4(), "{relayed:?}");
    let msg = Message::parse(&resp).unwrap();
    let error = msg.attr(attr::ADDRESS_ERROR_CODE).expect("ADDRESS-ERROR-CODE");
    assert_eq!(&error[..4], &[2, 0, 4, 40], "IPv6: 440");
    assert_eq!(&error[4..], b"Address Family not Supported");

    // Only an IPv6 relay: the IPv4 half fails (440) and the IPv6 one is granted.
    let mut h = Harness::with(ServerConfig { relays: RelayAddrs::default().with(v6_relay()), ..config() }, vec![], 4);
    let (_, resp) = h.allocate_with(&tuple6(1000), 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    assert!(relayed_addrs(&resp)[0].is_ipv6());
    assert_eq!(&Message::parse(&resp).unwrap().attr(attr::ADDRESS_ERROR_CODE).unwrap()[..4], &[1, 0, 4, 40]);

    // Ports for one family only: the second gets 508 in ADDRESS-ERROR-CODE; none at all: 508.
    let mut h = Harness::with(dual_config(), vec![], 1);
    let (_, resp) = h.allocate_with(&tuple(1000), 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    assert_eq!(&Message::parse(&resp).unwrap().attr(attr::ADDRESS_ERROR_CODE).unwrap()[..4], &[2, 0, 5, 8]);
    let (_, resp) = h.allocate_with(&tuple(1001), 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    assert_eq!(code(&resp), Some(508));
}

#[test]
fn dual_allocation_attributes_are_checked() {
    let mut h = Harness::with(dual_config(), vec![], 8);
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    type Attrs = Box<dyn FnOnce(&mut MessageWriter<'_>)>;
    let cases: Vec<(Attrs, &str)> = vec![
        (
            Box::new(|w: &mut MessageWriter<'_>| {
                family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true)(w);
                w.attr(attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0]);
            }),
            "with REQUESTED-ADDRESS-FAMILY",
        ),
        (Box::new(family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, false)), "IPv4 as the additional family"),
        (
            Box::new(|w: &mut MessageWriter<'_>| {
                family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true)(w);
                w.attr(attr::EVEN_PORT, &[0x80]);
            }),
            "with EVEN-PORT R",
        ),
    ];
    for (i, (attrs, what)) in cases.into_iter().enumerate() {
        let req = request(Method::ALLOCATE, 10 + i as u8, Some(&creds), attrs);
        assert_eq!(code(&h.send(&t, &req).1), Some(400), "{what}");
    }
    assert_eq!(h.server.table().len(), 0);
}

#[test]
fn peers_of_a_family_without_relay_get_443() {
    let mut h = Harness::with(dual_config(), vec![], 8);
    let t = tuple(1000);
    let (creds, resp) = h.allocate_with(&t, 2, transport_udp);
    assert!(relayed_addrs(&resp)[0].is_ipv4());
    let p6: SocketAddr = V6_PUBLIC.parse().unwrap();
    //= https://www.rfc-editor.org/rfc/rfc8656#section-9.1
    assert_eq!(h.permit(&t, &creds, p6), Some(443));
    // All or nothing: a list with one peer of the wrong family installs none.
    let req = request(Method::CREATE_PERMISSION, 7, Some(&creds), |w| {
        w.xor_address(attr::XOR_PEER_ADDRESS, public_peer()).xor_address(attr::XOR_PEER_ADDRESS, p6);
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(443));
    assert_eq!(h.server.table().with(&t, |a| a.permissions.len()), Some(0));
    //= https://www.rfc-editor.org/rfc/rfc8656#section-11.2
    assert_eq!(h.bind(&t, &creds, 0x4001, p6), Some(443));
    //= https://www.rfc-editor.org/rfc/rfc8656#section-7.3
    let req = request(Method::REFRESH, 8, Some(&creds), |w| {
        w.attr(attr::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&t, &req).1), Some(443));
    //= https://www.rfc-editor.org/rfc/rfc8656#section-10.2
    // A Send to such a peer is dropped.
    assert_eq!(h.send(&t, &send_indication(p6, b"x")).0, Outcome::Dropped(Discard::NoPermission));
    assert!(h.sent().is_empty());
    // An IPv4-mapped IPv6 peer is an IPv4 peer (canonical form) and the policy sees it so.
    assert_eq!(h.permit(&t, &creds, "[::ffff:127.0.0.1]:80".parse().unwrap()), Some(403));
    assert_eq!(h.permit(&t, &creds, "[::ffff:8.8.8.8]:80".parse().unwrap()), None);
}

#[test]
fn in_process_delivery_is_keyed_by_family_and_port() {
    let mut h = Harness::with(dual_config(), vec![], 8);
    let (a, b) = (tuple(1000), tuple(2000));
    let (ca, ra) = h.allocate_with(&a, 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    let (cb, rb) = h.allocate_with(&b, 2, family_attr(attr::ADDITIONAL_ADDRESS_FAMILY, true));
    let (ra, rb) = (relayed_addrs(&ra), relayed_addrs(&rb));
    // The IPv6 relayed addresses of both allocations are reached in-process, with the default
    // policy, and what arrives comes from the sender's relayed address of that family.
    assert_eq!(h.permit(&a, &ca, rb[1]), None);
    assert_eq!(h.permit(&b, &cb, ra[1]), None);
    let (outcome, bytes) = h.send(&a, &send_indication(rb[1], b"hi6"));
    assert!(matches!(outcome, Outcome::Forward { to, .. } if to == b), "{outcome:?}");
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), ra[1]);
    assert_eq!(msg.attr(attr::DATA), Some(&b"hi6"[..]));
    assert!(h.sent().is_empty(), "nothing went to the network");
    // The index is keyed by family: b's IPv4 port under the IPv6 relay IP names nothing.
    let id = h.server.table().with(&b, |x| x.id);
    assert_eq!((h.server.table().by_relayed(rb[0]), h.server.table().by_relayed(rb[1])), (id, id));
    assert_eq!(h.server.table().by_relayed(SocketAddr::new(rb[1].ip(), rb[0].port())), None);
}

#[test]
fn even_port_reservation_hands_the_next_port_to_the_token() {
    let mut h = Harness::with(config(), vec![], 4);
    let t = tuple(1000);
    let (creds, resp) = h.allocate_with(&t, 2, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::EVEN_PORT, &[0x80]);
    });
    let rtp = relayed_addrs(&resp)[0];
    assert_eq!(rtp.port() % 2, 0);
    let token = Message::parse(&resp).unwrap().attr(attr::RESERVATION_TOKEN).expect("a token").to_vec();
    assert_eq!(token.len(), 8);
    // Another client (coturn's RTCP session) presents the token and gets port + 1.
    let t2 = tuple(1001);
    let with_token = |txid, token: &[u8]| {
        let token = token.to_vec();
        request(Method::ALLOCATE, txid, Some(&creds), move |w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::RESERVATION_TOKEN, &token);
        })
    };
    let rtcp = relayed_addrs(&h.send(&t2, &with_token(3, &token)).1);
    assert_eq!(rtcp, vec![SocketAddr::new(rtp.ip(), rtp.port() + 1)]);
    // A token is used once.
    assert_eq!(code(&h.send(&tuple(1002), &with_token(4, &token)).1), Some(508));
    // With EVEN-PORT or a family attribute a token is a 400.
    let req = request(Method::ALLOCATE, 5, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .attr(attr::RESERVATION_TOKEN, &[1; 8])
            .attr(attr::EVEN_PORT, &[0]);
    });
    assert_eq!(code(&h.send(&tuple(1003), &req).1), Some(400));
    let req = request(Method::ALLOCATE, 6, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .attr(attr::RESERVATION_TOKEN, &[1; 8])
            .attr(attr::REQUESTED_ADDRESS_FAMILY, &[1, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&tuple(1003), &req).1), Some(400));
}

#[test]
fn reservations_hold_ports_and_expire() {
    // Two ports: a reservation takes both.
    let mut h = Harness::with(config(), vec![], 2);
    let t = tuple(1000);
    let (creds, resp) = h.allocate_with(&t, 2, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::EVEN_PORT, &[0x80]);
    });
    let token = Message::parse(&resp).unwrap().attr(attr::RESERVATION_TOKEN).unwrap().to_vec();
    // The held port counts against exhaustion.
    let t2 = tuple(1001);
    assert_eq!(code(&h.send(&t2, &request(Method::ALLOCATE, 3, Some(&creds), transport_udp)).1), Some(508));
    // Held about 30 s, then the port is free and the token unknown.
    h.advance(RESERVATION_LIFETIME + Duration::from_secs(1));
    let creds = h.login(&t2, alice());
    let req = request(Method::ALLOCATE, 4, Some(&creds), move |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::RESERVATION_TOKEN, &token);
    });
    assert_eq!(code(&h.send(&t2, &req).1), Some(508), "expired token");
    assert_eq!(code(&h.send(&t2, &request(Method::ALLOCATE, 5, Some(&creds), transport_udp)).1), None);
    // No pair free: EVEN-PORT with R is a 508.
    let req = request(Method::ALLOCATE, 6, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::EVEN_PORT, &[0x80]);
    });
    assert_eq!(code(&h.send(&tuple(1002), &req).1), Some(508));
}
