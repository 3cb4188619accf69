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
use tokio::net::TcpListener;

use super::relay::{token_relay, PortPool, RelaySocket, WorkerRelays};
use super::stream::{self, Connections, Outbox, StreamSettings};
use super::{gro, gso};
use crate::stats::{Counter, Side, Stats, WorkerStats};
use crate::stun::{classify, Class, Framing, MessageType, Method};
use crate::turn::{
    AllocId, FiveTuple, Outcome, Server, Transport, DATA_INDICATION_HEADROOM, PEER_TAILROOM, SWEEP_INTERVAL,
};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Room one receive needs in the relay buffer: headroom for the ChannelData or Data indication
/// header, the datagram (or GRO burst), and ChannelData padding.
const RECEIVE_ROOM: usize = DATA_INDICATION_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM;
/// The relay buffer: peer datagrams are received one after the other into it, each with its
/// headroom and tailroom, until what they became is sent (a run of them to one client, all of
/// one size, a burst of a video frame, leaves in one GSO send).
const RELAY_BUF: usize = 4 * RECEIVE_ROOM;
/// Frames gathered before they are sent.
const FLUSH_AT: usize = gso::MAX_SEGMENTS;
/// Frames the list holds without growing: [`FLUSH_AT`] and one GRO burst spread out.
const FRAMES: usize = FLUSH_AT + 2 * gso::MAX_SEGMENTS;
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
    /// The receive-coalescing window ([`super::coalesce::Coalesce`]); zero is off.
    pub coalesce: Duration,
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
    /// Registered for readability only: a UDP socket's write space comes back during each
    /// send (loopback frees the datagram at once, and a NIC soon after), and with write
    /// interest every send to a client would report an EPOLLOUT edge, an `epoll_wait` that
    /// finds nothing to do. Sends never wait for room: a full buffer drops, as UDP does.
    listeners: Vec<AsyncFd<StdUdpSocket>>,
    /// The listeners' local addresses, read once (a syscall each).
    listener_addrs: Vec<std::net::SocketAddr>,
    poll: RefCell<mio::Poll>,
    bufs: RefCell<Buffers>,
    /// Whether receive coalescing's sleeps pay on this thread: one choice for all the
    /// listeners, since each one's sleep blocks the thread for all.
    payoff: RefCell<super::coalesce::Payoff>,
}

struct Buffers {
    /// Client packets are received here: [`gro::BATCH`] entries of [`gro::ENTRY`] bytes.
    rx: Box<[u8]>,
    /// The `recvmmsg` headers pointing into `rx`.
    rx_heads: gro::Headers,
    /// Responses and in-process forwards are written here.
    tx: Box<[u8]>,
    /// [`RELAY_BUF`] bytes; each peer datagram is received `DATA_INDICATION_HEADROOM` after
    /// the last one's end (the datagrams of a GRO burst are spread out so), so the header goes
    /// in front of it without moving it.
    relay: Box<[u8]>,
    /// What the received datagrams became, in order: the client and the frame's range in
    /// `relay`.
    frames: Vec<(FiveTuple, std::ops::Range<usize>)>,
    events: mio::Events,
    /// Relay sockets (allocation, IPv6?) that still had data when their budget ran out (epoll
    /// is edge-triggered), each with whether its error queue still had entries.
    pending: Vec<(AllocId, bool, bool)>,
    /// Relay sockets to read this round (pending ones and new events), each with whether its
    /// error queue is to be read (epoll reported an error).
    ready: Vec<(AllocId, bool, bool)>,
    /// TCP relays whose accept failed (out of descriptors and the like): read again after
    /// [`stream::ACCEPT_BACKOFF`], as the client listeners are, so the worker does not spin.
    backoff: Vec<(AllocId, bool, bool)>,
}

/// Runs worker `index` on the current thread until its runtime fails.
pub(super) fn run(index: usize, shared: Arc<Shared>, sockets: Sockets) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener_addrs = sockets.udp.iter().map(StdUdpSocket::local_addr).collect::<std::io::Result<Vec<_>>>()?;
        let listeners = sockets
            .udp
            .into_iter()
            // SAFETY: a std `UdpSocket` owns its open fd, returns it from `as_raw_fd` and closes
            // it only when dropped, which the `AsyncFd` does after deregistering it.
            .map(|socket| unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.into_parts().1)?;
        let worker = Rc::new(Worker {
            index,
            server: Arc::clone(&shared.server),
            tls: shared.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            shared,
            listeners,
            listener_addrs,
            poll: RefCell::new(mio::Poll::new()?),
            bufs: RefCell::new(Buffers {
                rx: vec![0; gro::BATCH * gro::ENTRY].into_boxed_slice(),
                rx_heads: gro::Headers::new(),
                tx: vec![0; DATA_INDICATION_HEADROOM + MAX_DATAGRAM + PEER_TAILROOM].into_boxed_slice(),
                relay: vec![0; RELAY_BUF].into_boxed_slice(),
                frames: Vec::with_capacity(FRAMES),
                events: mio::Events::with_capacity(EVENTS),
                pending: Vec::new(),
                backoff: Vec::new(),
                ready: Vec::new(),
            }),
            payoff: RefCell::new(super::coalesce::Payoff::new()),
        });
        let mut listening = tokio::task::JoinSet::new();
        for i in 0..worker.listeners.len() {
            listening.spawn_local(serve_listener(Rc::clone(&worker), i));
        }
        for (listeners, transport) in [(sockets.tcp, Transport::Tcp), (sockets.tls, Transport::Tls)] {
            for listener in listeners {
                let listener = TcpListener::from_std(listener)?;
                listening.spawn_local(stream::accept(Rc::clone(&worker), listener, transport));
            }
        }
        if index == 0 {
            tokio::task::spawn_local(sweep(Arc::clone(&worker.server)));
        }
        tokio::task::spawn_local(heartbeat(Arc::clone(&worker.shared), index));
        until_one_stops(serve_relays(worker), &mut listening).await
    })
}

/// Runs `relays` until it fails or one of the `listening` tasks stops (each serves one
/// listening socket until it fails, or panics). A listener nothing serves any more still has
/// its `SO_REUSEPORT` socket bound, and the kernel keeps hashing clients to it: like a stopped
/// worker, it stops the process.
async fn until_one_stops(
    relays: impl std::future::Future<Output = std::io::Result<()>>,
    listening: &mut tokio::task::JoinSet<std::io::Error>,
) -> std::io::Result<()> {
    tokio::select! {
        r = relays => r,
        Some(stopped) = listening.join_next() => Err(match stopped {
            Ok(failed) => failed,
            Err(e) => std::io::Error::other(format!("a listener's task panicked: {e}")),
        }),
    }
}

/// Reads one listener socket until it fails; what failed.
async fn serve_listener(worker: Rc<Worker>, i: usize) -> std::io::Error {
    let mut coalesce = super::coalesce::Coalesce::new(worker.shared.coalesce);
    loop {
        let mut ready = match worker.listeners[i].readable().await {
            Ok(ready) => ready,
            Err(e) => {
                let addr = worker.listener_addrs[i];
                return std::io::Error::new(e.kind(), format!("UDP listener {addr} failed: {e}"));
            }
        };
        let mut handled = 0;
        // While coalescing, a short batch ends the drain: what lands meanwhile waits for the
        // window anyway, so reading on until WouldBlock would only add an empty receive.
        let stop_short = coalesce.sleeping();
        while worker.drain_listener(i, &mut handled, stop_short) {
            tokio::task::yield_now().await;
        }
        // The queue was empty at the last read (WouldBlock, or a short `recvmmsg`, which stops
        // only there: the listener takes no ICMP errors). A datagram landing after that read is
        // a new edge, which epoll reports after this clear (and an event the runtime took since
        // `readable` changed the tick, so this clears nothing), as tokio's own `try_io` does.
        ready.clear_ready();
        let decision = {
            let mut payoff = worker.payoff.borrow_mut();
            let paid = payoff.pays();
            let decision = coalesce.after_drain(handled, super::mono(), &mut payoff, thread_cpu);
            if payoff.pays() != paid {
                tracing::debug!(
                    worker = worker.index,
                    sleeping = payoff.pays(),
                    "receive coalescing switched: the other way cost less CPU per receive"
                );
            }
            decision
        };
        if let Some(pause) = decision {
            worker.counters().add(Counter::CoalesceSleeps, 1);
            // Blocks this worker's thread on purpose: nothing else of its is due that cannot
            // wait `pause`, and what arrives meanwhile is read in one go.
            std::thread::sleep(pause);
        }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): what receive coalescing weighs.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a pointer to a timespec that lives across the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

impl Worker {
    /// Handles up to [`BUDGET`] receives (datagrams, or GRO bursts of them) from listener `i`,
    /// [`gro::BATCH`] per `recvmmsg`, until WouldBlock, or a short batch if `stop_short`; true
    /// if it stopped on the budget.
    fn drain_listener(&self, i: usize, handled: &mut usize, stop_short: bool) -> bool {
        let socket = &self.listeners[i];
        let mut bufs = self.bufs.borrow_mut();
        let Buffers { rx, rx_heads, tx, .. } = &mut *bufs;
        let poll = self.poll.borrow();
        let mut relays = WorkerRelays { pool: &self.shared.ports, registry: poll.registry() };
        let mut got = [gro::NOTHING; gro::BATCH];
        for _ in 0..BUDGET / gro::BATCH {
            // Read until the queue is empty (WouldBlock). Stopping at the first short batch
            // saves that last, empty receive but, when the worker does not sleep next, costs
            // more wake-ups: a client's packets arrive in clumps, and the rest of a clump lands
            // while the first is handled.
            let (n, drained) = match gro::recv_batch(socket.as_raw_fd(), rx, &mut got, rx_heads) {
                Ok(n) => (n, stop_short && n < gro::BATCH),
                Err(e) if e.kind() == ErrorKind::WouldBlock => (0, true),
                // None is expected (unconnected and without IP_RECVERR, the listener takes no
                // ICMP errors); whatever it is, it is not the listener failing: read on.
                Err(_) => (0, false),
            };
            *handled += n;
            if n == 0 {
                // Nothing came: no clock read for it.
                if drained {
                    return false;
                }
                continue;
            }
            let now = super::now();
            let mut k = 0;
            while k < n {
                let run = client_run(&got[k..n]);
                if run == 1 {
                    self.answer_burst(i, &got[k], &rx[k * gro::ENTRY..][..got[k].len], &mut relays, tx, now);
                } else {
                    let mut datagrams: [&[u8]; gro::BATCH] = [&[]; gro::BATCH];
                    for (j, d) in datagrams.iter_mut().enumerate().take(run) {
                        *d = &rx[(k + j) * gro::ENTRY..][..got[k + j].len];
                    }
                    self.answer_datagrams(i, got[k].from, &datagrams[..run], &mut relays, tx, now);
                }
                k += run;
            }
            if drained {
                return false;
            }
        }
        true
    }

    /// Handles one receive from listener `i`: a datagram, or a GRO burst of them from one client.
    fn answer_burst(
        &self,
        i: usize,
        got: &gro::Received,
        packets: &[u8],
        relays: &mut WorkerRelays<'_>,
        tx: &mut [u8],
        now: crate::turn::Now,
    ) {
        let tuple = FiveTuple { client: got.from, server: self.listener_addrs[i], transport: Transport::Udp };
        if got.datagrams() == 1 {
            self.answer(i, &tuple, packets, relays, tx, now);
            return;
        }
        self.counters().add(Counter::GroReceives, 1);
        let mut at = 0;
        while at < packets.len() {
            let rest = &packets[at..];
            // A run of ChannelData goes to its peers in as few sends as it can; the message
            // that stops it, and anything else, is handled on its own.
            if matches!(classify(rest), Framing::ChannelData) {
                let run = self.server.relay_channel_data_run(now, &tuple, rest, got.segment);
                if run.messages > 0 {
                    self.count_run(&run);
                    at += run.messages * got.segment;
                    continue;
                }
            }
            let end = (at + got.segment).min(packets.len());
            self.answer(i, &tuple, &packets[at..end], relays, tx, now);
            at = end;
        }
    }

    /// Handles `datagrams`, received one by one from the client `from` on listener `i` in a
    /// row (see [`client_run`]): as a GRO burst is, so that runs of ChannelData to one peer
    /// leave in one GSO send, as a NIC's GRO would have let them.
    fn answer_datagrams(
        &self,
        i: usize,
        from: std::net::SocketAddr,
        datagrams: &[&[u8]],
        relays: &mut WorkerRelays<'_>,
        tx: &mut [u8],
        now: crate::turn::Now,
    ) {
        let tuple = FiveTuple { client: from, server: self.listener_addrs[i], transport: Transport::Udp };
        let mut at = 0;
        while let Some(&first) = datagrams.get(at) {
            if matches!(classify(first), Framing::ChannelData) {
                let run = self.server.relay_channel_data_datagrams(now, &tuple, &datagrams[at..]);
                if run.messages > 0 {
                    self.count_run(&run);
                    at += run.messages;
                    continue;
                }
            }
            self.answer(i, &tuple, first, relays, tx, now);
            at += 1;
        }
    }

    /// Counts a run of ChannelData messages the core relayed.
    fn count_run(&self, run: &crate::turn::RunRelayed) {
        let stats = self.counters();
        stats.add(Counter::PacketsToPeer, run.messages as u64);
        stats.add(Counter::ChannelDataFromClient, run.messages as u64);
        stats.add(Counter::BytesToPeer, run.bytes as u64);
        stats.add(Counter::GsoSends, run.batched as u64);
    }

    /// Handles one datagram from the client of `tuple` on listener `i`.
    fn answer(
        &self,
        i: usize,
        tuple: &FiveTuple,
        packet: &[u8],
        relays: &mut WorkerRelays<'_>,
        tx: &mut [u8],
        now: crate::turn::Now,
    ) {
        let outcome = self.server.handle_client(now, tuple, packet, relays, tx);
        self.count(packet, &outcome);
        match outcome {
            Outcome::Reply(n) => {
                let _ = self.listeners[i].get_ref().send_to(&tx[..n], tuple.client);
            }
            // RFC 5780 CHANGE-REQUEST: this worker's own socket on the other address.
            Outcome::ReplyFrom { len, from } => {
                if let Some(i) = self.listener_addrs.iter().position(|a| *a == from) {
                    let _ = self.listeners[i].get_ref().send_to(&tx[..len], tuple.client);
                }
            }
            Outcome::Forward { to, start, end } => self.send_to_client(&to, &tx[start..end]),
            // RFC 6062 outcomes need a stream control connection; the core never gives them
            // for UDP, and if it did there would be nothing to do with them here.
            Outcome::Relayed { .. } | Outcome::Dropped(_) | Outcome::Connect { .. } | Outcome::Bound { .. } => {}
        }
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

    /// Ends allocation `id`, made over the stream connection of `tuple`, which closed. An
    /// allocation of a later connection of the same 5-tuple (a client that reset and reconnected
    /// from the same port) is another one and stays. Only the connection of `tuple` makes
    /// allocations there, and the kernel hands one 4-tuple to the same `SO_REUSEPORT` listener,
    /// so to this worker's thread: nothing can come between the look-up and the removal.
    pub(super) fn end_allocation(&self, tuple: &FiveTuple, id: AllocId) {
        if self.server.table().with(tuple, |a| a.id) == Some(id) {
            self.server.client_disconnected(tuple);
        }
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(super) fn server(&self) -> &Server<RelaySocket> {
        &self.server
    }

    /// Handles one complete frame from a stream client; answers go to its outbox, and the id
    /// of an allocation the frame made to `allocation`. Returns the CONNECTION-ID and allocation
    /// when this frame bound the connection as an RFC 6062 client data connection (from then on
    /// it carries raw bytes).
    pub(super) fn handle_stream_frame(
        self: &Rc<Self>,
        tuple: &FiveTuple,
        frame: &[u8],
        outbox: &Outbox,
        allocation: &std::cell::Cell<Option<AllocId>>,
    ) -> Option<(u32, AllocId)> {
        let mut bufs = self.bufs.borrow_mut();
        let tx = &mut bufs.tx;
        let poll = self.poll.borrow();
        let mut relays = WorkerRelays { pool: &self.shared.ports, registry: poll.registry() };
        let outcome = self.server.handle_client(super::now(), tuple, frame, &mut relays, tx);
        self.count(frame, &outcome);
        match outcome {
            Outcome::Reply(n) => {
                if allocated(&tx[..n]) {
                    // Once per Allocate, not per packet.
                    allocation.set(self.server.table().with(tuple, |a| a.id));
                }
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
            let _ = self.listeners[i].get_ref().send_to(bytes, to.client);
        }
    }

    /// Reads ready relay sockets; true if some still have data (budget spent).
    fn drain_relays(&self) -> std::io::Result<bool> {
        let mut bufs = self.bufs.borrow_mut();
        let Buffers { relay, frames, tx, events, pending, ready, backoff, .. } = &mut *bufs;
        ready.clear();
        ready.append(pending);
        self.poll.borrow_mut().poll(events, Some(Duration::ZERO))?;
        ready.extend(events.iter().map(|e| {
            let (id, ipv6) = token_relay(e.token());
            (id, ipv6, e.is_error())
        }));
        if ready.is_empty() {
            return Ok(false);
        }
        let now = super::now();
        for &(id, ipv6, errors) in ready.iter() {
            match self.server.table().with_id(id, |a| a.relay.is_tcp()) {
                Some(true) => match self.accept_peers(id, tx, now) {
                    Accepting::Done => {}
                    Accepting::More => pending.push((id, ipv6, false)),
                    Accepting::Failing if backoff.contains(&(id, ipv6, false)) => {}
                    Accepting::Failing => backoff.push((id, ipv6, false)),
                },
                Some(false) => {
                    let errors_left = errors && self.drain_errors(id, ipv6, tx, now);
                    if self.drain_relay(id, ipv6, relay, tx, frames, now) || errors_left {
                        pending.push((id, ipv6, errors_left));
                    }
                }
                None => {}
            }
        }
        Ok(!pending.is_empty())
    }

    /// Whether some TCP relays wait for their accept backoff.
    fn backing_off(&self) -> bool {
        !self.bufs.borrow().backoff.is_empty()
    }

    /// Reads the TCP relays that backed off again in the next [`Worker::drain_relays`].
    fn retry_accepts(&self) {
        let mut bufs = self.bufs.borrow_mut();
        let Buffers { pending, backoff, .. } = &mut *bufs;
        pending.append(backoff);
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

    /// Relays up to [`BUDGET`] receives (datagrams, or GRO bursts of them) from allocation
    /// `id`'s relay socket of one family to its client; what they became is sent
    /// [`FLUSH_AT`] frames at a time and at the end (see [`Worker::flush_frames`]). True if the
    /// socket may still have data.
    fn drain_relay(
        &self,
        id: AllocId,
        ipv6: bool,
        buf: &mut [u8],
        tx: &mut [u8],
        frames: &mut Vec<(FiveTuple, std::ops::Range<usize>)>,
        now: crate::turn::Now,
    ) -> bool {
        const HEAD: usize = DATA_INDICATION_HEADROOM;
        frames.clear();
        // Where the next datagram's headroom starts.
        let mut at = 0;
        let mut drained = false;
        for _ in 0..BUDGET {
            if at + RECEIVE_ROOM > buf.len() || frames.len() >= FLUSH_AT {
                self.flush_frames(buf, frames);
                at = 0;
            }
            let room = &mut buf[at + HEAD..][..MAX_DATAGRAM];
            let received =
                self.server.table().with_id(id, |a| a.relay_for(ipv6).map(|(r, _)| r.recv_burst(room))).flatten();
            let got = match received {
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
            let count = got.datagrams();
            if count == 1 {
                let slot = &mut buf[at..][..HEAD + got.len + PEER_TAILROOM];
                self.relay_to_client(id, got.from, slot, got.len, at, frames, now);
                at += HEAD + got.len + PEER_TAILROOM;
                continue;
            }
            self.counters().add(Counter::GroReceives, 1);
            let segment = |j: usize| got.segment.min(got.len - j * got.segment);
            let stride = HEAD + got.segment + PEER_TAILROOM;
            if at + count * stride <= buf.len() && frames.len() + count <= FRAMES {
                // Each datagram of the burst gets its own headroom and tailroom: moved up from
                // the last, so none is overwritten before it has moved.
                for j in (1..count).rev() {
                    let from = at + HEAD + j * got.segment;
                    buf.copy_within(from..from + segment(j), at + j * stride + HEAD);
                }
                for j in 0..count {
                    let start = at + j * stride;
                    let slot = &mut buf[start..][..stride];
                    self.relay_to_client(id, got.from, slot, segment(j), start, frames, now);
                }
                at += count * stride;
            } else {
                // A burst of many tiny datagrams: one at a time through `tx`, in order.
                self.flush_frames(buf, frames);
                for j in 0..count {
                    let from = at + HEAD + j * got.segment;
                    tx[HEAD..][..segment(j)].copy_from_slice(&buf[from..][..segment(j)]);
                    self.relay_to_client(id, got.from, tx, segment(j), 0, frames, now);
                    self.flush_frames(tx, frames);
                }
                at = 0;
            }
        }
        self.flush_frames(buf, frames);
        !drained
    }

    /// Makes the `len`-byte datagram from `peer` at `HEADROOM` into `slot` (which starts at
    /// `base` of its buffer) a frame for allocation `id`'s client, and lists it.
    #[allow(clippy::too_many_arguments)]
    fn relay_to_client(
        &self,
        id: AllocId,
        peer: std::net::SocketAddr,
        slot: &mut [u8],
        len: usize,
        base: usize,
        frames: &mut Vec<(FiveTuple, std::ops::Range<usize>)>,
        now: crate::turn::Now,
    ) {
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
                frames.push((to, base + range.start..base + range.end));
            }
            Err(why) => stats.drop(Side::Peer, why),
        }
    }

    /// Sends the listed frames of `buf` to their clients, in order: a run of two or more to one
    /// UDP client, all of one size but the last, goes in one GSO send (a video frame's burst);
    /// anything else one datagram (or one outbox push) at a time.
    fn flush_frames(&self, buf: &[u8], frames: &mut Vec<(FiveTuple, std::ops::Range<usize>)>) {
        let frame = |k: usize| &buf[frames[k].1.clone()];
        let mut i = 0;
        while i < frames.len() {
            let (to, size) = (frames[i].0, frames[i].1.len());
            // The run: frames to the same client of the first one's size, ended by a shorter one
            // (GSO's last segment may be short), within GSO's limits.
            let mut j = i + 1;
            if to.transport == Transport::Udp && gso::available() {
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
                    let mut segments: [&[u8]; gso::MAX_SEGMENTS] = [&[]; gso::MAX_SEGMENTS];
                    for (k, segment) in (i..j).zip(segments.iter_mut()) {
                        *segment = frame(k);
                    }
                    match gso::send_segments(self.listeners[l].as_raw_fd(), Some(to.client), &segments[..j - i]) {
                        Ok(()) => self.counters().add(Counter::GsoSends, 1),
                        // A full socket buffer drops the burst, as it would each datagram.
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => {
                            gso::note_failure(&e);
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
    fn accept_peers(&self, id: AllocId, out: &mut [u8], now: crate::turn::Now) -> Accepting {
        for _ in 0..BUDGET {
            let (stream, peer) = match self.server.table().with_id(id, |a| a.relay.accept()) {
                Some(Ok(accepted)) => accepted,
                Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => return Accepting::Done,
                None => return Accepting::Done,
                // That one connection is gone; the next may be fine.
                Some(Err(e)) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::Interrupted) => continue,
                // Out of descriptors (or buffers): the connection stays in the backlog and every
                // accept would fail at once; the caller retries after a pause.
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "accept on a TCP relay failed, retrying");
                    return Accepting::Failing;
                }
            };
            let Some((control, connection, len)) = self.server.peer_connected(now, id, peer, out) else {
                tracing::debug!(%peer, "TCP peer without permission, or too many unbound: closed");
                continue;
            };
            self.shared.park(connection, stream.into());
            self.send_to_client(&control, &out[..len]);
            tokio::task::spawn_local(expire_parked(Arc::clone(&self.shared), connection));
        }
        Accepting::More
    }
}

/// How a round of [`Worker::accept_peers`] on a TCP relay ended.
enum Accepting {
    /// Nothing left to accept (or the allocation has ended).
    Done,
    /// The budget ran out with connections possibly left.
    More,
    /// accept(2) failed for want of resources: try again after a pause.
    Failing,
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

/// Whether `answer` is an Allocate success response: the request made an allocation at its
/// 5-tuple (or, retransmitted, names the one it made).
fn allocated(answer: &[u8]) -> bool {
    let success = MessageType::new(Method::ALLOCATE, Class::Success).to_u16().to_be_bytes();
    answer.get(..2) == Some(&success[..])
}

/// How many of `got` (at least one, if any) one client sent in a row as single datagrams: a GRO
/// burst stands alone, as does a datagram whose successor came from another client. Loopback
/// (and a NIC without UDP GRO) hands over back-to-back datagrams one by one; taken together,
/// the ChannelData among them can go to their peer in one send.
fn client_run(got: &[gro::Received]) -> usize {
    let Some(first) = got.first() else { return 0 };
    if first.datagrams() > 1 {
        return 1;
    }
    1 + got[1..].iter().take_while(|r| r.from == first.from && r.datagrams() == 1).count()
}

/// Waits for relay sockets to become readable: this worker's epoll set is itself a pollable fd,
/// registered with the runtime.
async fn serve_relays(worker: Rc<Worker>) -> std::io::Result<()> {
    let raw = worker.poll.borrow().as_raw_fd();
    // SAFETY: the fd is the worker's epoll set; `PollFd` holds the worker, which owns the
    // `mio::Poll`, so the fd stays open and unchanged for as long as the `AsyncFd` lives.
    let fd = unsafe { AsyncFd::register_with_interest(PollFd(raw, Rc::clone(&worker)), tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    // When the TCP relays that backed off are read again.
    let mut retry_at = None;
    loop {
        if retry_at.is_none() && worker.backing_off() {
            retry_at = Some(tokio::time::Instant::now() + stream::ACCEPT_BACKOFF);
        }
        // The timer exists only while a TCP relay backs off: the usual wake-up builds none.
        match retry_at {
            // Clear first: readiness that arrives while draining re-arms the fd.
            None => fd.readable().await?.clear_ready(),
            Some(at) => tokio::select! {
                guard = fd.readable() => guard?.clear_ready(),
                () = tokio::time::sleep_until(at) => {
                    retry_at = None;
                    worker.retry_accepts();
                }
            },
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn received(port: u16, len: usize, segment: usize) -> gro::Received {
        gro::Received { len, from: std::net::SocketAddr::from(([127, 0, 0, 1], port)), segment }
    }

    #[test]
    fn only_an_allocate_success_response_names_an_allocation_made() {
        let answer = |kind: u16| {
            let mut m = [0u8; 20];
            m[..2].copy_from_slice(&kind.to_be_bytes());
            m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            m
        };
        assert!(allocated(&answer(0x0103)));
        // Allocate error, Refresh success, Binding success, ConnectionBind success.
        for other in [0x0113, 0x0104, 0x0101, 0x010B] {
            assert!(!allocated(&answer(other)), "{other:#06x}");
        }
        assert!(!allocated(&[0x01]) && !allocated(&[]));
    }

    #[tokio::test]
    async fn a_listener_that_stops_stops_the_worker() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut listening = tokio::task::JoinSet::new();
                listening.spawn_local(std::future::pending());
                listening.spawn_local(async { std::io::Error::other("UDP listener 127.0.0.1:3478 failed") });
                let stopped = until_one_stops(std::future::pending(), &mut listening).await;
                assert_eq!(stopped.unwrap_err().to_string(), "UDP listener 127.0.0.1:3478 failed");
                // A listener's task that panicked.
                listening.spawn_local(async { panic!("listener bug") });
                let stopped = until_one_stops(std::future::pending(), &mut listening).await;
                assert!(stopped.unwrap_err().to_string().contains("panicked"));
                // The relays' task failing stops the worker as before.
                let failed = async { Err(std::io::Error::other("epoll failed")) };
                assert_eq!(until_one_stops(failed, &mut listening).await.unwrap_err().to_string(), "epoll failed");
            })
            .await;
    }

    #[test]
    fn a_client_run_is_its_single_datagrams_in_a_row() {
        let one = |port| received(port, 100, 100);
        let got = [one(1), one(1), one(1), one(2), one(1), received(1, 2400, 1200), one(1), one(1)];
        let mut runs = Vec::new();
        let mut k = 0;
        while k < got.len() {
            let run = client_run(&got[k..]);
            runs.push(run);
            k += run;
        }
        // Another client, or a GRO burst (which stands alone), ends a run.
        assert_eq!(runs, [3, 1, 1, 1, 2]);
        assert_eq!(client_run(&[]), 0);
    }
}
