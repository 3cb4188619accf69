//! TURN over TCP under abuse: idle connections (slowloris), garbage streams, non-STUN first
//! frames. All on loopback, bounded in count and time.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::client::TurnClient;
use common::{Config, Server};

/// A Binding request with transaction id `id`.
fn binding(id: u8) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[..2].copy_from_slice(&[0x00, 0x01]);
    m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    m[8..].fill(id);
    m
}

/// Sends a Binding request on `stream` and checks the success response that comes back.
fn binding_works(stream: &mut TcpStream, id: u8) {
    stream.write_all(&binding(id)).expect("send Binding");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut header = [0u8; 20];
    stream.read_exact(&mut header).expect("Binding response header");
    assert_eq!(&header[..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&header[8..], &[id; 12], "same transaction");
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).expect("Binding response body");
}

/// Waits (bounded by the read timeout) until the server closes `stream`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn tcp_server(extra_limits: &str) -> (Server, SocketAddr) {
    let mut toml = Config::default().to_toml();
    toml.push_str(extra_limits);
    let server = Server::turnd(&toml);
    let tcp = server.listener("tcp").expect("a tcp= item in the ready line");
    (server, tcp)
}

/// Raises this process's open-file limit so that it can hold the connections it opens.
fn raise_fd_limit() {
    let mut limit = libc_rlimit();
    limit.0 = limit.1;
    set_rlimit(limit);
}

fn libc_rlimit() -> (u64, u64) {
    let mut r = std::mem::MaybeUninit::<[u64; 2]>::uninit();
    // SAFETY: getrlimit fills a struct of two rlim_t (u64 on Linux x86_64 and aarch64).
    unsafe {
        extern "C" {
            fn getrlimit(resource: i32, rlim: *mut [u64; 2]) -> i32;
        }
        assert_eq!(getrlimit(7, r.as_mut_ptr()), 0);
        let [cur, max] = r.assume_init();
        (cur, max)
    }
}

fn set_rlimit((cur, max): (u64, u64)) {
    // SAFETY: setrlimit reads a struct of two rlim_t; 7 is RLIMIT_NOFILE on Linux.
    unsafe {
        extern "C" {
            fn setrlimit(resource: i32, rlim: *const [u64; 2]) -> i32;
        }
        assert_eq!(setrlimit(7, &[cur, max]), 0);
    }
}

#[test]
fn idle_connections_are_closed_after_the_timeout_and_others_are_served_meanwhile() {
    raise_fd_limit();
    let (server, tcp) = tcp_server("[limits]\nfirst-message-timeout = 2\nmax-connections-per-ip = 2000\n");
    let opened_at = Instant::now();
    let mut idle: Vec<TcpStream> =
        (0..1000).map(|i| TcpStream::connect(tcp).unwrap_or_else(|e| panic!("idle connection {i}: {e}"))).collect();
    // Meanwhile a new client is served, over TCP and over UDP.
    let mut fresh = TcpStream::connect(tcp).expect("a new connection");
    binding_works(&mut fresh, 1);
    let mut udp = TurnClient::new(server.addr);
    udp.allocate("alice", "wonderland").expect("a new client allocates while 1,000 connections idle");
    // The idle ones are still open right now (the timeout has not passed) ...
    if opened_at.elapsed() < Duration::from_millis(1500) {
        let probe = &mut idle[0];
        probe.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(probe.read(&mut b).map_err(|e| e.kind()), Err(ErrorKind::WouldBlock), "closed before the timeout");
        probe.set_nonblocking(false).unwrap();
    }
    // ... and every one of them is closed by the server after it.
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(closed_by_server(stream, Duration::from_secs(20)), "idle connection {i} was not closed");
    }
    // The client that spoke is still served.
    binding_works(&mut fresh, 2);
}

#[test]
fn a_connection_that_goes_idle_without_an_allocation_is_closed() {
    let (_server, tcp) = tcp_server("[limits]\nidle-timeout = 1\nmax-connections = 2\nmax-connections-per-ip = 2\n");
    // One Binding, then silence.
    let mut spoke = TcpStream::connect(tcp).unwrap();
    binding_works(&mut spoke, 1);
    // One Binding, then a header announcing a frame that never comes whole.
    let mut partial = TcpStream::connect(tcp).unwrap();
    binding_works(&mut partial, 2);
    partial.write_all(&[0x00, 0x01, 0xFF, 0xF0]).unwrap();
    assert!(closed_by_server(&mut spoke, Duration::from_secs(10)), "an idle connection stays open");
    assert!(closed_by_server(&mut partial, Duration::from_secs(10)), "a connection with a partial frame stays open");
    // Their places are free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::new();
    for id in 3..5 {
        loop {
            let mut next = TcpStream::connect(tcp).unwrap();
            next.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut header = [0u8; 20];
            if next.write_all(&binding(id)).is_ok() && next.read_exact(&mut header).is_ok() {
                assert_eq!(&header[..2], &[0x01, 0x01]);
                // Held open, so the next one needs the other place.
                held.push(next);
                break;
            }
            assert!(Instant::now() < deadline, "the places of the closed idle connections were not given back");
        }
    }
}

#[test]
fn a_garbage_stream_closes_only_its_own_connection() {
    let (_server, tcp) = tcp_server("");
    let mut good = TcpStream::connect(tcp).unwrap();
    binding_works(&mut good, 1);
    let mut bad = TcpStream::connect(tcp).unwrap();
    binding_works(&mut bad, 2);
    // 1 MiB of pseudo-random bytes after a valid start.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect();
    // The server may close while we are still writing: a failed write is part of the outcome.
    let _ = bad.write_all(&garbage);
    assert!(closed_by_server(&mut bad, Duration::from_secs(10)), "the garbage connection stays open");
    binding_works(&mut good, 3);
}

#[test]
fn the_longest_stun_message_is_served_over_tcp() {
    // A Binding request with a 65532-byte body (one SOFTWARE attribute), the longest a STUN
    // message can be: 12 bytes longer than the longest ChannelData frame. fuzz/ stream_framing
    // found the framing bound at the ChannelData size, so such a request closed the connection.
    let (_server, tcp) = tcp_server("");
    let mut s = TcpStream::connect(tcp).unwrap();
    let mut request = binding(4).to_vec();
    request[2..4].copy_from_slice(&65_532u16.to_be_bytes());
    request.extend_from_slice(&[0x80, 0x22, 0xFF, 0xF8]);
    request.resize(20 + 65_532, b's');
    s.write_all(&request).expect("send the long Binding request");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut header = [0u8; 20];
    s.read_exact(&mut header).expect("a response, not a closed connection");
    assert_eq!((&header[..2], &header[8..]), (&[0x01, 0x01][..], &[4; 12][..]), "Binding success");
}

#[test]
fn a_first_frame_that_is_not_stun_closes_the_connection() {
    let (_server, tcp) = tcp_server("");
    for first in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4][..],
        &[0x16, 0x03, 0x01, 0x00, 0x05][..],
    ] {
        let mut s = TcpStream::connect(tcp).unwrap();
        // "GET " announces a long ChannelData frame: send enough bytes to complete it.
        let mut bytes = first.to_vec();
        if first.starts_with(b"GET") {
            bytes.resize(4 + 0x5420, b'x');
        }
        let _ = s.write_all(&bytes);
        assert!(closed_by_server(&mut s, Duration::from_secs(10)), "{:?}", &first[..4]);
    }
}

#[test]
fn connections_beyond_the_per_ip_limit_are_refused() {
    let (_server, tcp) = tcp_server("[limits]\nmax-connections-per-ip = 2\n");
    let mut first = TcpStream::connect(tcp).unwrap();
    let mut second = TcpStream::connect(tcp).unwrap();
    binding_works(&mut first, 1);
    binding_works(&mut second, 2);
    let mut third = TcpStream::connect(tcp).unwrap();
    assert!(closed_by_server(&mut third, Duration::from_secs(10)), "a third connection from 127.0.0.1 is closed");
    // Closing one gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(tcp).unwrap();
        again.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if again.write_all(&binding(3)).is_ok() {
            let mut header = [0u8; 20];
            if again.read_exact(&mut header).is_ok() {
                assert_eq!(&header[..2], &[0x01, 0x01]);
                break;
            }
        }
        // The server notices the first connection's close asynchronously; bounded retry.
        assert!(Instant::now() < deadline, "the freed place was never given back");
    }
}

/// turnd's resident memory, from /proc.
fn vm_rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in KiB")
}

#[test]
fn a_client_that_does_not_read_is_not_read_either() {
    let (server, tcp) = tcp_server("[limits]\nmax-connections-per-ip = 100\n");
    // One served connection first, so what turnd sets up once is not counted.
    binding_works(&mut TcpStream::connect(tcp).unwrap(), 1);
    let before = vm_rss_kib(&server);
    const CONNECTIONS: u64 = 10;
    // 4 MiB of pipelined Binding requests per connection, answers never read: once about
    // 64 KiB of answers wait unwritten, turnd stops reading the connection, and the client's
    // writes stall when the kernel buffers in between are full.
    let burst: Vec<u8> = (0..(4 << 20) / 20).flat_map(|i| binding((i % 251) as u8)).collect();
    let mut streams = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut s = TcpStream::connect(tcp).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
        let written = s.write_all(&burst).map_err(|e| e.kind());
        assert!(
            matches!(written, Ok(()) | Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "the connection failed instead of stalling: {written:?}"
        );
        streams.push(s);
    }
    // Until turnd has read what it will (its memory stops growing), bounded.
    let mut after = vm_rss_kib(&server);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = vm_rss_kib(&server);
        if now == after {
            break;
        }
        after = now;
    }
    // About 64 KiB queued, as much being written and a 4 KiB read buffer per connection; a
    // quarter of a MiB each leaves room for the allocator and the connection's task.
    let grown = after.saturating_sub(before);
    eprintln!("turnd grew by {grown} KiB for {CONNECTIONS} connections that do not read");
    assert!(grown < CONNECTIONS * 256, "turnd grew by {grown} KiB for {CONNECTIONS} connections that do not read");
    // The connections are still served once they read.
    let mut first = streams.swap_remove(0);
    first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut header = [0u8; 20];
    first.read_exact(&mut header).expect("the answers come once the client reads");
    assert_eq!(&header[..2], &[0x01, 0x01], "a Binding success");
}
