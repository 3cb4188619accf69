//! Unauthenticated abuse over the wire (issue 7): the reflection gain of every unauthenticated
//! request type, and floods of valid-looking Allocates and of garbage from 10,000 source ports,
//! during which turnd's memory stays bounded and a legitimate client still allocates.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};

use common::api::{config_text, sample, Http};
use common::client::*;
use common::Server;

/// Distinct source ports of a flood, and how many of them are open at once.
const FLOOD_PORTS: usize = 10_000;
const PORTS_AT_ONCE: usize = 500;
/// Most RSS a flood may add to turnd.
const MAX_RSS_GROWTH_KIB: u64 = 10 * 1024;

/// turnd's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("turnd's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// Sends `request` from `sock`, then a Binding from the same socket as a sentinel. Both take the
/// same worker and are handled in order, so the sentinel's answer arriving first means turnd
/// dropped the request. Returns the request's answer, if any.
fn answer_or_drop(sock: &UdpSocket, server: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let sentinel = MessageBuilder::new(Class::Request, BINDING);
    if !request.is_empty() {
        sock.send_to(request, server).unwrap();
    }
    sock.send_to(&sentinel.encode(None, true), server).unwrap();
    let mut buf = [0u8; 2048];
    let mut answer = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        sock.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))
            .unwrap();
        let n = sock.recv(&mut buf).expect("the sentinel Binding is answered within 5 s");
        if buf[8..20] == sentinel.txid {
            return answer;
        }
        answer = Some(buf[..n].to_vec());
    }
}

type Attrs = Vec<(u16, Vec<u8>)>;

#[test]
fn unauthenticated_answers_stay_within_2x_for_binding_and_3x_for_the_rest() {
    let server = Server::turnd(&config_text(""));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = encode_xor_addr("127.0.0.1:9".parse().unwrap(), &[0; 12]);
    let cases: Vec<(&str, u16, Attrs)> = vec![
        ("Binding", BINDING, vec![]),
        ("Allocate", ALLOCATE, vec![]),
        ("Allocate, REQUESTED-TRANSPORT", ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]),
        ("Refresh", REFRESH, vec![]),
        ("Refresh, LIFETIME", REFRESH, vec![(LIFETIME, vec![0, 0, 2, 88])]),
        ("CreatePermission", CREATE_PERMISSION, vec![]),
        ("CreatePermission, XOR-PEER-ADDRESS", CREATE_PERMISSION, vec![(XOR_PEER_ADDRESS, peer.clone())]),
        ("ChannelBind", CHANNEL_BIND, vec![]),
        (
            "ChannelBind, number and peer",
            CHANNEL_BIND,
            vec![(CHANNEL_NUMBER, vec![0x40, 0, 0, 0]), (XOR_PEER_ADDRESS, peer)],
        ),
    ];
    let mut report = Vec::new();
    for (name, method, attrs) in cases {
        for fingerprint in [false, true] {
            let mut builder = MessageBuilder::new(Class::Request, method);
            for (t, v) in &attrs {
                builder = builder.attr(*t, v.clone());
            }
            let request = builder.encode(None, fingerprint);
            let answer = answer_or_drop(&sock, server.addr, &request);
            let answered = answer.as_ref().map_or(0, Vec::len);
            let factor = if method == BINDING { 2 } else { 3 };
            assert!(
                answered <= factor * request.len(),
                "{name} (FINGERPRINT: {fingerprint}): {answered} bytes answer {} bytes, more than {factor}x",
                request.len()
            );
            if let Some(bytes) = &answer {
                let msg = Message::parse(bytes).unwrap();
                assert_eq!(msg.txid, builder.txid, "{name}");
                // Binding succeeds; everything else is challenged (401) with REALM and NONCE.
                if method == BINDING {
                    assert!(msg.is_success() && msg.xor_mapped() == Some(sock.local_addr().unwrap()), "{name}");
                } else {
                    assert_eq!(msg.error_code(), Some(401), "{name}: {}", msg.describe());
                    assert!(msg.realm().is_some() && msg.nonce().is_some(), "{name}");
                }
            }
            report.push(format!("{name} fp={fingerprint}: {} -> {answered}", request.len()));
        }
    }
    eprintln!("reflection (request bytes -> answer bytes, 0 = not answered):\n{}", report.join("\n"));
    // A client's real first Allocate is answered (it carries REQUESTED-TRANSPORT at least).
    assert!(report
        .iter()
        .any(|l| l.starts_with("Allocate, REQUESTED-TRANSPORT fp=false: 28 -> ") && !l.ends_with("-> 0")));
}

/// Floods turnd from [`FLOOD_PORTS`] source ports on 10 loopback IPs other than the legitimate
/// client's, `per_port` datagrams each, built by `datagram`; `midway` runs halfway through.
/// Paces itself by a Binding round trip every few hundred datagrams, so that the flood meets
/// turnd rather than the kernel's socket buffer. Returns how many datagrams were sent.
fn flood(server: SocketAddr, per_port: usize, mut datagram: impl FnMut() -> Vec<u8>, midway: impl FnOnce()) -> usize {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut midway = Some(midway);
    let mut sent = 0;
    for group in 0..FLOOD_PORTS / PORTS_AT_ONCE {
        let ip = format!("127.1.0.{}", 1 + group % 10);
        let socks: Vec<UdpSocket> = (0..PORTS_AT_ONCE).map(|_| UdpSocket::bind((ip.as_str(), 0)).unwrap()).collect();
        for _ in 0..per_port {
            for sock in &socks {
                sock.send_to(&datagram(), server).unwrap();
                sent += 1;
                if sent % 250 == 0 {
                    // An empty request: the sentinel's answer is the only one.
                    assert_eq!(answer_or_drop(&probe, server, &[]), None);
                }
            }
        }
        if group == FLOOD_PORTS / PORTS_AT_ONCE / 2 {
            midway.take().unwrap()();
        }
    }
    sent
}

/// A legitimate client allocates and relays one datagram through a loopback peer.
fn legitimate_client_allocates(server: SocketAddr) {
    let mut client = TurnClient::new(server);
    let relayed = client.allocate("alice", "wonderland").expect("a legitimate Allocate succeeds during the flood");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.create_permission(peer.local_addr().unwrap()).unwrap();
    client.send_indication(peer.local_addr().unwrap(), b"still here");
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).expect("the relayed datagram arrives");
    assert_eq!((&buf[..n], from), (&b"still here"[..], relayed));
    client.refresh(0).unwrap();
}

/// Client datagrams turnd has handled so far: answered or dropped for any reason.
fn handled(http: &Http) -> f64 {
    let text = http.get("/metrics", &[], &[]).body;
    let dropped: f64 = text
        .lines()
        .filter(|l| l.starts_with("turnd_dropped_packets_total{from=\"client\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    dropped + sample(&text, "turnd_stun_responses_total")
}

/// The flood runs with the per-source rate limits off, the harshest case for memory: every
/// request gets its answer computed and sent.
fn flood_server() -> (Server, Http) {
    let server = Server::turnd(&config_text("[limits]\nallocate-rate = 0\nchallenge-rate = 0\n"));
    let http = Http::new(server.listener("api").unwrap());
    // Warm up: one whole allocation, so lazily built state exists before the first RSS reading.
    legitimate_client_allocates(server.addr);
    (server, http)
}

#[test]
fn a_flood_of_valid_looking_allocates_leaves_memory_flat_and_a_real_client_allocates() {
    let (server, http) = flood_server();
    let before = rss_kib(server.pid());
    let handled_before = handled(&http);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut key = [0u8; 16];
    // 200,000 Allocates, each with a fresh random username, nonce and key, as spoofed sources
    // trying to make turnd keep state would send.
    let sent = flood(
        server.addr,
        20,
        || {
            rng.fill_bytes(&mut key);
            let user = format!("{}:{:x}", 1_900_000_000 + rng.gen_range(0..1000), rng.gen::<u64>());
            let nonce = format!("{:016x}", rng.gen::<u64>());
            MessageBuilder::new(Class::Request, ALLOCATE)
                .attr(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])
                .attr(USERNAME, user.into_bytes())
                .attr(REALM, b"turnd.test".to_vec())
                .attr(NONCE, nonce.into_bytes())
                .encode(Some(&key), true)
        },
        || legitimate_client_allocates(server.addr),
    );
    assert_eq!(sent, 200_000);
    let after = rss_kib(server.pid());
    let handled = handled(&http) - handled_before;
    eprintln!("Allocate flood: {sent} sent, {handled} handled by turnd, RSS {before} -> {after} KiB");
    assert!(handled >= sent as f64 / 2.0, "turnd handled only {handled} of {sent}");
    assert!(after <= before + MAX_RSS_GROWTH_KIB, "RSS grew from {before} to {after} KiB");
    legitimate_client_allocates(server.addr);
}

#[test]
fn a_flood_of_garbage_leaves_memory_flat_and_a_real_client_allocates() {
    let (server, http) = flood_server();
    let before = rss_kib(server.pid());
    let handled_before = handled(&http);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // 100,000 datagrams of 1-548 random bytes, a third of them with a STUN header's first
    // bytes and magic cookie and a third looking like ChannelData.
    let sent = flood(
        server.addr,
        10,
        || {
            let mut bytes = vec![0u8; rng.gen_range(1..=548)];
            rng.fill_bytes(&mut bytes);
            match rng.gen_range(0..3) {
                0 if bytes.len() >= 8 => {
                    bytes[0] &= 0x3F;
                    bytes[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                }
                1 => bytes[0] = 0x40 | (bytes[0] & 0x3F),
                _ => {}
            }
            bytes
        },
        || legitimate_client_allocates(server.addr),
    );
    assert_eq!(sent, 100_000);
    let after = rss_kib(server.pid());
    let handled = handled(&http) - handled_before;
    eprintln!("garbage flood: {sent} sent, {handled} handled by turnd, RSS {before} -> {after} KiB");
    assert!(handled >= sent as f64 / 2.0, "turnd handled only {handled} of {sent}");
    assert!(after <= before + MAX_RSS_GROWTH_KIB, "RSS grew from {before} to {after} KiB");
    legitimate_client_allocates(server.addr);
}
