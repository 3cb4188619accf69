//! turnd driven by coturn's test tools (`turnutils_uclient`, `turnutils_peer`,
//! `turnutils_stunclient`). CI installs coturn; a missing tool fails the test.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::coturn::{self, parse_uclient, run_with_timeout, tool, Coturn, Peer, UclientSummary, UCLIENT_TIMEOUT};
use common::{Config, Server};

enum Auth {
    /// TURN REST credentials from the shared secret, for this user name.
    Rest(&'static str),
    /// turnd's static user alice/wonderland.
    Static,
}

/// Runs uclient against `server` and asserts that every message came back.
fn uclient(server: &Server, peer: Option<&Peer>, auth: Auth, flags: &[&str], n: u64, m: u64) {
    let args: Vec<&str> = match auth {
        Auth::Rest(user) => vec!["-W", "s3cret", "-u", user],
        Auth::Static => vec!["-u", "alice", "-w", "wonderland"],
    };
    coturn::uclient(server, peer, &args, flags, n, m);
}

fn server() -> Server {
    Config::default().start()
}

#[test]
fn uclient_channels_rest_auth() {
    let peer = Peer::start();
    let s = server();
    uclient(&s, Some(&peer), Auth::Rest("bob"), &[], 1000, 10);
}

#[test]
fn uclient_channels_static_user() {
    let peer = Peer::start();
    let s = server();
    uclient(&s, Some(&peer), Auth::Static, &[], 300, 5);
}

#[test]
fn uclient_send_indications_static_user() {
    let peer = Peer::start();
    let s = server();
    uclient(&s, Some(&peer), Auth::Static, &["-s"], 300, 5);
}

#[test]
fn uclient_send_indications_rest_auth() {
    let peer = Peer::start();
    let s = server();
    uclient(&s, Some(&peer), Auth::Rest("carol"), &["-s"], 300, 5);
}

#[test]
fn uclient_client_to_client_rest_auth() {
    let s = server();
    uclient(&s, None, Auth::Rest("dave"), &["-y"], 300, 4);
}

#[test]
fn uclient_client_to_client_send_indications_static_user() {
    let s = server();
    uclient(&s, None, Auth::Static, &["-y", "-s"], 300, 2);
}

#[test]
fn uclient_dont_fragment_static_user() {
    let peer = Peer::start();
    let s = server();
    uclient(&s, Some(&peer), Auth::Static, &["-g"], 300, 2);
}

#[test]
fn uclient_dont_fragment_send_indications_rest_auth() {
    let peer = Peer::start();
    let s = server();
    uclient(&s, Some(&peer), Auth::Rest("erin"), &["-g", "-s"], 300, 2);
}

/// Extracts `A.B.C.D:PORT` from stunclient's `IPv4. UDP reflexive addr: 127.0.0.1:33516`.
// TURN over TCP (RFC 8656 §3.1): the client's control connection is TCP, relaying stays UDP.
#[test]
fn uclient_tcp_channels_rest_auth() {
    let peer = Peer::start();
    let server = server();
    uclient(&server, Some(&peer), Auth::Rest("tcp-user"), &["-t"], 1000, 10);
}

#[test]
fn uclient_tcp_send_indications_static_user() {
    let peer = Peer::start();
    let server = server();
    uclient(&server, Some(&peer), Auth::Static, &["-t", "-s"], 200, 5);
}

#[test]
fn uclient_tcp_client_to_client_static_user() {
    let server = server();
    uclient(&server, None, Auth::Static, &["-t", "-y"], 200, 4);
}

// TCP relays (RFC 6062). With -T uclient pairs two TCP allocations that Connect to each
// other's relayed address, so Connect, ConnectionAttempt and ConnectionBind all run.
#[test]
fn uclient_tcp_relay_rfc6062() {
    let peer = Peer::start();
    let server = server();
    uclient(&server, Some(&peer), Auth::Static, &["-T"], 200, 4);
}

/// Runs uclient against 127.0.0.1:`port` and returns its summary.
fn uclient_summary(port: u16, flags: &[&str], n: u64, m: u64) -> UclientSummary {
    let mut cmd = Command::new(tool("turnutils_uclient"));
    cmd.args(["-X", "-c", "-z", "5", "-p", &port.to_string(), "-n", &n.to_string(), "-m", &m.to_string()]);
    cmd.args(["-u", "alice", "-w", "wonderland"]).args(flags).arg("127.0.0.1");
    let (_, out) = run_with_timeout(cmd, UCLIENT_TIMEOUT);
    parse_uclient(&out).unwrap_or_else(|e| panic!("uclient {flags:?} on {port}: {e}\n{out}"))
}

// Passive TCP relay (-P): uclient's own peer connects in to the relayed address, turnd sends a
// ConnectionAttempt and the client binds a data connection. uclient 4.6.1 counts only half of
// the messages in this mode even against coturn, so the test holds turnd to coturn's result.
#[test]
fn uclient_passive_tcp_relay_matches_coturn() {
    let server = server();
    let coturn = Coturn::start(&[]);
    let with_coturn = uclient_summary(coturn.port, &["-T", "-P"], 200, 2);
    let with_turnd = uclient_summary(server.addr.port(), &["-T", "-P"], 200, 2);
    assert!(with_turnd.received > 0, "{with_turnd:?}");
    assert_eq!(with_turnd.sent, with_coturn.sent, "turnd {with_turnd:?} coturn {with_coturn:?}");
    assert!(with_turnd.received >= with_coturn.received, "turnd {with_turnd:?} coturn {with_coturn:?}");
}

/// turnd with a TLS listener on a self-signed certificate (uclient does not verify it unless
/// given -E). Returns the server, its TLS address, and the directory holding the PEM files.
fn tls_server() -> (Server, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("fullchain.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.path().join("privkey.pem"), generated.key_pair.serialize_pem()).unwrap();
    let tls = format!(
        "[server]\ntls-listen = [\"127.0.0.1:0\"]\ncert = {:?}\nkey = {:?}\n",
        dir.path().join("fullchain.pem").display().to_string(),
        dir.path().join("privkey.pem").display().to_string()
    );
    let toml = Config::default().to_toml().replacen("[server]\n", &tls, 1);
    let server = Server::turnd(&toml);
    let addr = server.listener("tls").expect("a tls= item in the ready line");
    (server, addr, dir)
}

/// Runs uclient over TLS to `tls` and asserts every message came back.
///
/// uclient 4.6.1 picks a TLS context at random for each of its connections (three per run
/// here): the flexible one, or fixed TLS 1.0, 1.1 or 1.2. turnd refuses TLS 1.0 and 1.1 by
/// design, with a handshake_failure alert; uclient then reconnects with a new random context.
/// So a run may show refused handshakes, and each of them must be such a version refusal,
/// while every connection that carried traffic negotiated TLS 1.2 or 1.3.
fn uclient_tls(tls: SocketAddr, peer: Option<&Peer>, flags: &[&str], n: u64) {
    let mut cmd = Command::new(tool("turnutils_uclient"));
    cmd.args(["-X", "-c", "-z", "5", "-t", "-S", "-p", &tls.port().to_string()]);
    cmd.args(["-n", &n.to_string(), "-m", "1", "-u", "alice", "-w", "wonderland"]);
    if let Some(p) = peer {
        cmd.args(["-e", "127.0.0.1", "-r", &p.port.to_string()]);
    }
    cmd.args(flags).arg("127.0.0.1");
    let (_, out) = run_with_timeout(cmd, UCLIENT_TIMEOUT);
    for line in out.lines().filter(|l| l.contains("SSL routines")) {
        assert!(
            line.contains("alert handshake failure"),
            "a refused handshake that is not a version refusal: {line}\n{out}"
        );
    }
    let methods: Vec<&str> = out.lines().filter_map(|l| l.split("method=").nth(1)).map(str::trim).collect();
    assert!(!methods.is_empty(), "no TLS handshake completed:\n{out}");
    assert!(methods.iter().all(|m| *m == "TLSv1.3" || *m == "TLSv1.2"), "{methods:?}\n{out}");
    let s = parse_uclient(&out).unwrap_or_else(|e| panic!("uclient over TLS {flags:?}: {e}\n{out}"));
    assert_eq!((s.sent, s.received, s.lost), (n, n, 0), "{s:?}\n{out}");
}

// TURN over TLS (TURNS): channels and Send indications through rustls.
#[test]
fn uclient_tls_channels_and_send_indications() {
    let peer = Peer::start();
    let (_server, tls, _dir) = tls_server();
    uclient_tls(tls, Some(&peer), &[], 300);
    uclient_tls(tls, Some(&peer), &["-s"], 200);
}

fn parse_reflexive(out: &str) -> Option<SocketAddr> {
    let line = out.lines().find(|l| l.contains("reflexive addr:"))?;
    let v = line.split("reflexive addr:").nth(1)?.trim();
    v.parse().ok()
}

#[test]
fn stunclient_reports_client_address() {
    let s = server();
    let mut cmd = Command::new(tool("turnutils_stunclient"));
    cmd.args(["-L", "127.0.0.1", "-p", &s.addr.port().to_string(), "127.0.0.1"]);
    let (ok, out) = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(ok, "stunclient failed:\n{out}");
    let a = parse_reflexive(&out).unwrap_or_else(|| panic!("no reflexive address in stunclient output:\n{out}"));
    assert_eq!(a.ip().to_string(), "127.0.0.1", "{out}");
    assert_ne!(a.port(), 0, "{out}");
    assert_ne!(a.port(), s.addr.port(), "reflexive port is the server's own port:\n{out}");
}

/// stunclient picks its own port, so to compare against the exact client address the
/// request goes through a forwarder whose server-facing socket the test knows: turnd must
/// report exactly that socket's address, and stunclient must decode it.
#[test]
fn stunclient_reports_exact_address_through_forwarder() {
    let s = server();
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back_addr = back.local_addr().unwrap();
    let front_port = front.local_addr().unwrap().port();
    let target = s.addr;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let fwd = std::thread::spawn(move || {
        front.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        back.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 2048];
        let mut client: Option<SocketAddr> = None;
        let mut forwarded = 0u32;
        // Bounded: at most 30 s and 100 datagrams each way.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && forwarded < 200 && stop_rx.try_recv().is_err() {
            if let Ok((n, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                back.send_to(&buf[..n], target).unwrap();
                forwarded += 1;
            }
            if let Ok((n, from)) = back.recv_from(&mut buf) {
                if let (Some(c), true) = (client, from == target) {
                    front.send_to(&buf[..n], c).unwrap();
                    forwarded += 1;
                }
            }
        }
        forwarded
    });
    let mut cmd = Command::new(tool("turnutils_stunclient"));
    cmd.args(["-L", "127.0.0.1", "-p", &front_port.to_string(), "127.0.0.1"]);
    let (ok, out) = run_with_timeout(cmd, Duration::from_secs(30));
    let _ = stop_tx.send(());
    let forwarded = fwd.join().unwrap();
    assert!(ok, "stunclient failed (forwarded {forwarded} datagrams):\n{out}");
    let a = parse_reflexive(&out).unwrap_or_else(|| panic!("no reflexive address in stunclient output:\n{out}"));
    assert_eq!(a, back_addr, "turnd's XOR-MAPPED-ADDRESS as decoded by coturn:\n{out}");
}

#[test]
fn uclient_summary_parser() {
    let out = "2: : start_mclient: msz=2, tot_send_msgs=76, tot_recv_msgs=75, tot_send_bytes ~ 7600\n\
               2: : start_mclient: tot_send_msgs=100, tot_recv_msgs=99\n\
               2: : Total transmit time is 2\n\
               2: : Total lost packets 1 (1.000000%), total send dropped 0 (0.000000%)\n";
    let s = parse_uclient(out).unwrap();
    assert_eq!((s.sent, s.received, s.lost, s.transmit_time), (100, 99, 1, Some(2)));
    assert_eq!(s.lost_percent, 1.0);
    assert!(parse_uclient("0: : ERROR: Cannot complete Allocation\n").is_err());
    assert_eq!(
        parse_reflexive("0: : IPv4. UDP reflexive addr: 127.0.0.1:33516\n"),
        Some("127.0.0.1:33516".parse().unwrap())
    );
}
