//! Quotas and limits over the wire, with what `/metrics` counts (issues 5 and 7): user and
//! total allocation quotas (486, 508), per-allocation bandwidth (excess dropped and counted),
//! per-source rate limits, relayed packets counted one for one, and metric series that do not
//! grow with the number of users.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::api::{config_text, sample, Http, SECRET};
use common::client::*;
use common::{unix_now, Server};

fn start(extra: &str) -> (Server, Http) {
    let server = Server::turnd(&config_text(extra));
    let http = Http::new(server.listener("api").unwrap());
    (server, http)
}

fn metrics(http: &Http) -> String {
    let reply = http.get("/metrics", &[], &[]);
    assert_eq!(reply.status, 200);
    reply.body
}

/// A Binding round trip from `client`'s own socket: everything it sent before has been handled
/// by the same worker by the time the answer comes.
fn handled_so_far(client: &mut TurnClient) {
    assert!(client.binding().is_success());
}

#[test]
fn user_and_total_quotas_answer_486_and_508() {
    let (server, _http) = start("[allocation]\nuser-quota = 1\ntotal-quota = 2\n");
    let mut first = TurnClient::new(server.addr);
    first.allocate("alice", "wonderland").unwrap();
    let mut second = TurnClient::new(server.addr);
    let err = second.allocate("alice", "wonderland").unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (486, "Allocation Quota Reached"), "{err:?}");
    let (user, pass) = rest_credentials(SECRET, "bob", unix_now() + 600);
    second.allocate(&user, &pass).unwrap();
    let (user, pass) = rest_credentials(SECRET, "carol", unix_now() + 600);
    let mut third = TurnClient::new(server.addr);
    let err = third.allocate(&user, &pass).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (508, "Insufficient Capacity"), "{err:?}");
    // Freed quota is usable at once.
    first.refresh(0).unwrap();
    third.allocate(&user, &pass).unwrap();
}

#[test]
fn max_bps_drops_and_counts_the_excess_and_relayed_packets_are_counted_one_for_one() {
    // 100,000 bytes a second per allocation and direction: a one-second burst is 100 datagrams
    // of 1,000 bytes. (Below 65,535 bytes a second the burst is one largest datagram instead.)
    let (server, http) = start("[limits]\nmax-bps = 100000\n");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client = TurnClient::new(server.addr);
    client.allocate("alice", "wonderland").unwrap();
    client.channel_bind(0x4000, peer.local_addr().unwrap()).unwrap();
    const OFFERED: usize = 300;
    let started = Instant::now();
    // 20 at a time, each batch handled (a Binding round trip) and read by the peer before the
    // next, so no socket buffer overflows.
    let mut relayed = 0;
    for _ in 0..OFFERED / 20 {
        for _ in 0..20 {
            client.channel_data_unpadded(0x4000, &[7; 1000]);
        }
        handled_so_far(&mut client);
        relayed += common::drain_datagrams(&peer);
    }
    let text = metrics(&http);
    let dropped = sample(&text, "turnd_dropped_packets_total{from=\"client\",reason=\"bandwidth\"}") as usize;
    assert_eq!(relayed + dropped, OFFERED, "relayed {relayed}, dropped {dropped}\n{text}");
    // The one-second burst, plus the rate for the time it took.
    let most = |since: Instant| 100 + (since.elapsed().as_secs_f64() * 100.0).ceil() as usize;
    assert!((100..=most(started)).contains(&relayed), "relayed {relayed}");
    assert_eq!(sample(&text, "turnd_relayed_packets_total{direction=\"client_to_peer\"}") as usize, relayed);
    assert_eq!(sample(&text, "turnd_relayed_bytes_total{direction=\"client_to_peer\"}") as usize, relayed * 1000);

    // Peer → client: the same allowance, apart. Sent 20 at a time, each batch handled by turnd
    // (counted in /metrics) and what it delivered read by the client before the next, so no
    // socket buffer overflows (the kernel would drop what turnd never sees).
    let relay = client.relayed.unwrap();
    let started = Instant::now();
    let peer_side = ["turnd_peer_deliveries_total{kind=\"channel_data\"}", PEER_BANDWIDTH];
    let mut received = 0;
    let mut delivered = 0;
    for batch in 1..=OFFERED / 20 {
        for _ in 0..20 {
            peer.send_to(&[9; 1000], relay).unwrap();
        }
        let text = wait_for_total(&http, &peer_side, (batch * 20) as f64);
        delivered = sample(&text, peer_side[0]) as usize;
        // Exactly that many reach the client.
        while received < delivered {
            assert!(client.recv(Duration::from_secs(5)).is_some(), "delivery {received} of {delivered} missing");
            received += 1;
        }
    }
    assert!((100..=most(started)).contains(&delivered), "delivered {delivered}");
}

const PEER_BANDWIDTH: &str = "turnd_dropped_packets_total{from=\"peer\",reason=\"bandwidth\"}";

/// Waits (bounded) until the `series` sum to `total` in /metrics; returns that text.
fn wait_for_total(http: &Http, series: &[&str], total: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(http);
        let sum: f64 = series.iter().map(|s| sample(&text, s)).sum();
        assert!(sum <= total, "{series:?} sum to {sum}, more than {total}\n{text}");
        if sum == total {
            return text;
        }
        assert!(Instant::now() < deadline, "{series:?} stayed at {sum} of {total}\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rate_limited_allocates_are_dropped_and_counted() {
    let (server, http) = start("[limits]\nallocate-rate = 5\n");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answers = 0;
    let started = Instant::now();
    for _ in 0..20 {
        let request = MessageBuilder::new(Class::Request, ALLOCATE).attr(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]);
        sock.send_to(&request.encode(None, true), server.addr).unwrap();
    }
    // A Binding from the same socket is handled after all 20 (same worker, in order).
    let binding = MessageBuilder::new(Class::Request, BINDING);
    sock.send_to(&binding.encode(None, true), server.addr).unwrap();
    let mut buf = [0u8; 512];
    loop {
        let n = sock.recv(&mut buf).expect("the Binding is answered");
        let msg = Message::parse(&buf[..n]).unwrap();
        if msg.txid == binding.txid {
            break;
        }
        assert_eq!(msg.error_code(), Some(401));
        answers += 1;
    }
    // A burst of 5, plus the rate (5 a second) for the time the 20 took.
    let most = 5 + (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!((5..=most).contains(&answers), "{answers} answered, at most {most}");
    let text = metrics(&http);
    let limited = sample(&text, "turnd_dropped_packets_total{from=\"client\",reason=\"rate_limited\"}") as usize;
    assert_eq!(limited, 20 - answers, "{text}");
}

#[test]
fn a_thousand_rest_users_add_no_metric_series() {
    let (server, http) = start("[limits]\nallocate-rate = 0\nchallenge-rate = 0\n");
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let mut client = TurnClient::new(server.addr);
    client.allocate("alice", "wonderland").unwrap();
    client.refresh(0).unwrap();
    // The first scrape adds the scrape's own series (turnd_api_requests_total for /metrics).
    metrics(&http);
    let before = metrics(&http);
    for i in 0..1000 {
        let (user, pass) = rest_credentials(SECRET, &format!("user-{i}"), unix_now() + 600);
        let mut c = TurnClient::new(server.addr);
        c.allocate(&user, &pass).unwrap_or_else(|e| panic!("user-{i}: {e:?}"));
        c.refresh(0).unwrap();
    }
    let after = metrics(&http);
    assert_eq!(series(&before), series(&after), "before:\n{before}\nafter:\n{after}");
    assert!(!after.contains("user-"), "{after}");
    assert_eq!(sample(&after, "turnd_allocations_active"), 0.0);
}

#[test]
fn the_peer_drop_counters_name_the_reason() {
    // A datagram from a peer without a permission is dropped and counted as such.
    let (server, http) = start("");
    let mut client = TurnClient::new(server.addr);
    let relay: SocketAddr = client.allocate("alice", "wonderland").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        stranger.send_to(b"let me in", relay).unwrap();
    }
    // The counter shows why, once turnd has read them; nothing reached the client.
    wait_for_total(&http, &["turnd_dropped_packets_total{from=\"peer\",reason=\"no_permission\"}"], 3.0);
    handled_so_far(&mut client);
    assert!(client.recv(Duration::ZERO).is_none());
}
