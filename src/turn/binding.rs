//! STUN Binding (RFC 8489 §7.3.1) and RFC 5780 NAT behaviour discovery, sans-IO: the
//! XOR-MAPPED-ADDRESS answer and, when turnd has an alternate address, RESPONSE-ORIGIN,
//! OTHER-ADDRESS and CHANGE-REQUEST (the answer leaves from another of the four RFC 5780
//! sockets, which the IO shell is told with [`Outcome::ReplyFrom`]). Part of `turn`.

use std::net::SocketAddr;

use super::{ErrorCode, FiveTuple, Outcome, Relay, Server, Transport};
use crate::stun::{attr, Message};

/// CHANGE-REQUEST flags (RFC 5780 §7.2): A, "change IP", and B, "change port".
pub const CHANGE_IP: u32 = 0x04;
pub const CHANGE_PORT: u32 = 0x02;

/// turnd's two RFC 5780 addresses (§4.1): each IP with each port is a UDP socket, four in all.
/// Both are of one family, with different IPs and different ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatAddresses {
    pub primary: SocketAddr,
    pub alternate: SocketAddr,
}

impl NatAddresses {
    /// The four sockets: the primary address, primary IP with alternate port, alternate IP
    /// with primary port, the alternate address.
    pub fn sockets(&self) -> [SocketAddr; 4] {
        let (p, a) = (self.primary, self.alternate);
        [p, SocketAddr::new(p.ip(), a.port()), SocketAddr::new(a.ip(), p.port()), a]
    }

    /// The socket an answer to a request that reached `local` leaves from, with the IP and/or
    /// the port changed (RFC 5780 §6.1); `None` when `local` is none of the four.
    pub fn origin(&self, local: SocketAddr, change_ip: bool, change_port: bool) -> Option<SocketAddr> {
        let (p, a) = (self.primary, self.alternate);
        let other_ip = match local.ip() {
            ip if ip == p.ip() => a.ip(),
            ip if ip == a.ip() => p.ip(),
            _ => return None,
        };
        let other_port = match local.port() {
            port if port == p.port() => a.port(),
            port if port == a.port() => p.port(),
            _ => return None,
        };
        let ip = if change_ip { other_ip } else { local.ip() };
        let port = if change_port { other_port } else { local.port() };
        Some(SocketAddr::new(ip, port))
    }

    /// OTHER-ADDRESS for a request that reached `local` (RFC 5780 §7.4): both changed.
    pub fn other(&self, local: SocketAddr) -> Option<SocketAddr> {
        self.origin(local, true, true)
    }
}

/// The size of a Binding success answer to `msg` from `tuple`: XOR-MAPPED-ADDRESS, with
/// `rfc5780` RESPONSE-ORIGIN and OTHER-ADDRESS too, and FINGERPRINT when the request has one.
/// The UDP reflection budget never cuts a Binding answer below this (it has nothing to drop).
pub(super) fn answer_len(tuple: &FiveTuple, msg: &Message<'_>, rfc5780: bool) -> usize {
    let address = 4 + if tuple.client.is_ipv4() { 8 } else { 20 };
    let addresses = if rfc5780 { 3 } else { 1 };
    let fingerprint = if msg.has(attr::FINGERPRINT) { 8 } else { 0 };
    20 + addresses * address + fingerprint
}

impl<R: Relay> Server<R> {
    /// Sets turnd's RFC 5780 addresses (`server.rfc5780`, resolved by the IO shell once its
    /// sockets are bound); without them RFC 5780 is off.
    pub fn with_rfc5780(mut self, addresses: NatAddresses) -> Self {
        self.nat = Some(addresses);
        self
    }

    /// The RFC 5780 addresses when `tuple` reached one of the four sockets over UDP: only those
    /// answers carry RESPONSE-ORIGIN and OTHER-ADDRESS and honour CHANGE-REQUEST.
    pub(super) fn nat_for(&self, tuple: &FiveTuple) -> Option<&NatAddresses> {
        let nat = self.nat.as_ref()?;
        (tuple.transport == Transport::Udp && nat.sockets().contains(&tuple.server)).then_some(nat)
    }

    //= https://www.rfc-editor.org/rfc/rfc8489#section-7.3.1
    //= https://www.rfc-editor.org/rfc/rfc5780#section-6.1
    /// A Binding request: XOR-MAPPED-ADDRESS, plus RESPONSE-ORIGIN and OTHER-ADDRESS on an
    /// RFC 5780 socket. CHANGE-REQUEST with a flag set is answered from the other IP and/or
    /// port; without RFC 5780 it is an attribute turnd does not support (420, as coturn), and
    /// over TCP/TLS a 400 (a stream cannot answer from another address). CHANGE-REQUEST
    /// without flags is a plain Binding (some RFC 3489 clients send it). RESPONSE-PORT
    /// (§7.5) is not supported: 420.
    pub(super) fn on_binding(&self, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8]) -> Outcome {
        if msg.has(attr::RESPONSE_PORT) {
            return self.unknown_attribute(msg, out, attr::RESPONSE_PORT);
        }
        let flags = match msg.attr(attr::CHANGE_REQUEST).map(attr::decode_u32) {
            None => 0,
            Some(Ok(flags)) => flags,
            Some(Err(_)) => return self.error(msg, out, ErrorCode::BadRequest, None),
        };
        let (change_ip, change_port) = (flags & CHANGE_IP != 0, flags & CHANGE_PORT != 0);
        let changes = change_ip || change_port;
        let nat = self.nat_for(tuple);
        if changes && nat.is_none() {
            if self.nat.is_some() && tuple.transport != Transport::Udp {
                return self.error(msg, out, ErrorCode::BadRequest, None);
            }
            return self.unknown_attribute(msg, out, attr::CHANGE_REQUEST);
        }
        // `nat_for` found `tuple.server` among the four sockets, so both are `Some`.
        let addresses =
            nat.and_then(|n| Some((n.origin(tuple.server, change_ip, change_port)?, n.other(tuple.server)?)));
        let outcome = self.respond(msg, out, None, |w| {
            w.xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
            if let Some((origin, other)) = addresses {
                w.address(attr::RESPONSE_ORIGIN, origin).address(attr::OTHER_ADDRESS, other);
            }
        });
        match (outcome, addresses) {
            (Outcome::Reply(len), Some((from, _))) if from != tuple.server => Outcome::ReplyFrom { len, from },
            (outcome, _) => outcome,
        }
    }

    /// 420 naming one comprehension-required attribute turnd parses but does not support here.
    fn unknown_attribute(&self, msg: &Message<'_>, out: &mut [u8], attr_type: u16) -> Outcome {
        self.respond_error(msg, out, ErrorCode::UnknownAttribute, None, |w| {
            w.unknown_attributes(&[attr_type]);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> NatAddresses {
        NatAddresses { primary: "192.0.2.1:3478".parse().unwrap(), alternate: "192.0.2.2:3479".parse().unwrap() }
    }

    #[test]
    fn origin_changes_what_the_flags_say_from_each_of_the_four_sockets() {
        let nat = addresses();
        let [pp, pa, ap, aa] = nat.sockets();
        assert_eq!(pa, "192.0.2.1:3479".parse().unwrap());
        assert_eq!(ap, "192.0.2.2:3478".parse().unwrap());
        assert_eq!(nat.origin(pp, false, false), Some(pp));
        assert_eq!(nat.origin(pp, true, false), Some(ap));
        assert_eq!(nat.origin(pp, false, true), Some(pa));
        assert_eq!(nat.origin(pp, true, true), Some(aa));
        assert_eq!(nat.origin(aa, true, true), Some(pp));
        assert_eq!(nat.origin(pa, true, false), Some(aa));
        assert_eq!(nat.origin(ap, false, true), Some(aa));
        assert_eq!([pp, pa, ap, aa].map(|s| nat.other(s)), [Some(aa), Some(ap), Some(pa), Some(pp)]);
        // Another address of the host (or another port of one of the IPs) is not RFC 5780's.
        assert_eq!(nat.origin("192.0.2.1:5000".parse().unwrap(), false, false), None);
        assert_eq!(nat.origin("192.0.2.3:3478".parse().unwrap(), true, true), None);
    }
}
