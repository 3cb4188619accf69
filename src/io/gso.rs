//! UDP generic segmentation offload (GSO, `UDP_SEGMENT`, Linux 4.18+) for the frames a worker
//! sends to one client in a row: a burst of peer datagrams of one size (a video frame's
//! packets) leaves in one `sendmsg` instead of one `sendto` each, and the kernel cuts it into
//! the same datagrams the client would have got. The frames stay where they are (one iovec
//! each, no copy). `turnd bench` sends its clients' bursts the same way, on connected sockets.
//!
//! Hand-written because the crate that does this well, `quinn-udp`, configures the socket for
//! QUIC when it is set up (DF on everything it sends, GRO, ECN and PKTINFO on receive), which a
//! TURN listener must not have; the one `sendmsg` with one control message is all turnd needs.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most segments one GSO send may carry (the kernel's `UDP_MAX_SEGMENTS`).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send may carry (a UDP datagram's payload limit, less headroom).
pub const MAX_BYTES: usize = 65_000;

/// Sends `segments` to `to` (`None`: the address a connected socket is connected to) from the
/// UDP socket `fd` in one `sendmsg` with `UDP_SEGMENT`: every segment but the last must have
/// the first one's length, the last may be shorter; at most [`MAX_SEGMENTS`] of them and
/// [`MAX_BYTES`] in all. Non-blocking. An error means none went out (`WouldBlock` when the
/// socket buffer is full).
pub fn send_segments(fd: RawFd, to: Option<SocketAddr>, segments: &[&[u8]]) -> io::Result<()> {
    let Some(first) = segments.first() else { return Ok(()) };
    let size = first.len();
    let total: usize = segments.iter().map(|s| s.len()).sum();
    let uniform =
        segments.iter().rev().skip(1).all(|s| s.len() == size) && segments.last().is_some_and(|s| s.len() <= size);
    if !uniform || segments.len() > MAX_SEGMENTS || total > MAX_BYTES || size == 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_SEGMENTS];
    for (v, s) in iov.iter_mut().zip(segments) {
        *v = libc::iovec { iov_base: s.as_ptr() as *mut libc::c_void, iov_len: s.len() };
    }
    let name = to.map(socket2::SockAddr::from);
    // One cmsghdr with a u16, aligned as cmsghdr wants.
    #[repr(C, align(8))]
    struct Control([u8; 32]);
    let mut control = Control([0; 32]);
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = &name {
        msg.msg_name = name.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = name.len();
    }
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = segments.len() as _;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as _;
    // SAFETY: `msg_control` points at `control`, which is larger than CMSG_SPACE(2) and aligned
    // for cmsghdr; the header and its u16 are written inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size as u16);
    }
    // SAFETY: `msg` points at the address, iovecs (over live slices) and control message above,
    // all of which outlive the call.
    let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this kernel knows `UDP_SEGMENT` on the UDP socket `fd` (Linux 4.18+): it reads the
/// option and changes nothing. An error (`ENOPROTOOPT` on an older kernel) means GSO sends
/// cannot work on it.
pub fn probe(fd: RawFd) -> io::Result<()> {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a pointer to a c_int and its length, both live across the call.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_UDP, libc::UDP_SEGMENT, (&mut size as *mut libc::c_int).cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Cleared, for good, by the first send the kernel refuses as unsupported.
static AVAILABLE: AtomicBool = AtomicBool::new(true);

/// Whether GSO sends are worth trying: true until one failed with [`unsupported`].
pub fn available() -> bool {
    AVAILABLE.load(Ordering::Relaxed)
}

/// Looks at a failed GSO send: when it means GSO cannot work here at all, says so once and
/// turns GSO off for every socket from now on.
pub fn note_failure(e: &io::Error) {
    if unsupported(e) && AVAILABLE.swap(false, Ordering::Relaxed) {
        tracing::info!(error = %e, "UDP GSO refused: sending one datagram at a time");
    }
}

/// Whether a failed GSO send means this kernel or device cannot do GSO at all (then send one
/// datagram at a time from now on), rather than that this burst cannot (EINVAL: segments over
/// the route's MTU; EMSGSIZE).
pub fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_burst_arrives_as_the_datagrams_it_was_made_of() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (a, b, c) = ([1u8; 1204], [2u8; 1204], [3u8; 300]);
        send_segments(tx.as_raw_fd(), Some(rx.local_addr().unwrap()), &[&a, &b, &c]).expect("GSO send on loopback");
        let mut buf = [0u8; 4096];
        for expected in [&a[..], &b[..], &c[..]] {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..n], expected, "a segment of {} bytes", expected.len());
        }
    }

    #[test]
    fn a_connected_socket_sends_to_its_peer_and_the_probe_tells_udp_from_tcp() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        probe(tx.as_raw_fd()).expect("this kernel has UDP_SEGMENT");
        send_segments(tx.as_raw_fd(), None, &[b"abcd", b"efgh"]).expect("GSO send on a connected socket");
        let mut buf = [0u8; 16];
        for expected in [b"abcd", b"efgh"] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], expected);
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(probe(tcp.as_raw_fd()).is_err(), "a socket without UDP_SEGMENT");
    }

    #[test]
    fn segments_of_other_sizes_or_too_many_are_refused_before_the_kernel() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = tx.local_addr().unwrap();
        let kind = |segments: &[&[u8]]| send_segments(tx.as_raw_fd(), Some(to), segments).unwrap_err().kind();
        assert_eq!(kind(&[&[0; 10], &[0; 20]]), io::ErrorKind::InvalidInput, "a longer last segment");
        assert_eq!(kind(&[&[0; 10], &[0; 9], &[0; 10]]), io::ErrorKind::InvalidInput, "a short middle one");
        let many = [&[0u8; 8][..]; MAX_SEGMENTS + 1];
        assert_eq!(kind(&many), io::ErrorKind::InvalidInput);
        assert!(send_segments(tx.as_raw_fd(), Some(to), &[]).is_ok(), "nothing to send");
    }
}
