//! UDP generic receive offload (GRO, `UDP_GRO`, Linux 5.0+) on listener and relay sockets: the
//! kernel hands a burst of same-size datagrams of one flow (a video frame's packets, coalesced
//! by the NIC, or sent as one GSO send on this host) to one `recvmsg` as one buffer, and says
//! the segment size in a control message. One receive then stands for the whole burst, where
//! each datagram would otherwise cost its own wake-up and system call.
//!
//! Hand-written for the reason given in [`super::gso`]: `quinn-udp` sets QUIC's options on the
//! socket; turnd needs one socket option and one `recvmsg` with one control message.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Turns GRO on for the UDP socket `fd`. Best effort: without it (an old kernel) every datagram
/// arrives on its own, which [`recv_from`] handles the same way.
pub fn enable(fd: &impl AsRawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd, and a pointer to a c_int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "UDP GRO unavailable");
    }
}

/// What one receive got: `len` bytes from `from`, made of datagrams of `segment` bytes each (the
/// last may be shorter). `segment == len` for a single datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub segment: usize,
}

impl Received {
    /// How many datagrams the receive holds.
    pub fn datagrams(&self) -> usize {
        self.len.div_ceil(self.segment.max(1)).max(1)
    }
}

/// Control-message room for one `int` (the GRO segment size), aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 32]);

/// Receives one datagram, or one GRO super-datagram, from the UDP socket `fd` into `buf`
/// (non-blocking: `WouldBlock` when nothing is queued). `buf` should hold 65,535 bytes: a
/// super-datagram longer than `buf` is cut short, as a datagram would be.
pub fn recv_from(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = Control([0; 32]);
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    point(&mut msg, &mut name, &mut iov, &mut control);
    // SAFETY: `msg` points at `name`, `iov` (over `buf`) and `control`, which outlive the call,
    // with their sizes; the kernel writes within them.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    received(&msg, &name, len).ok_or_else(|| io::ErrorKind::InvalidData.into())
}

/// Entries one [`recv_batch`] fills at most.
pub const BATCH: usize = 16;
/// One entry's room in [`recv_batch`]'s buffer: the largest datagram or GRO burst.
pub const ENTRY: usize = 65_535;

/// What an entry of [`recv_batch`] holds before it is filled.
pub const NOTHING: Received = Received {
    len: 0,
    from: SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)),
    segment: 1,
};

/// The headers of a [`recv_batch`]: per entry a source-address buffer, a control buffer, an
/// iovec and the `mmsghdr` pointing at them. Zeroed once and kept by the reader between
/// receives, so that a receive neither zeroes them (about 3.8 KB) nor points them again while
/// it reads into the same buffer: at light load most receives bring one datagram or nothing.
pub struct Headers(Box<Slots>);

struct Slots {
    names: [libc::sockaddr_storage; BATCH],
    controls: [Control; BATCH],
    iovs: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
    /// The buffer (address, entries) the iovecs point into; (0, 0) when none yet.
    pointed: (usize, usize),
}

impl Headers {
    pub fn new() -> Self {
        // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr.
        let (names, iovs, hdrs) = unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        Headers(Box::new(Slots { names, controls: [Control([0; 32]); BATCH], iovs, hdrs, pointed: (0, 0) }))
    }
}

impl Default for Headers {
    fn default() -> Self {
        Headers::new()
    }
}

/// Receives up to [`BATCH`] datagrams or GRO bursts from `fd` in one `recvmmsg` (non-blocking:
/// `WouldBlock` when nothing is queued): entry `i` at `buf[i * ENTRY..]`, described by
/// `got[i]`. Returns how many entries it filled; fewer than `BATCH` means the queue was empty
/// when it returned. `buf` holds `BATCH * ENTRY` bytes (fewer entries if it is shorter).
pub fn recv_batch(fd: RawFd, buf: &mut [u8], got: &mut [Received; BATCH], heads: &mut Headers) -> io::Result<usize> {
    let entries = (buf.len() / ENTRY).min(BATCH);
    let Slots { names, controls, iovs, hdrs, pointed } = &mut *heads.0;
    if *pointed != (buf.as_ptr() as usize, entries) {
        for (i, room) in buf.chunks_exact_mut(ENTRY).take(entries).enumerate() {
            iovs[i] = libc::iovec { iov_base: room.as_mut_ptr().cast(), iov_len: room.len() };
            point(&mut hdrs[i].msg_hdr, &mut names[i], &mut iovs[i], &mut controls[i]);
        }
        *pointed = (buf.as_ptr() as usize, entries);
    } else {
        // The kernel shortened these two to what it wrote; the rest is as pointed.
        for hdr in &mut hdrs[..entries] {
            hdr.msg_hdr.msg_namelen = NAME_LEN;
            hdr.msg_hdr.msg_controllen = CONTROL_LEN as _;
        }
    }
    // SAFETY: the first `entries` headers point at their own name, iovec (over a disjoint
    // ENTRY-byte part of `buf`, the same start and length as when they were pointed) and
    // control buffer in `heads`, all of which outlive the call.
    let n = unsafe { libc::recvmmsg(fd, hdrs.as_mut_ptr(), entries as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    for i in 0..n.min(entries) {
        // An entry without a source address (never seen) reads as nothing.
        got[i] = received(&hdrs[i].msg_hdr, &names[i], hdrs[i].msg_len as usize).unwrap_or(NOTHING);
    }
    Ok(n.min(entries))
}

/// The room for a source address and for control messages, as a header says it.
const NAME_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
const CONTROL_LEN: usize = std::mem::size_of::<Control>();

/// Points `msg` at a name, one iovec and a control buffer.
fn point(msg: &mut libc::msghdr, name: &mut libc::sockaddr_storage, iov: &mut libc::iovec, control: &mut Control) {
    msg.msg_name = (name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = NAME_LEN;
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL_LEN as _;
}

/// What a `recvmsg` of `len` bytes got, read from its header: the source, and the GRO
/// segment size if the control message has one.
fn received(msg: &libc::msghdr, name: &libc::sockaddr_storage, len: usize) -> Option<Received> {
    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `name`.
    let from = unsafe { socket2::SockAddr::new(*name, msg.msg_namelen) }.as_socket()?;
    let mut segment = len;
    // SAFETY: the CMSG_* walk stays inside `msg_control`/`msg_controllen` as the kernel set
    // them; the header's length is checked before its int is read (unaligned).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let full = (*cmsg).cmsg_len as usize >= libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO && full {
                // A size of 0 would be the kernel's oddity: one datagram.
                if let Ok(size @ 1..) =
                    usize::try_from(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()))
                {
                    segment = size;
                }
                break;
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    Some(Received { len, from, segment: segment.min(len).max(1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Waits (up to 5 s) until `rx` is readable.
    fn wait_readable(rx: &UdpSocket) {
        let mut fd = libc::pollfd { fd: rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, 5_000) };
        assert_eq!(ready, 1, "nothing arrived in 5 s");
    }

    /// Waits until `rx` is readable, then receives.
    fn receive(rx: &UdpSocket, buf: &mut [u8]) -> Received {
        wait_readable(rx);
        recv_from(rx.as_raw_fd(), buf).expect("a readable socket has a datagram")
    }

    /// Waits until `rx` is readable, then receives a batch.
    fn receive_batch(rx: &UdpSocket, buf: &mut [u8], got: &mut [Received; BATCH], heads: &mut Headers) -> usize {
        wait_readable(rx);
        recv_batch(rx.as_raw_fd(), buf, got, heads).expect("a readable socket has a datagram")
    }

    /// Two senders and a non-blocking receiver with GRO on, all on loopback.
    fn two_senders_and_a_receiver() -> (UdpSocket, UdpSocket, UdpSocket) {
        let bind = || UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = bind();
        rx.set_nonblocking(true).unwrap();
        enable(&rx);
        (bind(), bind(), rx)
    }

    #[test]
    fn a_gso_burst_arrives_as_one_receive_with_its_segment_size() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable(&rx);
        let (a, b, c) = ([1u8; 1200], [2u8; 1200], [3u8; 500]);
        super::super::gso::send_segments(tx.as_raw_fd(), Some(rx.local_addr().unwrap()), &[&a, &b, &c]).unwrap();
        let mut buf = vec![0u8; 65_535];
        let got = receive(&rx, &mut buf);
        assert_eq!(got, Received { len: 2900, from: tx.local_addr().unwrap(), segment: 1200 });
        assert_eq!(got.datagrams(), 3);
        let segments: Vec<&[u8]> = buf[..got.len].chunks(got.segment).collect();
        assert_eq!(segments, [&a[..], &b[..], &c[..]]);
    }

    #[test]
    fn a_single_datagram_is_its_own_segment() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable(&rx);
        tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 2048];
        let got = receive(&rx, &mut buf);
        assert_eq!((got.len, got.segment, got.datagrams()), (5, 5, 1));
        assert_eq!(&buf[..5], b"hello");
        let nothing = recv_from(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_batch_holds_datagrams_and_bursts_of_several_sources_in_order() {
        let (a, b, rx) = two_senders_and_a_receiver();
        let to = rx.local_addr().unwrap();
        a.send_to(b"one", to).unwrap();
        super::super::gso::send_segments(b.as_raw_fd(), Some(to), &[b"2222", b"3333", b"44"]).unwrap();
        a.send_to(b"five", to).unwrap();
        let mut buf = vec![0u8; BATCH * ENTRY];
        let mut got = [NOTHING; BATCH];
        let mut heads = Headers::new();
        let n = receive_batch(&rx, &mut buf, &mut got, &mut heads);
        assert_eq!(n, 3, "fewer than a batch: the queue is empty");
        let (a, b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let entries: Vec<(SocketAddr, usize, &[u8])> =
            (0..n).map(|i| (got[i].from, got[i].segment, &buf[i * ENTRY..][..got[i].len])).collect();
        assert_eq!(entries, [(a, 3, &b"one"[..]), (b, 4, &b"2222333344"[..]), (a, 4, &b"five"[..])]);
        assert_eq!(got[1].datagrams(), 3);
        let empty = recv_batch(rx.as_raw_fd(), &mut buf, &mut got, &mut heads).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn kept_headers_read_each_batch_afresh_and_follow_a_new_buffer() {
        let (a, b, rx) = two_senders_and_a_receiver();
        let to = rx.local_addr().unwrap();
        let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut heads = Headers::new();
        let mut got = [NOTHING; BATCH];
        let mut buf = vec![0u8; BATCH * ENTRY];
        // A lone datagram: the kernel writes no control message and shortens the header's
        // control length to nothing.
        a.send_to(b"one", to).unwrap();
        assert_eq!(receive_batch(&rx, &mut buf, &mut got, &mut heads), 1);
        assert_eq!((got[0].from, got[0].segment, &buf[..got[0].len]), (a_at, 3, &b"one"[..]));
        // The same headers then still have room for a GRO burst's segment size.
        super::super::gso::send_segments(b.as_raw_fd(), Some(to), &[b"2222", b"3333", b"44"]).unwrap();
        assert_eq!(receive_batch(&rx, &mut buf, &mut got, &mut heads), 1);
        assert_eq!((got[0].from, got[0].segment, &buf[..got[0].len]), (b_at, 4, &b"2222333344"[..]));
        // Another buffer (the first still alive, so at another address): the entries land there.
        let mut other = vec![0u8; BATCH * ENTRY];
        a.send_to(b"six", to).unwrap();
        assert_eq!(receive_batch(&rx, &mut other, &mut got, &mut heads), 1);
        assert_eq!((got[0].from, &other[..got[0].len]), (a_at, &b"six"[..]));
        assert_eq!(&buf[..4], b"2222", "the old buffer is not written");
        // Fewer entries (a shorter buffer) are pointed again too.
        let mut two = vec![0u8; 2 * ENTRY];
        for payload in [&b"7"[..], b"88", b"999"] {
            a.send_to(payload, to).unwrap();
        }
        // Loopback delivers in the sender's call, so all three are queued by now.
        let n = receive_batch(&rx, &mut two, &mut got, &mut heads);
        assert_eq!(n, 2, "two entries fit");
        assert_eq!((&two[..got[0].len], &two[ENTRY..][..got[1].len]), (&b"7"[..], &b"88"[..]));
        assert_eq!(receive_batch(&rx, &mut buf, &mut got, &mut heads), 1);
        assert_eq!(&buf[..got[0].len], b"999");
    }
}
