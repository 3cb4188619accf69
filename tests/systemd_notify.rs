//! systemd integration without systemd: turnd is started with our own unix datagram socket as
//! NOTIFY_SOCKET and a watchdog interval, and must send READY=1 once its listeners answer,
//! WATCHDOG=1 while its workers are alive, STATUS=, and STOPPING=1 on SIGTERM.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Config;

/// Reads notifications until one contains `what` (bounded by `within`); returns all seen.
fn wait_for(socket: &UnixDatagram, what: &str, within: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == what)) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {what} within {within:?}; got {seen:?}");
        socket.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

fn binding_answered(server: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut request = [0u8; 20];
    request[..2].copy_from_slice(&[0x00, 0x01]);
    request[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    request[8..].fill(7);
    socket.send_to(&request, server).unwrap();
    let mut buf = [0u8; 256];
    matches!(socket.recv(&mut buf), Ok(n) if n >= 20 && buf[..2] == [0x01, 0x01])
}

#[test]
fn ready_watchdog_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let config_path = dir.path().join("turnserver.toml");
    std::fs::write(&config_path, Config::default().to_toml()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_turnd"))
        .arg("--config")
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    wait_for(&notify, "READY=1", Duration::from_secs(10), &mut seen);
    // READY=1 comes after the ready line, when the listener answers.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let udp: SocketAddr = line
        .split_whitespace()
        .find_map(|item| item.strip_prefix("udp=")?.parse().ok())
        .unwrap_or_else(|| panic!("ready line: {line:?}"));
    assert!(binding_answered(udp), "the listener answers once READY=1 was sent");

    wait_for(&notify, "WATCHDOG=1", Duration::from_secs(5), &mut seen);
    assert!(seen.iter().any(|m| m.starts_with("STATUS=") && m.contains("allocations active")), "{seen:?}");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for(&notify, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "turnd exits 0 on SIGTERM: {exit:?}");
}
