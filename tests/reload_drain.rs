//! Operation without dropping calls: SIGHUP reloads the configuration while allocations keep
//! relaying; SIGTERM drains (no new allocations, existing ones relay) and exits 0 when the last
//! allocation ends. All on loopback.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::client::{rest_credentials, TurnClient};
use common::{unix_now, Config, Server};

const WAIT: Duration = Duration::from_secs(5);

fn peer() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Sends through `client`'s allocation and checks that the peer receives it.
fn relays(client: &TurnClient, peer: &UdpSocket, peer_addr: SocketAddr, payload: &[u8]) {
    client.send_indication(peer_addr, payload);
    let mut buf = [0u8; 256];
    let (n, _) = peer.recv_from(&mut buf).expect("the peer receives the relayed data");
    assert_eq!(&buf[..n], payload);
}

fn rest_client(server: &Server, secret: &str, user: &str) -> (TurnClient, Result<SocketAddr, u16>) {
    let (name, pass) = rest_credentials(secret, user, unix_now() + 3600);
    let mut c = TurnClient::new(server.addr);
    let result = c.allocate(&name, &pass).map_err(|e| e.code);
    (c, result)
}

#[test]
fn sighup_reloads_secrets_and_keeps_allocations_relaying() {
    let config = Config::default();
    let server = config.start();
    let (peer, peer_addr) = peer();
    let (mut old, allocated) = rest_client(&server, "s3cret", "carol");
    allocated.expect("allocation with the first secret");
    old.create_permission(peer_addr).unwrap();
    relays(&old, &peer, peer_addr, b"before");

    let rotated = Config { secrets: vec!["n3w".into()], ..config.clone() };
    std::fs::write(server.config_path(), rotated.to_toml()).unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: configuration reloaded");

    relays(&old, &peer, peer_addr, b"after the reload");
    let refused = old.refresh(600).expect_err("Refresh with the removed secret");
    assert_eq!(refused.code, 401, "{refused}");
    let (_new, allocated) = rest_client(&server, "n3w", "dave");
    allocated.expect("the new secret is accepted");
    let (_stale, refused) = rest_client(&server, "s3cret", "erin");
    assert_eq!(refused, Err(401), "the removed secret is refused for new allocations");

    // A broken file is refused whole: the running configuration stays.
    std::fs::write(server.config_path(), "[server\nlisten = ").unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: configuration not reloaded");
    let (_again, allocated) = rest_client(&server, "n3w", "frank");
    allocated.expect("the running configuration stays after a broken reload");
    assert!(server.is_running());
}

#[test]
fn sigterm_drains_then_exits_when_the_last_allocation_ends() {
    let mut toml = Config::default().to_toml();
    toml.push_str("[limits]\ndrain-time = 60\n");
    let server = Server::turnd(&toml);
    let (peer, peer_addr) = peer();
    let mut existing = TurnClient::new(server.addr);
    existing.allocate("alice", "wonderland").expect("allocation before the drain");
    existing.create_permission(peer_addr).unwrap();

    server.signal("TERM");
    server.wait_for_log("draining");
    let mut late = TurnClient::new(server.addr);
    let refused = late.allocate("alice", "wonderland").expect_err("no new allocations while draining");
    assert_eq!(refused.code, 508, "{refused}");
    relays(&existing, &peer, peer_addr, b"still relaying");
    assert!(server.is_running(), "an allocation is still open");

    existing.refresh(0).expect("delete the last allocation");
    let status = server.wait_exit(Duration::from_secs(10)).expect("turnd exits once the last allocation ended");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_signal_stops_at_once() {
    let mut toml = Config::default().to_toml();
    toml.push_str("[limits]\ndrain-time = 600\n");
    let server = Server::turnd(&toml);
    let mut existing = TurnClient::new(server.addr);
    existing.allocate("alice", "wonderland").unwrap();
    server.signal("TERM");
    server.wait_for_log("draining");
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10)).expect("a second signal stops turnd");
    assert!(status.success(), "{status:?}");
}
