//! The traffic modes (throughput, bursts, latency): N allocations with a channel (or Send
//! indications) to a peer socket of the tool, driven from worker threads. Each worker owns a
//! share of the client sockets and one peer socket, sends with `sendmmsg` paced by a token
//! bucket (or flat out), or a flow's burst in one GSO send (as a video sender does), and
//! receives with `recvmmsg`, GRO bursts cut back into frames; the peer counts or echoes (a GRO
//! burst as one GSO send). Every payload carries its phase (warm-up, measured), a sequence
//! number and its send time.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::{Client, Wait};
use super::mmsg::{self, Batch, Inbox, BATCH};
use super::report::{latency_histogram, udp_drops, Report};
use super::BenchError;
use crate::io::{gro, gso};
use crate::stun::{attr, classify, ChannelData, Class, Framing, Message, MessageType, MessageWriter, Method};

/// The channel every client binds to its peer (each client has its own allocation).
const CHANNEL: u16 = 0x4000;
/// Marks a payload of this tool.
const MAGIC: [u8; 4] = *b"tBnc";
/// Smallest payload: magic, phase, sequence number, send time.
pub const MIN_SIZE: usize = 24;
/// Phase byte of payloads sent in the measured window.
const MEASURED: u8 = 1;
/// Longest wait after the window for payloads still in flight.
const DRAIN: Duration = Duration::from_millis(500);

/// How the clients send.
#[derive(Clone, Copy, Debug)]
pub enum Pacing {
    /// Payloads a second over all flows.
    Rate(f64),
    /// As fast as the sockets take them.
    Flood,
    /// `k` payloads back to back per flow every `interval`, flows spread over the interval.
    Bursts { k: usize, interval: Duration },
}

/// What to run.
pub struct Plan {
    pub pacing: Pacing,
    pub echo: bool,
    pub channels: bool,
    pub size: usize,
    pub warmup: Duration,
    pub window: Duration,
    pub threads: usize,
    /// The server's port, for its socket drops; 0 when it is not on this host.
    pub server_port: u16,
    /// GSO sends (a burst, an echoed GRO burst): on unless `--no-gso`, off for the rest of the
    /// run once the kernel refuses one.
    pub gso: AtomicBool,
    /// The target is `turnd bench-forwarder`: flows have no allocation, permission or channel.
    pub bare: bool,
    /// How the workers wait for datagrams: with [`Wait::Spin`] their `ppoll` never sleeps.
    pub wait: Wait,
}

impl Plan {
    /// Turns GSO off for the rest of the run after the kernel refused it, and says so once.
    fn refuse_gso(&self, e: &std::io::Error) {
        if self.gso.swap(false, Ordering::Relaxed) {
            eprintln!("turnd bench: the kernel refuses UDP GSO ({e}): sending one datagram per frame");
        }
    }
}

/// One client socket with its allocation and the frame it sends.
pub struct Flow {
    client: Client,
    /// A whole ChannelData or Send indication; the payload fields are written per packet.
    frame: Vec<u8>,
    payload_at: usize,
    seq: u64,
    next_burst: Instant,
}

impl Flow {
    /// Permits the peer on an allocated client and (with channels) binds [`CHANNEL`] to it;
    /// a `bare` plan's client has no allocation and sends [`CHANNEL`]'s frames as they are.
    pub fn open(mut client: Client, peer: SocketAddr, plan: &Plan) -> Result<Self, BenchError> {
        if !plan.bare {
            client.create_permission(peer).map_err(|e| peer_refused("create-permission", peer, e))?;
        }
        if plan.channels && !plan.bare {
            client.channel_bind(CHANNEL, peer).map_err(|e| peer_refused("channel-bind", peer, e))?;
        }
        let (frame, payload_at) = frame(plan, peer);
        Ok(Flow { client, frame, payload_at, seq: 0, next_burst: Instant::now() })
    }

    /// The flow's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Gives the client back (to delete its allocation).
    pub fn into_client(self) -> Client {
        self.client
    }

    /// Writes the frame with its payload fields into `buf`, which has room for it.
    fn write_frame(&self, buf: &mut [u8], seq: u64, phase: u8, sent_at: u64) {
        buf[..self.frame.len()].copy_from_slice(&self.frame);
        let p = &mut buf[self.payload_at..];
        p[..4].copy_from_slice(&MAGIC);
        p[4] = phase;
        p[8..16].copy_from_slice(&seq.to_be_bytes());
        p[16..24].copy_from_slice(&sent_at.to_be_bytes());
    }
}

/// The frame a flow sends, with a zero payload, and where the payload starts.
fn frame(plan: &Plan, peer: SocketAddr) -> (Vec<u8>, usize) {
    let zeros = vec![0u8; plan.size];
    if plan.channels {
        let mut f = Vec::with_capacity(4 + plan.size);
        f.extend_from_slice(&CHANNEL.to_be_bytes());
        f.extend_from_slice(&(plan.size as u16).to_be_bytes());
        f.extend_from_slice(&zeros);
        return (f, 4);
    }
    let mut buf = vec![0u8; plan.size + 128];
    let mut txid = [0u8; 12];
    let _ = getrandom::getrandom(&mut txid);
    let mut w = MessageWriter::new(&mut buf, MessageType::new(Method::SEND, Class::Indication), &txid);
    w.xor_address(attr::XOR_PEER_ADDRESS, peer).attr(attr::DATA, &zeros);
    let len = w.finish().expect("the buffer has room for the headers");
    buf.truncate(len);
    (buf, len - plan.size.next_multiple_of(4))
}

fn peer_refused(step: &'static str, peer: SocketAddr, e: super::client::RequestError) -> BenchError {
    if matches!(e, super::client::RequestError::Error(403, _)) {
        return BenchError::Run(format!(
            "{step}: the server refused the tool's peer {peer} ({e}); allow it on the server \
             (turnd: --allow-peer {}/32, coturn: --allow-loopback-peers)",
            peer.ip()
        ));
    }
    BenchError::run(step, e)
}

/// Counts of one worker.
struct Tally {
    sent: u64,
    peer_rx: u64,
    client_rx: u64,
    relayed_bytes: u64,
    send_errors: u64,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Tally { sent: 0, peer_rx: 0, client_rx: 0, relayed_bytes: 0, send_errors: 0, latency: latency_histogram() }
    }

    fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.peer_rx += other.peer_rx;
        self.client_rx += other.client_rx;
        self.relayed_bytes += other.relayed_bytes;
        self.send_errors += other.send_errors;
        let _ = self.latency.add(&other.latency);
    }

    fn delivered(&self, echo: bool) -> u64 {
        if echo {
            self.client_rx
        } else {
            self.peer_rx
        }
    }
}

/// Runs the plan over `flows` (already open, each towards `peers[i % threads]`), sampling the
/// server with `sample` at the window's start and end. Returns the flows and the report.
pub fn run(
    flows: Vec<Flow>,
    peers: Vec<UdpSocket>,
    plan: Plan,
    mut sample: impl FnMut(bool),
) -> Result<(Vec<Flow>, Report), BenchError> {
    let nflows = flows.len();
    let plan = Arc::new(plan);
    let peer_ports: Vec<u16> = peers.iter().filter_map(|p| p.local_addr().ok()).map(|a| a.port()).collect();
    let mut shares: Vec<Vec<Flow>> = peers.iter().map(|_| Vec::new()).collect();
    for (i, flow) in flows.into_iter().enumerate() {
        shares[i % peers.len()].push(flow);
    }
    if let Some(Err(e)) = shares.iter().flatten().next().map(|f| gso::probe(f.client.socket.as_raw_fd())) {
        plan.refuse_gso(&e);
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for (i, (mut share, peer)) in shares.into_iter().zip(peers).enumerate() {
        // Bursts: flow j of the whole set starts j/N of an interval in.
        if let Pacing::Bursts { interval, .. } = plan.pacing {
            for (j, f) in share.iter_mut().enumerate() {
                let global = (j * plan.threads + i) as u32;
                f.next_burst = start + interval * global / nflows.max(1) as u32;
            }
        }
        for f in &share {
            f.client.socket.set_nonblocking(true).map_err(|e| BenchError::run("socket", e))?;
        }
        peer.set_nonblocking(true).map_err(|e| BenchError::run("socket", e))?;
        let burst = vec![0; gso::MAX_BYTES].into_boxed_slice();
        let worker = Worker { flows: share, peer, plan: plan.clone(), start, cursor: 0, burst };
        let handle = std::thread::Builder::new()
            .name(format!("bench-{i}"))
            .spawn(move || worker.work())
            .map_err(|e| BenchError::run("thread", e))?;
        handles.push(handle);
    }
    std::thread::sleep(plan.warmup);
    let drops = || (udp_drops(&peer_ports), udp_drops(&[plan.server_port]));
    let drops_before = drops();
    sample(true);
    std::thread::sleep((start + plan.warmup + plan.window).saturating_duration_since(Instant::now()));
    sample(false);
    let drops_after = drops();
    let mut flows = Vec::with_capacity(nflows);
    let mut total = Tally::new();
    for handle in handles {
        let (tally, share) = handle.join().map_err(|_| BenchError::Run("a worker thread panicked".into()))?;
        total.add(&tally);
        flows.extend(share);
    }
    if total.send_errors > 0 {
        eprintln!("turnd bench: {} send errors (is the server still running?)", total.send_errors);
    }
    let secs = plan.window.as_secs_f64();
    let delivered = total.delivered(plan.echo);
    let relayed = total.peer_rx + if plan.echo { total.client_rx } else { 0 };
    let mut report = Report {
        duration_s: secs,
        size: Some(plan.size),
        echo: Some(plan.echo),
        framing: Some(if plan.channels { "channel" } else { "send" }),
        sent: Some(total.sent),
        delivered: Some(delivered),
        offered_pps: Some(total.sent as f64 / secs),
        relayed_pps: Some(relayed as f64 / secs),
        mbps: Some(total.relayed_bytes as f64 * 8.0 / secs / 1e6),
        peer_drops: Some(drops_after.0.saturating_sub(drops_before.0)),
        server_drops: (plan.server_port != 0).then(|| drops_after.1.saturating_sub(drops_before.1)),
        loss: Some(if total.sent == 0 { 0.0 } else { 1.0 - delivered.min(total.sent) as f64 / total.sent as f64 }),
        gso: matches!(plan.pacing, Pacing::Bursts { .. }).then(|| plan.gso.load(Ordering::Relaxed)),
        ..Report::default()
    };
    report.set_latency(&total.latency);
    Ok((flows, report))
}

/// One worker thread: its flows, its peer socket.
struct Worker {
    flows: Vec<Flow>,
    peer: UdpSocket,
    plan: Arc<Plan>,
    start: Instant,
    /// Next flow to send on (token-bucket pacing).
    cursor: usize,
    /// A burst's frames back to back for one GSO send ([`gso::MAX_BYTES`]).
    burst: Box<[u8]>,
}

impl Worker {
    fn work(mut self) -> (Tally, Vec<Flow>) {
        let plan = self.plan.clone();
        let mut tally = Tally::new();
        let (mut tx, mut rx) = (Batch::new(), Inbox::new());
        let mut fds: Vec<libc::pollfd> = self
            .flows
            .iter()
            .map(|f| f.client.socket.as_raw_fd())
            .chain(std::iter::once(self.peer.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        let send_end = plan.warmup + plan.window;
        let (mut tokens, mut last) = (0.0f64, self.start);
        loop {
            let now = Instant::now();
            let t = now - self.start;
            let wait = if t < send_end {
                let phase = u8::from(t >= plan.warmup);
                self.send_due(now, &mut last, &mut tokens, phase, &mut tx, &mut tally)
            } else if t >= send_end + DRAIN || tally.delivered(plan.echo) >= tally.sent {
                break;
            } else {
                Duration::from_millis(5)
            };
            let wait = if plan.wait == Wait::Spin { Duration::ZERO } else { wait.min(Duration::from_millis(5)) };
            let timeout = libc::timespec { tv_sec: 0, tv_nsec: wait.as_nanos() as i64 };
            // SAFETY: fds is a live array of pollfd of the length given.
            let ready = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &timeout, std::ptr::null()) };
            if ready <= 0 {
                continue;
            }
            let (peer_fd, flow_fds) = fds.split_last_mut().expect("the peer's pollfd is last");
            if peer_fd.revents != 0 {
                self.serve_peer(&mut rx, &mut tally);
            }
            for (i, fd) in flow_fds.iter().enumerate() {
                if fd.revents != 0 {
                    self.receive(i, &mut rx, &mut tally);
                }
            }
        }
        (tally, self.flows)
    }

    /// Sends what is due now; how long until more is.
    fn send_due(
        &mut self,
        now: Instant,
        last: &mut Instant,
        tokens: &mut f64,
        phase: u8,
        tx: &mut Batch,
        tally: &mut Tally,
    ) -> Duration {
        let nflows = self.flows.len();
        if nflows == 0 {
            return Duration::from_millis(5);
        }
        match self.plan.pacing {
            Pacing::Flood => {
                for i in 0..nflows {
                    self.send(i, BATCH, phase, tx, tally);
                }
                Duration::ZERO
            }
            Pacing::Rate(total) => {
                let rate = total / self.plan.threads as f64;
                // At most 50 ms of tokens: a stalled loop does not turn into a huge burst.
                *tokens = (*tokens + (now - *last).as_secs_f64() * rate).min((rate / 20.0).max(BATCH as f64));
                *last = now;
                let mut n = *tokens as usize;
                *tokens -= n as f64;
                while n > 0 {
                    let k = n.div_ceil(nflows).min(BATCH);
                    self.send(self.cursor, k, phase, tx, tally);
                    self.cursor = (self.cursor + 1) % nflows;
                    n -= k;
                }
                Duration::from_secs_f64(((1.0 - *tokens) / rate).clamp(50e-6, 5e-3))
            }
            Pacing::Bursts { k, interval } => {
                let mut next = now + interval;
                for i in 0..nflows {
                    if self.flows[i].next_burst <= now {
                        self.send_burst(i, k, phase, tx, tally);
                        self.flows[i].next_burst += interval;
                    }
                    next = next.min(self.flows[i].next_burst);
                }
                next.saturating_duration_since(now)
            }
        }
    }

    /// Sends flow `i`'s burst of `k` frames: back to back in GSO sends of up to
    /// [`gso::MAX_SEGMENTS`] frames and [`gso::MAX_BYTES`] while GSO is on, else (or from where
    /// the kernel refused GSO) [`BATCH`] frames per `sendmmsg`.
    fn send_burst(&mut self, i: usize, k: usize, phase: u8, tx: &mut Batch, tally: &mut Tally) {
        let mut left = k;
        if self.plan.gso.load(Ordering::Relaxed) {
            let ns = self.start.elapsed().as_nanos() as u64;
            let flow = &mut self.flows[i];
            let len = flow.frame.len();
            let per_send = (gso::MAX_BYTES / len).clamp(1, gso::MAX_SEGMENTS);
            while left > 0 {
                let n = left.min(per_send);
                for (j, buf) in self.burst.chunks_exact_mut(len).take(n).enumerate() {
                    flow.write_frame(buf, flow.seq + j as u64, phase, ns);
                }
                let fd = flow.client.socket.as_raw_fd();
                let (sent, end) = mmsg::send_gso(fd, None, &self.burst[..n * len], len);
                flow.seq += sent as u64;
                if phase == MEASURED {
                    tally.sent += sent as u64;
                }
                left -= n;
                match end {
                    Ok(()) => {}
                    Err(e) if mmsg::refuses_gso(&e) => {
                        self.plan.refuse_gso(&e);
                        left += n - sent;
                        break;
                    }
                    // A full socket buffer: that part of the burst is not sent, as with sendmmsg.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => tally.send_errors += 1,
                }
            }
        }
        while left > 0 {
            let n = left.min(BATCH);
            self.send(i, n, phase, tx, tally);
            left -= n;
        }
    }

    /// Sends `n` payloads on flow `i` in one `sendmmsg`; counts those of the measured phase.
    fn send(&mut self, i: usize, n: usize, phase: u8, tx: &mut Batch, tally: &mut Tally) {
        let ns = self.start.elapsed().as_nanos() as u64;
        let flow = &mut self.flows[i];
        let len = flow.frame.len();
        for j in 0..n {
            flow.write_frame(&mut tx.bufs[j], flow.seq + j as u64, phase, ns);
            tx.lens[j] = len;
        }
        match tx.send(&flow.client.socket, n) {
            Ok(sent) => {
                flow.seq += sent as u64;
                if phase == MEASURED {
                    tally.sent += sent as u64;
                }
            }
            Err(_) => tally.send_errors += 1,
        }
    }

    /// Counts what reached the peer socket, and echoes it back to the relayed addresses.
    fn serve_peer(&mut self, rx: &mut Inbox, tally: &mut Tally) {
        loop {
            let n = rx.recv(&self.peer);
            for payload in (0..n).flat_map(|i| rx.frames(i)) {
                if stamp(payload).is_some_and(|(phase, _)| phase == MEASURED) {
                    tally.peer_rx += 1;
                    tally.relayed_bytes += payload.len() as u64;
                }
            }
            if self.plan.echo && n > 0 {
                // Dropped when the socket buffer is full: loss, as on a real peer.
                if let Err(e) = rx.echo(&self.peer, n, self.plan.gso.load(Ordering::Relaxed)) {
                    self.plan.refuse_gso(&e);
                }
            }
            if n < gro::BATCH {
                return;
            }
        }
    }

    /// Counts what came back to client `i` (echo mode) and records its round trip time.
    fn receive(&mut self, i: usize, rx: &mut Inbox, tally: &mut Tally) {
        loop {
            let n = rx.recv(&self.flows[i].client.socket);
            let now = self.start.elapsed().as_nanos() as u64;
            for frame in (0..n).flat_map(|j| rx.frames(j)) {
                let Some(payload) = payload_of(frame) else { continue };
                if let Some((MEASURED, sent_at)) = stamp(payload) {
                    tally.client_rx += 1;
                    tally.relayed_bytes += payload.len() as u64;
                    let _ = tally.latency.record(now.saturating_sub(sent_at).max(1));
                }
            }
            if n < gro::BATCH {
                return;
            }
        }
    }
}

/// The payload of ChannelData or of a Data indication from the server.
fn payload_of(frame: &[u8]) -> Option<&[u8]> {
    match classify(frame) {
        Framing::ChannelData => ChannelData::parse(frame).ok().map(|c| c.payload),
        Framing::Stun => Message::parse(frame).ok().filter(|m| m.method() == Method::DATA)?.attr(attr::DATA),
        Framing::Other => None,
    }
}

/// Phase and send time of a payload of this tool.
fn stamp(payload: &[u8]) -> Option<(u8, u64)> {
    let head = payload.get(..MIN_SIZE)?;
    if head[..4] != MAGIC {
        return None;
    }
    let sent_at = u64::from_be_bytes(head[16..24].try_into().expect("8 bytes"));
    Some((head[4], sent_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(channels: bool) -> Plan {
        Plan {
            pacing: Pacing::Flood,
            echo: false,
            channels,
            size: 30,
            warmup: Duration::ZERO,
            window: Duration::ZERO,
            threads: 1,
            server_port: 0,
            gso: AtomicBool::new(true),
            bare: false,
            wait: Wait::Block,
        }
    }

    #[test]
    fn frames_carry_the_payload_where_the_server_will_find_it() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for channels in [true, false] {
            let (mut f, at) = frame(&plan(channels), peer);
            f[at..at + 4].copy_from_slice(&MAGIC);
            f[at + 4] = MEASURED;
            f[at + 16..at + 24].copy_from_slice(&77u64.to_be_bytes());
            let payload = match channels {
                true => ChannelData::parse(&f).unwrap().payload,
                false => Message::parse(&f).unwrap().attr(attr::DATA).unwrap(),
            };
            assert_eq!(payload.len(), 30);
            assert_eq!(stamp(payload), Some((MEASURED, 77)));
        }
        // A Data indication as a server sends it is read like ChannelData.
        let (f, at) = frame(&plan(false), peer);
        let mut buf = f.clone();
        let t = MessageType::new(Method::DATA, Class::Indication).to_u16();
        buf[..2].copy_from_slice(&t.to_be_bytes());
        assert_eq!(payload_of(&buf), Some(&f[at..at + 30]));
        assert_eq!(payload_of(&f), None, "a Send indication is not data for a client");
        assert_eq!(stamp(b"short"), None);
    }
}
