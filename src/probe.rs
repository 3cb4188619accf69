//! `turnd probe`: an end-to-end check of a TURN server for monitoring scripts and cron. It does
//! a Binding, two Allocates, a CreatePermission each way and a round trip from one allocation to
//! the other through the relay (so no outside peer, and it works with turnd's default peer
//! policy), and reports the first step that failed. Blocking sockets with timeouts; an IO shell
//! like `io`, built on the `stun` codec.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::auth::{long_term_key, Key};
use crate::stun::{attr, Class, Message, MessageType, MessageWriter, Method};

/// How long each request waits for its answer (after one retransmission at half of it).
const TIMEOUT: Duration = Duration::from_secs(3);

/// Credentials for the probe.
pub struct ProbeCredentials {
    pub username: String,
    pub password: String,
}

/// The step that failed and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct ProbeError {
    pub step: &'static str,
    pub reason: String,
}

fn fail(step: &'static str, reason: impl ToString) -> ProbeError {
    ProbeError { step, reason: reason.to_string() }
}

/// What the probe saw, for its report.
#[derive(Debug)]
pub struct ProbeReport {
    pub mapped: SocketAddr,
    pub relayed: [SocketAddr; 2],
}

/// One TURN client over UDP with long-term credentials.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    key: Key,
    realm: String,
    nonce: String,
    txid: u64,
}

impl Client {
    fn new(server: SocketAddr, creds: &ProbeCredentials, step: &'static str) -> Result<Self, ProbeError> {
        let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = UdpSocket::bind(local).map_err(|e| fail(step, e))?;
        socket.set_read_timeout(Some(TIMEOUT / 2)).map_err(|e| fail(step, e))?;
        Ok(Client {
            socket,
            server,
            username: creds.username.clone(),
            key: [0; 16],
            realm: String::new(),
            nonce: String::new(),
            txid: 0,
        })
    }

    /// Sends a request (signed once a realm and nonce are known) and returns the answer's bytes.
    fn transact(
        &mut self,
        step: &'static str,
        method: Method,
        attrs: &dyn Fn(&mut MessageWriter<'_>),
    ) -> Result<Vec<u8>, ProbeError> {
        self.txid += 1;
        let mut txid = [0u8; 12];
        txid[4..].copy_from_slice(&self.txid.to_be_bytes());
        let _ = getrandom::getrandom(&mut txid[..4]);
        let mut buf = [0u8; 1500];
        let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), &txid);
        attrs(&mut w);
        if !self.nonce.is_empty() {
            w.attr(attr::USERNAME, self.username.as_bytes())
                .attr(attr::REALM, self.realm.as_bytes())
                .attr(attr::NONCE, self.nonce.as_bytes())
                .integrity(&self.key);
        }
        let len = w.finish().map_err(|e| fail(step, e))?;
        let mut answer = [0u8; 1500];
        for _ in 0..2 {
            self.socket.send_to(&buf[..len], self.server).map_err(|e| fail(step, e))?;
            while let Ok((n, from)) = self.socket.recv_from(&mut answer) {
                let is_answer = from == self.server
                    && Message::parse(&answer[..n])
                        .is_ok_and(|m| m.transaction_id() == &txid && m.class() != Class::Indication);
                if is_answer {
                    return Ok(answer[..n].to_vec());
                }
            }
        }
        Err(fail(step, format!("no answer from {} within {TIMEOUT:?}", self.server)))
    }

    /// A request with the long-term credential dance: a 401 or 438 teaches realm and nonce,
    /// then the request is sent again, signed. Returns the success response's bytes.
    fn request(
        &mut self,
        step: &'static str,
        password: &str,
        method: Method,
        attrs: &dyn Fn(&mut MessageWriter<'_>),
    ) -> Result<Vec<u8>, ProbeError> {
        for _ in 0..3 {
            let bytes = self.transact(step, method, attrs)?;
            let msg = Message::parse(&bytes).map_err(|e| fail(step, e))?;
            if msg.class() == Class::Success {
                return Ok(bytes);
            }
            let (code, reason) = msg
                .attr(attr::ERROR_CODE)
                .and_then(|v| attr::decode_error_code(v).ok())
                .ok_or_else(|| fail(step, "an error response without ERROR-CODE"))?;
            let challenge = matches!((code, self.nonce.is_empty()), (401, true) | (438, _));
            match (challenge, msg.text(attr::REALM), msg.text(attr::NONCE)) {
                (true, Some(Ok(realm)), Some(Ok(nonce))) => {
                    self.key = long_term_key(&self.username, realm, password);
                    (self.realm, self.nonce) = (realm.to_owned(), nonce.to_owned());
                }
                _ => return Err(fail(step, format!("error {code} {reason}"))),
            }
        }
        Err(fail(step, "the server keeps asking for credentials"))
    }
}

/// Runs the probe against `server`; `Ok` when every step worked.
pub fn run(server: SocketAddr, creds: &ProbeCredentials) -> Result<ProbeReport, ProbeError> {
    let mut a = Client::new(server, creds, "binding")?;
    let binding = a.transact("binding", Method::BINDING, &|_| {})?;
    let mapped = Message::parse(&binding)
        .ok()
        .and_then(|m| m.xor_address(attr::XOR_MAPPED_ADDRESS)?.ok())
        .ok_or_else(|| fail("binding", "no XOR-MAPPED-ADDRESS in the answer"))?;
    let udp = |w: &mut MessageWriter<'_>| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    };
    let mut b = Client::new(server, creds, "allocate")?;
    let mut relayed = [mapped; 2];
    for (i, client) in [&mut a, &mut b].into_iter().enumerate() {
        let bytes = client.request("allocate", &creds.password, Method::ALLOCATE, &udp)?;
        relayed[i] = Message::parse(&bytes)
            .ok()
            .and_then(|m| m.xor_address(attr::XOR_RELAYED_ADDRESS)?.ok())
            .ok_or_else(|| fail("allocate", "no XOR-RELAYED-ADDRESS in the answer"))?;
    }
    for (client, peer) in [(&mut a, relayed[1]), (&mut b, relayed[0])] {
        let to_peer = |w: &mut MessageWriter<'_>| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer);
        };
        client.request("create-permission", &creds.password, Method::CREATE_PERMISSION, &to_peer)?;
    }
    let payload = b"turnd probe";
    let result = round_trip(&a, &b, relayed, payload);
    // Free both relays whatever happened (Refresh with lifetime 0); failures here are reported
    // only when everything before worked.
    let zero = |w: &mut MessageWriter<'_>| {
        w.u32_attr(attr::LIFETIME, 0);
    };
    let freed = [&mut a, &mut b]
        .into_iter()
        .try_for_each(|c| c.request("refresh", &creds.password, Method::REFRESH, &zero).map(drop));
    result?;
    freed?;
    Ok(ProbeReport { mapped, relayed })
}

/// A Send indication from `a` to `b`'s relayed address must reach `b` as a Data indication
/// carrying the payload, from `a`'s relayed address.
fn round_trip(a: &Client, b: &Client, relayed: [SocketAddr; 2], payload: &[u8]) -> Result<(), ProbeError> {
    let step = "relay";
    let mut buf = [0u8; 1500];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(Method::SEND, Class::Indication), &[7; 12]);
    w.xor_address(attr::XOR_PEER_ADDRESS, relayed[1]).attr(attr::DATA, payload);
    let len = w.finish().map_err(|e| fail(step, e))?;
    let mut answer = [0u8; 1500];
    for _ in 0..2 {
        a.socket.send_to(&buf[..len], a.server).map_err(|e| fail(step, e))?;
        while let Ok((n, _)) = b.socket.recv_from(&mut answer) {
            let Ok(msg) = Message::parse(&answer[..n]) else { continue };
            let from = msg.xor_address(attr::XOR_PEER_ADDRESS).and_then(Result::ok);
            if msg.method() == Method::DATA && msg.attr(attr::DATA) == Some(payload) && from == Some(relayed[0]) {
                return Ok(());
            }
        }
    }
    Err(fail(step, format!("the payload sent to {} never came back through the relay", relayed[1])))
}
