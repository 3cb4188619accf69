//! One worker: a current-thread runtime serving this worker's listener sockets (UDP, and TCP/TLS
//! acceptors) and the relay sockets of the allocations it created. Buffers are allocated once here and reused for every
//! packet; they live in a `RefCell` that is never borrowed across an `.await`.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::{TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::{TcpListener, UdpSocket};

use super::gso;
use super::relay::{token_relay, PortPool, RelaySocket, WorkerRelays};
use super::stream::{self, Connections, Outbox, StreamSettings};
use crate::stats::{Counter, Side, Stats, WorkerStats};
use crate::stun::{classify, Framing};
use crate::turn::{
    AllocId, FiveTuple, Outcome, Server, Transport, DATA_INDICATION_HEADROOM, PEER_TAILROOM, SWEEP_INTERVAL,
};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// One peer datagram's room in the relay buffer: headroom for the ChannelData or Data
/// indication header, the datagram, and ChannelData padding.
const SLOT: usize = DATA_INDICATION_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM;
/// Peer datagrams read before what they became is sent: a run of them to one client, all of
/// one size (a burst of a video frame), leaves in one GSO send.
const SLOTS: usize = 16;
/// Packets handled per socket before yielding, so one busy socket cannot starve the others.
const BUDGET: usize = 256;
/// Relay events fetched per epoll_wait.
const EVENTS: usize = 256;

/// What every worker shares.
pub(super) struct Shared {
    pub server: Arc<Server<RelaySocket>>,
    pub ports: Arc<PortPool>,
    pub stats: Arc<Stats>,
    pub connections: Arc<Connections>,
    pub streams: StreamSettings,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// RFC 6062 peer data connections waiting for the client's ConnectionBind, by CONNECTION-ID
    /// (the client's data connection may land on any worker).
    pub parked: std::sync::Mutex<std::collections::HashMap<u32, std::net::TcpStream>>,
    /// Liveness: each worker's timer stores the milliseconds since `started` here.
    pub heartbeats: Box<[std::sync::atomic::AtomicU64]>,
    pub started: std::time::Instant,
}

/// How often a worker proves it is alive.
const HEARTBEAT: Duration = Duration::from_millis(500);

impl Shared {
    /// The worker (if any) that has not run its timer for longer than `stale`.
    pub(super) fn stalled_worker(&self, stale: Duration) -> Option<usize> {
        let now = self.started.elapsed().as_millis() as u64;
        let stale = stale.as_millis() as u64;
        self.heartbeats.iter().position(|b| now.saturating_sub(b.load(std::sync::atomic::Ordering::Relaxed)) > stale)
    }

    fn park(&self, connection: u32, stream: std::net::TcpStream) {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).insert(connection, stream);
    }

    /// Takes the peer data connection of `connection`, if it is still waiting.
    pub(super) fn unpark(&self, connection: u32) -> Option<std::net::TcpStream> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).remove(&connection)
    }
}

/// One worker's own listening sockets.
pub(super) struct Sockets {
    pub udp: Vec<StdUdpSocket>,
    pub tcp: Vec<StdTcpListener>,
    pub tls: Vec<StdTcpListener>,
}

pub(super) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    /// Shortcut to `shared.server`.
    server: Arc<Server<RelaySocket>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    listeners: Vec<UdpSocket>,
    /// The listeners' local addresses, read once (a syscall each).
    listener_addrs: Vec<std::net::SocketAddr>,
    /// GSO works here (cleared, for good, by the first send the kernel refuses as unsupported).
    gso: std::cell::Cell<bool>,
    poll: RefCell<mio::Poll>,
    bufs: RefCell<Buffers>,
}

struct Buffers {
    /// Client packets are received here.
    rx: Box<[u8]>,
    /// Responses and in-process forwards are written here.
    tx: Box<[u8]>,
    /// [`SLOTS`] slots of [`SLOT`] bytes; peer datagrams are received at
    /// `DATA_INDICATION_HEADROOM` into a slot so the header goes in front.
    relay: Box<[u8]>,
    /// What the filled slots became, in order: the client and the frame's range in its slot.
    frames: Vec<(FiveTuple, std::ops::Range<usize>)>,
    events: mio::Events,
    /// Relay sockets (allocation, IPv6?) that still had data when their budget ran out (epoll
    /// is edge-triggered), each with whether its error queue still had entries.
    pending: Vec<(AllocId, bool, bool)>,
    /// Relay sockets to read this round (pending ones and new events), each with whether its
    /// error queue is to be read (epoll reported an error).
    ready: Vec<(AllocId, bool, bool)>,
}

/// Runs worker `index` on the current thread until its runtime fails.
pub(super) fn run(index: usize, shared: Arc<Shared>, sockets: Sockets) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listeners = sockets.udp.into_iter().map(UdpSocket::from_std).collect::<std::io::Result<Vec<_>>>()?;
        let listener_addrs = listeners.iter().map(UdpSocket::local_addr).collect::<std::io::Result<Vec<_>>>()?;
        let worker = Rc::new(Worker {
            index,
            server: Arc::clone(&shared.server),
            tls: shared.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            shared,
            listeners,
            listener_addrs,
            gso: std::cell::Cell::new(true),
            poll: RefCell::new(mio::Poll::new()?),
            bufs: RefCell::new(Buffers {
                rx: vec![0; MAX_DATAGRAM].into_boxed_slice(),
                tx: vec![0; DATA_INDICATION_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM].into_boxed_slice(),
                relay: vec![0; SLOTS * SLOT].into_boxed_slice(),
                frames: Vec::with_capacity(SLOTS),
                events: mio::Events::with_capacity(EVENTS),
                pending: Vec::new(),
                ready: Vec::new(),
            }),
        });
        for i in 0..worker.listeners.len() {
            tokio::task::spawn_local(serve_listener(Rc::clone(&worker), i));
        }
        for (listeners, transport) in [(sockets.tcp, Transport::Tcp), (sockets.tls, Transport::Tls)] {
            for listener in listeners {
                let listener = TcpListener::from_std(listener)?;
                tokio::task::spawn_local(stream::accept(Rc::clone(&worker), listener, transport));
            }
        }
        if index == 0 {
            tokio::task::spawn_local(sweep(Arc::clone(&worker.server)));
        }
        tokio::task::spawn_local(heartbeat(Arc::clone(&worker.shared), index));
        serve_relays(worker).await
    })
}

/// Reads one listener socket until it fails.
async fn serve_listener(worker: Rc<Worker>, i: usize) {
    loop {
        if let Err(e) = worker.listeners[i].readable().await {
            tracing::error!(worker = worker.index, error = %e, "listener failed");
            return;
        }
        while worker.drain_listener(i) {
            tokio::task::yield_now().await;
        }
    }
}

impl Worker {
    /// Handles up to [`BUDGET`] datagrams from listener `i`; true if it stopped on the budget.
    fn drain_listener(&self, i: usize) -> bool {
        let socket = &self.listeners[i];
        let server_addr = self.listener_addrs[i];
        let mut bufs = self.bufs.borrow_mut();
        let Buffers { rx, tx, .. } = &mut *bufs;
        let poll = self.poll.borrow();
        let mut relays = WorkerRelays { pool: &self.shared.ports, registry: poll.registry() };
        let now = super::now();
        for _ in 0..BUDGET {
            let (len, client) = match socket.try_recv_from(rx) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                // ICMP errors surface on later reads; they are not the listener failing.
                Err(_) => continue,
            };
            let tuple = FiveTuple { client, server: server_addr, transport: Transport::Udp };
            let outcome = self.server.handle_client(now, &tuple, &rx[..len], &mut relays, tx);
            self.count(&rx[..len], &outcome);
            match outcome {
                Outcome::Reply(n) => {
                    let _ = socket.try_send_to(&tx[..n], client);
                }
                // RFC 5780 CHANGE-REQUEST: this worker's own socket on the other address.
                Outcome::ReplyFrom { len, from } => {
                    if let Some(i) = self.listener_addrs.iter().position(|a| *a == from) {
                        let _ = self.listeners[i].try_send_to(&tx[..len], client);
                    }
                }
                Outcome::Forward { to, start, end } => self.send_to_client(&to, &tx[start..end]),
                // RFC 6062 outcomes need a stream control connection; the core never gives
                // them for UDP, and if it did there would be nothing to do with them here.
                Outcome::Relayed { .. } | Outcome::Dropped(_) | Outcome::Connect { .. } | Outcome::Bound { .. } => {}
            }
        }
        true
    }

    pub(super) fn counters(&self) -> &WorkerStats {
        self.shared.stats.worker(self.index)
    }

    /// Counts what the core did with the client packet `packet`.
    fn count(&self, packet: &[u8], outcome: &Outcome) {
        let stats = self.counters();
        // A payload the core relayed or forwarded came as ChannelData (first bits 0b01) or
        // in a Send indication (STUN, 0b00): the first byte tells which.
        let framing = || match classify(packet) {
            Framing::ChannelData => Counter::ChannelDataFromClient,
            _ => Counter::SendIndicationsFromClient,
        };
        match *outcome {
            Outcome::Reply(_) | Outcome::ReplyFrom { .. } | Outcome::Bound { .. } => {
                stats.add(Counter::Responses, 1);
                // A Binding request's message type is 0x0001.
                if packet.starts_with(&[0x00, 0x01]) {
                    stats.add(Counter::BindingRequests, 1);
                }
            }
            Outcome::Forward { .. } => {
                stats.add(Counter::InternalForwards, 1);
                stats.add(framing(), 1);
            }
            Outcome::Relayed { bytes } => {
                stats.add(Counter::PacketsToPeer, 1);
                stats.add(Counter::BytesToPeer, bytes as u64);
                stats.add(framing(), 1);
            }
            Outcome::Dropped(why) => stats.drop(Side::Client, why),
            Outcome::Connect { .. } => {}
        }
    }

    pub(super) fn connections(&self) -> &Arc<Connections> {
        &self.shared.connections
    }

    pub(super) fn stream_settings(&self) -> &StreamSettings {
        &self.shared.streams
    }

    pub(super) fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// Ends the allocation of a stream client whose connection closed.
    pub(super) fn end_allocation(&self, tuple: &FiveTuple) {
        self.server.client_disconnected(tuple);
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(super) fn server(&self) -> &Server<RelaySocket> {
        &self.server
    }

    /// Handles one complete frame from a stream client; answers go to its outbox. Returns the
    /// CONNECTION-ID and allocation when this frame bound the connection as an RFC 6062 client
    /// data connection (from then on it carries raw bytes).
    pub(super) fn handle_stream_frame(
        self: &Rc<Self>,
        tuple: &FiveTuple,
        frame: &[u8],
        outbox: &Outbox,
    ) -> Option<(u32, AllocId)> {
        let mut bufs = self.bufs.borrow_mut();
        let tx = &mut bufs.tx;
        let poll = self.poll.borrow();
        let mut relays = WorkerRelays { pool: &self.shared.ports, registry: poll.registry() };
        let outcome = self.server.handle_client(super::now(), tuple, frame, &mut relays, tx);
        self.count(frame, &outcome);
        match outcome {
            Outcome::Reply(n) => {
                outbox.push(&tx[..n]);
            }
            Outcome::Forward { to, start, end } => self.send_to_client(&to, &tx[start..end]),
            Outcome::Connect { connection, from, peer, .. } => {
                tokio::task::spawn_local(dial(Rc::clone(self), connection, from, peer));
            }
            Outcome::Bound { connection, allocation, len } => {
                outbox.push(&tx[..len]);
                return Some((connection, allocation));
            }
            // ReplyFrom answers UDP only (RFC 5780 CHANGE-REQUEST over a stream is a 400).
            Outcome::Relayed { .. } | Outcome::Dropped(_) | Outcome::ReplyFrom { .. } => {}
        }
        None
    }

    /// Sends to a client over this worker's listener socket for the client's server address
    /// (every worker has one per address, and they share the address via SO_REUSEPORT).
    fn send_to_client(&self, to: &FiveTuple, bytes: &[u8]) {
        if to.transport != Transport::Udp {
            self.shared.connections.push(to, bytes);
            return;
        }
        if let Some(i) = self.listener_addrs.iter().position(|a| *a == to.server) {
            let _ = self.listeners[i].try_send_to(bytes, to.client);
        }
    }

    /// Reads ready relay sockets; true if some still have data (budget spent).
    fn drain_relays(&self) -> std::io::Result<bool> {
        let mut bufs = self.bufs.borrow_mut();
        let Buffers { relay, frames, tx, events, pending, ready, .. } = &mut *bufs;
        ready.clear();
        ready.append(pending);
        self.poll.borrow_mut().poll(events, Some(Duration::ZERO))?;
        ready.extend(events.iter().map(|e| {
            let (id, ipv6) = token_relay(e.token());
            (id, ipv6, e.is_error())
        }));
        let now = super::now();
        for &(id, ipv6, errors) in ready.iter() {
            match self.server.table().with_id(id, |a| a.relay.is_tcp()) {
                Some(true) if self.accept_peers(id, tx, now) => pending.push((id, ipv6, false)),
                Some(false) => {
                    let errors_left = errors && self.drain_errors(id, ipv6, tx, now);
                    if self.drain_relay(id, ipv6, relay, frames, now) || errors_left {
                        pending.push((id, ipv6, errors_left));
                    }
                }
                Some(true) | None => {}
            }
        }
        Ok(!pending.is_empty())
    }

    /// Reads up to [`BUDGET`] entries of the error queue of allocation `id`'s relay of one
    /// family and sends the ICMP errors the core relays (RFC 8656 §11) to its client; true if
    /// entries remain. Every entry read is gone, relayed or not, so an error can never keep the
    /// socket ready.
    fn drain_errors(&self, id: AllocId, ipv6: bool, out: &mut [u8], now: crate::turn::Now) -> bool {
        for _ in 0..BUDGET {
            let error = self.server.table().with_id(id, |a| a.relay_for(ipv6).map(|(r, _)| r.recv_error()));
            let (peer, icmp) = match error.flatten() {
                Some(Ok(Some(entry))) => entry,
                // Not an ICMP error (consumed), or EINTR.
                Some(Ok(None)) => continue,
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                // Empty (epoll reports the next one), the allocation has ended, or the queue
                // cannot be read: nothing more to do now.
                Some(Err(_)) | None => return false,
            };
            tracing::trace!(%peer, ?icmp, "ICMP error on a relay");
            let stats = self.counters();
            match self.server.handle_peer_icmp(now, id, peer, icmp, out) {
                Ok((to, len)) => {
                    stats.add(Counter::IcmpToClient, 1);
                    self.send_to_client(&to, &out[..len]);
                }
                Err(why) => stats.drop(Side::Peer, why),
            }
        }
        true
    }

    /// Relays up to [`BUDGET`] datagrams from allocation `id`'s relay socket of one family to
    /// its client, [`SLOTS`] at a time (see [`Worker::flush_frames`]).
    fn drain_relay(
        &self,
        id: AllocId,
        ipv6: bool,
        slots: &mut [u8],
        frames: &mut Vec<(FiveTuple, std::ops::Range<usize>)>,
        now: crate::turn::Now,
    ) -> bool {
        frames.clear();
        let mut drained = false;
        for _ in 0..BUDGET {
            // The next free slot: every frame took one, in order.
            let slot = &mut slots[frames.len() * SLOT..][..SLOT];
            let payload = DATA_INDICATION_HEADROOM..DATA_INDICATION_HEADROOM + MAX_DATAGRAM;
            let received = self
                .server
                .table()
                .with_id(id, |a| a.relay_for(ipv6).map(|(r, _)| r.recv_from(&mut slot[payload])))
                .flatten();
            let (len, peer) = match received {
                Some(Ok(received)) => received,
                // Drained (epoll says when more arrives), or the allocation has ended.
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                None => {
                    drained = true;
                    break;
                }
                // An ICMP error reported on this read (its error-queue entry is read on the
                // epoll error event), or EINTR: the next read goes on.
                Some(Err(_)) => continue,
            };
            let stats = self.counters();
            match self.server.handle_peer(now, id, peer, slot, len) {
                Ok((to, range)) => {
                    // ChannelData starts with 0b01, a Data indication (STUN) with 0b00.
                    let kind = match classify(&slot[range.clone()]) {
                        Framing::ChannelData => Counter::ChannelDataToClient,
                        _ => Counter::DataIndicationsToClient,
                    };
                    stats.add(kind, 1);
                    stats.add(Counter::BytesToClient, len as u64);
                    frames.push((to, range));
                    if frames.len() == SLOTS {
                        self.flush_frames(slots, frames);
                    }
                }
                Err(why) => stats.drop(Side::Peer, why),
            }
        }
        self.flush_frames(slots, frames);
        !drained
    }

    /// Sends the frames of the filled slots to their clients, in order: a run of two or more
    /// to one UDP client, all of one size but the last, goes in one GSO send (a video frame's
    /// burst); anything else one datagram (or one outbox push) at a time.
    fn flush_frames(&self, slots: &[u8], frames: &mut Vec<(FiveTuple, std::ops::Range<usize>)>) {
        let frame = |k: usize| &slots[k * SLOT..][frames[k].1.clone()];
        let mut i = 0;
        while i < frames.len() {
            let (to, size) = (frames[i].0, frames[i].1.len());
            // The run: frames to the same client of the first one's size, ended by a shorter one
            // (GSO's last segment may be short), within GSO's limits.
            let mut j = i + 1;
            if to.transport == Transport::Udp && self.gso.get() {
                let mut total = size;
                while j < frames.len() && j - i < gso::MAX_SEGMENTS {
                    let (next_to, next) = (frames[j].0, frames[j].1.len());
                    if next_to != to || next > size || total + next > gso::MAX_BYTES {
                        break;
                    }
                    total += next;
                    j += 1;
                    if next < size {
                        break;
                    }
                }
            }
            let listener = self.listener_addrs.iter().position(|a| *a == to.server);
            match listener {
                Some(l) if j - i >= 2 => {
                    let mut segments: [&[u8]; SLOTS] = [&[]; SLOTS];
                    for (k, segment) in (i..j).zip(segments.iter_mut()) {
                        *segment = frame(k);
                    }
                    match gso::send_segments(self.listeners[l].as_raw_fd(), to.client, &segments[..j - i]) {
                        Ok(()) => self.counters().add(Counter::GsoSends, 1),
                        // A full socket buffer drops the burst, as it would each datagram.
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => {
                            if gso::unsupported(&e) {
                                tracing::info!(error = %e, "UDP GSO refused: sending one datagram at a time");
                                self.gso.set(false);
                            }
                            // This burst goes one datagram at a time (e.g. over the route's MTU).
                            for k in i..j {
                                self.send_to_client(&to, frame(k));
                            }
                        }
                    }
                }
                _ => {
                    for k in i..j {
                        self.send_to_client(&to, frame(k));
                    }
                }
            }
            i = j;
        }
        frames.clear();
    }

    /// Accepts up to [`BUDGET`] peer connections on TCP relay `id` (RFC 6062 §5.3): a peer with
    /// a permission is announced to the client with a ConnectionAttempt and parked until the
    /// client binds a data connection to it; any other is closed.
    fn accept_peers(&self, id: AllocId, out: &mut [u8], now: crate::turn::Now) -> bool {
        for _ in 0..BUDGET {
            let (stream, peer) = match self.server.table().with_id(id, |a| a.relay.accept()) {
                Some(Ok(accepted)) => accepted,
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => return false,
                None => return false,
                Some(Err(_)) => continue,
            };
            let Some((control, connection, len)) = self.server.peer_connected(now, id, peer, out) else {
                tracing::debug!(%peer, "TCP peer without permission: closed");
                continue;
            };
            self.shared.park(connection, stream.into());
            self.send_to_client(&control, &out[..len]);
            tokio::task::spawn_local(expire_parked(Arc::clone(&self.shared), connection));
        }
        true
    }
}

/// RFC 6062 Connect: opens the peer data connection from the relayed address, parks it for the
/// client's ConnectionBind, and answers the Connect request.
async fn dial(worker: Rc<Worker>, connection: u32, from: std::net::SocketAddr, peer: std::net::SocketAddr) {
    let stream = async {
        let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(from)?;
        let stream = tokio::time::timeout(crate::turn::BIND_TIMEOUT, socket.connect(peer))
            .await
            .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))??;
        stream.into_std()
    }
    .await;
    let connected = match stream {
        Ok(stream) => {
            // Parked before the answer goes out: the client binds as soon as it reads it.
            worker.shared.park(connection, stream);
            true
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "RFC 6062 Connect failed");
            false
        }
    };
    let answered = {
        let mut bufs = worker.bufs.borrow_mut();
        let tx = &mut bufs.tx;
        let answer = worker.server.connect_finished(super::now(), connection, connected, tx);
        answer.map(|(control, len)| worker.send_to_client(&control, &tx[..len])).is_some()
    };
    if connected && !answered {
        drop(worker.shared.unpark(connection));
    } else if connected {
        expire_parked(Arc::clone(&worker.shared), connection).await;
    }
}

/// Closes a parked peer data connection that no ConnectionBind claimed in time.
async fn expire_parked(shared: Arc<Shared>, connection: u32) {
    tokio::time::sleep(crate::turn::BIND_TIMEOUT).await;
    if shared.unpark(connection).is_some() {
        tracing::debug!(connection, "no ConnectionBind in time: peer connection closed");
        shared.server.connection_closed(connection);
    }
}

/// Waits for relay sockets to become readable: this worker's epoll set is itself a pollable fd,
/// registered with the runtime.
async fn serve_relays(worker: Rc<Worker>) -> std::io::Result<()> {
    let raw = worker.poll.borrow().as_raw_fd();
    // SAFETY: the fd is the worker's epoll set; `PollFd` holds the worker, which owns the
    // `mio::Poll`, so the fd stays open and unchanged for as long as the `AsyncFd` lives.
    let fd = unsafe { AsyncFd::register_with_interest(PollFd(raw, Rc::clone(&worker)), tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = fd.readable().await?;
        // Clear first: readiness that arrives while draining re-arms the fd.
        guard.clear_ready();
        while worker.drain_relays()? {
            tokio::task::yield_now().await;
        }
    }
}

/// The raw fd of a worker's `mio::Poll`, with the worker that owns it (keeping it open).
struct PollFd(RawFd, #[allow(dead_code)] Rc<Worker>);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Stores this worker's heartbeat: the runtime that serves its sockets is turning.
async fn heartbeat(shared: Arc<Shared>, index: usize) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let now = shared.started.elapsed().as_millis() as u64;
        if let Some(beat) = shared.heartbeats.get(index) {
            beat.store(now, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Ends expired allocations once a second.
async fn sweep(server: Arc<Server<RelaySocket>>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ended = server.expire(super::now().mono);
        if ended > 0 {
            tracing::debug!(ended, "allocations expired");
        }
    }
}
