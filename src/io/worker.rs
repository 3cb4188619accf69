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

use super::relay::{PortPool, RelaySocket, WorkerRelays};
use super::stream::{self, Connections, Outbox, StreamSettings};
use crate::stats::{Counter, Stats, WorkerStats};
use crate::stun::{classify, Framing};
use crate::turn::{
    AllocId, FiveTuple, Outcome, Server, Transport, DATA_INDICATION_HEADROOM, PEER_TAILROOM, SWEEP_INTERVAL,
};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
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
    poll: RefCell<mio::Poll>,
    bufs: RefCell<Buffers>,
}

struct Buffers {
    /// Client packets are received here.
    rx: Box<[u8]>,
    /// Responses and in-process forwards are written here.
    tx: Box<[u8]>,
    /// Peer datagrams are received at `DATA_INDICATION_HEADROOM` so the header goes in front.
    relay: Box<[u8]>,
    events: mio::Events,
    /// Relay sockets that still had data when their budget ran out (epoll is edge-triggered).
    pending: Vec<AllocId>,
    /// Relay sockets to read this round (pending ones and new events).
    ready: Vec<AllocId>,
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
            poll: RefCell::new(mio::Poll::new()?),
            bufs: RefCell::new(Buffers {
                rx: vec![0; MAX_DATAGRAM].into_boxed_slice(),
                tx: vec![0; DATA_INDICATION_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM].into_boxed_slice(),
                relay: vec![0; DATA_INDICATION_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM].into_boxed_slice(),
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
        let stats = self.counters();
        for _ in 0..BUDGET {
            let (len, client) = match socket.try_recv_from(rx) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                // ICMP errors surface on later reads; they are not the listener failing.
                Err(_) => continue,
            };
            let tuple = FiveTuple { client, server: server_addr, transport: Transport::Udp };
            match self.server.handle_client(now, &tuple, &rx[..len], &mut relays, tx) {
                Outcome::Reply(n) => {
                    stats.add(Counter::Responses, 1);
                    let _ = socket.try_send_to(&tx[..n], client);
                }
                Outcome::Forward { to, start, end } => {
                    stats.add(Counter::InternalForwards, 1);
                    self.send_to_client(&to, &tx[start..end]);
                }
                Outcome::Relayed { bytes } => {
                    stats.add(Counter::PacketsToPeer, 1);
                    stats.add(Counter::BytesToPeer, bytes as u64);
                }
                Outcome::Dropped(_) => stats.add(Counter::Dropped, 1),
            }
        }
        true
    }

    fn counters(&self) -> &WorkerStats {
        self.shared.stats.worker(self.index)
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
        drop(self.server.table().remove(tuple));
    }

    /// Handles one complete frame from a stream client; answers go to its outbox.
    pub(super) fn handle_stream_frame(&self, tuple: &FiveTuple, frame: &[u8], outbox: &Outbox) {
        let mut bufs = self.bufs.borrow_mut();
        let tx = &mut bufs.tx;
        let poll = self.poll.borrow();
        let mut relays = WorkerRelays { pool: &self.shared.ports, registry: poll.registry() };
        let stats = self.counters();
        match self.server.handle_client(super::now(), tuple, frame, &mut relays, tx) {
            Outcome::Reply(n) => {
                stats.add(Counter::Responses, 1);
                outbox.push(&tx[..n]);
            }
            Outcome::Forward { to, start, end } => {
                stats.add(Counter::InternalForwards, 1);
                self.send_to_client(&to, &tx[start..end]);
            }
            Outcome::Relayed { bytes } => {
                stats.add(Counter::PacketsToPeer, 1);
                stats.add(Counter::BytesToPeer, bytes as u64);
            }
            Outcome::Dropped(_) => stats.add(Counter::Dropped, 1),
        }
    }

    /// Sends to a client over this worker's listener socket for the client's server address
    /// (every worker has one per address, and they share the address via SO_REUSEPORT).
    fn send_to_client(&self, to: &FiveTuple, bytes: &[u8]) {
        if to.transport != Transport::Udp {
            if let Some(outbox) = self.shared.connections.outbox(to) {
                outbox.push(bytes);
            }
            return;
        }
        if let Some(i) = self.listener_addrs.iter().position(|a| *a == to.server) {
            let _ = self.listeners[i].try_send_to(bytes, to.client);
        }
    }

    /// Reads ready relay sockets; true if some still have data (budget spent).
    fn drain_relays(&self) -> std::io::Result<bool> {
        let mut bufs = self.bufs.borrow_mut();
        let Buffers { relay, events, pending, ready, .. } = &mut *bufs;
        ready.clear();
        ready.append(pending);
        self.poll.borrow_mut().poll(events, Some(Duration::ZERO))?;
        ready.extend(events.iter().map(|e| AllocId(e.token().0 as u64)));
        let now = super::now();
        for &id in ready.iter() {
            if self.drain_relay(id, relay, now) {
                pending.push(id);
            }
        }
        Ok(!pending.is_empty())
    }

    /// Relays up to [`BUDGET`] datagrams from allocation `id`'s relay socket to its client.
    fn drain_relay(&self, id: AllocId, buf: &mut [u8], now: crate::turn::Now) -> bool {
        let end = DATA_INDICATION_HEADROOM + MAX_DATAGRAM;
        for _ in 0..BUDGET {
            let received =
                self.server.table().with_id(id, |a| a.relay.recv_from(&mut buf[DATA_INDICATION_HEADROOM..end]));
            let (len, peer) = match received {
                Some(Ok(received)) => received,
                // Drained (epoll says when more arrives), or the allocation has ended.
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => return false,
                None => return false,
                // An ICMP error reported on this read, or EINTR: the next read goes on.
                Some(Err(_)) => continue,
            };
            if let Ok((to, range)) = self.server.handle_peer(now, id, peer, buf, len) {
                let stats = self.counters();
                // ChannelData starts with 0b01, a Data indication (STUN) with 0b00.
                let kind = match classify(&buf[range.clone()]) {
                    Framing::ChannelData => Counter::ChannelDataToClient,
                    _ => Counter::DataIndicationsToClient,
                };
                stats.add(kind, 1);
                stats.add(Counter::BytesToClient, len as u64);
                self.send_to_client(&to, &buf[range]);
            }
        }
        true
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
