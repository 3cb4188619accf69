//! The load generator's datagram IO (Linux), over buffers allocated once per worker: frames go
//! out up to [`BATCH`] per `sendmmsg`, or a burst of same-size frames in one GSO `sendmsg`
//! ([`send_gso`], built on `io::gso`); they come in up to [`gro::BATCH`] datagrams or GRO
//! bursts per `recvmmsg` (`io::gro`), and [`Inbox::frames`] cuts a GRO burst back into the
//! datagrams it was made of, so counts, latency stamps and echoes see single frames.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use crate::io::{gro, gso};

/// Datagrams per `sendmmsg`.
pub const BATCH: usize = 32;
/// Size of each send buffer: larger than any frame the tool sends (payload ≤ 1400 plus headers).
pub const BUF_LEN: usize = 2048;

/// Frames to send on a connected socket: [`BATCH`] buffers and their lengths.
pub struct Batch {
    pub bufs: Box<[[u8; BUF_LEN]; BATCH]>,
    pub lens: [usize; BATCH],
}

impl Batch {
    pub fn new() -> Self {
        Batch { bufs: Box::new([[0; BUF_LEN]; BATCH]), lens: [0; BATCH] }
    }

    /// Sends `bufs[i][..lens[i]]` for `i < n` on the connected `socket` in one `sendmmsg`
    /// without blocking. Returns how many the kernel took (0 when its buffer is full).
    pub fn send(&self, socket: &impl AsRawFd, n: usize) -> io::Result<usize> {
        let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
        for ((frame, buf), &len) in frames.iter_mut().zip(self.bufs.iter()).zip(&self.lens) {
            *frame = &buf[..len.min(BUF_LEN)];
        }
        send_each(socket.as_raw_fd(), &frames[..n.min(BATCH)], None)
    }
}

/// What one `recvmmsg` got: up to [`gro::BATCH`] entries, each one datagram or one GRO burst
/// of up to [`gro::ENTRY`] bytes with its source and segment size.
pub struct Inbox {
    buf: Box<[u8]>,
    got: [gro::Received; gro::BATCH],
    heads: gro::Headers,
}

impl Inbox {
    pub fn new() -> Self {
        Inbox {
            buf: vec![0; gro::BATCH * gro::ENTRY].into_boxed_slice(),
            got: [gro::NOTHING; gro::BATCH],
            heads: gro::Headers::new(),
        }
    }

    /// Receives up to [`gro::BATCH`] datagrams or GRO bursts without blocking; the number of
    /// entries (0 when nothing is waiting or on an error, e.g. a queued ICMP error).
    pub fn recv(&mut self, socket: &impl AsRawFd) -> usize {
        gro::recv_batch(socket.as_raw_fd(), &mut self.buf, &mut self.got, &mut self.heads).unwrap_or(0)
    }

    /// The frames of entry `i` of the last [`Inbox::recv`]: its datagram, or the datagrams of
    /// its GRO burst, cut at the segment size the kernel gave (the last may be shorter).
    pub fn frames(&self, i: usize) -> std::slice::Chunks<'_, u8> {
        self.entry(i).chunks(self.got.get(i).map_or(1, |got| got.segment.max(1)))
    }

    /// Sends every frame of the first `n` entries back to where it came from: a GRO burst in
    /// GSO sends of its own segment size when `gso`, the rest up to [`BATCH`] per `sendmmsg`.
    /// What the socket buffer has no room for is dropped, as by a real peer. `Err` only when
    /// the kernel refused GSO (the caller turns it off): that burst went frame by frame.
    pub fn echo(&self, socket: &impl AsRawFd, n: usize, gso: bool) -> io::Result<()> {
        let fd = socket.as_raw_fd();
        let mut refused = None;
        let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
        let mut to = [gro::NOTHING.from; BATCH];
        let mut queued = 0;
        for (i, got) in self.got.iter().enumerate().take(n) {
            let mut sent = 0;
            if gso && refused.is_none() && got.datagrams() > 1 {
                match send_gso(fd, Some(got.from), self.entry(i), got.segment) {
                    (done, Err(e)) if refuses_gso(&e) => (sent, refused) = (done, Some(e)),
                    // Sent, or dropped (a full socket buffer).
                    _ => continue,
                }
            }
            for frame in self.frames(i).skip(sent) {
                if queued == BATCH {
                    let _ = send_each(fd, &frames, Some(&to));
                    queued = 0;
                }
                (frames[queued], to[queued]) = (frame, got.from);
                queued += 1;
            }
        }
        if queued > 0 {
            let _ = send_each(fd, &frames[..queued], Some(&to[..queued]));
        }
        refused.map_or(Ok(()), Err)
    }

    /// The bytes of entry `i` of the last [`Inbox::recv`] (empty past them).
    fn entry(&self, i: usize) -> &[u8] {
        let len = self.got.get(i).map_or(0, |got| got.len);
        self.buf.get(i * gro::ENTRY..).and_then(|rest| rest.get(..len)).unwrap_or_default()
    }
}

/// Sends `buf`, frames of `segment` bytes back to back (the last may be shorter), from the UDP
/// socket `fd` to `to` (`None`: where it is connected) in GSO sends of at most
/// [`gso::MAX_SEGMENTS`] frames and [`gso::MAX_BYTES`]. Returns how many frames went out and
/// how it ended: the error of the send that stopped it (`WouldBlock` when the socket buffer
/// is full), after which nothing more was tried.
pub fn send_gso(fd: RawFd, to: Option<SocketAddr>, buf: &[u8], segment: usize) -> (usize, io::Result<()>) {
    let segment = segment.max(1);
    let per_send = (gso::MAX_BYTES / segment).clamp(1, gso::MAX_SEGMENTS);
    let mut sent = 0;
    for chunk in buf.chunks(per_send * segment) {
        let mut segments: [&[u8]; gso::MAX_SEGMENTS] = [&[]; gso::MAX_SEGMENTS];
        let mut count = 0;
        for (s, frame) in segments.iter_mut().zip(chunk.chunks(segment)) {
            *s = frame;
            count += 1;
        }
        if let Err(e) = gso::send_segments(fd, to, &segments[..count]) {
            return (sent, Err(e));
        }
        sent += count;
    }
    (sent, Ok(()))
}

/// Whether a failed GSO send means the kernel will not do GSO here (fall back to one datagram
/// per frame): what [`gso::unsupported`] says, or EINVAL (an option or size it does not take).
pub fn refuses_gso(e: &io::Error) -> bool {
    gso::unsupported(e) || e.raw_os_error() == Some(libc::EINVAL)
}

/// Sends `frames[i]` to `to[i]` (or, without `to`, on a connected socket) in one `sendmmsg`
/// without blocking; how many the kernel took (0 when its buffer is full).
pub(super) fn send_each(fd: RawFd, frames: &[&[u8]], to: Option<&[SocketAddr]>) -> io::Result<usize> {
    let n = frames.len().min(BATCH);
    let names: [Option<socket2::SockAddr>; BATCH] =
        std::array::from_fn(|i| to.and_then(|to| to.get(i)).map(|&a| socket2::SockAddr::from(a)));
    // SAFETY: iovec and mmsghdr are plain old data; all zeros is a valid value.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((hdr, v), (frame, name)) in hdrs.iter_mut().zip(iov.iter_mut()).zip(frames.iter().zip(&names)) {
        *v = libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() };
        hdr.msg_hdr.msg_iov = v;
        hdr.msg_hdr.msg_iovlen = 1;
        if let Some(name) = name {
            hdr.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = name.len();
        }
    }
    // SAFETY: the first n headers point at live frames, iovecs and addresses, which outlive the
    // call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
    match usize::try_from(sent) {
        Ok(sent) => Ok(sent),
        Err(_) => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            e => Err(e),
        },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Waits (up to 5 s) until `socket` is readable.
    pub(in crate::bench) fn readable(socket: &UdpSocket) {
        let mut fd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        assert_eq!(unsafe { libc::poll(&mut fd, 1, 5_000) }, 1, "nothing arrived in 5 s");
    }

    /// Receives until `want` frames came: each entry's segment size and frame count, and the
    /// frames in order.
    fn receive(socket: &UdpSocket, inbox: &mut Inbox, want: usize) -> (Vec<(usize, usize)>, Vec<Vec<u8>>) {
        let (mut entries, mut frames) = (Vec::new(), Vec::new());
        while frames.len() < want {
            readable(socket);
            for i in 0..inbox.recv(socket) {
                entries.push((inbox.got[i].segment, inbox.frames(i).count()));
                frames.extend(inbox.frames(i).map(<[u8]>::to_vec));
            }
        }
        (entries, frames)
    }

    /// Sockets on loopback with GRO on.
    fn gro_socket() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        gro::enable(&socket);
        socket
    }

    /// `k` frames of `size` bytes, each filled with its own index.
    fn burst(k: usize, size: usize) -> Vec<u8> {
        (0..k).flat_map(|i| std::iter::repeat_n(i as u8, size)).collect()
    }

    #[test]
    fn a_gso_burst_arrives_as_one_gro_entry_and_is_cut_into_its_frames() {
        let (tx, rx) = (gro_socket(), gro_socket());
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let frames = burst(8, 1204);
        let (sent, end) = send_gso(tx.as_raw_fd(), None, &frames, 1204);
        assert_eq!((sent, end.is_ok()), (8, true));
        let mut inbox = Inbox::new();
        let (entries, got) = receive(&rx, &mut inbox, 8);
        assert_eq!(entries, [(1204, 8)], "one receive, eight frames");
        assert_eq!(got, frames.chunks(1204).collect::<Vec<_>>());
        assert_eq!(inbox.got[0].from, tx.local_addr().unwrap());
    }

    #[test]
    fn a_burst_over_the_limits_goes_in_several_gso_sends() {
        let (tx, rx) = (gro_socket(), gro_socket());
        // 65,000 / 1,000 would be 65 segments: capped at 64, then the other 36.
        let frames = burst(100, 1000);
        let (sent, end) = send_gso(tx.as_raw_fd(), Some(rx.local_addr().unwrap()), &frames, 1000);
        assert_eq!((sent, end.is_ok()), (100, true));
        let (entries, got) = receive(&rx, &mut Inbox::new(), 100);
        assert_eq!(entries, [(1000, 64), (1000, 36)]);
        assert_eq!(got, frames.chunks(1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_gro_burst_is_echoed_as_one_gso_send_and_a_datagram_as_itself() {
        let (client, peer) = (gro_socket(), gro_socket());
        let to = peer.local_addr().unwrap();
        let frames = burst(5, 300);
        assert_eq!(send_gso(client.as_raw_fd(), Some(to), &frames, 300).0, 5);
        client.send_to(b"single", to).unwrap();
        let mut inbox = Inbox::new();
        let mut n = 0;
        while n < 2 {
            readable(&peer);
            let got = inbox.recv(&peer);
            inbox.echo(&peer, got, true).unwrap();
            n += got;
        }
        let (entries, got) = receive(&client, &mut Inbox::new(), 6);
        assert_eq!(entries, [(300, 5), (6, 1)], "the burst came back as a burst");
        assert_eq!(got[..5], frames.chunks(300).collect::<Vec<_>>());
        assert_eq!(got[5], b"single");

        // Without GSO the burst goes back one datagram at a time.
        assert_eq!(send_gso(client.as_raw_fd(), Some(to), &frames, 300).0, 5);
        readable(&peer);
        let got = inbox.recv(&peer);
        inbox.echo(&peer, got, false).unwrap();
        let (entries, got) = receive(&client, &mut Inbox::new(), 5);
        assert_eq!(entries, [(300, 1); 5]);
        assert_eq!(got, frames.chunks(300).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_goes_out_on_a_connected_socket() {
        let (a, b) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
        a.connect(b.local_addr().unwrap()).unwrap();
        let mut tx = Batch::new();
        for i in 0..5 {
            tx.bufs[i][..3].copy_from_slice(&[i as u8; 3]);
            tx.lens[i] = 3;
        }
        assert_eq!(tx.send(&a, 5).unwrap(), 5);
        let (entries, got) = receive(&b, &mut Inbox::new(), 5);
        assert_eq!(entries, [(3, 1); 5], "GRO is off: one datagram an entry");
        assert_eq!(got, (0..5u8).map(|i| vec![i; 3]).collect::<Vec<_>>());
    }
}
