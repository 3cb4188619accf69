//! Resource exhaustion against the real daemon: a relay port range that runs out, and a
//! file-descriptor limit that runs out before the ports do. In both, the next Allocate gets
//! 508 Insufficient Capacity, turnd keeps serving and relaying, and freeing an allocation lets
//! the next Allocate succeed at once. All traffic is on loopback.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::client::*;
use common::{peer_socket, Config, Server};

const USER: &str = "alice";
const PASS: &str = "wonderland";
const WAIT: Duration = Duration::from_secs(5);
/// Below the kernel's ephemeral range (32768-60999) and turnd's default relay range (49152+),
/// so neither other sockets of the tests nor other turnd instances land in the ranges picked.
const QUIET_PORTS: std::ops::Range<u16> = 10_000..30_000;

/// The first of `n` consecutive UDP ports on 127.0.0.1 that are free right now, searched from
/// a starting point that differs between test processes.
fn free_port_run(n: u16) -> u16 {
    let span = QUIET_PORTS.end - QUIET_PORTS.start - n;
    let start = (std::process::id() as u64 * 7919 % u64::from(span)) as u16;
    for i in 0..span / n {
        let base = QUIET_PORTS.start + (start + i * n) % span;
        let held: Vec<_> = (base..base + n).map(|p| UdpSocket::bind(("127.0.0.1", p))).collect();
        if held.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no {n} consecutive free UDP ports in {QUIET_PORTS:?}");
}

/// `client`'s allocation relays out to a peer and back (over channel 0x4000).
fn relays(client: &mut TurnClient, while_: &str) {
    let relayed = client.relayed.expect("an allocation");
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    client.channel_bind(0x4000, peer_addr).unwrap_or_else(|e| panic!("{while_}: ChannelBind: {e}"));
    client.channel_data(0x4000, b"out");
    let mut buf = [0u8; 64];
    let got = peer.recv_from(&mut buf).map(|(n, from)| (buf[..n].to_vec(), from));
    assert_eq!(got.ok(), Some((b"out".to_vec(), relayed)), "{while_}: nothing relayed out");
    peer.send_to(b"back", relayed).unwrap();
    match client.recv_data(WAIT) {
        Some(Incoming::ChannelData { channel: 0x4000, data }) if data == b"back" => {}
        other => panic!("{while_}: nothing relayed back: {other:?}"),
    }
}

/// turnd is running and a Binding from a new socket gets its success response.
fn answers_binding(server: &Server, while_: &str) {
    assert!(server.is_running(), "{while_}: turnd exited:\n{}", server.stderr_so_far());
    let mut c = TurnClient::new(server.addr);
    let r = c.binding();
    assert!(r.is_success(), "{while_}: Binding: {}", r.describe());
}

#[test]
fn an_exhausted_port_range_is_508_until_an_allocation_ends() {
    let min = free_port_run(4);
    let server = Config::default().ports(min, min + 3).start();
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut c = TurnClient::new(server.addr);
        let relayed = c.allocate(USER, PASS).unwrap_or_else(|e| panic!("allocation {i} of 4 ports: {e}"));
        assert!((min..=min + 3).contains(&relayed.port()), "allocation {i}: port {relayed} outside the range");
        clients.push(c);
    }
    let mut ports: Vec<u16> = clients.iter().map(|c| c.relayed.unwrap().port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, (min..=min + 3).collect::<Vec<_>>(), "one allocation per port of the range");

    let mut late = TurnClient::new(server.addr);
    let e = late.allocate(USER, PASS).expect_err("a fifth allocation on four ports");
    assert_eq!(e.code, 508, "port range exhausted: {e}");
    answers_binding(&server, "port range exhausted");
    relays(&mut clients[1], "port range exhausted");

    // Deleting one frees its port at once: the same client that got 508 now allocates it.
    let freed = clients[0].relayed.unwrap();
    assert_eq!(clients[0].refresh(0).expect("Refresh lifetime 0"), 0);
    let relayed = late.allocate(USER, PASS).unwrap_or_else(|e| panic!("Allocate right after Refresh 0: {e}"));
    assert_eq!(relayed, freed, "the freed port is the one given out");
    relays(&mut late, "after recovery");
    let e = TurnClient::new(server.addr).allocate(USER, PASS).expect_err("the range is full again");
    assert_eq!(e.code, 508, "{e}");
}

/// File descriptors turnd may hold: its own (about 25 with two workers) and a few relay sockets.
const NOFILE: u64 = 40;

#[test]
fn running_out_of_file_descriptors_is_508_and_recovers() {
    // 200 ports, but descriptors for about 15 relay sockets: the descriptors run out first.
    let min = free_port_run(200);
    let server = Server::turnd_with_nofile(&Config::default().ports(min, min + 199).to_toml(), NOFILE);
    let tcp = server.listener("tcp").expect("tcp listener");
    let mut clients = Vec::new();
    let mut refused = None;
    for i in 0..NOFILE {
        let mut c = TurnClient::new(server.addr);
        match c.allocate(USER, PASS) {
            Ok(_) => clients.push(c),
            Err(e) => {
                refused = Some((i, e, c));
                break;
            }
        }
    }
    let Some((i, e, mut late)) = refused else { panic!("{NOFILE} allocations under RLIMIT_NOFILE={NOFILE}") };
    assert_eq!(e.code, 508, "allocation {i}, out of descriptors: {e}");
    assert!(!clients.is_empty(), "no allocation fit under RLIMIT_NOFILE={NOFILE}");
    server.wait_for_log("out of file descriptors for relay sockets");
    answers_binding(&server, "out of descriptors");
    relays(&mut clients[0], "out of descriptors");

    // A new TCP connection completes in the kernel and waits in the backlog: turnd cannot
    // accept it. It must neither answer it wrongly nor spin on the failing accept.
    let binding = MessageBuilder::new(Class::Request, BINDING);
    let mut stream = TcpStream::connect(tcp).expect("connect over TCP");
    stream.write_all(&binding.encode(None, false)).expect("send a Binding over TCP");
    stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let cpu_before = server.cpu_time();
    let mut head = [0u8; 20];
    let waiting = stream.read_exact(&mut head).map_err(|e| e.kind());
    let cpu = server.cpu_time() - cpu_before;
    assert!(
        matches!(waiting, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a TCP connection while out of descriptors: {waiting:?} (expected it to wait in the backlog)"
    );
    // Not a speed check: a loop spinning on accept would use the whole second.
    assert!(cpu < Duration::from_millis(500), "turnd used {cpu:?} of CPU in a 1 s wait: spinning");
    let warnings = server.stderr_so_far().matches("accept failed").count();
    assert_eq!(warnings, 1, "a failing accept is warned about once, not every retry:\n{}", server.stderr_so_far());
    answers_binding(&server, "a TCP connection waiting while out of descriptors");

    // Freeing allocations gives descriptors back: the next Allocate succeeds at once, from the
    // client that got 508, and the waiting connection is accepted and answered.
    for c in clients.iter_mut().take(4) {
        assert_eq!(c.refresh(0).expect("Refresh lifetime 0"), 0);
    }
    late.allocate(USER, PASS).unwrap_or_else(|e| panic!("Allocate after freeing allocations: {e}"));
    relays(&mut late, "after recovery");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.read_exact(&mut head).expect("the waiting TCP connection is answered after recovery");
    assert_eq!((&head[..2], &head[8..]), (&[0x01, 0x01][..], &binding.txid[..]), "Binding success over TCP");
    server.wait_for_log("accepting connections again");
    assert!(server.is_running(), "turnd exited");
}
