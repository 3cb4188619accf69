//! Relay sockets: the port pool, binding in the configured range, and the socket type the
//! allocation table owns (dropping it closes the socket and frees the port at once).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

use crate::turn::{AllocId, OpenError, Relay, RelayOptions, RelayProvider};

/// A relay socket, registered in one worker's epoll set under its allocation's id.
pub struct RelaySocket {
    socket: mio::net::UdpSocket,
}

impl RelaySocket {
    /// Receives one datagram (non-blocking).
    pub fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf)
    }
}

impl Relay for RelaySocket {
    fn send_to(&self, payload: &[u8], peer: SocketAddr) {
        // A full send buffer or an ICMP error drops this datagram, as the network would.
        if let Err(e) = self.socket.send_to(payload, peer) {
            tracing::trace!(%peer, error = %e, "relay send failed");
        }
    }
}

/// The relay port range. Ports are tried from a random starting point (RFC 6056) and then in
/// order; the kernel's bind is the source of truth for which ports are free.
pub struct PortPool {
    ip: IpAddr,
    min: u16,
    span: u32,
    cursor: AtomicU32,
}

impl PortPool {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        let span = u32::from(max.saturating_sub(min)) + 1;
        let mut seed = [0u8; 4];
        // Without randomness the range is still walked in full; only the start is predictable.
        let _ = getrandom::getrandom(&mut seed);
        PortPool { ip, min, span, cursor: AtomicU32::new(u32::from_ne_bytes(seed) % span) }
    }

    /// Binds a socket on a free port of the range.
    fn bind(&self, options: RelayOptions) -> Result<(Socket, u16), OpenError> {
        if options.ipv6 != self.ip.is_ipv6() {
            return Err(OpenError::FamilyNotSupported);
        }
        for _ in 0..self.span {
            let offset = self.cursor.fetch_add(1, Ordering::Relaxed) % self.span;
            let port = self.min + offset as u16;
            if options.even_port && port % 2 != 0 {
                continue;
            }
            match bind_udp(SocketAddr::new(self.ip, port), options.dont_fragment) {
                Ok(socket) => return Ok((socket, port)),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) => {
                    tracing::warn!("out of file descriptors for relay sockets");
                    return Err(OpenError::Exhausted);
                }
                Err(_) => continue,
            }
        }
        Err(OpenError::Exhausted)
    }
}

fn bind_udp(addr: SocketAddr, dont_fragment: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if dont_fragment {
        set_dont_fragment(&socket, addr.is_ipv6())?;
    }
    Ok(socket)
}

/// Sets DF on everything the socket sends (IP_PMTUDISC_DO), for DONT-FRAGMENT (RFC 8656 §14.8).
fn set_dont_fragment(socket: &Socket, ipv6: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (level, name, value) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO)
    };
    // SAFETY: a valid fd we own, and a pointer to a c_int that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Opens relay sockets for one worker: bound from the shared pool, registered in that worker's
/// epoll set with the allocation id as token, so its datagrams are read by that worker.
pub struct WorkerRelays<'a> {
    pub pool: &'a PortPool,
    pub registry: &'a mio::Registry,
}

impl RelayProvider for WorkerRelays<'_> {
    type Relay = RelaySocket;

    fn open(&mut self, id: AllocId, options: RelayOptions) -> Result<(RelaySocket, u16), OpenError> {
        let (socket, port) = self.pool.bind(options)?;
        let mut socket = mio::net::UdpSocket::from_std(socket.into());
        if let Err(e) = self.registry.register(&mut socket, mio::Token(id.0 as usize), mio::Interest::READABLE) {
            tracing::warn!(error = %e, "cannot register a relay socket");
            return Err(OpenError::Exhausted);
        }
        Ok((RelaySocket { socket }, port))
    }
}
