//! Operation without dropping calls: SIGHUP reloads the configuration while allocations keep
//! relaying; SIGTERM drains (no new allocations, existing ones relay) and exits 0 when the last
//! allocation ends. All on loopback.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::client::{long_term_key, rest_credentials, TurnClient, ALLOCATE, REQUESTED_TRANSPORT, UDP};
use common::{api, merge_toml, peer_socket, unix_now, Config, Server};

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
    let (peer, peer_addr) = peer_socket("127.0.0.1");
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
fn sighup_rereads_the_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::write(&secrets, "# one secret per line\nfile-old\n").unwrap();
    let config = Config { secrets: vec![], ..Config::default() };
    let file_key = format!("[auth]\nsecrets-file = \"{}\"\n", secrets.display());
    let server = Server::turnd(&merge_toml(&config.to_toml(), &file_key));
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    let (mut old, allocated) = rest_client(&server, "file-old", "carol");
    allocated.expect("allocation with the secret of the file");
    old.create_permission(peer_addr).unwrap();
    let (_, refused) = rest_client(&server, "file-new", "dave");
    assert_eq!(refused, Err(401), "a secret not yet in the file");

    // Rotation: the new secret added, the old one removed.
    std::fs::write(&secrets, "file-new\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: configuration reloaded");
    relays(&old, &peer, peer_addr, b"after the reload");
    let refused = old.refresh(600).expect_err("Refresh with the secret removed from the file");
    assert_eq!(refused.code, 401, "{refused}");
    let (_new, allocated) = rest_client(&server, "file-new", "dave");
    allocated.expect("the secret added to the file is accepted");
    let (_stale, refused) = rest_client(&server, "file-old", "erin");
    assert_eq!(refused, Err(401), "the removed secret is refused for new allocations");

    // A missing file is refused whole, with the reason; the running secrets stay.
    std::fs::remove_file(&secrets).unwrap();
    server.signal("HUP");
    server.wait_for_log("SIGHUP: configuration not reloaded");
    let log = server.stderr_so_far();
    assert!(log.contains("auth.secrets-file") && log.contains(&secrets.display().to_string()), "{log}");
    let (_again, allocated) = rest_client(&server, "file-new", "frank");
    allocated.expect("the running secrets stay after a failed reload");
}

#[test]
fn sigterm_drains_then_exits_when_the_last_allocation_ends() {
    let (server, http) = api::server("[limits]\ndrain-time = 60\n");
    assert_eq!(http.get("/readyz", &[], &[]).status, 200);
    let (peer, peer_addr) = peer_socket("127.0.0.1");
    let mut existing = TurnClient::new(server.addr);
    existing.allocate("alice", "wonderland").expect("allocation before the drain");
    existing.create_permission(peer_addr).unwrap();

    server.signal("TERM");
    server.wait_for_log("draining");
    let reply = http.get("/readyz", &[], &[]);
    assert_eq!((reply.status, reply.error().as_str()), (503, "not_ready"), "a draining turnd takes no new clients");
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

/// An Allocate from a new client; returns the error code and the ALTERNATE-SERVER it names,
/// after checking the answer's MESSAGE-INTEGRITY (a 300 to an authenticated request is signed).
fn redirected(server: &Server) -> (u16, Option<SocketAddr>) {
    let mut client = TurnClient::new(server.addr);
    client.set_credentials("alice", "wonderland");
    let answer = client.request(ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0])]);
    let key = long_term_key("alice", "turnd.test", "wonderland");
    assert_eq!(answer.verify_integrity(&key), Some(true), "{}", answer.describe());
    // ALTERNATE-SERVER is a plain (not XOR'd) address: family, port, IPv4.
    let alternate = answer.get(0x8023).map(|v| {
        assert_eq!((v.len(), v[1]), (8, 1), "an IPv4 address for an IPv4 client");
        SocketAddr::from(([v[4], v[5], v[6], v[7]], u16::from_be_bytes([v[2], v[3]])))
    });
    (answer.error_code().unwrap_or(0), alternate)
}

#[test]
fn a_draining_server_redirects_new_allocations_to_an_alternate() {
    let mut toml = Config::default().to_toml();
    toml = toml.replacen(
        "[server]\n",
        "[server]\nalternate-servers = [\"[2001:db8::7]:3478\", \"192.0.2.7:3478\", \"192.0.2.8:3478\"]\n",
        1,
    );
    toml.push_str("[limits]\ndrain-time = 60\n");
    let server = Server::turnd(&toml);
    let mut existing = TurnClient::new(server.addr);
    existing.allocate("alice", "wonderland").expect("allocations are local until the drain");
    server.signal("TERM");
    server.wait_for_log("draining");
    // 300 Try Alternate, taking the IPv4 alternates in turn (the client is IPv4).
    let first = redirected(&server);
    let second = redirected(&server);
    let expected: Vec<SocketAddr> = vec!["192.0.2.7:3478".parse().unwrap(), "192.0.2.8:3478".parse().unwrap()];
    assert_eq!((first.0, second.0), (300, 300));
    let mut got = vec![first.1.unwrap(), second.1.unwrap()];
    got.sort();
    assert_eq!(got, expected);
    existing.refresh(0).unwrap();
    assert!(server.wait_exit(Duration::from_secs(10)).expect("exits after the last allocation").success());
}

#[test]
fn redirect_all_makes_a_front_that_allocates_nothing() {
    let mut toml = Config::default().to_toml();
    toml = toml.replacen("[server]\n", "[server]\nalternate-servers = [\"192.0.2.7:3478\"]\nredirect-all = true\n", 1);
    let server = Server::turnd(&toml);
    for _ in 0..3 {
        assert_eq!(redirected(&server), (300, Some("192.0.2.7:3478".parse().unwrap())));
    }
    // Binding is still answered: a redirecting front is a STUN server too.
    assert!(TurnClient::new(server.addr).binding().is_success());
}
