//! The core's abuse limits: reflection budget of UDP answers, per-source Allocate and 401
//! rates, and bandwidth per allocation and in total.

use super::*;

fn limited(limits: Limits) -> Harness {
    Harness::with(ServerConfig { limits, ..config() }, vec![], 8)
}

fn over(t: &FiveTuple, transport: Transport) -> FiveTuple {
    FiveTuple { transport, ..*t }
}

/// The bare request of `method` (20 bytes, or 28 with FINGERPRINT), unauthenticated.
fn bare(method: Method, fingerprint: bool) -> Vec<u8> {
    request(method, 1, None, |w| {
        if fingerprint {
            w.fingerprint();
        }
    })
}

#[test]
fn udp_answers_to_unauthenticated_requests_stay_within_the_reflection_budget() {
    let mut h = Harness::new();
    let t = tuple(1000);
    for fingerprint in [false, true] {
        for method in
            [Method::BINDING, Method::ALLOCATE, Method::REFRESH, Method::CREATE_PERMISSION, Method::CHANNEL_BIND]
        {
            let req = bare(method, fingerprint);
            let (outcome, resp) = h.send(&t, &req);
            let factor = if method == Method::BINDING { 2 } else { 3 };
            assert!(
                resp.len() <= factor * req.len(),
                "{method:?} fp={fingerprint}: {} > {factor}x{}",
                resp.len(),
                req.len()
            );
            match outcome {
                Outcome::Reply(_) => assert!(Message::parse(&resp).is_ok()),
                other => assert_eq!(other, Outcome::Dropped(Discard::Amplification), "{method:?}"),
            }
        }
    }
    // A bare Binding is always answered. A bare Allocate's 401 does not fit 3x20 bytes, not
    // even in RFC 5389's shape (REALM and the plain NONCE: 64 bytes without the reason
    // phrase); with DONT-FRAGMENT (24 bytes) that shape fits without the reason phrase
    // (64 <= 72), and with FINGERPRINT (28 bytes) whole: 20 + 20 + 16 + 20 + 8 = 84. The
    // RFC 8489 shape (cookie NONCE of 29 bytes, PASSWORD-ALGORITHMS) needs 92 bytes at least
    // here, so none of these get it (src/turn/tests/sha256.rs: a 36-byte Allocate does).
    assert!(matches!(h.send(&t, &bare(Method::BINDING, false)).0, Outcome::Reply(32)));
    assert_eq!(h.send(&t, &bare(Method::ALLOCATE, false)).0, Outcome::Dropped(Discard::Amplification));
    let df = request(Method::ALLOCATE, 1, None, |w| {
        w.attr(attr::DONT_FRAGMENT, &[]);
    });
    for (req, reason) in [(df, ""), (bare(Method::ALLOCATE, true), "Unauthorized")] {
        let (_, resp) = h.send(&t, &req);
        assert!(resp.len() <= 3 * req.len());
        let msg = Message::parse(&resp).unwrap();
        assert_eq!(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap(), (401, reason));
        assert!(msg.has(attr::REALM) && msg.has(attr::NONCE));
    }
}

#[test]
fn a_real_clients_first_allocate_gets_the_full_challenge_and_streams_have_no_budget() {
    let mut h = Harness::new();
    // REQUESTED-TRANSPORT alone makes 28 bytes: room for RFC 5389's challenge with
    // "Unauthorized" (76 bytes), not for the RFC 8489 one (92 bytes without the phrase).
    let (_, resp) = h.send(&tuple(1000), &request(Method::ALLOCATE, 1, None, transport_udp));
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(attr::decode_error_code(msg.attr(attr::ERROR_CODE).unwrap()).unwrap(), (401, "Unauthorized"));
    assert_eq!((resp.len(), msg.attr(attr::NONCE).unwrap().len()), (76, 16));
    assert!(!msg.has(attr::PASSWORD_ALGORITHMS));
    // Over TCP the source is not spoofed: a bare Allocate gets the whole answer.
    let (_, resp) = h.send(&over(&tuple(1000), Transport::Tcp), &bare(Method::ALLOCATE, false));
    assert_eq!(code(&resp), Some(401));
    assert!(resp.len() > 60);
}

#[test]
fn challenges_are_rate_limited_per_source_ip() {
    let mut h = limited(Limits { challenge_rate: 5, ..Limits::default() });
    let allocate = request(Method::ALLOCATE, 1, None, transport_udp);
    let answered = (0..20).filter(|i| matches!(h.send(&tuple(1000 + i), &allocate).0, Outcome::Reply(_))).count();
    assert_eq!(answered, 5, "one source IP, whatever its ports");
    assert_eq!(h.send(&tuple(2000), &allocate).0, Outcome::Dropped(Discard::RateLimited));
    // Another source IP has its own allowance, unless it shares the first one's slot.
    let other = FiveTuple { client: "127.0.0.2:1000".parse().unwrap(), ..tuple(0) };
    let limiter = &h.server.limiters.challenges;
    let shares = limiter.slot(other.client.ip()) == limiter.slot(tuple(0).client.ip());
    assert_eq!(matches!(h.send(&other, &allocate).0, Outcome::Reply(_)), !shares);
    // Binding is not a challenge; a fifth of a second later one more 401 fits.
    assert!(matches!(h.send(&tuple(2000), &bare(Method::BINDING, false)).0, Outcome::Reply(_)));
    h.advance(Duration::from_millis(200));
    assert!(matches!(h.send(&tuple(2000), &allocate).0, Outcome::Reply(_)));
    assert_eq!(h.send(&tuple(2000), &allocate).0, Outcome::Dropped(Discard::RateLimited));
}

#[test]
fn allocates_are_rate_limited_per_source_ip_and_the_limit_reloads() {
    let mut h = limited(Limits { allocate_rate: 3, ..Limits::default() });
    let t = tuple(1000);
    // login() spends one Allocate (the 401), allocate() a second.
    let (creds, _) = h.allocate(&t, alice());
    let t2 = tuple(1001);
    assert_eq!(code(&h.send(&t2, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp)).1), None);
    let t3 = tuple(1002);
    assert_eq!(
        h.send(&t3, &request(Method::ALLOCATE, 2, Some(&creds), transport_udp)).0,
        Outcome::Dropped(Discard::RateLimited)
    );
    // Other requests are not Allocates.
    assert_eq!(h.refresh(&t, &creds, 600), None);
    // A reload lifts the limit at once.
    let reloaded = ServerConfig { limits: Limits::default(), ..config() };
    let creds_again = Credentials::new(REALM, vec![SECRET.into()], ':', vec![]);
    h.server.reload(reloaded, creds_again, PeerPolicy::default());
    let bob = Creds { user: "bob".into(), key: long_term_key("bob", REALM, "builder"), nonce: creds.nonce.clone() };
    let resp = h.send(&t3, &request(Method::ALLOCATE, 3, Some(&bob), transport_udp)).1;
    assert_eq!(code(&resp), Some(401), "bob is gone after the reload, but the request was let through");
}

/// 1,000-byte ChannelData on channel 0x4001.
fn channel_data_1000() -> Vec<u8> {
    let mut packet = vec![0x40, 0x01, 0x03, 0xE8];
    packet.resize(4 + 1000, 7);
    packet
}

#[test]
fn each_allocation_gets_max_bps_each_way_and_excess_is_dropped() {
    // 100,000 bytes a second: a burst of one second's worth, then the rate.
    let mut h = limited(Limits { max_bps: 100_000, ..Limits::default() });
    let t = tuple(1000);
    let (creds, _) = h.allocate(&t, alice());
    assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
    let packet = channel_data_1000();
    let outcomes: Vec<Outcome> = (0..150).map(|_| h.send(&t, &packet).0).collect();
    let relayed = outcomes.iter().filter(|o| **o == Outcome::Relayed { bytes: 1000 }).count();
    assert_eq!(relayed, 100);
    assert!(outcomes[100..].iter().all(|o| *o == Outcome::Dropped(Discard::Bandwidth)));
    assert_eq!(h.sent().len(), 100);
    // The other direction has its own allowance.
    let delivered = (0..150).filter(|_| h.peer_sends(&t, public_peer(), &[1; 1000]).is_ok()).count();
    assert_eq!(delivered, 100);
    assert_eq!(h.peer_sends(&t, public_peer(), &[1; 1000]).unwrap_err(), Discard::Bandwidth);
    // 10 ms later 1,000 bytes more fit each way; another allocation is not affected.
    h.advance(Duration::from_millis(10));
    assert_eq!(h.send(&t, &packet).0, Outcome::Relayed { bytes: 1000 });
    assert_eq!(h.send(&t, &packet).0, Outcome::Dropped(Discard::Bandwidth));
    let t2 = tuple(1001);
    let (creds2, _) = h.allocate(&t2, alice());
    assert_eq!(h.bind(&t2, &creds2, 0x4001, public_peer()), None);
    assert_eq!(h.send(&t2, &packet).0, Outcome::Relayed { bytes: 1000 });
}

#[test]
fn bps_capacity_caps_the_whole_relay() {
    let mut h = limited(Limits { bps_capacity: 100_000, ..Limits::default() });
    let packet = channel_data_1000();
    let mut tuples = Vec::new();
    for port in [1000, 1001] {
        let t = tuple(port);
        let (creds, _) = h.allocate(&t, alice());
        assert_eq!(h.bind(&t, &creds, 0x4001, public_peer()), None);
        tuples.push(t);
    }
    // Two allocations taking turns share 100 packets (one second of 100 kB/s).
    let relayed = (0..120)
        .flat_map(|_| tuples.clone())
        .filter(|t| h.send(t, &packet).0 == Outcome::Relayed { bytes: 1000 })
        .count();
    assert_eq!(relayed, 100);
    // Peer → client is capped apart.
    let delivered = (0..240).filter(|i| h.peer_sends(&tuples[i % 2], public_peer(), &[1; 1000]).is_ok()).count();
    assert_eq!(delivered, 100);
}
