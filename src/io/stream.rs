//! TURN over TCP and TLS (RFC 8656 §3.1): accepting with limits, one task per connection that
//! frames STUN and ChannelData (checked before parsing, RFC 8656 §12.5), and the outboxes
//! through which any worker delivers to a stream client. An allocation dies with its connection.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::worker::Worker;
use crate::stats::Counter;
use crate::stun::{classify, stream_frame, Framing, Message, StreamFrame, MAX_STREAM_FRAME};
use crate::turn::limit::source_key;
use crate::turn::{AllocId, FiveTuple, Transport};

/// A client data connection bound by ConnectionBind (RFC 6062 §5.4), with the bytes already
/// read after the ConnectionBind request (they belong to the peer).
struct Bind {
    connection: u32,
    allocation: AllocId,
    early: Vec<u8>,
}

/// TCP/TLS settings from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Serve TCP on every UDP listening address too.
    pub tcp: bool,
    /// Addresses for TURN over TLS.
    pub tls_listen: Vec<SocketAddr>,
    /// A new connection must send a valid STUN message within this time (slowloris).
    pub first_message_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// A connection without an allocation is closed after this long without a complete frame.
    pub idle_timeout: Duration,
    /// Concurrent connections in total and per source IP (0 = unlimited).
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
}

/// Bytes a slow stream client may have queued before more are dropped (as UDP would).
const OUTBOX_LIMIT: usize = 1 << 20;
/// Back-pressure: while more than this is queued for a client and not yet written, its
/// connection is not read, so a client that does not read costs bounded memory and no CPU.
const READ_PAUSE: usize = 64 << 10;
/// Initial read buffer of a connection; it grows to the largest frame it meets.
const READ_BUFFER: usize = 4096;
/// Pause after a failed accept (EMFILE and the like).
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long the last write and the shutdown of a connection turnd closes may take (a TLS
/// close_notify waits for send-buffer room a client that does not read never makes); then
/// the stream is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What is queued for one stream client, written by its connection's task.
pub struct Outbox {
    pending: Mutex<Vec<u8>>,
    ready: Notify,
    closed: AtomicBool,
    /// Bytes queued and not yet written (`pending` and the batch being written).
    unsent: AtomicUsize,
    /// Notified when a write made room.
    drained: Notify,
}

impl Outbox {
    fn new() -> Self {
        Outbox {
            pending: Mutex::new(Vec::new()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }

    /// Queues `bytes` for the client; false (dropped) when the connection is closed or its
    /// queue is full.
    pub fn push(&self, bytes: &[u8]) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) || pending.len() + bytes.len() > OUTBOX_LIMIT {
            return false;
        }
        pending.extend_from_slice(bytes);
        self.unsent.fetch_add(bytes.len(), Ordering::Relaxed);
        drop(pending);
        self.ready.notify_one();
        true
    }
}

/// All stream connections of the process: the outboxes by 5-tuple (a peer datagram for a
/// stream client may surface on any worker) and the admission counts.
#[derive(Default)]
pub struct Connections {
    outboxes: RwLock<HashMap<FiveTuple, Arc<Outbox>>>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: u32,
    /// By [`source_key`].
    per_ip: HashMap<IpAddr, u32>,
}

impl Connections {
    /// Queues `bytes` for the stream client `tuple` (under the registry's read lock, so no
    /// reference count changes per packet); false when it has no connection or its queue is full.
    pub fn push(&self, tuple: &FiveTuple, bytes: &[u8]) -> bool {
        self.outboxes.read().unwrap_or_else(|e| e.into_inner()).get(tuple).is_some_and(|o| o.push(bytes))
    }

    /// Admits a new connection from `ip` within the limits; the admission is given back on drop.
    /// The per-IP limit counts an IPv6 client as its /64 and an IPv4-mapped one as its IPv4.
    fn admit(self: &Arc<Self>, ip: IpAddr, settings: &StreamSettings) -> Option<Admission> {
        let ip = source_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        let over_total = settings.max_connections != 0 && counts.total >= settings.max_connections;
        let over_ip = settings.max_connections_per_ip != 0 && from_ip >= settings.max_connections_per_ip;
        if over_total || over_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Some(Admission { connections: Arc::clone(self), ip })
    }

    fn register(&self, tuple: FiveTuple, outbox: Arc<Outbox>) {
        self.outboxes.write().unwrap_or_else(|e| e.into_inner()).insert(tuple, outbox);
    }

    /// Removes `outbox`'s registration, unless a later connection of the same 5-tuple has
    /// taken its place (after a reset the kernel frees the 4-tuple at once, and a client may
    /// reconnect from the same port before the old connection's task has noticed).
    fn unregister(&self, tuple: &FiveTuple, outbox: &Arc<Outbox>) {
        let mut outboxes = self.outboxes.write().unwrap_or_else(|e| e.into_inner());
        if outboxes.get(tuple).is_some_and(|o| Arc::ptr_eq(o, outbox)) {
            outboxes.remove(tuple);
        }
    }
}

/// One admitted connection; dropping it gives its place back.
struct Admission {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.connections.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on `listener` (TCP, or TLS when `transport` is TLS); returns only if it
/// cannot be served, with what failed.
pub(super) async fn accept(worker: Rc<Worker>, listener: TcpListener, transport: Transport) -> std::io::Error {
    let server = match listener.local_addr() {
        Ok(server) => server,
        Err(e) => return std::io::Error::new(e.kind(), format!("{transport:?} listener without an address: {e}")),
    };
    // Whether the last accept failed. A connection waiting in the backlog while the descriptor
    // table is full fails every ACCEPT_BACKOFF for as long as that lasts: warned about once.
    let mut failing = false;
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept. Both pass; back off a
                // little so a full descriptor table does not spin this loop.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%server, error = %e, "accept failed, retrying");
                } else {
                    tracing::debug!(%server, error = %e, "accept failed again");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!(%server, "accepting connections again");
        }
        let Some(admission) = worker.connections().admit(client.ip(), worker.stream_settings()) else {
            tracing::debug!(%client, "connection refused: limit reached");
            worker.counters().add(Counter::ConnectionsRefused, 1);
            continue;
        };
        // Counted on this worker's thread only: the connection's task runs here too.
        let (opened, closed) = match transport {
            Transport::Tls => (Counter::TlsOpened, Counter::TlsClosed),
            _ => (Counter::TcpOpened, Counter::TcpClosed),
        };
        worker.counters().add(opened, 1);
        let _ = stream.set_nodelay(true);
        let tuple = FiveTuple { client, server, transport };
        let worker = Rc::clone(&worker);
        tokio::task::spawn_local(async move {
            let settings = worker.stream_settings().clone();
            let deadline = tokio::time::Instant::now() + settings.first_message_timeout;
            match (transport, worker.tls_acceptor()) {
                (Transport::Tls, Some(acceptor)) => {
                    match tokio::time::timeout(settings.tls_handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve(&worker, tls, tuple, deadline).await,
                        Ok(Err(e)) => tracing::debug!(%client, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
                    }
                }
                (Transport::Tls, None) => {}
                _ => serve(&worker, stream, tuple, deadline).await,
            }
            drop(admission);
            worker.counters().add(closed, 1);
        });
    }
}

/// Serves one connection until it closes, fails, or breaks the protocol; then ends its
/// allocation.
async fn serve<S>(worker: &Rc<Worker>, stream: S, tuple: FiveTuple, deadline: tokio::time::Instant)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let outbox = Arc::new(Outbox::new());
    worker.connections().register(tuple, Arc::clone(&outbox));
    // The allocation made over this connection, if any: what its close ends.
    let allocation = Cell::new(None);
    let record_per_frame = tuple.transport == Transport::Tls;
    let mut batch = Batch::default();
    let ended = tokio::select! {
        r = read_frames(worker, &mut reader, &tuple, &outbox, &allocation, deadline) => r,
        r = write_outbox(&mut writer, &outbox, record_per_frame, &mut batch) => r,
    };
    outbox.closed.store(true, Ordering::Relaxed);
    worker.connections().unregister(&tuple, &outbox);
    // RFC 8656 §3.1: an allocation over a stream lives as long as its connection.
    if let Some(id) = allocation.get() {
        worker.end_allocation(&tuple, id);
    }
    match ended {
        Ok(bind) => {
            // The ConnectionBind success is the last STUN this connection carries: the writer
            // had no chance to send it (read_frames returned right after queueing it), and it
            // may have stopped in the middle of earlier answers.
            let written = write_remaining(&mut writer, &outbox, &mut batch, record_per_frame);
            if let Ok(Ok(())) = tokio::time::timeout(CLOSE_TIMEOUT, written).await {
                pipe(worker, reader.unsplit(writer), bind).await;
            }
        }
        Err(why) => {
            tracing::debug!(client = %tuple.client, transport = ?tuple.transport, why, "connection closed");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.shutdown()).await;
        }
    }
}

/// Pipes a bound client data connection to its peer data connection (RFC 6062 §5.5) until
/// either closes or the allocation ends.
async fn pipe<S: AsyncRead + AsyncWrite + Unpin>(worker: &Rc<Worker>, mut client: S, bind: Bind) {
    let closing = worker.server().table().with_id(bind.allocation, |a| a.relay.closing()).flatten();
    let peer = worker.shared().unpark(bind.connection);
    if let (Some(mut closing), Some(peer)) = (closing, peer) {
        let piped = async {
            peer.set_nonblocking(true)?;
            let mut peer = tokio::net::TcpStream::from_std(peer)?;
            peer.write_all(&bind.early).await?;
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut peer) => r.map(|_| ()),
                _ = closing.changed() => Ok(()),
            }
        };
        if let Err(e) = piped.await {
            tracing::debug!(connection = bind.connection, error = %e, "TCP relay connection ended");
        }
    }
    worker.server().connection_closed(bind.connection);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.shutdown()).await;
}

/// Reads and handles frames until the connection closes, breaks the protocol, or idles: no
/// complete frame by `deadline` (the first-message timeout), then none for
/// [`StreamSettings::idle_timeout`] while it has no allocation (a partial frame is idle too).
async fn read_frames<R: AsyncRead + Unpin>(
    worker: &Rc<Worker>,
    reader: &mut R,
    tuple: &FiveTuple,
    outbox: &Outbox,
    allocation: &Cell<Option<AllocId>>,
    mut deadline: tokio::time::Instant,
) -> Result<Bind, &'static str> {
    let idle_timeout = worker.stream_settings().idle_timeout;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut filled = 0;
    let mut spoke = false;
    loop {
        let mut start = 0;
        // Whether frames already read wait for room in the outbox (READ_PAUSE).
        let mut held = false;
        loop {
            if outbox.unsent.load(Ordering::Relaxed) > READ_PAUSE {
                held = true;
                break;
            }
            let n = match stream_frame(&buf[start..filled]) {
                StreamFrame::NeedHeader => break,
                StreamFrame::Invalid => return Err("not STUN or ChannelData"),
                StreamFrame::Frame(n) => n,
            };
            if filled - start < n {
                if n > buf.len() {
                    // Bounded: a frame is at most MAX_STREAM_FRAME bytes.
                    buf.resize(n.min(MAX_STREAM_FRAME), 0);
                }
                break;
            }
            let frame = &buf[start..start + n];
            if !spoke {
                // The first frame must be a well-formed STUN message; anything else (HTTP,
                // a TLS record on the plain port, ChannelData before an allocation) closes.
                if classify(frame) != Framing::Stun || Message::parse(frame).is_err() {
                    return Err("first frame is not a STUN message");
                }
                spoke = true;
            }
            if let Some((connection, bound)) = worker.handle_stream_frame(tuple, frame, outbox, allocation) {
                let early = buf[start + n..filled].to_vec();
                return Ok(Bind { connection, allocation: bound, early });
            }
            start += n;
        }
        if start > 0 {
            deadline = tokio::time::Instant::now() + idle_timeout;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        let room = &mut buf[filled..];
        let read = async {
            while outbox.unsent.load(Ordering::Relaxed) > READ_PAUSE {
                outbox.drained.notified().await;
            }
            if held {
                return Ok(None);
            }
            reader.read(room).await.map(Some)
        };
        tokio::pin!(read);
        let n = loop {
            match tokio::time::timeout_at(deadline, &mut read).await {
                Ok(read) => break read.map_err(|_| "read failed")?,
                Err(_) if !spoke => return Err("no STUN message in time"),
                // RFC 8656 §3.1: an allocation over a stream lives as long as its connection,
                // and so the connection as long as its allocation (until it expires).
                Err(_) if worker.server().table().with(tuple, |_| ()).is_some() => {
                    deadline = tokio::time::Instant::now() + idle_timeout;
                }
                Err(_) => return Err("idle"),
            }
        };
        match n {
            // Room again for the frames that waited.
            None => {}
            Some(0) => return Err("closed by the client"),
            Some(n) => filled += n,
        }
    }
}

/// Writes what the workers queued for this client. Over TLS each STUN message or ChannelData
/// frame goes in a TLS record of its own, as coturn sends them: some clients (coturn's
/// `turnutils_uclient` among them) take the plaintext of one `SSL_read` as one message and lose
/// the rest of a record that carries two. Over TCP the batch goes in one write.
async fn write_outbox<W: AsyncWrite + Unpin>(
    writer: &mut W,
    outbox: &Outbox,
    record_per_frame: bool,
    batch: &mut Batch,
) -> Result<Bind, &'static str> {
    loop {
        batch.write(writer, outbox, record_per_frame).await?;
        batch.bytes.clear();
        (batch.written, batch.frame_end) = (0, 0);
        outbox.ready.notified().await;
        std::mem::swap(&mut *outbox.pending.lock().unwrap_or_else(|e| e.into_inner()), &mut batch.bytes);
    }
}

/// After a ConnectionBind: writes the rest of the batch `write_outbox` was writing when it was
/// cancelled, then everything queued (the ConnectionBind success last), and flushes. The client
/// reads each answer whole and in order before the first byte of its peer.
async fn write_remaining<W: AsyncWrite + Unpin>(
    writer: &mut W,
    outbox: &Outbox,
    batch: &mut Batch,
    record_per_frame: bool,
) -> Result<(), &'static str> {
    batch.bytes.append(&mut outbox.pending.lock().unwrap_or_else(|e| e.into_inner()));
    batch.write(writer, outbox, record_per_frame).await?;
    writer.flush().await.map_err(|_| "write failed")
}

/// The bytes the writer took from an outbox, and how far it got. Kept by the connection's task
/// rather than inside `write_outbox`, whose future a ConnectionBind drops in the middle of a
/// write: the rest is then known, and goes out before the ConnectionBind answer.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Bytes of `bytes` already written.
    written: usize,
    /// Where the frame being written ends (over TCP, the batch's end).
    frame_end: usize,
}

impl Batch {
    /// Writes the rest of the batch. Cancel-safe: a write call that returned has put its bytes
    /// in the stream and `written` counts them; one cancelled while pending wrote nothing.
    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        outbox: &Outbox,
        record_per_frame: bool,
    ) -> Result<(), &'static str> {
        while self.written < self.bytes.len() {
            if self.written == self.frame_end {
                let rest = &self.bytes[self.written..];
                // The workers queue whole frames, so every frame boundary is found; anything
                // else would be a bug, and then the remainder goes as it is.
                let n = match stream_frame(rest) {
                    StreamFrame::Frame(n) if record_per_frame && n <= rest.len() => n,
                    _ => rest.len(),
                };
                self.frame_end = self.written + n;
            }
            let n = writer.write(&self.bytes[self.written..self.frame_end]).await.map_err(|_| "write failed")?;
            if n == 0 {
                return Err("write failed");
            }
            self.written += n;
            outbox.unsent.fetch_sub(n, Ordering::Relaxed);
            // A permit is kept if the reader is not waiting yet: no wake-up is lost.
            outbox.drained.notify_one();
        }
        Ok(())
    }
}

/// A TCP listening socket with SO_REUSEPORT, one per worker and address.
pub(super) fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    const POISON: [u8; 4] = [0xFF; 4];

    /// Records each write call; a write that ends with [`POISON`] is recorded without it and
    /// fails, which ends `write_outbox` once everything queued before it is written.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>);

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            if let Some(before) = buf.strip_suffix(&POISON) {
                if !before.is_empty() {
                    self.0.push(before.to_vec());
                }
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Two queued frames, a 20-byte STUN message and ChannelData padded to 8 bytes, then
    /// [`POISON`]; returns the writes `write_outbox` made.
    async fn writes(record_per_frame: bool) -> Vec<Vec<u8>> {
        let stun = [0x01, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let channel_data = [0x40, 0x00, 0x00, 0x03, b'a', b'b', b'c', 0];
        let outbox = Outbox::new();
        assert!(outbox.push(&stun) && outbox.push(&channel_data) && outbox.push(&POISON));
        let mut recorder = Recorder::default();
        let mut batch = Batch::default();
        let ended = write_outbox(&mut recorder, &outbox, record_per_frame, &mut batch).await;
        assert_eq!(ended.err(), Some("write failed"));
        recorder.0
    }

    fn settings(max_connections_per_ip: u32) -> StreamSettings {
        StreamSettings {
            tcp: true,
            tls_listen: Vec::new(),
            first_message_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip,
        }
    }

    #[test]
    fn the_per_ip_limit_counts_an_ipv6_slash_64_and_a_mapped_ipv4_as_one_source() {
        let connections = Arc::new(Connections::default());
        let settings = settings(2);
        let host = |i: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i));
        let mut held: Vec<Admission> = Vec::new();
        for i in 1..=100 {
            held.extend(connections.admit(host(i), &settings));
            held.extend(connections.admit(host(i), &settings));
        }
        assert_eq!(held.len(), 2, "one /64 with max-connections-per-ip = 2 was admitted {} connections", held.len());
        // Another /64 has places of its own.
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(connections.admit(other, &settings).is_some());
        // An IPv4 client and its IPv4-mapped form share their places.
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        held.extend(connections.admit(v4, &settings));
        held.extend(connections.admit(mapped, &settings));
        assert!(connections.admit(v4, &settings).is_none() && connections.admit(mapped, &settings).is_none());
        // Places are given back on drop.
        held.clear();
        assert!(connections.admit(host(7), &settings).is_some());
    }

    /// A stream whose send buffer takes `room` more bytes, then none (pending: the test drops
    /// the writing future then, so no wake-up is arranged). Records each write call.
    struct Stalling {
        room: usize,
        writes: Vec<Vec<u8>>,
    }

    impl AsyncWrite for Stalling {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.room);
            if n == 0 {
                return Poll::Pending;
            }
            self.room -= n;
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A Binding success with `body` bytes of attributes, filled with `fill`.
    fn stun_message(body: u16, fill: u8) -> Vec<u8> {
        let mut m = vec![fill; 20 + usize::from(body)];
        m[..4].copy_from_slice(&[0x01, 0x01, (body >> 8) as u8, body as u8]);
        m[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
        m
    }

    #[tokio::test]
    async fn a_connection_bind_answer_follows_the_answers_whose_write_it_interrupted() {
        for record_per_frame in [false, true] {
            let (earlier, answer) = (stun_message(80, 0xAA), stun_message(0, 0xBB));
            let outbox = Outbox::new();
            assert!(outbox.push(&earlier));
            // The client does not read: its receive window takes 30 bytes of the earlier answer.
            let mut stream = Stalling { room: 30, writes: Vec::new() };
            let mut batch = Batch::default();
            // read_frames returns the ConnectionBind while the writer waits for room.
            tokio::select! {
                biased;
                _ = write_outbox(&mut stream, &outbox, record_per_frame, &mut batch) => panic!("the writer ended"),
                () = std::future::ready(()) => {}
            }
            assert_eq!(stream.writes.concat(), earlier[..30], "the writer did not stop in the middle");
            assert!(outbox.push(&answer));
            stream.room = usize::MAX;
            write_remaining(&mut stream, &outbox, &mut batch, record_per_frame).await.unwrap();
            assert_eq!(stream.writes.concat(), [earlier.clone(), answer.clone()].concat(), "the stream is not whole");
            if record_per_frame {
                // Over TLS the ConnectionBind answer is still a record of its own.
                assert_eq!(stream.writes.last(), Some(&answer));
            }
        }
    }

    #[test]
    fn a_closing_connection_unregisters_only_its_own_outbox() {
        let connections = Connections::default();
        let tuple = FiveTuple {
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:3478".parse().unwrap(),
            transport: Transport::Tcp,
        };
        let (old, new) = (Arc::new(Outbox::new()), Arc::new(Outbox::new()));
        connections.register(tuple, Arc::clone(&old));
        // The client reset and reconnected from the same port before the old task noticed.
        connections.register(tuple, Arc::clone(&new));
        connections.unregister(&tuple, &old);
        assert!(connections.push(&tuple, b"to the new connection"), "the new connection's outbox was removed");
        assert_eq!(new.unsent.load(Ordering::Relaxed), 21);
        assert_eq!(old.unsent.load(Ordering::Relaxed), 0);
        connections.unregister(&tuple, &new);
        assert!(!connections.push(&tuple, b"gone"), "the outbox of a closed connection stays registered");
    }

    #[tokio::test]
    async fn tls_writes_each_frame_on_its_own_and_tcp_writes_the_batch() {
        let tls = writes(true).await;
        assert_eq!(tls.iter().map(Vec::len).collect::<Vec<_>>(), [20, 8], "one TLS record per frame");
        let tcp = writes(false).await;
        assert_eq!(tcp.len(), 1, "one write for the batch: {tcp:?}");
        assert_eq!(tcp[0], tls.concat());
    }
}
