//! Mobility (RFC 8016) over the wire: an allocation moved from one UDP socket to another keeps
//! relaying, only its owner can move it, and coturn's `turnutils_uclient -M` gets the same
//! outcome from turnd as from coturn.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::client::*;
use common::coturn::{parse_uclient, run_with_timeout, tool, Coturn, Peer, UCLIENT_TIMEOUT};
use common::{peer_socket, recv_peer, Config, Server};

const MOBILITY_TICKET: u16 = 0x8030;
const WAIT: Duration = Duration::from_secs(5);

fn mobile_server() -> Server {
    let toml = Config::default().to_toml().replacen("[server]\n", "[server]\nmobility = true\n", 1);
    Server::turnd(&toml)
}

/// Allocates asking for a ticket; returns the relayed address and the answer.
fn allocate_mobile(c: &mut TurnClient, user: &str, pass: &str) -> (SocketAddr, Response) {
    c.set_credentials(user, pass);
    let resp = c.request(ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]), (MOBILITY_TICKET, vec![])]);
    let relayed = resp.xor_relayed().unwrap_or_else(|| panic!("Allocate failed: {}", resp.describe()));
    (relayed, resp)
}

fn ticket(resp: &Response) -> Vec<u8> {
    resp.get(MOBILITY_TICKET).unwrap_or_else(|| panic!("no MOBILITY-TICKET: {}", resp.describe())).to_vec()
}

/// Moves `c` to a fresh UDP socket (a new 5-tuple) and sends a Refresh with `ticket` from it;
/// returns the old socket and the answer.
fn move_client(c: &mut TurnClient, ticket: &[u8]) -> (UdpSocket, Response) {
    let old = std::mem::replace(&mut c.sock, UdpSocket::bind("127.0.0.1:0").unwrap());
    let resp = c.request(REFRESH, vec![(LIFETIME, 600u32.to_be_bytes().to_vec()), (MOBILITY_TICKET, ticket.to_vec())]);
    (old, resp)
}

/// Whether `sock` has a datagram waiting (without waiting for one).
fn has_datagram(sock: &UdpSocket) -> bool {
    sock.set_nonblocking(true).unwrap();
    let got = sock.recv_from(&mut [0u8; 2048]).is_ok();
    sock.set_nonblocking(false).unwrap();
    got
}

#[test]
fn an_allocation_moves_to_a_new_socket_and_keeps_relaying() {
    let server = mobile_server();
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    let mut c = TurnClient::new(server.addr);
    let (relayed, resp) = allocate_mobile(&mut c, "alice", "wonderland");
    let mut current = ticket(&resp);
    c.channel_bind(0x4001, peer_addr).unwrap();
    // Several moves: with two workers the new sockets land on either of them.
    for round in 0..4u8 {
        let (old, resp) = move_client(&mut c, &current);
        assert_eq!(resp.error_code(), None, "move {round}: {}", resp.describe());
        let fresh = ticket(&resp);
        assert_ne!(fresh, current, "move {round}: the ticket rotates");
        assert_eq!(resp.lifetime(), Some(600));

        c.channel_data(0x4001, &[round; 3]);
        let (data, from) = recv_peer(&peer);
        assert_eq!((data, from), (vec![round; 3], relayed), "move {round}: same relayed address");
        peer.send_to(b"back", relayed).unwrap();
        match c.recv_data(WAIT) {
            Some(Incoming::ChannelData { channel: 0x4001, data }) => assert_eq!(data, b"back"),
            other => panic!("move {round}: expected the peer's reply at the new socket, got {other:?}"),
        }
        assert!(!has_datagram(&old), "move {round}: the old 5-tuple still gets peer data");

        // The old 5-tuple has no allocation any more, and the spent ticket moves nothing.
        let new = std::mem::replace(&mut c.sock, old);
        assert_eq!(c.refresh(600).unwrap_err().code, 437, "move {round}");
        let resp = c.request(REFRESH, vec![(MOBILITY_TICKET, current.clone())]);
        assert_eq!(resp.error_code(), Some(437), "move {round}: {}", resp.describe());
        c.sock = new;
        current = fresh;
    }
    assert_eq!(c.refresh(0), Ok(0));
}

#[test]
fn only_the_owner_can_move_an_allocation() {
    let server = mobile_server();
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    let mut alice = TurnClient::new(server.addr);
    let (relayed, resp) = allocate_mobile(&mut alice, "alice", "wonderland");
    let stolen = ticket(&resp);
    alice.create_permission(peer_addr).unwrap();

    // Another user who saw the ticket on the wire, with valid credentials of his own (REST).
    let mut mallory = TurnClient::new(server.addr);
    let (rest_user, rest_pass) = common::keys::rest_credentials("s3cret", "mallory", common::unix_now() + 3600);
    mallory.set_credentials(&rest_user, &rest_pass);
    let resp = mallory.request(REFRESH, vec![(MOBILITY_TICKET, stolen.clone())]);
    assert_eq!(resp.error_code(), Some(441), "{}", resp.describe());
    // Nothing moved: Alice's relay still delivers to her own socket.
    alice.send_indication(peer_addr, b"still mine");
    assert_eq!(recv_peer(&peer), (b"still mine".to_vec(), relayed));
    peer.send_to(b"to alice", relayed).unwrap();
    assert!(matches!(alice.recv_data(WAIT), Some(Incoming::Data { .. })));
    assert!(!has_datagram(&mallory.sock));
    // A made-up ticket is refused as well, and the owner's ticket still works.
    let resp = mallory.request(REFRESH, vec![(MOBILITY_TICKET, vec![b'A'; stolen.len()])]);
    assert_eq!(resp.error_code(), Some(437), "{}", resp.describe());
    let (_, resp) = move_client(&mut alice, &stolen);
    assert_eq!(resp.error_code(), None, "{}", resp.describe());
}

#[test]
fn mobility_is_off_by_default() {
    let server = Config::default().start();
    let mut c = TurnClient::new(server.addr);
    c.set_credentials("alice", "wonderland");
    let resp = c.request(ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]), (MOBILITY_TICKET, vec![])]);
    assert_eq!(resp.error_code(), Some(405), "{}", resp.describe());
}

/// uclient with `-M` allocates with a ticket, reopens its socket (a new 5-tuple), moves the
/// allocation with a Refresh (sent twice), then relays through it.
fn uclient_mobile(port: u16, peer: &Peer, flags: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(tool("turnutils_uclient"));
    cmd.args(["-X", "-c", "-z", "5", "-M", "-p", &port.to_string(), "-n", "200", "-m", "2"]).args(flags);
    cmd.args(["-e", "127.0.0.1", "-r", &peer.port.to_string(), "-u", "alice", "-w", "wonderland", "127.0.0.1"]);
    run_with_timeout(cmd, UCLIENT_TIMEOUT)
}

#[test]
fn uclient_mobility_matches_coturn() {
    let peer = Peer::start();
    let coturn = Coturn::start(&["--mobility"]);
    let turnd = mobile_server();
    let (_, with_coturn) = uclient_mobile(coturn.port, &peer, &[]);
    let (ok, with_turnd) = uclient_mobile(turnd.addr.port(), &peer, &[]);
    let coturn_summary = parse_uclient(&with_coturn).unwrap_or_else(|e| panic!("coturn: {e}\n{with_coturn}"));
    let turnd_summary = parse_uclient(&with_turnd).unwrap_or_else(|e| panic!("turnd: {e}\n{with_turnd}"));
    assert!(ok, "uclient -M against turnd failed:\n{with_turnd}");
    assert_eq!((coturn_summary.sent, coturn_summary.lost), (400, 0), "{coturn_summary:?}");
    assert_eq!(
        (turnd_summary.sent, turnd_summary.received, turnd_summary.lost),
        (coturn_summary.sent, coturn_summary.received, coturn_summary.lost),
        "turnd {turnd_summary:?} coturn {coturn_summary:?}\n{with_turnd}"
    );
}

#[test]
fn uclient_mobility_without_it_fails_as_with_coturn() {
    let peer = Peer::start();
    let coturn = Coturn::start(&[]);
    let turnd = Config::default().start();
    for (name, port) in [("coturn", coturn.port), ("turnd", turnd.addr.port())] {
        let (ok, out) = uclient_mobile(port, &peer, &[]);
        assert!(!ok, "{name}: uclient -M succeeded without mobility:\n{out}");
        assert!(out.contains("error 405 (Mobility Forbidden)"), "{name}:\n{out}");
    }
}

/// Over TCP turnd hands out no ticket (the allocation ends with its connection), so uclient
/// `-M -t` keeps its connection and relays as without `-M`. (coturn 4.6.1 issues one, and
/// uclient then fails when it reconnects: no comparison here.)
#[test]
fn uclient_mobility_over_tcp_relays_without_moving() {
    let peer = Peer::start();
    let turnd = mobile_server();
    let (ok, out) = uclient_mobile(turnd.addr.port(), &peer, &["-t"]);
    let s = parse_uclient(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(ok, "{out}");
    assert_eq!((s.sent, s.received, s.lost), (400, 400, 0), "{out}");
}
