//! One TURN client over UDP for the load generator's control messages: Allocate (with the
//! long-term credential round trip), CreatePermission, ChannelBind and Refresh. A connected
//! socket that blocks with a read timeout, or with [`Wait::Spin`] is polled in a loop; the
//! `stun` codec and `auth` keys.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{long_term_key, Key};
use crate::stun::{attr, Class, Message, MessageType, MessageWriter, Method};

/// Wait for an answer before sending the request again.
const RETRANSMIT: Duration = Duration::from_millis(500);
/// Sends of one request before giving up.
const TRIES: usize = 3;

/// How a client, and a traffic worker, waits for what the server sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// Sleeps in the kernel until a datagram comes (or a timeout): the server's send wakes
    /// the thread, and on loopback that wake-up is the sender's CPU time.
    #[default]
    Block,
    /// Polls its non-blocking sockets in a loop and never sleeps: on loopback a server's send
    /// then finds no thread to wake, as a send to a client on another host never does. It
    /// keeps the tool's CPU busy (pin it to a CPU of its own).
    Spin,
}

/// Long-term credentials (static, or made from a REST secret).
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Used instead of the realm of the server's 401 when set.
    pub realm: Option<String>,
}

/// What a 401 or 438 taught: realm, nonce and the key. turnd binds a nonce to the client's IP,
/// so a new client from the same host can start with another's and skip the 401; a server that
/// binds it to the 5-tuple answers 401/438 and the client learns its own.
#[derive(Clone)]
pub struct Challenge {
    realm: String,
    nonce: String,
    key: Key,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no answer from {0} within {t:?}", t = RETRANSMIT * TRIES as u32)]
    Timeout(SocketAddr),
    #[error("error {0} {1}")]
    Error(u16, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

/// A UDP socket connected to the server, with its credential state.
pub struct Client {
    pub socket: UdpSocket,
    server: SocketAddr,
    creds: Arc<Credentials>,
    pub challenge: Option<Challenge>,
    txid: u64,
    wait: Wait,
}

impl Client {
    /// A new socket (its own 5-tuple) connected to `server`, optionally starting from a known
    /// challenge, waiting for answers as `wait` says.
    pub fn new(
        server: SocketAddr,
        creds: Arc<Credentials>,
        challenge: Option<Challenge>,
        wait: Wait,
    ) -> std::io::Result<Self> {
        let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        match wait {
            Wait::Block => socket.set_read_timeout(Some(RETRANSMIT))?,
            Wait::Spin => socket.set_nonblocking(true)?,
        }
        Ok(Client { socket, server, creds, challenge, txid: 0, wait })
    }

    /// A new client with an allocation. A 437 means the server still knows the new socket's
    /// 5-tuple from an allocation of an earlier socket on the same port (coturn keeps deleted
    /// ones a while): the allocation is tried again from another port, while the first socket
    /// stays open so that the kernel does not hand out its port again.
    pub fn allocated(
        server: SocketAddr,
        creds: &Arc<Credentials>,
        challenge: Option<Challenge>,
        lifetime: Option<u32>,
        wait: Wait,
    ) -> Result<Client, RequestError> {
        let mut stale = Vec::new();
        loop {
            let mut client = Client::new(server, creds.clone(), challenge.clone(), wait)?;
            match client.allocate(lifetime) {
                Ok(_) => return Ok(client),
                Err(RequestError::Error(437, _)) if stale.len() < 3 => stale.push(client),
                Err(e) => return Err(e),
            }
        }
    }

    /// Allocate (UDP relay, optional LIFETIME): the relayed address.
    pub fn allocate(&mut self, lifetime: Option<u32>) -> Result<SocketAddr, RequestError> {
        let bytes = self.request(Method::ALLOCATE, &|w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
            if let Some(secs) = lifetime {
                w.u32_attr(attr::LIFETIME, secs);
            }
        })?;
        Message::parse(&bytes)
            .ok()
            .and_then(|m| m.xor_address(attr::XOR_RELAYED_ADDRESS)?.ok())
            .ok_or(RequestError::Malformed("no XOR-RELAYED-ADDRESS"))
    }

    /// CreatePermission for `peer`'s IP.
    pub fn create_permission(&mut self, peer: SocketAddr) -> Result<(), RequestError> {
        self.request(Method::CREATE_PERMISSION, &|w| {
            w.xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .map(drop)
    }

    /// ChannelBind of `channel` to `peer`.
    pub fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Result<(), RequestError> {
        self.request(Method::CHANNEL_BIND, &|w| {
            w.attr(attr::CHANNEL_NUMBER, &[(channel >> 8) as u8, channel as u8, 0, 0])
                .xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .map(drop)
    }

    /// Refresh with `lifetime` seconds (0 deletes the allocation).
    pub fn refresh(&mut self, lifetime: u32) -> Result<(), RequestError> {
        self.request(Method::REFRESH, &|w| {
            w.u32_attr(attr::LIFETIME, lifetime);
        })
        .map(drop)
    }

    /// A request with the long-term credential dance: a 401 (before any challenge) or a 438
    /// teaches realm and nonce and the request goes again, signed. The success's bytes.
    fn request(&mut self, method: Method, attrs: &dyn Fn(&mut MessageWriter<'_>)) -> Result<Vec<u8>, RequestError> {
        let mut challenged = false;
        for _ in 0..3 {
            let bytes = self.transact(method, attrs)?;
            let msg = Message::parse(&bytes).map_err(|_| RequestError::Malformed("not STUN"))?;
            if msg.class() == Class::Success {
                return Ok(bytes);
            }
            let (code, reason) = msg
                .attr(attr::ERROR_CODE)
                .and_then(|v| attr::decode_error_code(v).ok())
                .ok_or(RequestError::Malformed("an error response without ERROR-CODE"))?;
            let retry = code == 438 || (code == 401 && !challenged);
            match (retry, msg.text(attr::REALM), msg.text(attr::NONCE)) {
                (true, Some(Ok(realm)), Some(Ok(nonce))) => {
                    let realm = self.creds.realm.as_deref().unwrap_or(realm);
                    let key = long_term_key(&self.creds.username, realm, &self.creds.password);
                    self.challenge = Some(Challenge { realm: realm.to_owned(), nonce: nonce.to_owned(), key });
                    challenged = true;
                }
                _ => return Err(RequestError::Error(code, reason.to_owned())),
            }
        }
        Err(RequestError::Error(401, "the server keeps asking for credentials".into()))
    }

    /// Sends the request (signed when a challenge is known), retransmitting; the answer's bytes.
    fn transact(&mut self, method: Method, attrs: &dyn Fn(&mut MessageWriter<'_>)) -> Result<Vec<u8>, RequestError> {
        self.txid += 1;
        let mut txid = [0u8; 12];
        txid[4..].copy_from_slice(&self.txid.to_be_bytes());
        let _ = getrandom::getrandom(&mut txid[..4]);
        let mut buf = [0u8; 1024];
        let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), &txid);
        attrs(&mut w);
        if let Some(c) = &self.challenge {
            w.attr(attr::USERNAME, self.creds.username.as_bytes())
                .attr(attr::REALM, c.realm.as_bytes())
                .attr(attr::NONCE, c.nonce.as_bytes())
                .integrity(&c.key);
        }
        let len = w.finish().map_err(|_| RequestError::Malformed("request too long"))?;
        let mut answer = [0u8; 2048];
        for _ in 0..TRIES {
            self.socket.send(&buf[..len])?;
            let retransmit = Instant::now() + RETRANSMIT;
            loop {
                // Relayed data still queued from a traffic run is skipped over.
                let n = match self.socket.recv(&mut answer) {
                    Ok(n) => n,
                    // A spinning client's socket is non-blocking: nothing yet, ask again.
                    Err(e)
                        if self.wait == Wait::Spin
                            && e.kind() == std::io::ErrorKind::WouldBlock
                            && Instant::now() < retransmit =>
                    {
                        std::hint::spin_loop();
                        continue;
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        break
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e.into()),
                };
                let ours = Message::parse(&answer[..n])
                    .is_ok_and(|m| m.transaction_id() == &txid && m.class() != Class::Indication);
                if ours {
                    return Ok(answer[..n].to_vec());
                }
            }
        }
        Err(RequestError::Timeout(self.server))
    }
}
