//! RFC 6062 TCP relays under pressure, against the real daemon: a failing accept on a relay
//! backs off instead of spinning, and what one allocation may hold open is bounded. All traffic
//! is on loopback.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::client::*;
use common::{Config, Server};

const USER: &str = "alice";
const PASS: &str = "wonderland";
/// RFC 6062 §6.1: the Connect and ConnectionAttempt methods.
const CONNECT: u16 = 0x000A;
const CONNECTION_ATTEMPT: u16 = 0x000C;

/// A TURN control connection over TCP that authenticates its requests.
struct Control {
    s: TcpStream,
    realm: String,
    nonce: String,
}

impl Control {
    fn connect(addr: SocketAddr) -> Control {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Control { s, realm: String::new(), nonce: String::new() }
    }

    /// An authenticated request (XOR-PEER-ADDRESS is encoded from `peer`), without waiting for
    /// its answer.
    fn send(&mut self, method: u16, peer: Option<SocketAddr>, attrs: &[(u16, Vec<u8>)]) {
        let mut b = MessageBuilder::new(Class::Request, method);
        let authed = !self.nonce.is_empty();
        if authed {
            b = b.attr(USERNAME, USER.as_bytes()).attr(REALM, self.realm.as_bytes()).attr(NONCE, self.nonce.as_bytes());
        }
        if let Some(peer) = peer {
            let xor = encode_xor_addr(peer, &b.txid);
            b = b.attr(XOR_PEER_ADDRESS, xor);
        }
        for (t, v) in attrs {
            b = b.attr(*t, v.clone());
        }
        let key = authed.then(|| long_term_key(USER, &self.realm, PASS));
        self.s.write_all(&b.encode(key.as_deref(), true)).unwrap();
    }

    /// The next STUN message from turnd.
    fn read(&mut self) -> std::io::Result<Message> {
        let mut head = [0u8; 20];
        self.s.read_exact(&mut head)?;
        let mut all = head.to_vec();
        all.resize(20 + usize::from(u16::from_be_bytes([head[2], head[3]])), 0);
        self.s.read_exact(&mut all[20..])?;
        Ok(Message::parse(&all).expect("a STUN message"))
    }

    /// A request and its answer, authenticating after a 401 (or a stale nonce).
    fn request(&mut self, method: u16, peer: Option<SocketAddr>, attrs: &[(u16, Vec<u8>)]) -> Message {
        for _ in 0..2 {
            self.send(method, peer, attrs);
            let m = self.read().expect("an answer");
            if matches!(m.error_code(), Some(401 | 438)) {
                self.realm = m.realm().unwrap();
                self.nonce = m.nonce().unwrap();
                continue;
            }
            return m;
        }
        panic!("no authenticated answer");
    }

    /// A TCP allocation (REQUESTED-TRANSPORT = TCP); its relayed address.
    fn allocate_tcp(&mut self) -> SocketAddr {
        let r = self.request(ALLOCATE, None, &[(REQUESTED_TRANSPORT, vec![TCP, 0, 0, 0])]);
        assert!(r.is_success(), "TCP Allocate: {}", r.describe());
        r.xor_relayed().expect("XOR-RELAYED-ADDRESS")
    }

    fn permit(&mut self, peer: SocketAddr) {
        let r = self.request(CREATE_PERMISSION, Some(peer), &[]);
        assert!(r.is_success(), "CreatePermission: {}", r.describe());
    }
}

#[test]
fn a_failing_accept_on_a_tcp_relay_backs_off_and_recovers() {
    let server = Server::turnd_with_nofile(&Config::default().to_toml(), 40);
    let mut control = Control::connect(server.listener("tcp").unwrap());
    let relayed = control.allocate_tcp();
    control.permit("127.0.0.1:9".parse().unwrap());
    // UDP allocations until turnd is out of descriptors.
    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut c = TurnClient::new(server.addr);
        match c.allocate(USER, PASS) {
            Ok(_) => clients.push(c),
            Err(e) => {
                assert_eq!(e.code, 508, "{e}");
                break;
            }
        }
    }
    server.wait_for_log("out of file descriptors for relay sockets");
    // A peer connects to the TCP relay: the connection waits in the kernel's backlog and
    // accept(2) fails with EMFILE.
    let _peer = TcpStream::connect(relayed).expect("peer connects (kernel backlog)");
    control.s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let cpu_before = server.cpu_time();
    let waiting = control.read().map_err(|e| e.kind());
    let cpu = server.cpu_time() - cpu_before;
    assert!(waiting.is_err(), "a ConnectionAttempt while turnd has no descriptor to accept with: {waiting:?}");
    // Not a speed check: a loop spinning on accept would use the whole second.
    assert!(cpu < Duration::from_millis(500), "turnd used {cpu:?} of CPU in a 1 s wait: spinning on the relay");
    // Descriptors come back: the peer waiting in the backlog is accepted and announced.
    for c in clients.iter_mut().take(4) {
        assert_eq!(c.refresh(0).expect("Refresh lifetime 0"), 0);
    }
    control.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let attempt = control.read().expect("a ConnectionAttempt once descriptors are back");
    assert_eq!((attempt.class, attempt.method), (Class::Indication, CONNECTION_ATTEMPT), "{}", attempt.describe());
    assert_eq!(attempt.xor_peer(), _peer.local_addr().ok());
}

#[test]
fn a_connection_with_an_allocation_outlives_the_idle_timeout_and_closes_after_it_ends() {
    let mut toml = Config::default().to_toml();
    toml.push_str("[limits]\nidle-timeout = 1\n");
    let server = Server::turnd(&toml);
    let mut control = Control::connect(server.listener("tcp").unwrap());
    let r = control.request(ALLOCATE, None, &[(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
    assert!(r.is_success(), "Allocate over TCP: {}", r.describe());
    // Three idle timeouts of silence: the allocation keeps its connection open.
    control.s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let quiet = control.read().map_err(|e| e.kind());
    assert!(
        matches!(quiet, Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the connection of a live allocation: {quiet:?}"
    );
    let r = control.request(REFRESH, None, &[(LIFETIME, 0u32.to_be_bytes().to_vec())]);
    assert!(r.is_success(), "Refresh lifetime 0: {}", r.describe());
    // Without its allocation the connection is idle like any other.
    control.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut byte = [0u8; 1];
    let closed = control.s.read(&mut byte);
    assert!(matches!(closed, Ok(0)), "the connection of a deleted allocation stays open: {closed:?}");
}

/// A TCP control connection from `local` (reused at once after a reset: SO_REUSEADDR).
fn control_from(local: SocketAddr, server: SocketAddr) -> std::io::Result<Control> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&local.into())?;
    socket.connect(&server.into())?;
    let s = TcpStream::from(socket);
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(Control { s, realm: String::new(), nonce: String::new() })
}

/// Allocates over `control` (UDP relay), waiting (bounded) while the user's one allocation
/// (`user-quota = 1`) still exists: 486, or 437 while it is still at this 5-tuple.
fn allocate_when_free(control: &mut Control) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = control.request(ALLOCATE, None, &[(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
        match r.error_code() {
            None if r.is_success() => return,
            Some(437 | 486) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("the allocation of a closed connection did not end: {}", r.describe()),
        }
    }
}

/// RFC 8656 §3.1: an allocation over TCP ends with its connection, closed or reset. After a
/// reset the client may connect again from the same port at once (the kernel frees the 4-tuple
/// at once): the allocation it makes then is its own, not ended by the old connection's end.
#[test]
fn an_allocation_over_tcp_ends_with_its_connection_and_a_reconnect_from_its_port_keeps_its_own() {
    let config = Config { user_quota: Some(1), ..Config::default() };
    let server = config.start();
    let tcp = server.listener("tcp").unwrap();
    let mut first = Control::connect(tcp);
    allocate_when_free(&mut first);
    drop(first);
    let mut second = Control::connect(tcp);
    allocate_when_free(&mut second);
    let local = second.s.local_addr().unwrap();
    socket2::SockRef::from(&second.s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(second);
    // Bounded: the server side may take a moment to drop the reset connection's 4-tuple.
    let mut again = None;
    for _ in 0..50 {
        match control_from(local, tcp) {
            Ok(control) => {
                again = Some(control);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut again = again.expect("a connection from the reset connection's port");
    assert_eq!(again.s.local_addr().unwrap(), local);
    allocate_when_free(&mut again);
    // The reset connection's end, whenever its task ran, left this allocation alone.
    let r = again.request(REFRESH, None, &[(LIFETIME, 600u32.to_be_bytes().to_vec())]);
    assert!(r.is_success(), "Refresh of the reconnected client's allocation: {}", r.describe());
}

/// RFC 6062 §4.3 ConnectionBind over a data connection whose client pipelined requests before
/// it and reads slowly: every earlier answer arrives whole and in order, then the ConnectionBind
/// success, then the peer's bytes. Whether turnd's writer is in the middle of a write when the
/// ConnectionBind is read is up to the scheduler (often, with megabytes of answers queued);
/// `stream::tests` has the deterministic case.
#[test]
fn a_connection_bind_answer_follows_every_earlier_answer_whole() {
    const CONNECTION_ID: u16 = 0x002A;
    const CONNECTION_BIND: u16 = 0x000B;
    const BINDINGS: usize = 150_000;
    let server = Server::turnd(&Config::default().to_toml());
    let tcp = server.listener("tcp").unwrap();
    let mut control = Control::connect(tcp);
    let relayed = control.allocate_tcp();
    control.permit("127.0.0.1:9".parse().unwrap());
    let mut peer = TcpStream::connect(relayed).unwrap();
    let attempt = control.read().expect("a ConnectionAttempt");
    assert_eq!((attempt.class, attempt.method), (Class::Indication, CONNECTION_ATTEMPT), "{}", attempt.describe());
    let id = attempt.get(CONNECTION_ID).expect("CONNECTION-ID").to_vec();
    // A small receive window (set before connecting), and reading slowly below, so that turnd's
    // writes stall once its send buffer is full.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&tcp.into()).unwrap();
    let s = TcpStream::from(socket);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut data = Control { s, realm: control.realm.clone(), nonce: control.nonce.clone() };
    let mut bindings = Vec::with_capacity(BINDINGS * 20);
    for i in 0..BINDINGS {
        let mut m = [0u8; 20];
        m[..2].copy_from_slice(&[0x00, 0x01]);
        m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
        m[8..12].copy_from_slice(&(i as u32).to_be_bytes());
        bindings.extend_from_slice(&m);
    }
    // Written while the answers are read, as a client that pipelines does.
    let mut writer = Control { s: data.s.try_clone().unwrap(), realm: data.realm.clone(), nonce: data.nonce.clone() };
    let written = std::thread::spawn(move || {
        writer.s.write_all(&bindings).unwrap();
        writer.send(CONNECTION_BIND, None, &[(CONNECTION_ID, id)]);
        writer.s.write_all(b"early").unwrap();
    });
    for i in 0..BINDINGS {
        if i % 256 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let m = data.read().unwrap_or_else(|e| panic!("Binding answer {i}: {e}"));
        assert!(m.is_success() && m.method == 0x0001, "answer {i}: {}", m.describe());
        assert_eq!(m.txid[..4], (i as u32).to_be_bytes(), "answer {i}: earlier answers lost or out of order");
    }
    written.join().unwrap();
    let bound = data.read().expect("the ConnectionBind answer");
    assert!(bound.is_success() && bound.method == CONNECTION_BIND, "ConnectionBind: {}", bound.describe());
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut early = [0u8; 5];
    peer.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"early");
    peer.write_all(b"pong").unwrap();
    let mut pong = [0u8; 4];
    data.s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"pong");
}

/// Unbound data connections one TCP allocation may have (turnd's `MAX_UNBOUND_CONNECTIONS`).
const MAX_UNBOUND: usize = 64;

#[test]
fn unbound_data_connections_of_one_allocation_are_capped() {
    // Descriptors for turnd's own sockets, the cap and some more, but not for 150 peers.
    let server = Server::turnd_with_nofile(&Config::default().to_toml(), 150);
    let mut control = Control::connect(server.listener("tcp").unwrap());
    let relayed = control.allocate_tcp();
    control.permit("127.0.0.1:9".parse().unwrap());
    let mut peers = Vec::new();
    for i in 0..150 {
        let peer = TcpStream::connect_timeout(&relayed, Duration::from_secs(2));
        peers.push(peer.unwrap_or_else(|e| panic!("peer {i} connects (accepted, or closed by turnd): {e}")));
    }
    // Exactly the cap is announced; the others are closed by turnd.
    control.s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut attempts = 0;
    while let Ok(m) = control.read() {
        assert_eq!((m.class, m.method), (Class::Indication, CONNECTION_ATTEMPT), "{}", m.describe());
        attempts += 1;
        assert!(attempts <= MAX_UNBOUND, "more than {MAX_UNBOUND} ConnectionAttempts for one allocation");
    }
    assert_eq!(attempts, MAX_UNBOUND, "peer connections announced");
    // turnd is done with them (the last ConnectionAttempt was 2 s ago): each is closed or open.
    let mut closed = 0;
    for peer in &mut peers {
        peer.set_nonblocking(true).unwrap();
        match peer.read(&mut [0u8; 1]).map_err(|e| e.kind()) {
            Ok(0) | Err(std::io::ErrorKind::ConnectionReset) => closed += 1,
            Err(std::io::ErrorKind::WouldBlock) => {}
            other => panic!("a peer connection: {other:?}"),
        }
    }
    assert_eq!(closed, peers.len() - MAX_UNBOUND, "peers beyond the cap are closed");
    // A Connect is refused with 508 while the allocation is full.
    control.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = control.request(CONNECT, Some(peer.local_addr().unwrap()), &[]);
    assert_eq!(r.error_code(), Some(508), "Connect beyond the cap: {}", r.describe());
    // Everybody else is still served.
    let mut other = TurnClient::new(server.addr);
    other.allocate(USER, PASS).unwrap_or_else(|e| panic!("another client's Allocate: {e}"));
}
