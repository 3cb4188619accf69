//! `sendmmsg`/`recvmmsg` over one batch of reusable buffers (Linux): a worker moves up to
//! [`BATCH`] datagrams per system call and allocates nothing per packet.

use std::io;
use std::os::fd::AsRawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Size of each buffer: larger than any frame the tool sends (payload ≤ 1400 plus headers).
pub const BUF_LEN: usize = 2048;

/// Buffers, lengths and source addresses for one batch.
pub struct Batch {
    pub bufs: Box<[[u8; BUF_LEN]; BATCH]>,
    pub lens: [usize; BATCH],
    names: [libc::sockaddr_storage; BATCH],
    namelens: [libc::socklen_t; BATCH],
}

impl Batch {
    pub fn new() -> Self {
        Batch {
            bufs: Box::new([[0; BUF_LEN]; BATCH]),
            lens: [0; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all zeros is a valid value.
            names: unsafe { std::mem::zeroed() },
            namelens: [0; BATCH],
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking and remembers where each came from;
    /// the count (0 when nothing is waiting or on an error, e.g. a queued ICMP error).
    pub fn recv(&mut self, socket: &impl AsRawFd) -> usize {
        // SAFETY: iovec and mmsghdr are plain old data; all zeros is a valid value.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (hdr, v)) in hdrs.iter_mut().zip(iov.iter_mut()).enumerate() {
            *v = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: BUF_LEN };
            hdr.msg_hdr.msg_iov = v;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every header points at a live buffer of BUF_LEN bytes and a sockaddr_storage
        // of self, which outlive the call; the kernel writes at most that much.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let Ok(n) = usize::try_from(n) else { return 0 };
        for (i, hdr) in hdrs.iter().take(n).enumerate() {
            self.lens[i] = hdr.msg_len as usize;
            self.namelens[i] = hdr.msg_hdr.msg_namelen;
        }
        n
    }

    /// Sends `bufs[i][..lens[i]]` for `i < n` without blocking: to the addresses the last
    /// [`Batch::recv`] saw when `to_sources` (an echo), else on a connected socket. Returns how
    /// many the kernel took (0 when its buffer is full).
    pub fn send(&mut self, socket: &impl AsRawFd, n: usize, to_sources: bool) -> io::Result<usize> {
        let n = n.min(BATCH);
        // SAFETY: as in recv.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (hdr, v)) in hdrs.iter_mut().zip(iov.iter_mut()).take(n).enumerate() {
            *v = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: self.lens[i].min(BUF_LEN) };
            hdr.msg_hdr.msg_iov = v;
            hdr.msg_hdr.msg_iovlen = 1;
            if to_sources {
                hdr.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                hdr.msg_hdr.msg_namelen = self.namelens[i];
            }
        }
        // SAFETY: the first n headers point at live buffers and addresses of self.
        let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
        match usize::try_from(sent) {
            Ok(sent) => Ok(sent),
            Err(_) => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                e => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_batch_goes_out_and_is_echoed_back_to_its_sources() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        let mut tx = Batch::new();
        for i in 0..5 {
            tx.bufs[i][..3].copy_from_slice(&[i as u8; 3]);
            tx.lens[i] = 3;
        }
        assert_eq!(tx.send(&a, 5, false).unwrap(), 5);
        let mut rx = Batch::new();
        b.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut got = 0;
        while got < 5 {
            // Wait for the first datagram with a blocking peek, then take what is queued.
            b.peek_from(&mut [0; 1]).unwrap();
            let n = rx.recv(&b);
            assert_eq!(rx.send(&b, n, true).unwrap(), n);
            got += n;
        }
        a.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut buf = [0; 16];
        assert_eq!(a.recv(&mut buf).unwrap(), 3);
        assert_eq!(buf[..3], [0; 3]);
    }
}
