//! What `/metrics` counts, over the wire (issue 5): authentication failures by reason, peer
//! refusals by request and rule, allocations by transport (active, created, ended by reason),
//! refused Allocates, and client payloads by framing (ChannelData or Send indication). Every
//! count is exact: the test knows what it sent.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::api::{config_text, sample, Http, SECRET};
use common::client::*;
use common::{unix_now, Server};

/// No per-source rate limits: these tests make many requests from one IP.
const NO_RATE_LIMITS: &str = "[limits]\nallocate-rate = 0\nchallenge-rate = 0\n";

const CONNECT: u16 = 0x000A;

fn start(extra: &str) -> (Server, Http) {
    let server = Server::turnd(&config_text(&format!("{NO_RATE_LIMITS}{extra}")));
    let http = Http::new(server.listener("api").unwrap());
    (server, http)
}

fn metrics(http: &Http) -> String {
    let reply = http.get("/metrics", &[], &[]);
    assert_eq!(reply.status, 200);
    reply.body
}

/// Waits (bounded) until every series has its value in /metrics; returns that text.
fn wait_for(http: &Http, expected: &[(&str, f64)]) -> String {
    wait_until(http, &format!("{expected:?}"), |text| {
        expected.iter().all(|(series, value)| sample(text, series) == *value)
    })
}

/// Waits (bounded) until the /metrics text satisfies `done` (`what` names it); returns that text.
fn wait_until(http: &Http, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(http);
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "expected {what} in\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts each series has its value in `text`.
fn assert_samples(text: &str, expected: &[(&str, f64)]) {
    for (series, value) in expected {
        assert_eq!(sample(text, series), *value, "{series} in\n{text}");
    }
}

fn auth(reason: &str) -> String {
    format!("turnd_auth_failures_total{{reason=\"{reason}\"}}")
}

fn active(transport: &str, relay: &str) -> String {
    format!("turnd_allocations_active_by_transport{{transport=\"{transport}\",relay=\"{relay}\"}}")
}

fn created(transport: &str, relay: &str) -> String {
    format!("turnd_allocations_created_total{{transport=\"{transport}\",relay=\"{relay}\"}}")
}

fn ended(reason: &str) -> String {
    format!("turnd_allocations_ended_total{{reason=\"{reason}\"}}")
}

fn refusals(request: &str, reason: &str) -> String {
    format!("turnd_peer_refusals_total{{request=\"{request}\",reason=\"{reason}\"}}")
}

/// A TURN client over one TCP connection: STUN framed by its own length, long-term
/// credentials learned from the first 401.
struct TcpClient {
    stream: TcpStream,
    key: Vec<u8>,
    user: String,
    realm: String,
    nonce: String,
}

impl TcpClient {
    /// Connects and allocates with REQUESTED-TRANSPORT `relay` (UDP or TCP); panics on failure.
    fn allocate(server: SocketAddr, user: &str, pass: &str, relay: u8) -> TcpClient {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut client =
            TcpClient { stream, key: Vec::new(), user: user.into(), realm: String::new(), nonce: String::new() };
        let challenge = MessageBuilder::new(Class::Request, ALLOCATE).attr(REQUESTED_TRANSPORT, vec![relay, 0, 0, 0]);
        let answer = client.transact(&challenge, None);
        assert_eq!(answer.error_code(), Some(401), "{}", answer.describe());
        client.realm = answer.realm().unwrap();
        client.nonce = answer.nonce().unwrap();
        client.key = long_term_key(user, &client.realm, pass);
        let answer = client.request(ALLOCATE, |_| vec![(REQUESTED_TRANSPORT, vec![relay, 0, 0, 0])]);
        assert!(answer.is_success(), "{}", answer.describe());
        client
    }

    /// An authenticated request; `attrs` gets the transaction id (for XOR-PEER-ADDRESS).
    fn request(&mut self, method: u16, attrs: impl FnOnce(&[u8; 12]) -> Vec<(u16, Vec<u8>)>) -> Message {
        let mut b = MessageBuilder::new(Class::Request, method);
        b.attrs = attrs(&b.txid);
        let b = b
            .attr(USERNAME, self.user.as_bytes())
            .attr(REALM, self.realm.as_bytes())
            .attr(NONCE, self.nonce.as_bytes());
        let key = self.key.clone();
        self.transact(&b, Some(&key))
    }

    fn transact(&mut self, b: &MessageBuilder, key: Option<&[u8]>) -> Message {
        self.stream.write_all(&b.encode(key, true)).unwrap();
        loop {
            let message = self.read_stun();
            if message.txid == b.txid {
                return message;
            }
        }
    }

    /// The next STUN message from the server (ChannelData in between is skipped).
    fn read_stun(&mut self) -> Message {
        loop {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header).expect("a message from turnd");
            let len = u16::from_be_bytes([header[2], header[3]]) as usize;
            if header[0] & 0xC0 == 0x40 {
                // ChannelData, padded to 4 bytes on streams.
                let mut rest = vec![0u8; len.div_ceil(4) * 4];
                self.stream.read_exact(&mut rest).unwrap();
                continue;
            }
            let mut message = header.to_vec();
            message.resize(20 + len, 0);
            self.stream.read_exact(&mut message[4..]).unwrap();
            return Message::parse(&message).unwrap();
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// A Binding round trip: everything sent before it on this connection has been handled.
    fn handled_so_far(&mut self) {
        assert!(self.transact(&MessageBuilder::new(Class::Request, BINDING), None).is_success());
    }
}

#[test]
fn authentication_failures_are_counted_by_reason() {
    let (server, http) = start("");
    const WRONG_PASSWORDS: usize = 5;
    for _ in 0..WRONG_PASSWORDS {
        let err = TurnClient::new(server.addr).allocate("alice", "not-her-password").unwrap_err();
        assert_eq!(err.code, 401);
    }
    // REST usernames: two expired, one that is not a REST username at all.
    for i in 0..2 {
        let (user, pass) = rest_credentials(SECRET, &format!("late-{i}"), unix_now() - 10);
        assert_eq!(TurnClient::new(server.addr).allocate(&user, &pass).unwrap_err().code, 401);
    }
    assert_eq!(TurnClient::new(server.addr).allocate("mallory", "x").unwrap_err().code, 401);
    // A success adds only its first challenge.
    TurnClient::new(server.addr).allocate("alice", "wonderland").unwrap();
    let text = metrics(&http);
    assert_samples(
        &text,
        &[
            // Every Allocate above began with the unauthenticated request.
            (&auth("missing_credentials"), (WRONG_PASSWORDS + 2 + 1 + 1) as f64),
            (&auth("bad_integrity"), WRONG_PASSWORDS as f64),
            (&auth("expired"), 2.0),
            (&auth("bad_rest_username"), 1.0),
            (&auth("unknown_user"), 0.0),
            (&auth("stale_nonce"), 0.0),
            (&auth("bad_nonce"), 0.0),
            (&auth("wrong_realm"), 0.0),
            (&auth("missing_attributes"), 0.0),
        ],
    );
    // The reasons are fixed words: the usernames tried appear nowhere.
    assert!(!text.contains("mallory") && !text.contains("late-"), "{text}");
}

#[test]
fn peer_refusals_are_counted_by_request_and_rule() {
    // 127.0.0.1 is allowed; 127.0.0.3 is on the operator's denied list; the rest of 127/8 is
    // refused as loopback (special purpose). Nothing is sent to a refused peer.
    let (server, http) = start("[peers]\nallowed = [\"127.0.0.1/32\"]\ndenied = [\"127.0.0.3/32\"]\n");
    let special: SocketAddr = "127.0.0.2:9".parse().unwrap();
    let denied: SocketAddr = "127.0.0.3:9".parse().unwrap();
    let mut client = TurnClient::new(server.addr);
    client.allocate("alice", "wonderland").unwrap();
    assert_eq!(client.create_permission(special).unwrap_err().code, 403);
    assert_eq!(client.create_permission(denied).unwrap_err().code, 403);
    assert_eq!(client.channel_bind(0x4000, denied).unwrap_err().code, 403);
    client.create_permission("127.0.0.1:9".parse().unwrap()).unwrap();

    // RFC 6062 Connect from a TCP relay.
    let tcp = server.listener("tcp").unwrap();
    let mut control = TcpClient::allocate(tcp, "alice", "wonderland", TCP);
    let answer = control.request(CONNECT, |txid| vec![(XOR_PEER_ADDRESS, encode_xor_addr(special, txid))]);
    assert_eq!(answer.error_code(), Some(403), "{}", answer.describe());

    assert_samples(
        &metrics(&http),
        &[
            (&refusals("create_permission", "special_purpose"), 1.0),
            (&refusals("create_permission", "denied"), 1.0),
            (&refusals("channel_bind", "denied"), 1.0),
            (&refusals("channel_bind", "special_purpose"), 0.0),
            (&refusals("connect", "special_purpose"), 1.0),
            (&refusals("connect", "denied"), 0.0),
        ],
    );
}

#[test]
fn allocations_are_counted_by_transport_until_they_end() {
    let (server, http) = start("");
    let tcp = server.listener("tcp").unwrap();
    let mut udp = TurnClient::new(server.addr);
    udp.allocate("alice", "wonderland").unwrap();
    let tcp_udp = TcpClient::allocate(tcp, "alice", "wonderland", UDP);
    let _tcp_tcp = TcpClient::allocate(tcp, "alice", "wonderland", TCP);
    let text = metrics(&http);
    assert_samples(
        &text,
        &[
            ("turnd_allocations_active", 3.0),
            (&active("udp", "udp"), 1.0),
            (&active("tcp", "udp"), 1.0),
            (&active("tcp", "tcp"), 1.0),
            (&active("tls", "udp"), 0.0),
            (&active("tls", "tcp"), 0.0),
            (&created("udp", "udp"), 1.0),
            (&created("tcp", "udp"), 1.0),
            (&created("tcp", "tcp"), 1.0),
        ],
    );

    // Refresh 0 deletes; closing a TCP connection ends its allocation.
    udp.refresh(0).unwrap();
    drop(tcp_udp);
    let text = wait_for(&http, &[(&ended("connection_closed"), 1.0)]);
    assert_samples(
        &text,
        &[
            (&ended("deleted"), 1.0),
            (&ended("expired"), 0.0),
            ("turnd_allocations_active", 1.0),
            (&active("udp", "udp"), 0.0),
            (&active("tcp", "udp"), 0.0),
            (&active("tcp", "tcp"), 1.0),
            (&created("udp", "udp"), 1.0),
            (&created("tcp", "udp"), 1.0),
        ],
    );
}

#[test]
fn expired_allocations_and_refused_allocates_are_counted() {
    // Allocations live 1 s; a second one for alice is over her quota.
    let (server, http) = start("[allocation]\ndefault-lifetime = 1\nuser-quota = 1\n");
    let mut client = TurnClient::new(server.addr);
    client.allocate("alice", "wonderland").unwrap();
    let err = TurnClient::new(server.addr).allocate("alice", "wonderland").unwrap_err();
    assert_eq!(err.code, 486);
    assert_eq!(sample(&metrics(&http), "turnd_allocate_refusals_total{reason=\"user_quota\"}"), 1.0);
    // The sweep ends it within a second or two of its lifetime.
    let text = wait_for(&http, &[(&ended("expired"), 1.0), ("turnd_allocations_active", 0.0)]);
    assert_samples(&text, &[(&active("udp", "udp"), 0.0), (&ended("deleted"), 0.0)]);
}

#[test]
fn client_payloads_are_counted_by_framing() {
    let (server, http) = start("");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut client = TurnClient::new(server.addr);
    client.allocate("alice", "wonderland").unwrap();
    client.channel_bind(0x4000, peer_addr).unwrap();
    const CHANNEL_DATA: usize = 7;
    const SENDS: usize = 4;
    for _ in 0..CHANNEL_DATA {
        client.channel_data_unpadded(0x4000, b"framed");
    }
    for _ in 0..SENDS {
        client.send_indication(peer_addr, b"indicated");
    }
    // Over TCP too: ChannelData padded, and Send indications.
    let mut tcp = TcpClient::allocate(server.listener("tcp").unwrap(), "alice", "wonderland", UDP);
    let answer = tcp.request(CHANNEL_BIND, |txid| {
        vec![(CHANNEL_NUMBER, vec![0x40, 0x01, 0, 0]), (XOR_PEER_ADDRESS, encode_xor_addr(peer_addr, txid))]
    });
    assert!(answer.is_success(), "{}", answer.describe());
    tcp.send(&encode_channel_data(0x4001, b"abc", true));
    let send = MessageBuilder::new(Class::Indication, SEND);
    let send =
        send.clone().attr(XOR_PEER_ADDRESS, encode_xor_addr(peer_addr, &send.txid)).attr(DATA_ATTR, b"x".to_vec());
    tcp.send(&send.encode(None, true));
    tcp.send(&send.encode(None, true));
    tcp.handled_so_far();
    assert!(client.binding().is_success(), "the UDP client's payloads are handled too");

    let (channel_data, sends) = (CHANNEL_DATA + 1, SENDS + 2);
    assert_eq!(common::drain_datagrams(&peer), channel_data + sends);
    assert_samples(
        &metrics(&http),
        &[
            ("turnd_client_payloads_total{kind=\"channel_data\"}", channel_data as f64),
            ("turnd_client_payloads_total{kind=\"send_indication\"}", sends as f64),
            ("turnd_relayed_packets_total{direction=\"client_to_peer\"}", (channel_data + sends) as f64),
        ],
    );
}

#[test]
fn tcp_connections_and_binding_requests_are_counted() {
    let (server, http) = start(NO_RATE_LIMITS);
    let tcp = server.listener("tcp").expect("a tcp listener");
    // Two Bindings over UDP, one over a TCP connection that stays open, then one closes.
    let mut udp = TurnClient::new(server.addr);
    assert!(udp.binding().is_success() && udp.binding().is_success());
    let mut open = TcpClient::allocate(tcp, "alice", "wonderland", UDP);
    open.handled_so_far();
    let connection = |n: &str, t: &str| format!("turnd_connections_{n}{{transport=\"{t}\"}}");
    let text = wait_for(
        &http,
        &[
            ("turnd_binding_requests_total", 3.0),
            (&connection("opened_total", "tcp"), 1.0),
            (&connection("active", "tcp"), 1.0),
            (&connection("closed_total", "tcp"), 0.0),
            (&connection("opened_total", "tls"), 0.0),
            ("turnd_connections_refused_total", 0.0),
        ],
    );
    assert!(text.contains("# TYPE turnd_connections_active gauge"), "{text}");
    drop(open);
    wait_for(&http, &[(&connection("closed_total", "tcp"), 1.0), (&connection("active", "tcp"), 0.0)]);
}

#[test]
fn connections_over_the_per_ip_limit_are_refused_and_counted() {
    let (server, http) = start("[limits]\nmax-connections = 2\nmax-connections-per-ip = 1\n");
    let tcp = server.listener("tcp").expect("a tcp listener");
    let mut first = TcpClient::allocate(tcp, "alice", "wonderland", UDP);
    // A second connection from 127.0.0.1 is closed at once: reading gets end of file.
    let mut second = TcpStream::connect(tcp).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(second.read(&mut [0u8; 1]).unwrap_or(0), 0, "the refused connection is closed");
    wait_for(&http, &[("turnd_connections_refused_total", 1.0)]);
    first.handled_so_far();
}

/// A turnd, its API, and a client with channel 0x4000 bound to a loopback peer socket.
struct Channel {
    server: Server,
    http: Http,
    peer: UdpSocket,
    client: TurnClient,
    relayed: SocketAddr,
}

fn channel_to_a_peer() -> Channel {
    let (server, http) = start("");
    let (peer, peer_addr) = common::peer_socket("127.0.0.1");
    let mut client = TurnClient::new(server.addr);
    let relayed = client.allocate("alice", "wonderland").unwrap();
    client.channel_bind(0x4000, peer_addr).unwrap();
    Channel { server, http, peer, client, relayed }
}

/// Receives `payloads` at the peer, in order, each from `relayed`.
fn expect_at_peer<'p>(peer: &UdpSocket, relayed: SocketAddr, payloads: impl IntoIterator<Item = &'p Vec<u8>>) {
    for (i, payload) in payloads.into_iter().enumerate() {
        let (got, from) = common::recv_peer(peer);
        assert_eq!((from, &got), (relayed, payload), "payload {i} at the peer");
    }
}

/// Receives `payloads` at the client, in order, each as ChannelData on channel 0x4000.
fn expect_at_client<'p>(client: &mut TurnClient, payloads: impl IntoIterator<Item = &'p Vec<u8>>) {
    for (i, payload) in payloads.into_iter().enumerate() {
        match client.recv_data(Duration::from_secs(5)) {
            Some(Incoming::ChannelData { channel: 0x4000, data }) => assert_eq!(&data, payload, "payload {i}"),
            other => panic!("payload {i} at the client: {other:?}"),
        }
    }
}

/// A video frame's packets sent as one UDP GSO send, which on loopback stays one until the
/// receiving socket (as a NIC's GRO would deliver a burst): turnd reads each burst in one GRO
/// receive and relays it whole and in order, the client's to the peer in one GSO send and the
/// peer's back to the client in another; every datagram is still counted.
#[test]
fn gso_bursts_are_read_in_one_receive_and_relayed_whole_each_way() {
    let Channel { server, http, peer, mut client, relayed } = channel_to_a_peer();
    // Nine payloads of 1,200 bytes and a last, shorter one.
    let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; if i == 9 { 500 } else { 1200 }]).collect();
    let frames: Vec<Vec<u8>> = payloads.iter().map(|p| encode_channel_data(0x4000, p, false)).collect();
    let segments: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    turnd::io::gso::send_segments(client.sock.as_raw_fd(), Some(server.addr), &segments)
        .expect("a GSO send on loopback");
    expect_at_peer(&peer, relayed, &payloads);
    let back: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    turnd::io::gso::send_segments(peer.as_raw_fd(), Some(relayed), &back).expect("a GSO send on loopback");
    expect_at_client(&mut client, &payloads);
    wait_for(
        &http,
        &[
            ("turnd_relayed_packets_total{direction=\"client_to_peer\"}", 10.0),
            ("turnd_relayed_packets_total{direction=\"peer_to_client\"}", 10.0),
            ("turnd_client_payloads_total{kind=\"channel_data\"}", 10.0),
            ("turnd_gro_receives_total", 2.0),
            ("turnd_gso_sends_total", 2.0),
        ],
    );
}

/// Waits (bounded) until every thread of process `pid` is stopped (SIGSTOP has taken hold).
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().all(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis.
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    };
    while !stopped() {
        assert!(Instant::now() < deadline, "turnd (pid {pid}) did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Datagrams a client sends back to back (as a browser sends a video frame, one `sendmmsg`
/// entry each) that turnd reads in one `recvmmsg` are relayed as a GRO burst is: the runs of
/// ChannelData to the peer leave in one GSO send each, in order; a message that takes another
/// path (here ChannelData on an unbound channel, dropped) ends a run and is handled on its own.
/// turnd is stopped while they are sent, so all of them wait in one receive queue.
#[test]
fn datagrams_sent_in_a_row_leave_in_one_gso_send_per_run() {
    let Channel { server, http, peer, client, relayed } = channel_to_a_peer();
    server.signal("STOP");
    wait_stopped(server.pid());
    let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 1000]).collect();
    for payload in &payloads[..4] {
        client.channel_data(0x4000, payload);
    }
    client.channel_data(0x4001, b"no such channel");
    for payload in &payloads[4..] {
        client.channel_data(0x4000, payload);
    }
    server.signal("CONT");
    expect_at_peer(&peer, relayed, &payloads);
    let text = wait_for(
        &http,
        &[
            ("turnd_relayed_packets_total{direction=\"client_to_peer\"}", 8.0),
            ("turnd_client_payloads_total{kind=\"channel_data\"}", 8.0),
            ("turnd_gso_sends_total", 2.0),
        ],
    );
    assert_samples(&text, &[("turnd_gro_receives_total", 0.0)]);
}

/// What a peer sends while turnd is stopped waits in the relay socket's queue: three
/// datagrams, a GSO burst and one more. turnd reads them receive by receive until the queue is
/// empty and relays all of them to the client in order: the three in one GSO send, the burst
/// (each datagram given its own header room) in another, the last on its own.
#[test]
fn a_relay_queue_of_datagrams_and_a_burst_reaches_the_client_whole_and_in_order() {
    let Channel { server, http, peer, mut client, relayed } = channel_to_a_peer();
    server.signal("STOP");
    wait_stopped(server.pid());
    let singles: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 700]).collect();
    let burst: Vec<Vec<u8>> = (10..15u8).map(|i| vec![i; if i == 14 { 500 } else { 1000 }]).collect();
    for payload in &singles[..3] {
        peer.send_to(payload, relayed).unwrap();
    }
    let segments: Vec<&[u8]> = burst.iter().map(Vec::as_slice).collect();
    turnd::io::gso::send_segments(peer.as_raw_fd(), Some(relayed), &segments).expect("a GSO send on loopback");
    peer.send_to(&singles[3], relayed).unwrap();
    server.signal("CONT");
    expect_at_client(&mut client, singles[..3].iter().chain(&burst).chain(&singles[3..]));
    wait_for(
        &http,
        &[
            ("turnd_relayed_packets_total{direction=\"peer_to_client\"}", 9.0),
            ("turnd_gro_receives_total", 1.0),
            ("turnd_gso_sends_total", 2.0),
        ],
    );
}

/// Clumps of ChannelData far above 10,000 a second make the worker sleep receive-coalescing
/// windows, which are counted; each clump, sent once the one before has all arrived, gets
/// through whole and in order: the drain after a window stops at a short batch, and nothing is
/// left unread waiting for a later datagram (there is none until the clump is through).
#[test]
fn coalescing_sleeps_are_counted_and_leave_nothing_behind() {
    let Channel { server: _server, http, peer, client, relayed } = channel_to_a_peer();
    assert_samples(&metrics(&http), &[("turnd_receive_coalesce_sleeps_total", 0.0)]);
    const CLUMP: u32 = 20;
    for clump in 0..200 {
        for k in 0..CLUMP {
            client.channel_data(0x4000, &(clump * CLUMP + k).to_be_bytes());
        }
        for k in 0..CLUMP {
            let (got, from) = common::recv_peer(&peer);
            assert_eq!(
                (from, got),
                (relayed, (clump * CLUMP + k).to_be_bytes().to_vec()),
                "clump {clump}, payload {k}"
            );
        }
    }
    wait_until(&http, "a coalescing sleep counted", |text| sample(text, "turnd_receive_coalesce_sleeps_total") > 0.0);
}
