//! What the core counts for `/metrics`: each authentication failure under its reason, peer
//! refusals by request and rule, refused Allocates, allocations created and ended by kind.

use super::tcp::{connect, tcp_allocation};
use super::*;
use crate::turn::counts::{AllocateRefusal, AllocationKind, AuthFailure, Ended, PeerRequest, RefusedBy};

const UDP: AllocationKind = AllocationKind { transport: Transport::Udp, tcp_relay: false };
const TCP_TCP: AllocationKind = AllocationKind { transport: Transport::Tcp, tcp_relay: true };
const TLS_UDP: AllocationKind = AllocationKind { transport: Transport::Tls, tcp_relay: false };

/// The auth failure counts, in [`AuthFailure::ALL`] order.
fn auth_failures(h: &Harness) -> Vec<u64> {
    let counts = h.server.counts();
    AuthFailure::ALL.iter().map(|why| counts.auth_failures(*why)).collect()
}

/// [`AuthFailure::ALL`]-ordered counts with `n` at each of `reasons`.
fn only(reasons: &[(AuthFailure, u64)]) -> Vec<u64> {
    AuthFailure::ALL.iter().map(|why| reasons.iter().find(|(r, _)| r == why).map_or(0, |(_, n)| *n)).collect()
}

#[test]
fn every_authentication_failure_is_counted_under_its_reason() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let creds = h.login(&t, alice());
    assert_eq!(auth_failures(&h), only(&[(AuthFailure::MissingCredentials, 1)]), "the first 401 challenge");
    let allocate = |h: &mut Harness, creds: &Creds, txid: u8| {
        code(&h.send(&t, &request(Method::ALLOCATE, txid, Some(creds), transport_udp)).1)
    };

    let wrong = Creds { key: long_term_key("alice", REALM, "nope"), ..creds.clone() };
    assert_eq!(allocate(&mut h, &wrong, 2), Some(401));
    assert_eq!(allocate(&mut h, &wrong, 3), Some(401));
    let unknown = Creds { user: "mallory".into(), key: long_term_key("mallory", REALM, "x"), ..creds.clone() };
    assert_eq!(allocate(&mut h, &unknown, 4), Some(401), "not a static user: must be a REST username");
    let expired_name = rest_username(T0 - 1, "carol", ':');
    let expired = Creds {
        key: long_term_key(&expired_name, REALM, &rest_password(SECRET, &expired_name)),
        user: expired_name,
        ..creds.clone()
    };
    assert_eq!(allocate(&mut h, &expired, 5), Some(401));
    let bad_nonce = Creds { nonce: "not-a-nonce-of-ours".into(), ..creds.clone() };
    assert_eq!(allocate(&mut h, &bad_nonce, 6), Some(438));
    // MESSAGE-INTEGRITY without USERNAME, REALM and NONCE.
    let bare = request(Method::ALLOCATE, 7, None, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).integrity(&creds.key);
    });
    assert_eq!(code(&h.send(&t, &bare).1), Some(400));
    let other_realm = request(Method::ALLOCATE, 8, None, |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .attr(attr::USERNAME, b"alice")
            .attr(attr::REALM, b"elsewhere")
            .attr(attr::NONCE, creds.nonce.as_bytes())
            .integrity(&long_term_key("alice", "elsewhere", "wonderland"));
    });
    assert_eq!(code(&h.send(&t, &other_realm).1), Some(401));
    assert_eq!(
        auth_failures(&h),
        only(&[
            (AuthFailure::MissingCredentials, 1),
            (AuthFailure::MissingAttributes, 1),
            (AuthFailure::BadNonce, 1),
            (AuthFailure::WrongRealm, 1),
            (AuthFailure::BadRestUsername, 1),
            (AuthFailure::Expired, 1),
            (AuthFailure::BadIntegrity, 2),
        ])
    );

    // A nonce of ours past its lifetime; without REST secrets, a name that is not a static user.
    h.advance(Duration::from_secs(601));
    assert_eq!(allocate(&mut h, &creds, 9), Some(438));
    let creds = h.login(&t, creds);
    let static_only = vec![("alice".into(), UserSecret::Password("wonderland".into()))];
    h.server.reload(config(), Credentials::new(REALM, vec![], ':', static_only), PeerPolicy::new(vec![], vec![]));
    let unknown = Creds { nonce: creds.nonce.clone(), ..unknown };
    assert_eq!(allocate(&mut h, &unknown, 10), Some(401));
    let counts = h.server.counts();
    assert_eq!(counts.auth_failures(AuthFailure::StaleNonce), 1);
    assert_eq!(counts.auth_failures(AuthFailure::UnknownUser), 1);
    assert_eq!(counts.auth_failures(AuthFailure::MissingCredentials), 2, "the second login");
    // Success counts nothing.
    let before = auth_failures(&h);
    assert_eq!(allocate(&mut h, &creds, 11), None);
    assert_eq!(auth_failures(&h), before);
}

#[test]
fn peer_refusals_are_counted_by_request_and_rule() {
    let denied: ipnet::IpNet = "8.8.4.0/24".parse().unwrap();
    let mut h = Harness::new();
    h.server.reload(
        config(),
        Credentials::new(
            REALM,
            vec![SECRET.into()],
            ':',
            vec![("alice".into(), UserSecret::Password("wonderland".into()))],
        ),
        PeerPolicy::new(vec![], vec![denied]),
    );
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    let loopback: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let listed: SocketAddr = "8.8.4.4:80".parse().unwrap();
    assert_eq!(h.permit(&t, &creds, loopback), Some(403));
    assert_eq!(h.permit(&t, &creds, listed), Some(403));
    assert_eq!(h.permit(&t, &creds, listed), Some(403));
    assert_eq!(h.bind(&t, &creds, 0x4001, loopback), Some(403));
    // Allowed peers and other errors are not refusals.
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
    assert_eq!(h.permit(&t, &creds, "[2001:db8::1]:80".parse().unwrap()), Some(443));
    let (tcp, tcp_creds, _) = tcp_allocation(&mut h, 2000);
    assert_eq!(code(&connect(&mut h, &tcp, &tcp_creds, "10.0.0.1:22".parse().unwrap(), 3).1), Some(403));
    let counts = h.server.counts();
    let refusals: Vec<u64> =
        PeerRequest::ALL.iter().flat_map(|r| RefusedBy::ALL.iter().map(|by| counts.peer_refusals(*r, *by))).collect();
    // (create_permission: denied, special), (channel_bind: ...), (connect: ...).
    assert_eq!(refusals, vec![2, 1, 0, 1, 0, 1]);
}

#[test]
fn allocations_are_counted_by_kind_from_creation_to_their_end() {
    let mut h = Harness::with(config(), vec![], 8);
    let (udp_creds, _) = h.allocate(&tuple(1000), alice());
    h.allocate(&tuple(1001), alice());
    let (tcp, _, _) = tcp_allocation(&mut h, 1002);
    let tls = FiveTuple { transport: Transport::Tls, ..tuple(1003) };
    h.allocate(&tls, alice());
    let counts = h.server.counts();
    assert_eq!(counts.allocations, 4);
    assert_eq!([UDP, TCP_TCP, TLS_UDP].map(|k| (counts.created(k), counts.active(k))), [(2, 2), (1, 1), (1, 1)]);
    let tcp_udp = AllocationKind { transport: Transport::Tcp, tcp_relay: false };
    assert_eq!(counts.created(tcp_udp), 0);
    // A retransmitted Allocate creates nothing new.
    let (_, resp) = h.send(&tuple(1000), &request(Method::ALLOCATE, 2, Some(&udp_creds), transport_udp));
    assert_eq!(code(&resp), None);
    assert_eq!(h.server.counts().created(UDP), 2);

    // Deleted (Refresh 0), connection closed, expired.
    assert_eq!(h.refresh(&tuple(1000), &udp_creds, 0), None);
    h.server.client_disconnected(&tcp);
    h.server.client_disconnected(&tcp);
    h.advance(Duration::from_secs(601));
    let counts = h.server.counts();
    assert_eq!(Ended::ALL.map(|why| counts.ended(why)), [2, 1, 1], "expired, deleted, connection_closed");
    assert_eq!(AllocationKind::ALL.map(|k| counts.active(k)), [0; 5]);
    assert_eq!(counts.allocations, 0);
    assert_eq!(counts.created(UDP), 2, "creations stay counted");
}

#[test]
fn refused_allocates_are_counted_by_reason() {
    let mut h = Harness::with(ServerConfig { user_quota: 1, total_quota: 2, ..config() }, vec![], 2);
    let (creds, _) = h.allocate(&tuple(1000), alice());
    let allocate = |h: &mut Harness, port: u16, creds: &Creds| {
        code(&h.send(&tuple(port), &request(Method::ALLOCATE, 2, Some(creds), transport_udp)).1)
    };
    assert_eq!(allocate(&mut h, 1001, &creds), Some(486));
    let bob = Creds { user: "bob".into(), key: long_term_key("bob", REALM, "builder"), nonce: creds.nonce.clone() };
    assert_eq!(allocate(&mut h, 1002, &bob), None);
    let carol = rest_creds(SECRET, "carol");
    let carol = Creds { nonce: creds.nonce.clone(), ..carol };
    assert_eq!(allocate(&mut h, 1003, &carol), Some(508), "total quota");
    // Both ports in use: with the total quota raised, the port pool runs out.
    h.server.reload(
        config(),
        Credentials::new(REALM, vec![SECRET.into()], ':', vec![]),
        PeerPolicy::new(vec![], vec![]),
    );
    assert_eq!(allocate(&mut h, 1004, &carol), Some(508), "no port left");
    h.server.drain();
    assert_eq!(allocate(&mut h, 1005, &carol), Some(508), "draining");
    let counts = h.server.counts();
    assert_eq!(AllocateRefusal::ALL.map(|why| counts.allocate_refusals(why)), [1, 1, 1, 1]);
}
