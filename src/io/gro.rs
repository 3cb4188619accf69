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
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: `msg` points at `name`, `iov` (over `buf`) and `control`, which outlive the call,
    // with their sizes; the kernel writes within them.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `name`.
    let from = unsafe { socket2::SockAddr::new(name, msg.msg_namelen) }
        .as_socket()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut segment = len;
    // SAFETY: the CMSG_* walk stays inside `msg_control`/`msg_controllen` as the kernel set
    // them; the header's length is checked before its int is read (unaligned).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let full = (*cmsg).cmsg_len as usize >= libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO && full {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                // A size of 0, or over the length, would be the kernel's oddity: one datagram.
                if let Ok(size @ 1..) = usize::try_from(size) {
                    segment = size.min(len.max(1));
                }
                break;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received { len, from, segment: segment.max(1).min(len.max(1)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Waits (up to 5 s) until `rx` is readable, then receives.
    fn receive(rx: &UdpSocket, buf: &mut [u8]) -> Received {
        let mut fd = libc::pollfd { fd: rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, 5_000) };
        assert_eq!(ready, 1, "nothing arrived in 5 s");
        recv_from(rx.as_raw_fd(), buf).expect("a readable socket has a datagram")
    }

    #[test]
    fn a_gso_burst_arrives_as_one_receive_with_its_segment_size() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable(&rx);
        let (a, b, c) = ([1u8; 1200], [2u8; 1200], [3u8; 500]);
        super::super::gso::send_segments(tx.as_raw_fd(), rx.local_addr().unwrap(), &[&a, &b, &c]).unwrap();
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
}
