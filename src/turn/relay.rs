//! The relay-socket interface between the sans-IO core and the IO shell: what an Allocate asks
//! of a new relay socket, why opening one fails, and the two traits the shell implements
//! (`io::relay`) and the tests fake.

use std::net::SocketAddr;

use super::AllocId;

/// Options for a new relay socket, from the Allocate request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayOptions {
    pub ipv6: bool,
    /// EVEN-PORT: the port must be even (RFC 8656 §14.6).
    pub even_port: bool,
    /// EVEN-PORT with the R bit: port + 1 must be free too, and is held for a later Allocate
    /// with the RESERVATION-TOKEN ([`RelayProvider::open_pair`]).
    pub reserve_next: bool,
    /// DONT-FRAGMENT: set DF on what the relay sends (RFC 8656 §14.8).
    pub dont_fragment: bool,
    /// A TCP relay (RFC 6062): a listening socket on the relayed address.
    pub tcp: bool,
}

/// Why a relay socket could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Every port of the range is taken, or the process is out of file descriptors (508).
    Exhausted,
    /// No relay address of that family is configured (440).
    FamilyNotSupported,
}

/// A relay socket as the core sees it: something that sends a datagram to a peer.
pub trait Relay: Send + Sync {
    /// Sends `payload` to `peer`; failures are the IO shell's to count.
    fn send_to(&self, payload: &[u8], peer: SocketAddr);

    /// Sends `payloads` to `peer` in order: all of the first one's length but the last, which
    /// may be shorter (at most [`super::RUN_MAX`] of them and [`super::RUN_MAX_BYTES`] in all). True when they
    /// left in one send (UDP GSO); by default each is sent on its own.
    fn send_run(&self, payloads: &[&[u8]], peer: SocketAddr) -> bool {
        for payload in payloads {
            self.send_to(payload, peer);
        }
        false
    }
}

/// Opens relay sockets; implemented by the IO shell (and by fakes in tests).
pub trait RelayProvider {
    type Relay: Relay;
    /// Binds a relay socket for allocation `id` on the relay address of `options.ipv6`'s
    /// family; returns it and the port.
    fn open(&mut self, id: AllocId, options: RelayOptions) -> Result<(Self::Relay, u16), OpenError>;
    /// EVEN-PORT with the R bit (RFC 8656 §7.2): binds an even port for allocation `id` and
    /// port + 1 beside it. Returns the relay, its port, and the socket of port + 1, bound but
    /// serving nothing until [`Self::adopt`] (dropping it frees the port).
    /// By default there are no pairs: 508.
    fn open_pair(&mut self, id: AllocId, options: RelayOptions) -> Result<(Self::Relay, u16, Self::Relay), OpenError> {
        let _ = (id, options);
        Err(OpenError::Exhausted)
    }
    /// Makes a socket held by [`Self::open_pair`] the relay of allocation `id`; by default it is
    /// used as it is.
    fn adopt(&mut self, id: AllocId, held: Self::Relay, options: RelayOptions) -> Result<Self::Relay, OpenError> {
        let _ = (id, options);
        Ok(held)
    }
}
