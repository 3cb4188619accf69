//! `turnd bench-forwarder`: the bare recvmmsg/sendmmsg UDP forwarder that issue 9's targets
//! name as the floor for a relay's CPU per packet, so that `benches/compare.sh` measures that
//! floor on the machine and in the run it compares turnd and coturn on, instead of quoting
//! figures from another machine.
//!
//! It does the least a ChannelData relay can do: waits with `poll`, takes up to
//! [`gro::BATCH`] datagrams per `recvmmsg`, strips each ChannelData header (the in-place
//! rewrite a relay does; anything else is dropped) and sends the payloads to one peer in one
//! `sendmmsg` on a connected socket (no route lookup per send). No allocations, permissions,
//! credentials, timers or per-client sockets; one way only (client to peer). `turnd bench
//! --bare` drives it. It stops after `--exit-after` seconds or on a signal.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::mmsg::{send_each, Inbox, BATCH};
use super::BenchError;
use crate::io::gro;
use crate::stun::ChannelData;

/// `turnd bench-forwarder` options.
#[derive(clap::Args, Debug)]
pub struct ForwarderArgs {
    /// Address to receive ChannelData on, HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// The peer every payload goes to, HOST:PORT (`turnd bench --bare --peer-port`)
    #[arg(long, value_name = "HOST:PORT")]
    pub to: SocketAddr,
    /// Stop after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub exit_after: u64,
    /// Allow addresses that are not loopback
    #[arg(long)]
    pub allow_remote: bool,
}

/// What a forwarder did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Payloads the kernel took for the peer.
    pub sent: u64,
    /// Datagrams that were not ChannelData (or claimed more bytes than they had).
    pub malformed: u64,
    /// Payloads dropped on a full send buffer.
    pub dropped: u64,
}

/// The two sockets: one bound to `listen`, one connected to `to`.
pub struct Forwarder {
    rx: UdpSocket,
    tx: UdpSocket,
    inbox: Inbox,
}

impl Forwarder {
    /// Binds and connects; loopback only unless `allow_remote`. Both sockets get the socket
    /// buffers turnd's listeners get ([`crate::io::LISTENER_BUFFER`]), so that neither side wins by its buffers.
    pub fn bind(args: &ForwarderArgs) -> Result<Self, BenchError> {
        if !args.allow_remote {
            for (flag, addr) in [("--listen", args.listen), ("--to", args.to)] {
                if !addr.ip().is_loopback() {
                    return Err(BenchError::Usage(format!(
                        "refusing {flag} {addr}: not a loopback address (give --allow-remote)"
                    )));
                }
            }
        }
        let rx = UdpSocket::bind(args.listen).map_err(|e| BenchError::run(&format!("bind {}", args.listen), e))?;
        let local: SocketAddr = if args.to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let tx = UdpSocket::bind(local).map_err(|e| BenchError::run("bind the sending socket", e))?;
        tx.connect(args.to).map_err(|e| BenchError::run(&format!("connect {}", args.to), e))?;
        for socket in [&rx, &tx] {
            let s = socket2::SockRef::from(socket);
            let _ = s.set_recv_buffer_size(crate::io::LISTENER_BUFFER);
            let _ = s.set_send_buffer_size(crate::io::LISTENER_BUFFER);
        }
        Ok(Forwarder { rx, tx, inbox: Inbox::new() })
    }

    /// The address it receives on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.rx.local_addr()
    }

    /// Forwards until `deadline`, waiting in `poll` (at most a second at a time, to see it).
    pub fn run_until(&mut self, deadline: Instant, done: &mut Forwarded) -> Result<(), BenchError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let wait = left.min(Duration::from_secs(1)).as_millis().max(1) as libc::c_int;
            let mut fd = libc::pollfd { fd: self.rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one live pollfd for the duration of the call.
            if unsafe { libc::poll(&mut fd, 1, wait) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(BenchError::run("poll", e));
                }
            }
            self.drain(done);
        }
    }

    /// Reads the listening socket until a batch comes back short, forwarding each batch's
    /// payloads in one `sendmmsg`.
    pub fn drain(&mut self, done: &mut Forwarded) {
        loop {
            let n = self.inbox.recv(&self.rx);
            let mut payloads: [&[u8]; BATCH] = [&[]; BATCH];
            let mut count = 0;
            for frame in (0..n).flat_map(|i| self.inbox.frames(i)) {
                match ChannelData::parse(frame) {
                    Ok(data) if count < BATCH => {
                        payloads[count] = data.payload;
                        count += 1;
                    }
                    _ => done.malformed += 1,
                }
            }
            if count > 0 {
                let sent = send_each(self.tx.as_raw_fd(), &payloads[..count], None).unwrap_or(0);
                done.sent += sent as u64;
                done.dropped += (count - sent) as u64;
            }
            if n < gro::BATCH {
                return;
            }
        }
    }
}

/// `turnd bench-forwarder`: binds, says where on stdout, forwards until `--exit-after`.
pub fn main(args: &ForwarderArgs) -> Result<(), BenchError> {
    let mut forwarder = Forwarder::bind(args)?;
    let listen = forwarder.local_addr().map_err(|e| BenchError::run("local address", e))?;
    println!("turnd bench-forwarder: {listen} -> {}", args.to);
    let deadline = Instant::now() + Duration::from_secs(args.exit_after);
    let mut done = Forwarded::default();
    forwarder.run_until(deadline, &mut done)?;
    println!(
        "turnd bench-forwarder: {} forwarded, {} dropped, {} not ChannelData",
        done.sent, done.dropped, done.malformed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::mmsg::tests::readable;
    use super::*;

    fn args(to: SocketAddr) -> ForwarderArgs {
        ForwarderArgs { listen: "127.0.0.1:0".parse().unwrap(), to, exit_after: 1, allow_remote: false }
    }

    #[test]
    fn channel_data_payloads_reach_the_peer_and_the_rest_is_dropped() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut forwarder = Forwarder::bind(&args(peer.local_addr().unwrap())).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(forwarder.local_addr().unwrap()).unwrap();
        client.send(&[0x40, 0x00, 0x00, 0x03, b'a', b'b', b'c', 0]).unwrap();
        // A STUN header, and ChannelData claiming more than it carries: not forwarded.
        client.send(&[0x00, 0x01, 0x00, 0x00]).unwrap();
        client.send(&[0x40, 0x00, 0x00, 0x09, b'x']).unwrap();
        client.send(&[0x7f, 0xff, 0x00, 0x02, b'd', b'e']).unwrap();
        let mut done = Forwarded::default();
        while done.sent + done.malformed < 4 {
            readable(&forwarder.rx);
            forwarder.drain(&mut done);
        }
        assert_eq!(done, Forwarded { sent: 2, malformed: 2, dropped: 0 });
        let mut buf = [0u8; 64];
        for want in [&b"abc"[..], b"de"] {
            readable(&peer);
            let n = peer.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
    }

    #[test]
    fn addresses_off_loopback_are_refused_unless_allowed() {
        let mut a = args("192.0.2.1:9".parse().unwrap());
        let Err(BenchError::Usage(why)) = Forwarder::bind(&a) else { panic!("bound") };
        assert!(why.contains("--to 192.0.2.1:9"), "{why}");
        a.to = "127.0.0.1:9".parse().unwrap();
        a.listen = "0.0.0.0:0".parse().unwrap();
        let Err(BenchError::Usage(why)) = Forwarder::bind(&a) else { panic!("bound") };
        assert!(why.contains("--listen 0.0.0.0:0"), "{why}");
    }
}
