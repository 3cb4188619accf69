//! Mobility (RFC 8016): tickets on Allocate, moves by Refresh, who may move what.

use super::*;

fn mobile_config() -> ServerConfig {
    ServerConfig { mobility: true, ..config() }
}

fn mobile() -> Harness {
    Harness::with(mobile_config(), vec![], 4)
}

fn bob() -> Creds {
    Creds { user: "bob".into(), key: long_term_key("bob", REALM, "builder"), nonce: String::new() }
}

/// The MOBILITY-TICKET of a response, if any.
fn ticket_of(bytes: &[u8]) -> Option<Vec<u8>> {
    Message::parse(bytes).unwrap().attr(attr::MOBILITY_TICKET).map(<[u8]>::to_vec)
}

impl Harness {
    /// Allocates for `from` asking for a ticket; returns the credentials and the answer.
    fn allocate_mobile(&mut self, from: &FiveTuple, creds: Creds) -> (Creds, Vec<u8>) {
        let creds = self.login(from, creds);
        let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::MOBILITY_TICKET, &[]);
        });
        let (_, resp) = self.send(from, &req);
        (creds, resp)
    }

    /// A Refresh from `from` carrying `ticket`; returns the answer.
    fn refresh_with(&mut self, from: &FiveTuple, creds: &Creds, ticket: &[u8], txid: u8, lifetime: u32) -> Vec<u8> {
        let req = request(Method::REFRESH, txid, Some(creds), |w| {
            w.u32_attr(attr::LIFETIME, lifetime).attr(attr::MOBILITY_TICKET, ticket);
        });
        self.send(from, &req).1
    }

    fn id_at(&self, t: &FiveTuple) -> Option<AllocId> {
        self.server.table().with(t, |a| a.id)
    }
}

#[test]
fn a_ticket_only_when_asked_for_and_enabled() {
    let mut h = mobile();
    let (creds, _) = h.allocate(&tuple(1000), alice());
    let (_, resp) = h.send(&tuple(1000), &request(Method::ALLOCATE, 2, Some(&creds), transport_udp));
    assert_eq!((code(&resp), ticket_of(&resp)), (None, None), "not asked for: no ticket");

    let (creds, resp) = h.allocate_mobile(&tuple(1001), alice());
    assert_eq!(code(&resp), None);
    let ticket = ticket_of(&resp).expect("asked for: a ticket");
    assert_eq!(ticket.len(), super::super::mobility::TICKET_LEN);
    assert!(Message::parse(&resp).unwrap().check_integrity(&creds.key));
    // A retransmission of the Allocate gets the same ticket.
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::MOBILITY_TICKET, &[]);
    });
    assert_eq!(ticket_of(&h.send(&tuple(1001), &req).1), Some(ticket));

    // A non-empty ticket in an Allocate is malformed.
    let creds = h.login(&tuple(1002), alice());
    let req = request(Method::ALLOCATE, 2, Some(&creds), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::MOBILITY_TICKET, b"x");
    });
    assert_eq!(code(&h.send(&tuple(1002), &req).1), Some(400));

    // Over TCP the allocation ends with the connection: no ticket, but an allocation.
    let mut tcp = tuple(1003);
    tcp.transport = Transport::Tcp;
    let (_, resp) = h.allocate_mobile(&tcp, alice());
    assert_eq!((code(&resp), ticket_of(&resp)), (None, None));
}

#[test]
fn mobility_off_is_405() {
    let mut h = Harness::new();
    let (_, resp) = h.allocate_mobile(&tuple(1000), alice());
    assert_eq!(code(&resp), Some(405));
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap(), (405, "Mobility Forbidden"));
    let (creds, _) = h.allocate(&tuple(1000), alice());
    assert_eq!(code(&h.refresh_with(&tuple(1001), &creds, &[b'A'; 24], 7, 600)), Some(405));
    assert_eq!(h.server.table().len(), 1);
}

#[test]
fn a_refresh_with_the_ticket_moves_the_allocation() {
    let mut h = mobile();
    let (old, new) = (tuple(1000), tuple(2000));
    let (creds, resp) = h.allocate_mobile(&old, alice());
    let ticket = ticket_of(&resp).unwrap();
    let relayed = Message::parse(&resp).unwrap().xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    assert_eq!(h.bind(&old, &creds, 0x4001, public_peer()), None);
    let id = h.id_at(&old).unwrap();

    let resp = h.refresh_with(&new, &creds, &ticket, 7, 900);
    assert_eq!(code(&resp), None);
    let msg = Message::parse(&resp).unwrap();
    assert!(msg.check_integrity(&creds.key));
    assert_eq!(msg.u32_attr(attr::LIFETIME), Some(Ok(900)));
    let fresh = ticket_of(&resp).expect("a new ticket");
    assert_ne!(fresh, ticket, "the ticket rotates");

    // The same allocation, relay and channel, now on the new 5-tuple only.
    assert_eq!(h.id_at(&new), Some(id));
    assert_eq!(h.id_at(&old), None);
    assert_eq!(h.server.table().with(&new, |a| a.relayed), Some(relayed));
    assert_eq!(h.server.table().len(), 1);
    assert_eq!(h.send(&new, &[0x40, 0x01, 0x00, 0x02, b'h', b'i']).0, Outcome::Relayed { bytes: 2 });
    assert_eq!(h.sent(), vec![(public_peer(), b"hi".to_vec())]);
    assert_eq!(h.send(&old, &[0x40, 0x01, 0x00, 0x02, b'h', b'i']).0, Outcome::Dropped(Discard::NoAllocation));
    assert_eq!(h.refresh(&old, &creds, 600), Some(437));
    let (to, bytes) = h.peer_sends(&new, public_peer(), b"back").unwrap();
    assert_eq!(to, new, "peer data goes to the new 5-tuple");
    assert_eq!(ChannelData::parse(&bytes).unwrap().payload, b"back");

    // coturn's client sends the Refresh twice: the retransmission gets the same answer.
    let again = h.refresh_with(&new, &creds, &ticket, 7, 900);
    assert_eq!((code(&again), ticket_of(&again)), (None, Some(fresh.clone())));
    // The spent ticket moves nothing; the new one moves it on.
    assert_eq!(code(&h.refresh_with(&tuple(3000), &creds, &ticket, 8, 600)), Some(437));
    assert_eq!(h.id_at(&tuple(3000)), None);
    let resp = h.refresh_with(&tuple(3000), &creds, &fresh, 9, 600);
    assert_eq!(code(&resp), None);
    assert_eq!((h.id_at(&tuple(3000)), h.id_at(&new)), (Some(id), None));
    assert_eq!(h.server.counts().allocations, 1);
}

#[test]
fn a_move_to_another_ip_needs_a_fresh_nonce() {
    let mut h = mobile();
    let (creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let ticket = ticket_of(&resp).unwrap();
    let mut moved = tuple(1000);
    moved.client = "127.0.0.2:1000".parse().unwrap();
    // Nonces are bound to the client's IP: 438, then the move with the new nonce.
    assert_eq!(code(&h.refresh_with(&moved, &creds, &ticket, 7, 600)), Some(438));
    let creds = h.login(&moved, creds);
    assert_eq!(code(&h.refresh_with(&moved, &creds, &ticket, 8, 600)), None);
    assert!(h.id_at(&moved).is_some());
    assert_eq!(h.id_at(&tuple(1000)), None);
}

#[test]
fn another_users_ticket_is_441_and_moves_nothing() {
    let mut h = mobile();
    let (alice_creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let ticket = ticket_of(&resp).unwrap();
    let id = h.id_at(&tuple(1000)).unwrap();
    // Bob holds Alice's ticket (seen on the wire) and authenticates as himself.
    let bob_creds = h.login(&tuple(2000), bob());
    assert_eq!(code(&h.refresh_with(&tuple(2000), &bob_creds, &ticket, 7, 600)), Some(441));
    assert_eq!(h.id_at(&tuple(2000)), None);
    assert_eq!(h.id_at(&tuple(1000)), Some(id));
    // A REST user named like the owner is another user too.
    let rest = rest_creds(SECRET, "alice");
    let rest = h.login(&tuple(2001), rest);
    assert_eq!(code(&h.refresh_with(&tuple(2001), &rest, &ticket, 7, 600)), Some(441));
    // Bob's own allocation cannot be taken over either, nor can he move onto Alice's tuple.
    let (bob_creds, resp) = h.allocate_mobile(&tuple(2002), bob());
    let bob_ticket = ticket_of(&resp).unwrap();
    assert_eq!(code(&h.refresh_with(&tuple(1000), &alice_creds, &bob_ticket, 8, 600)), Some(437));
    assert_eq!(code(&h.refresh_with(&tuple(1000), &bob_creds, &bob_ticket, 8, 600)), Some(437));
    // The owner's ticket still works: nothing was spent.
    assert_eq!(code(&h.refresh_with(&tuple(3000), &alice_creds, &ticket, 9, 600)), None);
    assert_eq!(h.id_at(&tuple(3000)), Some(id));
}

#[test]
fn forged_unknown_and_malformed_tickets_are_refused() {
    let mut h = mobile();
    let (creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let ticket = ticket_of(&resp).unwrap();
    let mut forged = ticket.clone();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(code(&h.refresh_with(&tuple(2000), &creds, &forged, 7, 600)), Some(437));
    assert_eq!(code(&h.refresh_with(&tuple(2000), &creds, &[b'A'; 24], 7, 600)), Some(437));
    assert_eq!(code(&h.refresh_with(&tuple(2000), &creds, &ticket[..23], 7, 600)), Some(400));
    assert_eq!(code(&h.refresh_with(&tuple(2000), &creds, &[0; 24], 7, 600)), Some(400));
    assert_eq!(code(&h.refresh_with(&tuple(2000), &creds, &[], 7, 600)), Some(400));
    assert_eq!(h.id_at(&tuple(2000)), None);
    // Without credentials: the usual 401, nothing moves.
    let req = request(Method::REFRESH, 7, None, |w| {
        w.attr(attr::MOBILITY_TICKET, &ticket);
    });
    assert_eq!(code(&h.send(&tuple(2000), &req).1), Some(401));
    assert!(h.id_at(&tuple(1000)).is_some());
}

#[test]
fn a_move_keeps_the_transport() {
    let mut h = mobile();
    let (creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let ticket = ticket_of(&resp).unwrap();
    let mut tcp = tuple(2000);
    tcp.transport = Transport::Tcp;
    assert_eq!(code(&h.refresh_with(&tcp, &creds, &ticket, 7, 600)), Some(405));
    assert_eq!((h.id_at(&tcp), h.id_at(&tuple(1000)).is_some()), (None, true));
}

#[test]
fn moved_allocations_expire_and_delete() {
    let mut h = mobile();
    let (creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let ticket = ticket_of(&resp).unwrap();
    let fresh = ticket_of(&h.refresh_with(&tuple(2000), &creds, &ticket, 7, 600)).unwrap();
    h.advance(Duration::from_secs(601));
    assert_eq!((h.server.table().len(), h.id_at(&tuple(2000))), (0, None));
    let creds = h.login(&tuple(3000), creds);
    assert_eq!(code(&h.refresh_with(&tuple(3000), &creds, &fresh, 8, 600)), Some(437), "its ticket died with it");

    // A move with lifetime 0 deletes the allocation at its new 5-tuple, freeing the port.
    let (creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let ticket = ticket_of(&resp).unwrap();
    let resp = h.refresh_with(&tuple(2000), &creds, &ticket, 7, 0);
    assert_eq!((code(&resp), ticket_of(&resp)), (None, None));
    assert_eq!(h.server.table().len(), 0);
    assert_eq!(h.ports.pool.lock().unwrap().len(), 4, "every relay port is back");
    // The old tuple can allocate again.
    assert_eq!(code(&h.allocate_mobile(&tuple(1000), alice()).1), None);
}

/// Moves across many 5-tuples (so across the table's shards): the allocation is always found
/// at its current 5-tuple only, and its end clears every index.
#[test]
fn many_moves_leave_one_entry() {
    let mut h = mobile();
    let (creds, resp) = h.allocate_mobile(&tuple(1000), alice());
    let mut ticket = ticket_of(&resp).unwrap();
    let id = h.id_at(&tuple(1000)).unwrap();
    assert_eq!(h.permit(&tuple(1000), &creds, public_peer()), None);
    let mut at = tuple(1000);
    for (i, port) in (2000..2064).enumerate() {
        let next = tuple(port);
        let resp = h.refresh_with(&next, &creds, &ticket, i as u8, 600);
        assert_eq!(code(&resp), None, "move {i}");
        ticket = ticket_of(&resp).unwrap();
        assert_eq!((h.id_at(&next), h.id_at(&at)), (Some(id), None), "move {i}");
        assert_eq!(h.send(&next, &send_indication(public_peer(), b"x")).0, Outcome::Relayed { bytes: 1 });
        assert_eq!(h.peer_sends(&next, public_peer(), b"y").unwrap().0, next);
        at = next;
    }
    h.sent();
    // A new allocation on a tuple the allocation left works as usual.
    assert_eq!(code(&h.allocate_mobile(&tuple(2010), alice()).1), None);
    assert_eq!(h.refresh(&at, &creds, 0), None);
    assert_eq!(h.id_at(&at), None);
    assert_eq!(code(&h.refresh_with(&tuple(4000), &creds, &ticket, 200, 600)), Some(437));
    assert_eq!(h.server.table().len(), 1);
}
