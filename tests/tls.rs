//! TURN over TLS (TURNS): TLS 1.2 and 1.3, ALPN, and certificate reload on SIGHUP, with
//! certificates generated here. All on loopback.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned, SupportedProtocolVersion};

use common::{Config, Server};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A self-signed certificate for localhost/127.0.0.1, written as PEM into `dir`.
/// `toml` (a generated config) with a TLS listener on 127.0.0.1:0 serving `dir`'s certificate
/// ([`write_certificate`]).
fn with_tls(toml: String, dir: &Path) -> String {
    // The [server] table comes first in the generated config: add the TLS keys to it.
    let tls = format!(
        "[server]\ntls-listen = [\"127.0.0.1:0\"]\ncert = {:?}\nkey = {:?}\n",
        dir.join("fullchain.pem").display().to_string(),
        dir.join("privkey.pem").display().to_string()
    );
    toml.replacen("[server]\n", &tls, 1)
}

fn write_certificate(dir: &Path) -> CertificateDer<'static> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("fullchain.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("privkey.pem"), generated.key_pair.serialize_pem()).unwrap();
    generated.cert.der().clone()
}

fn start(dir: &Path) -> (Server, SocketAddr) {
    let server = Server::turnd(&with_tls(Config::default().to_toml(), dir));
    let tls = server.listener("tls").expect("a tls= item in the ready line");
    (server, tls)
}

fn connect(
    addr: SocketAddr,
    trust: &CertificateDer<'static>,
    version: &'static SupportedProtocolVersion,
    alpn: &[&[u8]],
) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// A Binding request over the TLS stream; checks the success response.
fn binding_works(tls: &mut Tls, id: u8) {
    let mut m = [0u8; 20];
    m[..2].copy_from_slice(&[0x00, 0x01]);
    m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    m[8..].fill(id);
    tls.write_all(&m).unwrap();
    let mut header = [0u8; 20];
    tls.read_exact(&mut header).expect("Binding response over TLS");
    assert_eq!(&header[..2], &[0x01, 0x01]);
    assert_eq!(&header[8..], &[id; 12]);
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[2], header[3]]))];
    tls.read_exact(&mut body).unwrap();
}

fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().expect("a server certificate")[0].clone().into_owned()
}

/// Waits (bounded) for turnd to log `needle` on stderr.
fn wait_for_log(server: &Server, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr_so_far().contains(needle) {
        assert!(Instant::now() < deadline, "turnd never logged {needle:?}:\n{}", server.stderr_so_far());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tls_12_and_13_with_alpn_and_without() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_certificate(dir.path());
    let (_server, addr) = start(dir.path());
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut tls = connect(addr, &cert, version, &[b"stun.turn"]);
        assert_eq!(tls.conn.protocol_version(), Some(version.version));
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"stun.turn"[..]), "ALPN negotiated");
        binding_works(&mut tls, 1);
    }
    let mut plain = connect(addr, &cert, &rustls::version::TLS13, &[]);
    assert_eq!(plain.conn.alpn_protocol(), None);
    binding_works(&mut plain, 2);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_certificate(dir.path());
    let (server, addr) = start(dir.path());
    let mut before = connect(addr, &first, &rustls::version::TLS13, &[b"stun.turn"]);
    binding_works(&mut before, 1);

    let second = write_certificate(dir.path());
    assert_ne!(first, second);
    let hup = |server: &Server| {
        let status = std::process::Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
        assert!(status.success());
    };
    hup(&server);
    wait_for_log(&server, "TLS certificate reloaded");
    let after = connect(addr, &second, &rustls::version::TLS13, &[b"stun.turn"]);
    assert_eq!(presented(&after), second, "new handshakes get the new certificate");
    binding_works(&mut before, 2);

    // A corrupt certificate on reload leaves the current one in place.
    std::fs::write(dir.path().join("fullchain.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    hup(&server);
    wait_for_log(&server, "TLS certificate not reloaded");
    let still = connect(addr, &second, &rustls::version::TLS13, &[b"stun.turn"]);
    assert_eq!(presented(&still), second);
    binding_works(&mut before, 3);
}

#[test]
fn a_silent_client_is_cut_at_the_tls_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    write_certificate(dir.path());
    let mut toml = Config::default().to_toml();
    toml.push_str("[limits]\ntls-handshake-timeout = 1\nfirst-message-timeout = 60\n");
    let server = Server::turnd(&with_tls(toml, dir.path()));
    let addr = server.listener("tls").unwrap();
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 16];
    // No ClientHello: the server closes (EOF or reset) once the handshake timeout passes, long
    // before the 60 s first-message timeout.
    let closed = matches!(silent.read(&mut buf), Ok(0) | Err(_));
    assert!(closed);
    assert!(started.elapsed() < Duration::from_secs(20), "closed by the handshake timeout, not the read timeout");
}

/// A TLS client with a small receive window (so turnd's send buffer towards it fills), or the
/// error that ended its handshake.
fn try_connect_small_window(addr: SocketAddr, trust: &CertificateDer<'static>) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(4096)?;
    socket.connect(&addr.into())?;
    let tcp = TcpStream::from(socket);
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// A connection turnd closes is gone within a bounded time even over TLS while the client reads
/// nothing: the close_notify (which waits for send-buffer room) and the shutdown are given a
/// short time, then the stream is dropped and its place in the limits given back.
#[test]
fn a_tls_connection_turnd_closes_frees_its_place_while_the_client_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_certificate(dir.path());
    let mut toml = Config { log_level: "debug".into(), ..Config::default() }.to_toml();
    // turnd stops reading a client that does not read: it is closed as idle (or for the garbage).
    toml.push_str("[limits]\nmax-connections-per-ip = 1\nidle-timeout = 1\n");
    let server = Server::turnd(&with_tls(toml, dir.path()));
    let addr = server.listener("tls").unwrap();
    let mut first = try_connect_small_window(addr, &cert).expect("first TLS connection");
    // 4 MiB of Binding requests, whose answers are never read, then a frame that is not STUN.
    let burst: Vec<u8> = (0..(4 << 20) / 20)
        .flat_map(|i: u32| {
            let mut m = [0u8; 20];
            m[..2].copy_from_slice(&[0x00, 0x01]);
            m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            m[8..].fill((i % 251) as u8);
            m
        })
        .collect();
    // Written on a thread: turnd may stop reading a client that does not read.
    let writer = std::thread::spawn(move || {
        let _ = first.write_all(&burst).and_then(|()| first.write_all(&[0xFF; 64])).and_then(|()| first.flush());
        first
    });
    wait_for_log(&server, "connection closed");
    // The place of `first` comes back although it still reads nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answered = try_connect_small_window(addr, &cert).and_then(|mut second| {
            let mut m = [0u8; 20];
            m[..2].copy_from_slice(&[0x00, 0x01]);
            m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            second.write_all(&m)?;
            second.read_exact(&mut m)
        });
        if answered.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "a second TLS connection is refused: the first still holds its place");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(writer);
}
