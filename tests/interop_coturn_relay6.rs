//! coturn's `turnutils_uclient` against turnd's IPv6 relays (`-x`), dual allocations (`-Z`),
//! RTCP pairs (EVEN-PORT with RESERVATION-TOKEN: uclient's default without `-c`) and negative
//! tests (`-N`, `-R`). Each outcome asserted here is the one coturn 4.6's `turnserver` gives
//! the same command (compared by hand: listening on 127.0.0.1 and ::1, relay-ip both).
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::coturn::{parse_uclient, run_with_timeout, tool, Peer, UCLIENT_TIMEOUT};
use common::{free_udp_port, merge_toml, Config, Server};

/// turnd listening on 127.0.0.1 and ::1, relaying on both, no request rate limits (uclient
/// makes many requests at once).
fn server(extra: &str) -> Server {
    // One port on both addresses, as uclient takes one -p.
    let port = free_udp_port();
    let listen = vec![format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
    let base = Config { listen, ..Config::default() }.to_toml();
    let base = merge_toml(&base, "[limits]\nallocate-rate = 0\nchallenge-rate = 0\n");
    Server::turnd(&merge_toml(&base, &format!("[server]\nrelay-ip = [\"127.0.0.1\", \"::1\"]\n{extra}")))
}

/// Runs uclient (`-u alice -w wonderland`, 5 ms between packets) against turnd at `host`
/// with `flags`, bounded by `limit`; returns whether it exited successfully and its output.
fn uclient(server: &Server, host: &str, flags: &[&str], n: u64, m: u64, limit: Duration) -> (bool, String) {
    let mut cmd = Command::new(tool("turnutils_uclient"));
    cmd.args(["-z", "5", "-p", &server.addr.port().to_string(), "-n", &n.to_string(), "-m", &m.to_string()]);
    cmd.args(["-u", "alice", "-w", "wonderland"]).args(flags).arg(host);
    run_with_timeout(cmd, limit)
}

/// Runs uclient `-n 20 -m 1` with `flags` for at most `limit`, killing it if it stalls.
fn run_bounded(server: &Server, host: &str, flags: &[&str], limit: Duration) {
    let mut cmd = Command::new(tool("turnutils_uclient"));
    cmd.args(["-z", "5", "-p", &server.addr.port().to_string(), "-n", "20", "-m", "1"]);
    cmd.args(["-u", "alice", "-w", "wonderland"]).args(flags).arg(host);
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn uclient");
    let deadline = Instant::now() + limit;
    // Bounded polling of the child: there is no event to await for a process exit in std.
    while child.try_wait().expect("wait uclient").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every message uclient sent came back: `per_client` messages for each of `clients`.
fn assert_all_back(server: &Server, host: &str, flags: &[&str], n: u64, m: u64, expected: u64) {
    let (ok, out) = uclient(server, host, flags, n, m, UCLIENT_TIMEOUT);
    let summary = parse_uclient(&out).unwrap_or_else(|e| panic!("uclient {flags:?} {host}: {e}\n{out}"));
    assert_eq!((summary.sent, summary.received), (expected, expected), "uclient {flags:?} {host}\n{out}");
    assert_eq!(summary.lost, 0, "uclient {flags:?} {host}\n{out}");
    assert!(ok, "uclient {flags:?} {host} failed\n{out}");
}

// -x: REQUESTED-ADDRESS-FAMILY IPv6; -y: client to client; without -c each client also makes an
// RTCP allocation with the RESERVATION-TOKEN of its RTP one (EVEN-PORT R), so 2 x n x m.
#[test]
fn uclient_ipv6_relay_on_ipv6() {
    let s = server("");
    assert_all_back(&s, "::1", &["-x", "-y", "-c"], 100, 2, 200);
    assert_all_back(&s, "::1", &["-x", "-y"], 50, 2, 200);
    // An IPv6 peer (turnutils_peer on ::1), through channels and through Send indications.
    let peer = Peer::start_on("::1");
    let port = peer.port.to_string();
    assert_all_back(&s, "::1", &["-x", "-c", "-e", "::1", "-r", &port], 100, 2, 200);
    assert_all_back(&s, "::1", &["-x", "-c", "-s", "-e", "::1", "-r", &port], 100, 2, 200);
    // An IPv6 relay requested over IPv4.
    assert_all_back(&s, "127.0.0.1", &["-x", "-y", "-c"], 100, 2, 200);
}

// -Z: ADDITIONAL-ADDRESS-FAMILY (uclient sends the draft code point 0x8032); Refresh then names
// either family at random, which a dual allocation has both of.
#[test]
fn uclient_dual_allocation() {
    let s = server("");
    assert_all_back(&s, "127.0.0.1", &["-Z", "-y"], 100, 2, 200);
    assert_all_back(&s, "::1", &["-Z", "-y", "-x"], 100, 2, 200);
    let peer = Peer::start_on("::1");
    assert_all_back(&s, "::1", &["-Z", "-x", "-e", "::1", "-r", &peer.port.to_string()], 100, 2, 200);
}

// uclient's default: RTP/RTCP pairs (EVEN-PORT with the R bit, then RESERVATION-TOKEN). The
// counts are uclient's, the same against coturn: client to client the RTCP sessions double
// them for 2 clients but not for 4; with a peer they are not counted.
#[test]
fn uclient_rtcp_pairs_with_reservation_tokens() {
    let s = server("");
    assert_all_back(&s, "127.0.0.1", &["-X", "-y"], 100, 2, 400);
    assert_all_back(&s, "127.0.0.1", &["-X", "-y"], 100, 4, 400);
    let peer = Peer::start();
    assert_all_back(&s, "127.0.0.1", &["-X", "-e", "127.0.0.1", "-r", &peer.port.to_string()], 100, 2, 200);
}

// A client that sends no family (uclient without -x or -X, like browsers) on an IPv6 listener:
// uclient accepts only an IPv4 relay then (RFC 8656's default), as coturn gives. turnd's
// default "listener" gives IPv6 (pion's choice for browsers); default-family = "ipv4" is
// coturn's behaviour.
#[test]
fn uclient_without_family_on_ipv6_follows_default_family() {
    let s = server("default-family = \"ipv4\"\n");
    assert_all_back(&s, "::1", &["-y", "-c"], 100, 2, 200);
    assert_all_back(&s, "::1", &["-y"], 50, 2, 200);
    let s = server("");
    let (ok, out) = uclient(&s, "::1", &["-y", "-c"], 10, 2, UCLIENT_TIMEOUT);
    assert!(!ok && out.contains("relay addr cannot be received"), "uclient took an IPv6 relay:\n{out}");
    // On IPv4 both defaults give IPv4.
    assert_all_back(&s, "127.0.0.1", &["-y"], 50, 2, 200);
}

// -N: negative tests (random channel numbers, bad attributes); client to client every
// message still comes back, as with coturn. With a peer uclient's ChannelBind to a random
// number is refused with 400 by both servers.
#[test]
fn uclient_negative_tests() {
    let s = server("");
    assert_all_back(&s, "127.0.0.1", &["-N", "-y", "-X"], 50, 2, 200);
    assert_all_back(&s, "::1", &["-N", "-y", "-x"], 50, 2, 200);
    let peer = Peer::start();
    let flags = ["-N", "-X", "-c", "-e", "127.0.0.1", "-r", &peer.port.to_string()];
    let (ok, out) = uclient(&s, "127.0.0.1", &flags, 20, 1, UCLIENT_TIMEOUT);
    assert!(!ok && out.contains("error 400"), "{out}");
    assert!(s.is_running());
}

// -R: negative protocol tests (garbage and malformed messages between the real ones). uclient
// sometimes stalls on its own garbage against coturn too, so the run is bounded; what must hold
// is that turnd keeps serving: a clean run afterwards gets every message back.
#[test]
fn uclient_negative_protocol_tests() {
    let s = server("");
    for (host, family) in [("127.0.0.1", "-X"), ("::1", "-x")] {
        for flags in [["-R", "-y", family], ["-R", "-c", family]] {
            run_bounded(&s, host, &flags, Duration::from_secs(20));
            assert!(s.is_running(), "turnd died under uclient {flags:?}");
        }
        assert_all_back(&s, host, &["-y", "-c", family], 50, 2, 100);
    }
}
