//! Relay sockets: the port pool, binding in the configured range, and the socket type the
//! allocation table owns (dropping it closes the socket and frees the port at once).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

use crate::turn::{AllocId, OpenError, Relay, RelayOptions, RelayProvider};

/// A relay socket, registered in one worker's epoll set under its allocation's id.
pub enum RelaySocket {
    /// A UDP relay.
    Udp(mio::net::UdpSocket),
    /// A TCP relay (RFC 6062): listens on the relayed address. Its data connections watch
    /// `closing`, which ends when the allocation (and so this socket) is dropped.
    Tcp { listener: mio::net::TcpListener, closing: tokio::sync::watch::Sender<()> },
}

impl RelaySocket {
    /// Receives one datagram (non-blocking); a TCP relay has none.
    pub fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            RelaySocket::Udp(socket) => socket.recv_from(buf),
            RelaySocket::Tcp { .. } => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Accepts a peer connection on a TCP relay (non-blocking).
    pub fn accept(&self) -> std::io::Result<(mio::net::TcpStream, SocketAddr)> {
        match self {
            RelaySocket::Tcp { listener, .. } => listener.accept(),
            RelaySocket::Udp(_) => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    pub fn is_tcp(&self) -> bool {
        matches!(self, RelaySocket::Tcp { .. })
    }

    /// For a TCP relay: a signal that completes when the allocation ends.
    pub fn closing(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        match self {
            RelaySocket::Tcp { closing, .. } => Some(closing.subscribe()),
            RelaySocket::Udp(_) => None,
        }
    }
}

impl Relay for RelaySocket {
    fn send_to(&self, payload: &[u8], peer: SocketAddr) {
        let RelaySocket::Udp(socket) = self else { return };
        // A full send buffer or an ICMP error drops this datagram, as the network would.
        if let Err(e) = socket.send_to(payload, peer) {
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
            let addr = SocketAddr::new(self.ip, port);
            let bound = if options.tcp { bind_tcp(addr) } else { bind_udp(addr, options.dont_fragment) };
            match bound {
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

/// A TCP relay's listening socket. SO_REUSEPORT lets the connections turnd opens to peers
/// (RFC 6062 Connect) leave from the same relayed address.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    Ok(socket)
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
        let token = mio::Token(id.0 as usize);
        let registered = if options.tcp {
            let mut listener = mio::net::TcpListener::from_std(socket.into());
            self.registry.register(&mut listener, token, mio::Interest::READABLE).map(|()| {
                let (closing, _) = tokio::sync::watch::channel(());
                RelaySocket::Tcp { listener, closing }
            })
        } else {
            let mut udp = mio::net::UdpSocket::from_std(socket.into());
            self.registry.register(&mut udp, token, mio::Interest::READABLE).map(|()| RelaySocket::Udp(udp))
        };
        match registered {
            Ok(relay) => Ok((relay, port)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot register a relay socket");
                Err(OpenError::Exhausted)
            }
        }
    }
}
