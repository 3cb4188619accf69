//! TCP relay allocations (RFC 6062): Connect to a peer, ConnectionAttempt for a peer that
//! connects in, ConnectionBind of a client data connection. Sans-IO like the rest: the core
//! decides and keeps the connection states; the IO shell dials, accepts and pipes the bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::stun::{attr, Class, Message, MessageType, MessageWriter, Method};

use super::counts::PeerRequest;
use super::{canonical_addr, AllocId, ErrorCode, FiveTuple, Now, Outcome, Relay, Server, Transport};

/// A peer data connection waits this long for the client's ConnectionBind (RFC 6062 §5.3).
pub const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Data connections of one TCP allocation not yet bound (Connects being dialled and peer
/// connections waiting for ConnectionBind), each a socket in the IO shell: beyond this a
/// Connect is refused (508) and a peer that connects in is closed, so one allocation cannot
/// take every descriptor of the process.
pub const MAX_UNBOUND_CONNECTIONS: usize = 64;

/// The TCP connections of TCP allocations, by CONNECTION-ID.
#[derive(Default)]
pub struct TcpConnections {
    next: AtomicU32,
    states: Mutex<HashMap<u32, TcpConnection>>,
}

struct TcpConnection {
    allocation: AllocId,
    control: FiveTuple,
    peer: SocketAddr,
    state: TcpState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TcpState {
    /// Connect handed to the IO shell; its answer goes out with this transaction id.
    Connecting { txid: [u8; 12] },
    /// Peer data connection up, waiting for the client's ConnectionBind.
    AwaitingBind { since: Instant },
    /// Client data connection bound: bytes flow.
    Bound,
}

impl TcpConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, TcpConnection>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, connection: TcpConnection) -> u32 {
        let mut states = self.lock();
        // Bounded: at most one id per live connection is taken.
        loop {
            // 0 is never used, so that it can stand for "no connection".
            let id = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id != 0 && !states.contains_key(&id) {
                states.insert(id, connection);
                return id;
            }
        }
    }

    /// Whether allocation `allocation` has [`MAX_UNBOUND_CONNECTIONS`] connections not yet bound.
    fn unbound_full(states: &HashMap<u32, TcpConnection>, allocation: AllocId) -> bool {
        let unbound = states.values().filter(|c| c.allocation == allocation && c.state != TcpState::Bound);
        unbound.count() >= MAX_UNBOUND_CONNECTIONS
    }

    /// Forgets states waiting for a ConnectionBind longer than [`BIND_TIMEOUT`].
    pub(super) fn expire(&self, now: Instant) {
        self.lock().retain(|_, c| !matches!(c.state, TcpState::AwaitingBind { since } if now >= since + BIND_TIMEOUT));
    }
}

impl<R: Relay> Server<R> {
    //= https://www.rfc-editor.org/rfc/rfc6062#section-5.2
    pub(super) fn on_connect(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8]) -> Outcome {
        let auth = match self.authenticate(now, tuple, msg, out) {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        let key = Some(&auth.key);
        let peer = match self.requested_peer(msg, PeerRequest::Connect) {
            Ok(peer) => peer,
            Err(code) => return self.error(msg, out, code, key),
        };
        let found = self.table.with(tuple, |a| {
            a.check_owner(&auth.username, now.mono)?;
            if !a.tcp {
                return Err(ErrorCode::BadRequest);
            }
            Ok((a.id, a.relayed))
        });
        let (allocation, relayed) = match found {
            None => return self.error(msg, out, ErrorCode::AllocationMismatch, key),
            Some(Err(code)) => return self.error(msg, out, code, key),
            Some(Ok(found)) => found,
        };
        let Some(relay) = self.config.relays.of(relayed.is_ipv6()) else {
            return self.error(msg, out, ErrorCode::PeerAddressFamilyMismatch, key);
        };
        if canonical_addr(peer).is_ipv6() != relayed.is_ipv6() {
            // RFC 6062 §5.2 with RFC 8656 §9: a peer of another family than the relayed address.
            return self.error(msg, out, ErrorCode::PeerAddressFamilyMismatch, key);
        }
        let refused = {
            let states = self.tcp.lock();
            if states.values().any(|c| c.allocation == allocation && c.peer == peer) {
                Some(ErrorCode::ConnectionAlreadyExists)
            } else if TcpConnections::unbound_full(&states, allocation) {
                // RFC 8656 §18.13: 508, a capacity limit reached.
                Some(ErrorCode::InsufficientCapacity)
            } else {
                None
            }
        };
        if let Some(code) = refused {
            return self.error(msg, out, code, key);
        }
        let state = TcpState::Connecting { txid: *msg.transaction_id() };
        let connection = self.tcp.insert(TcpConnection { allocation, control: *tuple, peer, state });
        // The outgoing connection leaves from the relayed transport address.
        let from = SocketAddr::new(relay.ip, relayed.port());
        Outcome::Connect { connection, allocation, from, peer }
    }

    /// The IO shell's answer to [`Outcome::Connect`]: writes the Connect response (success with
    /// CONNECTION-ID, or 447) into `out`; returns the control connection to send it on.
    pub fn connect_finished(
        &self,
        now: Now,
        connection: u32,
        connected: bool,
        out: &mut [u8],
    ) -> Option<(FiveTuple, usize)> {
        let (control, allocation, txid) = {
            let mut states = self.tcp.lock();
            let c = states.get(&connection)?;
            let TcpState::Connecting { txid } = c.state else { return None };
            let found = (c.control, c.allocation, txid);
            if connected {
                states.get_mut(&connection)?.state = TcpState::AwaitingBind { since: now.mono };
            } else {
                states.remove(&connection);
            }
            found
        };
        let key = self.table.with_id(allocation, |a| a.key)?;
        let class = if connected { Class::Success } else { Class::Error };
        let mut w = MessageWriter::new(out, MessageType::new(Method::CONNECT, class), &txid);
        if connected {
            w.u32_attr(attr::CONNECTION_ID, connection);
        } else {
            let code = ErrorCode::ConnectionFailure;
            w.error_code(code.code(), code.reason());
        }
        key.sign(&mut w);
        Some((control, w.finish().ok()?))
    }

    /// A peer connected to the relayed address of TCP allocation `id` (RFC 6062 §5.3). With a
    /// permission for it, writes the ConnectionAttempt indication into `out` and returns the
    /// control connection and the new CONNECTION-ID; without one, or when the allocation has
    /// [`MAX_UNBOUND_CONNECTIONS`] unbound already, `None`: close the connection.
    pub fn peer_connected(
        &self,
        now: Now,
        id: AllocId,
        peer: SocketAddr,
        out: &mut [u8],
    ) -> Option<(FiveTuple, u32, usize)> {
        let peer = canonical_addr(peer);
        let control = self
            .table
            .with_id(id, |a| (a.tcp && a.expires > now.mono && a.permits(peer.ip(), now.mono)).then_some(a.tuple))??;
        if TcpConnections::unbound_full(&self.tcp.lock(), id) {
            return None;
        }
        let state = TcpState::AwaitingBind { since: now.mono };
        let connection = self.tcp.insert(TcpConnection { allocation: id, control, peer, state });
        let txid = indication_txid(connection, now);
        let mut w = MessageWriter::new(out, MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication), &txid);
        w.xor_address(attr::XOR_PEER_ADDRESS, peer).u32_attr(attr::CONNECTION_ID, connection);
        Some((control, connection, w.finish().ok()?))
    }

    //= https://www.rfc-editor.org/rfc/rfc6062#section-5.4
    pub(super) fn on_connection_bind(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8]) -> Outcome {
        if tuple.transport == Transport::Udp {
            return self.error(msg, out, ErrorCode::BadRequest, None);
        }
        let auth = match self.authenticate(now, tuple, msg, out) {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        let key = Some(&auth.key);
        let Some(Ok(connection)) = msg.u32_attr(attr::CONNECTION_ID) else {
            return self.error(msg, out, ErrorCode::BadRequest, key);
        };
        let allocation = {
            let mut states = self.tcp.lock();
            let Some(c) = states.get_mut(&connection).filter(|c| matches!(c.state, TcpState::AwaitingBind { .. }))
            else {
                drop(states);
                return self.error(msg, out, ErrorCode::BadRequest, key);
            };
            let owner = self.table.with_id(c.allocation, |a| *a.username == *auth.username);
            if owner != Some(true) {
                drop(states);
                return self.error(msg, out, ErrorCode::WrongCredentials, key);
            }
            c.state = TcpState::Bound;
            c.allocation
        };
        match self.respond(msg, out, key, |_| {}) {
            Outcome::Reply(len) => Outcome::Bound { connection, allocation, len },
            other => other,
        }
    }

    /// The IO shell closed the peer or client data connection of `connection` (or gave up
    /// waiting for its ConnectionBind): the id is forgotten.
    pub fn connection_closed(&self, connection: u32) {
        self.tcp.lock().remove(&connection);
    }
}

/// A transaction id for a ConnectionAttempt indication (unique, not secret).
fn indication_txid(connection: u32, now: Now) -> [u8; 12] {
    let mut txid = [0u8; 12];
    txid[..4].copy_from_slice(&connection.to_be_bytes());
    txid[4..].copy_from_slice(&now.unix.to_be_bytes());
    txid
}
