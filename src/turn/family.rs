//! Address families of relayed addresses (RFC 8656 §7.2, RFC 6156): the relay address of each
//! family, the family a client gets when it names none, and the Allocate attributes that ask
//! for one family (REQUESTED-ADDRESS-FAMILY) or for both (ADDITIONAL-ADDRESS-FAMILY).

use std::net::{IpAddr, SocketAddr};

use crate::stun::{attr, Message};

use super::ErrorCode;

/// One relay address: the IP relay sockets bind to and the IP told to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAddr {
    /// The IP relay sockets bind to (`relay-ip`).
    pub ip: IpAddr,
    /// The public IP advertised in XOR-RELAYED-ADDRESS instead of `ip` (`external-ip`, NAT).
    pub external: Option<IpAddr>,
}

impl RelayAddr {
    /// The IP clients see.
    pub fn advertised(&self) -> IpAddr {
        self.external.unwrap_or(self.ip)
    }
}

/// The relay addresses: at most one per address family, at least one in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayAddrs {
    pub v4: Option<RelayAddr>,
    pub v6: Option<RelayAddr>,
}

impl RelayAddrs {
    /// One relay address, of `ip`'s family.
    pub fn single(ip: IpAddr, external: Option<IpAddr>) -> Self {
        RelayAddrs::default().with(RelayAddr { ip, external })
    }

    /// These addresses with `relay` as the one of its family.
    pub fn with(mut self, relay: RelayAddr) -> Self {
        match relay.ip {
            IpAddr::V4(_) => self.v4 = Some(relay),
            IpAddr::V6(_) => self.v6 = Some(relay),
        }
        self
    }

    /// The relay address of a family.
    pub fn of(&self, ipv6: bool) -> Option<RelayAddr> {
        if ipv6 {
            self.v6
        } else {
            self.v4
        }
    }

    /// Both, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = RelayAddr> {
        [self.v4, self.v6].into_iter().flatten()
    }
}

/// The family of the relayed address of a client that sends no REQUESTED-ADDRESS-FAMILY
/// (browsers never do). RFC 8656 §7.2 says IPv4; pion gives the family of the address the
/// client came from, so an IPv6-only client gets an IPv6 relay it can use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DefaultFamily {
    /// The family of the client's address (the listener it reached); the other family when
    /// that one has no relay address, so a server with one relay family serves every client.
    #[default]
    Listener,
    /// IPv4, as RFC 8656 §7.2 says: 440 when there is no IPv4 relay address.
    Ipv4,
    /// IPv6: 440 when there is no IPv6 relay address.
    Ipv6,
}

/// The families an Allocate asks for, from REQUESTED-ADDRESS-FAMILY and
/// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §7.2 steps 6, 7 and 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Requested {
    /// REQUESTED-ADDRESS-FAMILY: this family or 440.
    One { ipv6: bool },
    /// Neither attribute: the default family.
    Default,
    /// ADDITIONAL-ADDRESS-FAMILY (IPv6): an IPv4 and an IPv6 relayed address.
    Both,
}

/// Parses the family attributes of an Allocate.
pub(super) fn requested(msg: &Message<'_>) -> Result<Requested, ErrorCode> {
    let one = match msg.attr(attr::REQUESTED_ADDRESS_FAMILY) {
        None => None,
        Some([attr::FAMILY_IPV4, 0, 0, 0]) => Some(false),
        Some([attr::FAMILY_IPV6, 0, 0, 0]) => Some(true),
        // An unknown family is one turnd does not support.
        Some([_, 0, 0, 0]) => return Err(ErrorCode::AddressFamilyNotSupported),
        Some(_) => return Err(ErrorCode::BadRequest),
    };
    let additional = match additional(msg) {
        None => false,
        Some([attr::FAMILY_IPV6, 0, 0, 0]) => true,
        // Only IPv6 may be asked for in addition (IPv4 is the first family): 400 (step 9).
        Some(_) => return Err(ErrorCode::BadRequest),
    };
    match (one, additional) {
        //= https://www.rfc-editor.org/rfc/rfc8656#section-7.2
        // Step 6: both attributes is a 400.
        (Some(_), true) => Err(ErrorCode::BadRequest),
        (Some(ipv6), false) => Ok(Requested::One { ipv6 }),
        (None, true) => Ok(Requested::Both),
        (None, false) => Ok(Requested::Default),
    }
}

/// ADDITIONAL-ADDRESS-FAMILY, under RFC 8656's code point or the draft's that coturn's
/// `turnutils_uclient -Z` sends (0x8032).
pub(super) fn additional<'m>(msg: &Message<'m>) -> Option<&'m [u8]> {
    msg.attr(attr::ADDITIONAL_ADDRESS_FAMILY).or_else(|| msg.attr(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT))
}

/// The family of a single-family allocation for `client`, or 440.
pub(super) fn choose(
    relays: &RelayAddrs,
    requested: Option<bool>,
    default: DefaultFamily,
    client: SocketAddr,
) -> Result<bool, ErrorCode> {
    let ipv6 = match (requested, default) {
        (Some(ipv6), _) => ipv6,
        (None, DefaultFamily::Ipv4) => false,
        (None, DefaultFamily::Ipv6) => true,
        (None, DefaultFamily::Listener) => {
            let ipv6 = super::canonical_addr(client).is_ipv6();
            if relays.of(ipv6).is_some() {
                ipv6
            } else {
                !ipv6
            }
        }
    };
    match relays.of(ipv6) {
        Some(_) => Ok(ipv6),
        None => Err(ErrorCode::AddressFamilyNotSupported),
    }
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12): the family a dual allocation could not get, then a
/// class and number as in ERROR-CODE, then the reason phrase. Returns the value's length.
pub(super) fn address_error_code(ipv6: bool, code: ErrorCode, out: &mut [u8; 64]) -> usize {
    let family = if ipv6 { attr::FAMILY_IPV6 } else { attr::FAMILY_IPV4 };
    let n = code.code();
    let reason = code.reason().as_bytes();
    let len = (4 + reason.len()).min(out.len());
    out[..4].copy_from_slice(&[family, 0, (n / 100) as u8, (n % 100) as u8]);
    out[4..len].copy_from_slice(&reason[..len - 4]);
    len
}
