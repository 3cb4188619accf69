//! RFC 5780 NAT behaviour discovery over the wire: coturn's `turnutils_natdiscovery` against
//! turnd listening on 127.0.0.1 and 127.0.0.2, with `server.rfc5780` on and off, and the
//! source address a CHANGE-REQUEST answer really leaves from.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::client::{BINDING, XOR_MAPPED_ADDRESS};
use common::coturn::{run_with_timeout, tool};
use common::message::{Class, Message, MessageBuilder};
use common::Server;

const CHANGE_REQUEST: u16 = 0x0003;
const RESPONSE_ORIGIN: u16 = 0x802B;
const OTHER_ADDRESS: u16 = 0x802C;

/// turnd on 127.0.0.1 and 127.0.0.2 (ports picked by turnd), RFC 5780 on or off.
fn turnd(rfc5780: bool) -> Server {
    Server::turnd(&format!(
        "[server]\nlisten = ['127.0.0.1:0', '127.0.0.2:0']\nworkers = 2\nrfc5780 = {rfc5780}\n\
         [auth]\nsecrets = ['s3cret']\n"
    ))
}

/// `turnutils_natdiscovery -m -f` against turnd's first address: its output.
fn natdiscovery(server: &Server) -> String {
    let mut cmd = Command::new(tool("turnutils_natdiscovery"));
    cmd.args(["-m", "-f", "-p", &server.addr.port().to_string(), &server.addr.ip().to_string()]);
    let (ok, out) = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(ok, "turnutils_natdiscovery failed:\n{out}");
    out
}

fn plain_address(v: &[u8]) -> SocketAddr {
    assert_eq!((v.len(), v[1]), (8, 1), "an IPv4 address attribute");
    SocketAddr::from(([v[4], v[5], v[6], v[7]], u16::from_be_bytes([v[2], v[3]])))
}

#[test]
fn natdiscovery_reports_endpoint_independent_mapping_and_filtering_on_loopback() {
    let server = turnd(true);
    let out = natdiscovery(&server);
    let port = server.addr.port();
    // Mapping: a Binding to the primary address, then to the alternate IP (same port); the
    // mapped address is the same (loopback has no NAT).
    assert!(out.contains("NAT with Endpoint Independent Mapping!"), "{out}");
    // Filtering: "change IP and port" answered from 127.0.0.2 on port + 1 and received.
    assert!(out.contains("NAT with Endpoint Independent Filtering!"), "{out}");
    assert_eq!(out.matches("RFC 5780 response").count(), 4, "{out}");
    assert!(out.contains(&format!("Other addr: : 127.0.0.2:{}", port + 1)), "{out}");
    for origin in [format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"), format!("127.0.0.2:{}", port + 1)] {
        assert!(out.contains(&format!("Response origin: : {origin}")), "{origin}:\n{out}");
    }
    assert!(!out.contains("timeout"), "{out}");
}

#[test]
fn natdiscovery_finds_no_rfc5780_support_when_it_is_off() {
    let server = turnd(false);
    let out = natdiscovery(&server);
    // Each test's first Binding is answered, without OTHER-ADDRESS, so natdiscovery stops there
    // and concludes nothing.
    assert_eq!(out.matches("Local addr").count(), 2, "{out}");
    assert!(!out.contains("RFC 5780 response"), "{out}");
    assert!(!out.contains("NAT with"), "{out}");
    assert!(!out.contains("Other addr"), "{out}");
}

#[test]
fn change_request_answers_leave_from_the_socket_they_name() {
    let server = turnd(true);
    let primary = server.addr;
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = primary.port();
    // (flags, the source the answer comes from)
    let cases = [
        (0u32, primary),
        (0x02, SocketAddr::from(([127, 0, 0, 1], port + 1))),
        (0x04, SocketAddr::from(([127, 0, 0, 2], port))),
        (0x06, SocketAddr::from(([127, 0, 0, 2], port + 1))),
    ];
    let mut buf = [0u8; 1500];
    for (flags, from) in cases {
        let req = MessageBuilder::new(Class::Request, BINDING).attr(CHANGE_REQUEST, flags.to_be_bytes());
        client.send_to(&req.encode(None, true), primary).unwrap();
        let (n, source) = client.recv_from(&mut buf).expect("an answer");
        assert_eq!(source, from, "flags {flags:#x}");
        let msg = Message::parse(&buf[..n]).unwrap();
        assert!(msg.is_success(), "flags {flags:#x}: {:?}", msg.error());
        assert_eq!(msg.xor_addr(XOR_MAPPED_ADDRESS), Some(client.local_addr().unwrap()));
        assert_eq!(plain_address(msg.get(RESPONSE_ORIGIN).unwrap()), source, "RESPONSE-ORIGIN is the source");
        assert_eq!(plain_address(msg.get(OTHER_ADDRESS).unwrap()), SocketAddr::from(([127, 0, 0, 2], port + 1)));
    }
    // Over TCP, CHANGE-REQUEST cannot be honoured: 400.
    let mut tcp = std::net::TcpStream::connect(primary).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = MessageBuilder::new(Class::Request, BINDING).attr(CHANGE_REQUEST, 0x06u32.to_be_bytes());
    std::io::Write::write_all(&mut tcp, &req.encode(None, false)).unwrap();
    let mut header = [0u8; 20];
    std::io::Read::read_exact(&mut tcp, &mut header).unwrap();
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut body = vec![0u8; len];
    std::io::Read::read_exact(&mut tcp, &mut body).unwrap();
    let msg = Message::parse(&[&header[..], &body].concat()).unwrap();
    assert_eq!(msg.error_code(), Some(400));
}

/// A port P free over UDP on 127.0.0.1 and 127.0.0.2 with P + 1, and over TCP on 127.0.0.2.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let Some(next) = port.checked_add(1) else { continue };
        let free = [("127.0.0.2", port), ("127.0.0.1", next), ("127.0.0.2", next)]
            .iter()
            .all(|&(ip, p)| UdpSocket::bind((ip, p)).is_ok())
            && std::net::TcpListener::bind(("127.0.0.2", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port pair on 127.0.0.1 and 127.0.0.2");
}

#[test]
fn a_listen_address_that_is_an_rfc5780_socket_is_bound_once_with_tcp() {
    let port = free_port_pair();
    let server = Server::turnd(&format!(
        "[server]\nlisten = ['127.0.0.1:{port}', '127.0.0.2:{port}']\nworkers = 2\nrfc5780 = true\n\
         [auth]\nsecrets = ['s3cret']\n"
    ));
    let second = SocketAddr::from(([127, 0, 0, 2], port));
    assert!(server.listeners.contains(&("udp".to_owned(), second)), "{:?}", server.listeners);
    assert!(server.listeners.contains(&("tcp".to_owned(), second)), "{:?}", server.listeners);
    // Over UDP it is the alternate IP with the primary port: "change IP and port" answers from
    // the primary IP with the alternate port.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = MessageBuilder::new(Class::Request, BINDING).attr(CHANGE_REQUEST, 0x06u32.to_be_bytes());
    client.send_to(&req.encode(None, false), second).unwrap();
    let mut buf = [0u8; 1500];
    let (n, source) = client.recv_from(&mut buf).expect("an answer");
    assert_eq!(source, SocketAddr::from(([127, 0, 0, 1], port + 1)));
    assert!(Message::parse(&buf[..n]).unwrap().is_success());
    // And it serves TCP, as every listen address does.
    assert!(std::net::TcpStream::connect(second).is_ok());
}
