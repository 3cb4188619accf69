//! Relay sockets: the port pool, binding in the configured range (and keeping TCP relays off
//! each other's ports), and the socket type the allocation table owns (dropping it closes the
//! socket and frees the port at once). UDP relays keep ICMP errors in their error queue
//! (IP_RECVERR), read with [`RelaySocket::recv_error`].

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::{gro, gso};
use crate::turn::{AllocId, OpenError, PeerIcmp, Relay, RelayOptions, RelayProvider};

/// A relay socket, registered in one worker's epoll set under its allocation's id.
pub enum RelaySocket {
    /// A UDP relay.
    Udp(mio::net::UdpSocket),
    /// A TCP relay (RFC 6062): listens on the relayed address. Its data connections watch
    /// `closing`, which ends when the allocation (and so this socket) is dropped. `port` keeps
    /// the port from other TCP relays until the listener has closed (fields drop in order).
    Tcp { listener: mio::net::TcpListener, closing: tokio::sync::watch::Sender<()>, port: TcpPort },
}

impl RelaySocket {
    /// Receives one datagram (non-blocking); a TCP relay has none.
    pub fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            RelaySocket::Udp(socket) => socket.recv_from(buf),
            RelaySocket::Tcp { .. } => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Receives one datagram, or a GRO burst of them (non-blocking); a TCP relay has none.
    pub fn recv_burst(&self, buf: &mut [u8]) -> std::io::Result<gro::Received> {
        match self {
            RelaySocket::Udp(socket) => gro::recv_from(socket.as_raw_fd(), buf),
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

    /// Takes one entry off a UDP relay's error queue (non-blocking; `WouldBlock` when it is
    /// empty): the destination of the datagram the entry is about and, when it is one, the ICMP
    /// error (see [`recv_error`]).
    pub fn recv_error(&self) -> std::io::Result<Option<(SocketAddr, PeerIcmp)>> {
        match self {
            RelaySocket::Udp(socket) => recv_error(socket.as_raw_fd()),
            RelaySocket::Tcp { .. } => Err(std::io::ErrorKind::WouldBlock.into()),
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
        // With IP_RECVERR the kernel reports an ICMP error about an earlier datagram on the
        // next call, this send included, and sends nothing: one more try sends it (the error
        // stays queued for the worker to relay). A full send buffer drops the datagram, as the
        // network would; so does "message too long", which is this datagram's own (retried, it
        // would be reported twice) unless it was a pending "fragmentation needed".
        for retry in [true, false] {
            match socket.send_to(payload, peer) {
                Ok(_) => return,
                Err(e)
                    if retry
                        && e.kind() != std::io::ErrorKind::WouldBlock
                        && e.raw_os_error() != Some(libc::EMSGSIZE) => {}
                Err(e) => {
                    tracing::trace!(%peer, error = %e, "relay send failed");
                    return;
                }
            }
        }
    }

    fn send_run(&self, payloads: &[&[u8]], peer: SocketAddr) -> bool {
        let RelaySocket::Udp(socket) = self else { return false };
        if payloads.len() >= 2 && gso::available() {
            match gso::send_segments(socket.as_raw_fd(), Some(peer), payloads) {
                Ok(()) => return true,
                // A full send buffer drops the run, as it would each datagram.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                // Unsupported, over the path's MTU, or an ICMP error reported on this send:
                // one datagram at a time, with send_to's handling of each.
                Err(e) => gso::note_failure(&e),
            }
        }
        for payload in payloads {
            self.send_to(payload, peer);
        }
        false
    }
}

/// The mio token of an allocation's relay socket of one family: the allocation id and the
/// family, so the two sockets of a dual allocation are told apart.
pub fn relay_token(id: AllocId, ipv6: bool) -> mio::Token {
    mio::Token(((id.0 << 1) | u64::from(ipv6)) as usize)
}

/// The allocation and family of a relay socket's token.
pub fn token_relay(token: mio::Token) -> (AllocId, bool) {
    let t = token.0 as u64;
    (AllocId(t >> 1), t & 1 == 1)
}

/// The relay port range, on the relay IP of each family. Ports are tried from a random starting
/// point (RFC 6056) and then in order; the kernel's bind is the source of truth for which ports
/// are free, except between TCP relays (see [`TcpPorts`]).
pub struct PortPool {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
    min: u16,
    span: u32,
    cursor: AtomicU32,
    tcp: Arc<TcpPorts>,
}

/// The ports of the range that live TCP relays hold, one bit per port and family. A TCP relay
/// sets SO_REUSEPORT so the connections it opens to peers (RFC 6062 Connect) can leave from its
/// relayed address, and with it the kernel would also let a second TCP relay bind and listen on
/// a port a live one holds, sharing that allocation's incoming peer connections. The kernel's
/// bind cannot say no there, so the pool does.
struct TcpPorts {
    /// IPv4's words, then as many for IPv6.
    bits: Box<[AtomicU64]>,
}

impl TcpPorts {
    fn new(span: u32) -> Self {
        let words = (span as usize).div_ceil(64);
        TcpPorts { bits: (0..2 * words).map(|_| AtomicU64::new(0)).collect() }
    }

    fn bit(&self, ipv6: bool, offset: u32) -> (&AtomicU64, u64) {
        let index = offset as usize + if ipv6 { self.bits.len() / 2 * 64 } else { 0 };
        (&self.bits[index / 64], 1 << (index % 64))
    }
}

/// A port of the range held by a live TCP relay; dropping it frees the port for other TCP
/// relays.
pub struct TcpPort {
    ports: Arc<TcpPorts>,
    ipv6: bool,
    offset: u32,
}

impl TcpPort {
    /// Claims the port at `offset` of `ports`' range for a TCP relay of one family; `None` if a
    /// live TCP relay holds it.
    fn claim(ports: &Arc<TcpPorts>, ipv6: bool, offset: u32) -> Option<TcpPort> {
        let (word, mask) = ports.bit(ipv6, offset);
        let held = word.fetch_or(mask, Ordering::AcqRel) & mask != 0;
        (!held).then(|| TcpPort { ports: Arc::clone(ports), ipv6, offset })
    }
}

impl Drop for TcpPort {
    fn drop(&mut self) {
        let (word, mask) = self.ports.bit(self.ipv6, self.offset);
        word.fetch_and(!mask, Ordering::AcqRel);
    }
}

/// A socket [`PortPool::bind`] bound: on `port`, with the held socket of `port + 1` for a pair,
/// and the claim on the port for a TCP relay.
struct Bound {
    socket: Socket,
    port: u16,
    held: Option<Socket>,
    tcp: Option<TcpPort>,
}

impl PortPool {
    /// A pool over `min..=max` on `ips` (at most one IP per family is used: the first).
    pub fn new(ips: &[IpAddr], min: u16, max: u16) -> Self {
        let span = u32::from(max.saturating_sub(min)) + 1;
        let mut seed = [0u8; 4];
        // Without randomness the range is still walked in full; only the start is predictable.
        let _ = getrandom::getrandom(&mut seed);
        let v4 = ips.iter().copied().find(IpAddr::is_ipv4);
        let v6 = ips.iter().copied().find(IpAddr::is_ipv6);
        let cursor = AtomicU32::new(u32::from_ne_bytes(seed) % span);
        PortPool { v4, v6, min, span, cursor, tcp: Arc::new(TcpPorts::new(span)) }
    }

    /// Binds a socket on a free port of the range; with `pair`, an even port and the port after
    /// it (EVEN-PORT with the R bit), both free. A socket whose bind failed is kept for the next
    /// port: a taken port costs one failed `bind`, not a new socket. A TCP relay also needs the
    /// port unclaimed by other TCP relays ([`TcpPorts`]).
    fn bind(&self, options: RelayOptions, pair: bool) -> Result<Bound, OpenError> {
        let ip = if options.ipv6 { self.v6 } else { self.v4 };
        let ip = ip.ok_or(OpenError::FamilyNotSupported)?;
        let mut spare = None;
        for _ in 0..self.span {
            let offset = self.cursor.fetch_add(1, Ordering::Relaxed) % self.span;
            let port = self.min + offset as u16;
            if (options.even_port || pair) && port % 2 != 0 {
                continue;
            }
            let next = match port.checked_add(1) {
                Some(next) if pair && u32::from(next - self.min) < self.span => Some(next),
                _ if pair => continue,
                _ => None,
            };
            // Dropped (freeing the port again) if the bind below fails.
            let tcp = if options.tcp {
                let Some(claim) = TcpPort::claim(&self.tcp, options.ipv6, offset) else { continue };
                Some(claim)
            } else {
                None
            };
            let Some(socket) = bind_on(&mut spare, ip, port, options)? else { continue };
            let Some(next) = next else {
                return Ok(Bound { socket: finish(socket, options)?, port, held: None, tcp });
            };
            let Some(held) = bind_on(&mut spare, ip, next, options)? else { continue };
            return Ok(Bound { socket: finish(socket, options)?, port, held: Some(finish(held, options)?), tcp });
        }
        Err(OpenError::Exhausted)
    }
}

/// Binds `spare` (or a new socket) to `ip:port`: `None` if the port is taken, with the socket
/// kept in `spare` for the next try.
fn bind_on(
    spare: &mut Option<Socket>,
    ip: IpAddr,
    port: u16,
    options: RelayOptions,
) -> Result<Option<Socket>, OpenError> {
    let socket = match spare.take() {
        Some(socket) => socket,
        None => open(ip, options.tcp).map_err(open_failed)?,
    };
    match socket.bind(&SocketAddr::new(ip, port).into()) {
        Ok(()) => Ok(Some(socket)),
        Err(e) if out_of_fds(&e) => Err(OpenError::Exhausted),
        Err(_) => {
            *spare = Some(socket);
            Ok(None)
        }
    }
}

fn open_failed(e: std::io::Error) -> OpenError {
    if !out_of_fds(&e) {
        tracing::warn!(error = %e, "cannot open a relay socket");
    }
    OpenError::Exhausted
}

/// An unbound non-blocking relay socket (one `socket` call: no `fcntl`). A TCP relay's
/// SO_REUSEPORT lets the connections turnd opens to peers (RFC 6062 Connect) leave from the
/// same relayed address.
fn open(ip: IpAddr, tcp: bool) -> std::io::Result<Socket> {
    let (kind, protocol) = if tcp { (Type::STREAM, Protocol::TCP) } else { (Type::DGRAM, Protocol::UDP) };
    let socket = Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), kind.nonblocking(), Some(protocol))?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if tcp {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    Ok(socket)
}

/// What a bound relay socket needs before use: a TCP relay listens; a UDP relay keeps ICMP
/// errors about what it sends in its error queue (RFC 8656 §11; without this an unconnected
/// UDP socket never hears of them), reads a peer's burst (a video frame) in one receive, and
/// sets DF for DONT-FRAGMENT.
fn finish(socket: Socket, options: RelayOptions) -> Result<Socket, OpenError> {
    let set = || -> std::io::Result<()> {
        if options.tcp {
            return socket.listen(64);
        }
        let (level, recverr) =
            if options.ipv6 { (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) } else { (libc::IPPROTO_IP, libc::IP_RECVERR) };
        set_int_option(&socket, level, recverr, 1)?;
        gro::enable(&socket);
        if options.dont_fragment {
            set_dont_fragment(&socket, options.ipv6)?;
        }
        Ok(())
    };
    set().map_err(open_failed)?;
    Ok(socket)
}

fn out_of_fds(e: &std::io::Error) -> bool {
    let out = e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE);
    if out {
        tracing::warn!("out of file descriptors for relay sockets");
    }
    out
}

/// DF on everything the socket sends, for DONT-FRAGMENT (RFC 8656 §14.8).
fn set_dont_fragment(socket: &Socket, ipv6: bool) -> std::io::Result<()> {
    let (level, name, value) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO)
    };
    set_int_option(socket, level, name, value)
}

fn set_int_option(socket: &Socket, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
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

/// Control-message room for one `sock_extended_err` and its offender address, aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
struct ErrorControl([u8; 128]);

/// Takes one entry off the error queue of the UDP socket `fd` (`MSG_ERRQUEUE`, non-blocking;
/// no payload is read, and nothing is allocated). The entry's address is the destination of the
/// datagram it is about: turnd's peer. An ICMP or ICMPv6 error is returned as it came; a local
/// "message too long" (a datagram over the path MTU under DF, or over the largest IP packet) as
/// the ICMP error the first hop would have sent: ICMPv4 3/4 "fragmentation needed" or ICMPv6
/// 2 "packet too big", with the MTU. Anything else is consumed and gives `None`.
fn recv_error(fd: RawFd) -> std::io::Result<Option<(SocketAddr, PeerIcmp)>> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = ErrorControl([0; 128]);
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: `msg` points at `name` and `control`, which outlive the call, with their sizes;
    // no iovec, so the entry's payload is discarded (MSG_TRUNC).
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `name`.
    let peer = unsafe { socket2::SockAddr::new(name, msg.msg_namelen) }.as_socket();
    let mut icmp = None;
    // SAFETY: the CMSG_* walk stays inside `msg_control`/`msg_controllen` as the kernel set
    // them; each header's length is checked before its data is read (unaligned).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let is_recverr = (level, kind) == (libc::IPPROTO_IP, libc::IP_RECVERR)
                || (level, kind) == (libc::IPPROTO_IPV6, libc::IPV6_RECVERR);
            let full = (*cmsg).cmsg_len as usize
                >= libc::CMSG_LEN(std::mem::size_of::<libc::sock_extended_err>() as u32) as usize;
            if is_recverr && full {
                let err = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>());
                icmp = peer_icmp(&err, level == libc::IPPROTO_IPV6);
                break;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(peer.zip(icmp))
}

/// The ICMP error an extended socket error stands for (see [`recv_error`]).
fn peer_icmp(err: &libc::sock_extended_err, ipv6: bool) -> Option<PeerIcmp> {
    let icmp = |v6, icmp_type, code| PeerIcmp { v6, icmp_type, code, info: err.ee_info };
    match err.ee_origin {
        libc::SO_EE_ORIGIN_ICMP => Some(icmp(false, err.ee_type, err.ee_code)),
        libc::SO_EE_ORIGIN_ICMP6 => Some(icmp(true, err.ee_type, err.ee_code)),
        libc::SO_EE_ORIGIN_LOCAL if err.ee_errno == libc::EMSGSIZE as u32 => {
            Some(if ipv6 { icmp(true, 2, 0) } else { icmp(false, 3, 4) })
        }
        _ => None,
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
        let bound = self.pool.bind(options, false)?;
        let port = bound.port;
        Ok((self.register(id, bound, options)?, port))
    }

    fn open_pair(&mut self, id: AllocId, options: RelayOptions) -> Result<(RelaySocket, u16, RelaySocket), OpenError> {
        let mut bound = self.pool.bind(options, true)?;
        let port = bound.port;
        let held = bound.held.take().ok_or(OpenError::Exhausted)?;
        // Held unregistered: it serves nothing until adopted, and reads nothing meanwhile.
        let held = RelaySocket::Udp(mio::net::UdpSocket::from_std(held.into()));
        Ok((self.register(id, bound, options)?, port, held))
    }

    fn adopt(&mut self, id: AllocId, held: RelaySocket, options: RelayOptions) -> Result<RelaySocket, OpenError> {
        let RelaySocket::Udp(mut udp) = held else { return Err(OpenError::Exhausted) };
        if options.dont_fragment {
            let ipv6 = options.ipv6;
            let set = socket2::SockRef::from(&udp);
            if let Err(e) = set_dont_fragment(&set, ipv6) {
                tracing::warn!(error = %e, "cannot set DF on a reserved relay socket");
                return Err(OpenError::Exhausted);
            }
        }
        let token = relay_token(id, options.ipv6);
        match self.registry.register(&mut udp, token, mio::Interest::READABLE) {
            Ok(()) => Ok(RelaySocket::Udp(udp)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot register a relay socket");
                Err(OpenError::Exhausted)
            }
        }
    }
}

impl WorkerRelays<'_> {
    /// Registers a bound relay socket in this worker's epoll set.
    fn register(&self, id: AllocId, bound: Bound, options: RelayOptions) -> Result<RelaySocket, OpenError> {
        let token = relay_token(id, options.ipv6);
        let registered = if let Some(port) = bound.tcp {
            let mut listener = mio::net::TcpListener::from_std(bound.socket.into());
            self.registry.register(&mut listener, token, mio::Interest::READABLE).map(|()| {
                let (closing, _) = tokio::sync::watch::channel(());
                RelaySocket::Tcp { listener, closing, port }
            })
        } else {
            let mut udp = mio::net::UdpSocket::from_std(bound.socket.into());
            self.registry.register(&mut udp, token, mio::Interest::READABLE).map(|()| RelaySocket::Udp(udp))
        };
        match registered {
            Ok(relay) => Ok(relay),
            Err(e) => {
                tracing::warn!(error = %e, "cannot register a relay socket");
                Err(OpenError::Exhausted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn int_option(socket: &Socket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid fd, and pointers to a c_int and its length that outlive the call.
        let rc = unsafe {
            libc::getsockopt(socket.as_raw_fd(), level, name, (&mut value as *mut libc::c_int).cast(), &mut len)
        };
        assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        value
    }

    /// Waits (bounded) until `socket` has an error-queue entry, then reads it.
    fn next_error(socket: &Socket) -> Option<(SocketAddr, PeerIcmp)> {
        let mut fd = libc::pollfd { fd: socket.as_raw_fd(), events: 0, revents: 0 };
        // SAFETY: one valid pollfd. POLLERR is always reported, asked for or not.
        let ready = unsafe { libc::poll(&mut fd, 1, 5000) };
        assert_eq!(ready, 1, "no error queued within 5 s");
        recv_error(socket.as_raw_fd()).expect("an error-queue entry")
    }

    /// A loopback port nothing listens on (bound, noted, closed).
    fn closed_port(ip: &str) -> SocketAddr {
        UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
    }

    fn has_ipv6_loopback() -> bool {
        UdpSocket::bind("[::1]:0").is_ok()
    }

    fn bind_udp(addr: SocketAddr, dont_fragment: bool) -> Result<Socket, OpenError> {
        let socket = open(addr.ip(), false).unwrap();
        socket.bind(&addr.into()).unwrap();
        finish(socket, RelayOptions { dont_fragment, ipv6: addr.is_ipv6(), ..RelayOptions::default() })
    }

    fn udp(ipv6: bool) -> RelayOptions {
        RelayOptions { ipv6, ..RelayOptions::default() }
    }

    #[test]
    fn a_taken_port_is_skipped_and_a_full_range_is_exhausted() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let only_taken = PortPool::new(&[ip], port, port);
        assert_eq!(only_taken.bind(udp(false), false).err(), Some(OpenError::Exhausted));
        assert_eq!(only_taken.bind(udp(true), false).err(), Some(OpenError::FamilyNotSupported));
        // The neighbour may be someone else's: then the range is full, which is what it says.
        let pool = PortPool::new(&[ip], port - 1, port);
        match pool.bind(udp(false), false) {
            Ok(Bound { socket, port: got, held: None, tcp: None }) => {
                assert_eq!(got, port - 1);
                assert_eq!(socket.local_addr().unwrap().as_socket().unwrap().port(), port - 1);
                assert!(socket.nonblocking().unwrap(), "relay sockets are non-blocking");
            }
            Ok(Bound { port: got, .. }) => panic!("a pair or a TCP claim on port {got} for one UDP relay"),
            Err(e) => assert!(UdpSocket::bind(("127.0.0.1", port - 1)).is_err(), "{e:?} with port {} free", port - 1),
        }
    }

    /// A loopback port number free for both TCP and UDP when this returns (tests running
    /// alongside bind ports too, so a port free for one protocol may be taken for the other).
    fn free_tcp_and_udp_port() -> u16 {
        for _ in 0..100 {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
        panic!("no loopback port free for both TCP and UDP in 100 tries");
    }

    #[test]
    fn a_port_a_live_tcp_relay_holds_is_not_given_to_another() {
        let port = free_tcp_and_udp_port();
        let pool = PortPool::new(&["127.0.0.1".parse().unwrap()], port, port);
        let poll = mio::Poll::new().unwrap();
        let mut relays = WorkerRelays { pool: &pool, registry: poll.registry() };
        let tcp = RelayOptions { tcp: true, ..RelayOptions::default() };
        let (first, got) = relays.open(AllocId(1), tcp).expect("the range's one port is free");
        assert_eq!(got, port);
        assert!(first.is_tcp());
        // SO_REUSEPORT would let the kernel bind and listen on it a second time.
        assert_eq!(relays.open(AllocId(2), tcp).err(), Some(OpenError::Exhausted));
        // A UDP relay on the same port number is another socket space.
        let (udp, got) = relays.open(AllocId(3), udp(false)).expect("UDP port free");
        assert_eq!((udp.is_tcp(), got), (false, port));
        drop(first);
        let (again, got) = relays.open(AllocId(4), tcp).expect("free again once the first relay is gone");
        assert_eq!(got, port);
        assert!(again.is_tcp());
    }

    #[test]
    fn tcp_port_claims_are_per_family_and_freed_on_drop() {
        let ports = Arc::new(TcpPorts::new(130));
        let claim = TcpPort::claim(&ports, false, 129).expect("free");
        assert!(TcpPort::claim(&ports, false, 129).is_none(), "held");
        let v6 = TcpPort::claim(&ports, true, 129).expect("the IPv6 port is another");
        assert!(TcpPort::claim(&ports, false, 128).is_some(), "the neighbour is free (and freed at once)");
        drop(claim);
        assert!(TcpPort::claim(&ports, false, 129).is_some(), "freed");
        assert!(TcpPort::claim(&ports, true, 129).is_none(), "still held");
        drop(v6);
        assert!(TcpPort::claim(&ports, true, 129).is_some());
    }

    #[test]
    fn dont_fragment_and_recverr_are_set_on_udp_relays() {
        let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let df = bind_udp(v4, true).unwrap();
        assert_eq!(int_option(&df, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER), libc::IP_PMTUDISC_DO);
        assert_eq!(int_option(&df, libc::IPPROTO_IP, libc::IP_RECVERR), 1);
        let plain = bind_udp(v4, false).unwrap();
        assert_ne!(int_option(&plain, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER), libc::IP_PMTUDISC_DO);
        assert_eq!(int_option(&plain, libc::IPPROTO_IP, libc::IP_RECVERR), 1);
        if has_ipv6_loopback() {
            let v6 = bind_udp("[::1]:0".parse().unwrap(), true).unwrap();
            assert_eq!(int_option(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER), libc::IPV6_PMTUDISC_DO);
            assert_eq!(int_option(&v6, libc::IPPROTO_IPV6, libc::IPV6_RECVERR), 1);
        }
    }

    #[test]
    fn port_unreachable_is_read_from_the_error_queue() {
        let relay = bind_udp("127.0.0.1:0".parse().unwrap(), false).unwrap();
        // Empty queue: WouldBlock, not an entry.
        assert_eq!(recv_error(relay.as_raw_fd()).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
        let peer = closed_port("127.0.0.1");
        relay.send_to(b"anyone there?", &peer.into()).unwrap();
        let (to, icmp) = next_error(&relay).expect("an ICMP error");
        assert_eq!(to, peer);
        assert_eq!(icmp, PeerIcmp { v6: false, icmp_type: 3, code: 3, info: 0 });
        // Read once, gone: the socket is not left ready.
        assert_eq!(recv_error(relay.as_raw_fd()).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_pending_icmp_error_does_not_cost_the_next_datagram() {
        // The kernel reports a queued ICMP error on the socket's next call, sendto included,
        // which then sends nothing: the relay must still send the next payload.
        let socket = bind_udp("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let closed = closed_port("127.0.0.1");
        socket.send_to(b"x", &closed.into()).unwrap();
        let mut fd = libc::pollfd { fd: socket.as_raw_fd(), events: 0, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut fd, 1, 5000) }, 1, "no error queued within 5 s");
        let relay = RelaySocket::Udp(mio::net::UdpSocket::from_std(socket.into()));
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        relay.send_to(b"still sent", peer.local_addr().unwrap());
        let mut buf = [0u8; 32];
        let n = peer.recv(&mut buf).expect("the datagram after an ICMP error arrives");
        assert_eq!(&buf[..n], b"still sent");
        // And the error is still there to be relayed.
        let RelaySocket::Udp(udp) = &relay else { unreachable!() };
        assert_eq!(recv_error(udp.as_raw_fd()).unwrap().map(|(to, _)| to), Some(closed));
    }

    #[test]
    fn icmpv6_port_unreachable_is_read_from_the_error_queue() {
        if !has_ipv6_loopback() {
            return;
        }
        let relay = bind_udp("[::1]:0".parse().unwrap(), false).unwrap();
        let peer = closed_port("::1");
        relay.send_to(b"anyone there?", &peer.into()).unwrap();
        let (to, icmp) = next_error(&relay).expect("an ICMPv6 error");
        assert_eq!(to, peer);
        // ICMPv6 destination unreachable, port unreachable.
        assert_eq!((icmp.v6, icmp.icmp_type, icmp.code), (true, 1, 4));
    }

    #[test]
    fn an_oversized_datagram_under_df_is_a_fragmentation_needed_error() {
        let relay = bind_udp("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let peer = closed_port("127.0.0.1");
        // Loopback's MTU is 65536: the largest UDP payload (65507) fits in one IP packet, so
        // only a payload over it is too big; the send fails with EMSGSIZE and the error queue
        // says why, with the MTU.
        let big = vec![0u8; 65_510];
        let e = relay.send_to(&big, &peer.into()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        let (to, icmp) = next_error(&relay).expect("a local EMSGSIZE entry");
        assert_eq!(to.ip(), peer.ip());
        assert_eq!((icmp.v6, icmp.icmp_type, icmp.code), (false, 3, 4));
        assert!(icmp.info >= 1280, "MTU {}", icmp.info);
    }
}
