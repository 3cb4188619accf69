//! RFC 5780 NAT behaviour discovery in the core: RESPONSE-ORIGIN and OTHER-ADDRESS,
//! CHANGE-REQUEST answered from the other sockets, and the answers without RFC 5780.

use super::*;

const PRIMARY: &str = "127.0.0.1:3478";
const ALTERNATE: &str = "127.0.0.2:3479";

fn nat() -> NatAddresses {
    NatAddresses { primary: PRIMARY.parse().unwrap(), alternate: ALTERNATE.parse().unwrap() }
}

/// A harness whose server has RFC 5780 on (primary 127.0.0.1:3478, alternate 127.0.0.2:3479).
fn discovery() -> Harness {
    let Harness { server, ports, now, start } = Harness::new();
    Harness { server: server.with_rfc5780(nat()), ports, now, start }
}

/// A client on 127.0.0.1:`port` that reached turnd's `server` socket over UDP.
fn reaching(server: &str, port: u16) -> FiveTuple {
    FiveTuple { server: server.parse().unwrap(), ..tuple(port) }
}

/// A Binding request with CHANGE-REQUEST `flags` (none: no attribute), and FINGERPRINT.
fn binding(flags: Option<u32>, fingerprint: bool) -> Vec<u8> {
    request(Method::BINDING, 9, None, |w| {
        if let Some(flags) = flags {
            w.u32_attr(attr::CHANGE_REQUEST, flags);
        }
        if fingerprint {
            w.fingerprint();
        }
    })
}

fn address(msg: &Message<'_>, attr_type: u16) -> Option<SocketAddr> {
    msg.attr(attr_type).map(|v| attr::decode_address(v).expect("a well-formed address"))
}

/// The UNKNOWN-ATTRIBUTES of a 420 answer.
fn unknown(resp: &[u8]) -> Vec<u16> {
    let msg = Message::parse(resp).unwrap();
    let value = msg.attr(attr::UNKNOWN_ATTRIBUTES).expect("420 lists UNKNOWN-ATTRIBUTES");
    value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
}

#[test]
fn binding_carries_response_origin_and_other_address_on_each_of_the_four_sockets() {
    let mut h = discovery();
    let [pp, pa, ap, aa] = nat().sockets();
    for (local, other) in [(pp, aa), (pa, ap), (ap, pa), (aa, pp)] {
        let t = FiveTuple { server: local, ..tuple(1000) };
        let (outcome, resp) = h.send(&t, &binding(None, false));
        assert_eq!(outcome, Outcome::Reply(resp.len()), "answered from the socket it reached ({local})");
        let msg = Message::parse(&resp).unwrap();
        assert_eq!(msg.xor_address(attr::XOR_MAPPED_ADDRESS).unwrap().unwrap(), t.client);
        assert_eq!(address(&msg, attr::RESPONSE_ORIGIN), Some(local));
        assert_eq!(address(&msg, attr::OTHER_ADDRESS), Some(other));
        // Never MAPPED-ADDRESS (RFC 3489's): the answer stays small.
        assert!(!msg.has(attr::MAPPED_ADDRESS));
    }
}

#[test]
fn change_request_answers_from_the_socket_the_flags_name() {
    let mut h = discovery();
    let t = reaching(PRIMARY, 1000);
    let cases = [
        (0, None),
        (CHANGE_PORT, Some("127.0.0.1:3479")),
        (CHANGE_IP, Some("127.0.0.2:3478")),
        (CHANGE_IP | CHANGE_PORT, Some(ALTERNATE)),
    ];
    for (flags, from) in cases {
        let (outcome, resp) = h.send(&t, &binding(Some(flags), true));
        let from: Option<SocketAddr> = from.map(|f| f.parse().unwrap());
        match from {
            Some(from) => assert_eq!(outcome, Outcome::ReplyFrom { len: resp.len(), from }, "flags {flags:#x}"),
            None => assert_eq!(outcome, Outcome::Reply(resp.len()), "no flag: from where it came"),
        }
        let msg = Message::parse(&resp).unwrap();
        assert_eq!(msg.class(), Class::Success);
        assert_eq!(address(&msg, attr::RESPONSE_ORIGIN), Some(from.unwrap_or(t.server)), "flags {flags:#x}");
        assert_eq!(address(&msg, attr::OTHER_ADDRESS), Some(nat().alternate));
        assert!(msg.has(attr::FINGERPRINT));
    }
    // From the alternate socket, "change IP and port" is the primary address.
    let (outcome, _) = h.send(&reaching(ALTERNATE, 1000), &binding(Some(CHANGE_IP | CHANGE_PORT), false));
    assert!(matches!(outcome, Outcome::ReplyFrom { from, .. } if from == nat().primary), "{outcome:?}");
}

#[test]
fn rfc5780_answers_fit_the_reflection_budget_of_a_bare_binding() {
    let mut h = discovery();
    let t = reaching(PRIMARY, 1000);
    // The three addresses are the answer's floor: 56 bytes for a bare 20-byte request (2.8x),
    // 64 with FINGERPRINT (28 bytes); a CHANGE-REQUEST (28 bytes) gets the same 56.
    for (req, len) in [(binding(None, false), 56), (binding(None, true), 64), (binding(Some(0), false), 56)] {
        let (outcome, resp) = h.send(&t, &req);
        assert_eq!((outcome, resp.len()), (Outcome::Reply(len), len));
    }
    // Over TCP there is no budget and no RFC 5780: a plain answer.
    let tcp = FiveTuple { transport: Transport::Tcp, ..t };
    let (_, resp) = h.send(&tcp, &binding(None, false));
    let msg = Message::parse(&resp).unwrap();
    assert!(!msg.has(attr::OTHER_ADDRESS) && !msg.has(attr::RESPONSE_ORIGIN));
}

#[test]
fn change_request_without_rfc5780_is_an_unknown_attribute() {
    let mut h = Harness::new();
    let t = tuple(1000);
    for flags in [CHANGE_IP, CHANGE_PORT, CHANGE_IP | CHANGE_PORT] {
        let (outcome, resp) = h.send(&t, &binding(Some(flags), false));
        assert_eq!(outcome, Outcome::Reply(resp.len()));
        assert_eq!(code(&resp), Some(420), "flags {flags:#x}");
        assert_eq!(unknown(&resp), [attr::CHANGE_REQUEST]);
    }
    // Without a flag it asks for nothing: a plain answer, no RFC 5780 attribute.
    let (_, resp) = h.send(&t, &binding(Some(0), false));
    let msg = Message::parse(&resp).unwrap();
    assert_eq!(msg.class(), Class::Success);
    assert!(!msg.has(attr::OTHER_ADDRESS) && !msg.has(attr::RESPONSE_ORIGIN));
    // Over TCP too: 420, the server does not support it at all.
    let tcp = FiveTuple { transport: Transport::Tcp, ..t };
    assert_eq!(code(&h.send(&tcp, &binding(Some(CHANGE_IP), false)).1), Some(420));
}

#[test]
fn change_request_over_a_stream_or_another_listener_is_refused() {
    let mut h = discovery();
    // TCP/TLS cannot answer from another address: 400 (as coturn).
    for transport in [Transport::Tcp, Transport::Tls] {
        let t = FiveTuple { transport, ..reaching(PRIMARY, 1000) };
        assert_eq!(code(&h.send(&t, &binding(Some(CHANGE_PORT), false)).1), Some(400), "{transport:?}");
    }
    // A UDP listener that is none of the four sockets has no alternate: 420, and no
    // RFC 5780 attribute in its answers.
    let other = reaching("127.0.0.1:5000", 1000);
    let (_, resp) = h.send(&other, &binding(Some(CHANGE_IP), false));
    assert_eq!((code(&resp), unknown(&resp)), (Some(420), vec![attr::CHANGE_REQUEST]));
    let (_, resp) = h.send(&other, &binding(None, false));
    assert!(!Message::parse(&resp).unwrap().has(attr::OTHER_ADDRESS));
}

#[test]
fn malformed_change_request_and_response_port_are_refused() {
    for mut h in [Harness::new(), discovery()] {
        let t = reaching(PRIMARY, 1000);
        let short = request(Method::BINDING, 9, None, |w| {
            w.attr(attr::CHANGE_REQUEST, &[0, 4]);
        });
        assert_eq!(code(&h.send(&t, &short).1), Some(400), "CHANGE-REQUEST is 4 bytes");
        // RESPONSE-PORT (RFC 5780 §7.5) is not supported: 420 rather than an answer to the
        // wrong port.
        let response_port = request(Method::BINDING, 9, None, |w| {
            w.attr(attr::RESPONSE_PORT, &[0x13, 0x88, 0, 0]);
        });
        let (_, resp) = h.send(&t, &response_port);
        assert_eq!((code(&resp), unknown(&resp)), (Some(420), vec![attr::RESPONSE_PORT]));
    }
}

#[test]
fn turn_requests_on_an_alternate_socket_are_served_as_on_any_listener() {
    let mut h = discovery();
    let t = reaching("127.0.0.2:3479", 1000);
    let (creds, relayed) = h.allocate(&t, alice());
    assert_eq!(relayed.ip().to_string(), "203.0.113.7");
    assert_eq!(h.permit(&t, &creds, public_peer()), None);
}
