//! RFC 6062 TCP relays in the core: Connect, ConnectionAttempt, ConnectionBind.

use super::*;

/// An RFC 6062 TCP allocation over a TCP control connection.
pub(super) fn tcp_allocation(h: &mut Harness, port: u16) -> (FiveTuple, Creds, AllocId) {
    let mut t = tuple(port);
    t.transport = Transport::Tcp;
    let creds = h.login(&t, alice());
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[6, 0, 0, 0]);
    });
    assert_eq!(code(&h.send(&t, &req).1), None, "TCP allocation over TCP");
    let id = h.server.table().with(&t, |a| a.id).unwrap();
    (t, creds, id)
}

pub(super) fn connect(
    h: &mut Harness,
    from: &FiveTuple,
    creds: &Creds,
    peer: SocketAddr,
    txid: u8,
) -> (Outcome, Vec<u8>) {
    let req = request(Method::CONNECT, txid, Some(creds), |w| {
        w.xor_address(attr::XOR_PEER_ADDRESS, peer);
    });
    h.send(from, &req)
}

#[test]
fn rfc6062_connect_checks_the_peer_policy_and_duplicates() {
    let mut h = Harness::new();
    let (t, creds, _) = tcp_allocation(&mut h, 1000);
    for forbidden in ["127.0.0.1:80", "169.254.169.254:80", "10.0.0.1:22", "[::ffff:127.0.0.1]:80"] {
        let (_, resp) = connect(&mut h, &t, &creds, forbidden.parse().unwrap(), 3);
        assert_eq!(code(&resp), Some(403), "{forbidden}: same refusal as CreatePermission");
    }
    let (outcome, _) = connect(&mut h, &t, &creds, public_peer(), 4);
    let Outcome::Connect { connection, from, peer, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(peer, public_peer());
    assert_eq!(from.ip().to_string(), "127.0.0.1", "dials from the relay IP, not the advertised one");
    let (_, resp) = connect(&mut h, &t, &creds, public_peer(), 5);
    assert_eq!(code(&resp), Some(446), "a second Connect to the same peer");
    // The IO shell reports success: the answer carries CONNECTION-ID, signed.
    let mut out = vec![0u8; 512];
    let (control, len) = h.server.connect_finished(h.now, connection, true, &mut out).unwrap();
    assert_eq!(control, t);
    let msg = Message::parse(&out[..len]).unwrap();
    assert_eq!(msg.kind(), MessageType::new(Method::CONNECT, Class::Success));
    assert_eq!(msg.transaction_id(), &[4; 12], "answers the Connect it belongs to");
    assert_eq!(msg.u32_attr(attr::CONNECTION_ID).unwrap().unwrap(), connection);
    assert!(msg.check_integrity(&creds.key));
}

#[test]
fn rfc6062_failed_connect_is_447() {
    let mut h = Harness::new();
    let (t, creds, _) = tcp_allocation(&mut h, 1000);
    let (Outcome::Connect { connection, .. }, _) = connect(&mut h, &t, &creds, public_peer(), 3) else { panic!() };
    let mut out = vec![0u8; 512];
    let (_, len) = h.server.connect_finished(h.now, connection, false, &mut out).unwrap();
    assert_eq!(code(&out[..len]), Some(447));
    // The failed attempt is forgotten: connecting again is allowed.
    assert!(matches!(connect(&mut h, &t, &creds, public_peer(), 4).0, Outcome::Connect { .. }));
}

#[test]
fn rfc6062_peer_connections_need_a_permission_and_a_bind_by_the_owner() {
    let mut h = Harness::new();
    let (t, creds, id) = tcp_allocation(&mut h, 1000);
    let mut out = vec![0u8; 512];
    assert!(h.server.peer_connected(h.now, id, public_peer(), &mut out).is_none(), "no permission: closed");
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    let (control, connection, len) = h.server.peer_connected(h.now, id, public_peer(), &mut out).unwrap();
    assert_eq!(control, t);
    let msg = Message::parse(&out[..len]).unwrap();
    assert_eq!(msg.kind(), MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication));
    assert_eq!(msg.xor_address(attr::XOR_PEER_ADDRESS).unwrap().unwrap(), public_peer());
    assert_eq!(msg.u32_attr(attr::CONNECTION_ID).unwrap().unwrap(), connection);

    // ConnectionBind on a new data connection: over UDP it is a 400; another user gets 441.
    let bind = |creds: &Creds, id: u32| {
        request(Method::CONNECTION_BIND, 6, Some(creds), |w| {
            w.u32_attr(attr::CONNECTION_ID, id);
        })
    };
    let mut data = tuple(1001);
    assert_eq!(code(&h.send(&data, &bind(&creds, connection)).1), Some(400), "over UDP");
    data.transport = Transport::Tcp;
    let bob = Creds { user: "bob".into(), key: long_term_key("bob", REALM, "builder"), nonce: creds.nonce.clone() };
    assert_eq!(code(&h.send(&data, &bind(&bob, connection)).1), Some(441));
    assert_eq!(code(&h.send(&data, &bind(&creds, connection + 1)).1), Some(400), "unknown CONNECTION-ID");
    let (outcome, resp) = h.send(&data, &bind(&creds, connection));
    assert!(matches!(outcome, Outcome::Bound { connection: c, allocation, .. } if c == connection && allocation == id));
    assert_eq!(code(&resp), None);
    assert_eq!(code(&h.send(&data, &bind(&creds, connection)).1), Some(400), "bound once only");
}

#[test]
fn rfc6062_pending_binds_expire_and_tcp_allocations_have_no_channels() {
    let mut h = Harness::new();
    let (t, creds, id) = tcp_allocation(&mut h, 1000);
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    let mut out = vec![0u8; 512];
    let (_, connection, _) = h.server.peer_connected(h.now, id, public_peer(), &mut out).unwrap();
    h.advance(BIND_TIMEOUT);
    let creds = h.login(&t, creds);
    let mut data = tuple(1001);
    data.transport = Transport::Tcp;
    let req = request(Method::CONNECTION_BIND, 6, Some(&creds), |w| {
        w.u32_attr(attr::CONNECTION_ID, connection);
    });
    assert_eq!(code(&h.send(&data, &req).1), Some(400), "30 s without ConnectionBind");
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), Some(400), "no channels on TCP allocations");
    assert_eq!(h.send(&t, &send_indication(public_peer(), b"x")).0, Outcome::Dropped(Discard::NoAllocation));
}

#[test]
fn rfc6062_unbound_connections_of_one_allocation_are_capped() {
    let mut h = Harness::new();
    let (t, creds, id) = tcp_allocation(&mut h, 1000);
    let peer = |i: usize| SocketAddr::new(public_peer().ip(), 10_000 + i as u16);
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    let mut out = vec![0u8; 512];
    // Half the cap dialling out, half waiting for ConnectionBind after connecting in.
    let mut dialling = Vec::new();
    for i in 0..MAX_UNBOUND_CONNECTIONS / 2 {
        let (outcome, _) = connect(&mut h, &t, &creds, peer(i), 3);
        let Outcome::Connect { connection, .. } = outcome else { panic!("Connect {i}: {outcome:?}") };
        dialling.push(connection);
    }
    for i in MAX_UNBOUND_CONNECTIONS / 2..MAX_UNBOUND_CONNECTIONS {
        assert!(h.server.peer_connected(h.now, id, peer(i), &mut out).is_some(), "peer connection {i}");
    }
    // Full: another Connect is 508 and another peer connection is closed.
    let (outcome, resp) = connect(&mut h, &t, &creds, peer(1000), 4);
    assert_eq!(code(&resp), Some(508), "{outcome:?}");
    assert!(h.server.peer_connected(h.now, id, peer(1001), &mut out).is_none(), "a peer beyond the cap");
    // Another allocation has its own allowance.
    let (other, other_creds, _) = tcp_allocation(&mut h, 2000);
    assert!(matches!(connect(&mut h, &other, &other_creds, peer(0), 5).0, Outcome::Connect { .. }));
    // A failed Connect frees its place; a bound connection holds none.
    h.server.connect_finished(h.now, dialling[0], false, &mut out).unwrap();
    let (outcome, _) = connect(&mut h, &t, &creds, peer(1000), 6);
    let Outcome::Connect { connection, .. } = outcome else { panic!("{outcome:?}") };
    h.server.connect_finished(h.now, connection, true, &mut out).unwrap();
    assert_eq!(code(&connect(&mut h, &t, &creds, peer(1002), 7).1), Some(508));
    let mut data = tuple(1001);
    data.transport = Transport::Tcp;
    let bind = request(Method::CONNECTION_BIND, 8, Some(&creds), |w| {
        w.u32_attr(attr::CONNECTION_ID, connection);
    });
    assert!(matches!(h.send(&data, &bind).0, Outcome::Bound { .. }));
    assert!(matches!(connect(&mut h, &t, &creds, peer(1002), 9).0, Outcome::Connect { .. }));
}
