//! TURN requests: Allocate, Refresh, CreatePermission, ChannelBind (RFC 8656 §7, §9, §11);
//! mobility tickets and moves are in `mobility.rs`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::stun::{attr, valid_channel, Message};

use super::counts::{AllocateRefusal, Ended, PeerRequest};
use super::family::{self, Requested};
use super::table::{Allocation, Channel, InsertError, QuotaError, SecondRelay, MAX_CHANNELS};
use super::{
    AllocId, Authenticated, ErrorCode, FiveTuple, Now, OpenError, Outcome, Relay, RelayOptions, RelayProvider, Server,
    CHANNEL_LIFETIME, PERMISSION_LIFETIME,
};

/// REQUESTED-TRANSPORT values for UDP (RFC 8656 §14.7) and TCP (RFC 6062 §6.1).
const UDP: u8 = 17;
const TCP: u8 = 6;
/// Most XOR-PEER-ADDRESS attributes one CreatePermission may carry.
const MAX_PEERS_PER_REQUEST: usize = 32;

impl<R: Relay> Server<R> {
    //= https://www.rfc-editor.org/rfc/rfc8656#section-7.2
    pub(super) fn on_allocate<P>(
        &self,
        now: Now,
        tuple: &FiveTuple,
        msg: &Message<'_>,
        relays: &mut P,
        out: &mut [u8],
    ) -> Outcome
    where
        P: RelayProvider<Relay = R>,
    {
        let auth = match self.authenticate(now, tuple, msg, out) {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        let key = Some(&auth.key);
        // A live allocation on this 5-tuple: a retransmission gets the same answer, anything
        // else 437. An expired one that the sweep has not reached yet is ended here.
        let existing = self.table.with(tuple, |a| (a.expires > now.mono, a.txid, Granted::of(a), a.expires));
        match existing {
            Some((true, txid, granted, expires)) if txid == *msg.transaction_id() => {
                let lifetime = expires.saturating_duration_since(now.mono);
                return self.allocate_success(tuple, msg, out, &auth, &granted, lifetime);
            }
            Some((true, ..)) => return self.error(msg, out, ErrorCode::AllocationMismatch, key),
            Some((false, ..)) => drop(self.table.remove(tuple, Ended::Expired)),
            None => {}
        }
        let (options, requested) = match self.allocate_options(now, tuple, msg) {
            Ok(options) => options,
            Err(code) => return self.error(msg, out, code, key),
        };
        let ticket = match self.allocation_ticket(tuple, msg) {
            Ok(ticket) => ticket,
            Err(code) => return self.error(msg, out, code, key),
        };
        let live = self.live();
        if self.is_draining() || live.config.redirect_all {
            // Shutting down (existing allocations keep relaying) or a redirecting front: new
            // allocations go to an alternate server, or get 508 when none fits.
            if self.is_draining() {
                self.requests.allocate_refusal(AllocateRefusal::Draining);
            }
            return self.redirect(tuple, msg, out, &auth, &live.config.alternates);
        }
        let lifetime = match msg.u32_attr(attr::LIFETIME) {
            Some(Ok(secs)) => {
                Duration::from_secs(secs.into()).min(live.config.max_lifetime).max(live.config.default_lifetime)
            }
            Some(Err(_)) => return self.error(msg, out, ErrorCode::BadRequest, key),
            None => live.config.default_lifetime,
        };
        match self.table.take_quota(&auth.username, live.config.user_quota, live.config.total_quota) {
            Ok(()) => {}
            Err(QuotaError::User) => {
                self.requests.allocate_refusal(AllocateRefusal::UserQuota);
                return self.error(msg, out, ErrorCode::AllocationQuotaReached, key);
            }
            Err(QuotaError::Total) => {
                self.requests.allocate_refusal(AllocateRefusal::TotalQuota);
                return self.error(msg, out, ErrorCode::InsufficientCapacity, key);
            }
        }
        let id = self.table.reserve_id(tuple);
        let opened = match self.open_relays(now, id, msg, options, requested, relays) {
            Ok(opened) => opened,
            Err(e) => {
                self.table.release_quota(&auth.username);
                let code = match e {
                    OpenError::Exhausted => {
                        self.requests.allocate_refusal(AllocateRefusal::PortsExhausted);
                        ErrorCode::InsufficientCapacity
                    }
                    OpenError::FamilyNotSupported => ErrorCode::AddressFamilyNotSupported,
                };
                return self.error(msg, out, code, key);
            }
        };
        let alloc = Allocation {
            id,
            tuple: *tuple,
            relayed: opened.relayed,
            second: opened.second,
            address_error: opened.address_error,
            reservation: opened.reservation,
            username: auth.username.as_ref().into(),
            key: auth.key,
            expires: now.mono + lifetime,
            txid: *msg.transaction_id(),
            tcp: options.tcp,
            permissions: Vec::new(),
            channels: Vec::new(),
            ticket,
            moved_by: None,
            to_peer: Default::default(),
            to_client: Default::default(),
            icmp: Default::default(),
            relay: opened.relay,
        };
        let granted = Granted::of(&alloc);
        if let Err(InsertError::Exists) = self.table.insert(alloc) {
            return self.error(msg, out, ErrorCode::AllocationMismatch, key);
        }
        tracing::debug!(client = %tuple.client, relayed = %granted.relayed, "allocation created");
        self.allocate_success(tuple, msg, out, &auth, &granted, lifetime)
    }

    /// Opens the relay sockets of a new allocation: the one a RESERVATION-TOKEN holds, a pair
    /// for EVEN-PORT with the R bit (the second held under a new token), one of each family
    /// for ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §7.2 step 9: one family failing is reported
    /// in ADDRESS-ERROR-CODE; both failing is a 508), or one.
    fn open_relays<P>(
        &self,
        now: Now,
        id: AllocId,
        msg: &Message<'_>,
        options: RelayOptions,
        requested: Requested,
        relays: &mut P,
    ) -> Result<Opened<R>, OpenError>
    where
        P: RelayProvider<Relay = R>,
    {
        let advertised = |ipv6: bool, port: u16| -> Result<SocketAddr, OpenError> {
            let relay = self.config.relays.of(ipv6).ok_or(OpenError::FamilyNotSupported)?;
            Ok(SocketAddr::new(relay.advertised(), port))
        };
        let one = |relay: R, relayed: SocketAddr| Opened {
            relay,
            relayed,
            second: None,
            address_error: None,
            reservation: None,
        };
        if let Some(token) = msg.attr(attr::RESERVATION_TOKEN) {
            // Checked valid by `allocate_options`; it may have expired since (508).
            let (held, port, ipv6) = self.reservations.take(token, now.mono).ok_or(OpenError::Exhausted)?;
            let relay = relays.adopt(id, held, RelayOptions { ipv6, ..options })?;
            return Ok(one(relay, advertised(ipv6, port)?));
        }
        if options.reserve_next {
            let (relay, port, held) = relays.open_pair(id, options)?;
            let relayed = advertised(options.ipv6, port)?;
            let token = self
                .reservations
                .insert(held, port.checked_add(1).ok_or(OpenError::Exhausted)?, options.ipv6, now.mono)
                .map_err(|_| OpenError::Exhausted)?;
            return Ok(Opened { reservation: Some(token), ..one(relay, relayed) });
        }
        if requested != Requested::Both {
            let (relay, port) = relays.open(id, options)?;
            return Ok(one(relay, advertised(options.ipv6, port)?));
        }
        let mut open = |ipv6: bool| -> Result<(R, SocketAddr), OpenError> {
            advertised(ipv6, 0)?;
            let (relay, port) = relays.open(id, RelayOptions { ipv6, ..options })?;
            Ok((relay, advertised(ipv6, port)?))
        };
        let code = |e: OpenError| match e {
            OpenError::Exhausted => ErrorCode::InsufficientCapacity,
            OpenError::FamilyNotSupported => ErrorCode::AddressFamilyNotSupported,
        };
        match (open(false), open(true)) {
            (Ok((relay, relayed)), Ok((relay6, relayed6))) => {
                Ok(Opened { second: Some(SecondRelay { relayed: relayed6, relay: relay6 }), ..one(relay, relayed) })
            }
            (Ok((relay, relayed)), Err(e)) => {
                Ok(Opened { address_error: Some((true, code(e))), ..one(relay, relayed) })
            }
            (Err(e), Ok((relay, relayed))) => {
                Ok(Opened { address_error: Some((false, code(e))), ..one(relay, relayed) })
            }
            (Err(_), Err(_)) => Err(OpenError::Exhausted),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8489#section-10
    /// 300 Try Alternate naming the next alternate of the client's address family (RFC 8489
    /// §14.15 wants the family of the request's source), with MESSAGE-INTEGRITY as the request
    /// was authenticated; 508 when there is none.
    fn redirect(
        &self,
        tuple: &FiveTuple,
        msg: &Message<'_>,
        out: &mut [u8],
        auth: &Authenticated<'_>,
        alternates: &[SocketAddr],
    ) -> Outcome {
        let ipv6 = super::canonical_addr(tuple.client).is_ipv6();
        let fitting = alternates.iter().filter(|a| a.is_ipv6() == ipv6);
        let count = fitting.clone().count();
        if count == 0 {
            return self.error(msg, out, ErrorCode::InsufficientCapacity, Some(&auth.key));
        }
        let turn = self.next_alternate.fetch_add(1, Ordering::Relaxed) % count;
        let Some(&alternate) = fitting.clone().nth(turn) else {
            return self.error(msg, out, ErrorCode::InsufficientCapacity, Some(&auth.key));
        };
        self.respond_error(msg, out, ErrorCode::TryAlternate, Some(&auth.key), |w| {
            w.address(attr::ALTERNATE_SERVER, alternate);
        })
    }

    /// Checks the Allocate attributes that shape the relay (RFC 8656 §7.2 steps 3-9) and picks
    /// the family of the first relayed address.
    fn allocate_options(
        &self,
        now: Now,
        tuple: &FiveTuple,
        msg: &Message<'_>,
    ) -> Result<(RelayOptions, Requested), ErrorCode> {
        let tcp = match msg.attr(attr::REQUESTED_TRANSPORT) {
            Some([UDP, ..]) => false,
            //= https://www.rfc-editor.org/rfc/rfc6062#section-5.1
            // A TCP relay needs a stream control connection and none of the UDP-only attributes.
            Some([TCP, ..])
                if tuple.transport == super::Transport::Udp
                    || msg.has(attr::DONT_FRAGMENT)
                    || msg.has(attr::EVEN_PORT)
                    || msg.has(attr::RESERVATION_TOKEN) =>
            {
                return Err(ErrorCode::BadRequest)
            }
            Some([TCP, ..]) => true,
            Some([_, _, _, _]) => return Err(ErrorCode::UnsupportedTransport),
            _ => return Err(ErrorCode::BadRequest),
        };
        let dont_fragment = msg.has(attr::DONT_FRAGMENT);
        //= https://www.rfc-editor.org/rfc/rfc8656#section-7.2
        // Step 5: a RESERVATION-TOKEN goes alone (no EVEN-PORT, no family attribute: 400) and
        // must name a live reservation (508); it decides the family and the port.
        if let Some(token) = msg.attr(attr::RESERVATION_TOKEN) {
            if msg.has(attr::EVEN_PORT)
                || msg.has(attr::REQUESTED_ADDRESS_FAMILY)
                || family::additional(msg).is_some()
                || token.len() != 8
            {
                return Err(ErrorCode::BadRequest);
            }
            if !self.reservations.is_valid(token, now.mono) {
                return Err(ErrorCode::InsufficientCapacity);
            }
            let options = RelayOptions { dont_fragment, ..Default::default() };
            return Ok((options, Requested::Default));
        }
        // Steps 6, 7 and 9.
        let requested = family::requested(msg)?;
        let default = self.live().config.default_family;
        let ipv6 = match requested {
            Requested::One { ipv6 } => family::choose(&self.config.relays, Some(ipv6), default, tuple.client)?,
            Requested::Default => family::choose(&self.config.relays, None, default, tuple.client)?,
            // Step 9: IPv4 first, IPv6 second; either may fail alone.
            Requested::Both => false,
        };
        if tcp && requested == Requested::Both {
            // RFC 6062 relays are single: one listening socket.
            return Err(ErrorCode::BadRequest);
        }
        // Step 8: EVEN-PORT; its R bit asks for port + 1 to be held, not with a dual allocation.
        let (even_port, reserve_next) = match msg.attr(attr::EVEN_PORT) {
            None => (false, false),
            Some([flags]) if flags & 0x80 != 0 && requested == Requested::Both => return Err(ErrorCode::BadRequest),
            Some([flags]) => (true, flags & 0x80 != 0),
            Some(_) => return Err(ErrorCode::BadRequest),
        };
        Ok((RelayOptions { ipv6, even_port, reserve_next, dont_fragment, tcp }, requested))
    }

    fn allocate_success(
        &self,
        tuple: &FiveTuple,
        msg: &Message<'_>,
        out: &mut [u8],
        auth: &Authenticated<'_>,
        granted: &Granted,
        lifetime: Duration,
    ) -> Outcome {
        let ticket = self.table.with(tuple, |a| a.ticket).flatten();
        let mut error = [0u8; 64];
        let error_len =
            granted.address_error.map_or(0, |(ipv6, code)| family::address_error_code(ipv6, code, &mut error));
        self.respond(msg, out, Some(&auth.key), |w| {
            w.xor_address(attr::XOR_RELAYED_ADDRESS, granted.relayed);
            if let Some(second) = granted.second {
                w.xor_address(attr::XOR_RELAYED_ADDRESS, second);
            }
            if error_len > 0 {
                w.attr(attr::ADDRESS_ERROR_CODE, &error[..error_len]);
            }
            if let Some(token) = granted.reservation {
                w.attr(attr::RESERVATION_TOKEN, &token);
            }
            w.u32_attr(attr::LIFETIME, secs(lifetime)).xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
            if let Some(ticket) = ticket {
                w.attr(attr::MOBILITY_TICKET, ticket.as_bytes());
            }
        })
    }

    //= https://www.rfc-editor.org/rfc/rfc8656#section-7.3
    pub(super) fn on_refresh(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8]) -> Outcome {
        let auth = match self.authenticate(now, tuple, msg, out) {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        let key = Some(&auth.key);
        let requested = match msg.u32_attr(attr::LIFETIME) {
            Some(Ok(secs)) => Some(Duration::from_secs(secs.into())),
            Some(Err(_)) => return self.error(msg, out, ErrorCode::BadRequest, key),
            None => None,
        };
        // A family the allocation has no relayed address of is a 443 (RFC 8656 §7.3); a value
        // that is no family at all a 440, as in an Allocate.
        let family = match refresh_family(msg) {
            Ok(family) => family,
            Err(code) => return self.error(msg, out, code, key),
        };
        //= https://www.rfc-editor.org/rfc/rfc8656#section-7.3
        // The desired lifetime: the requested one within the maximum, but never below the
        // default; zero deletes.
        let live = self.live();
        let lifetime = match requested {
            Some(Duration::ZERO) => Duration::ZERO,
            Some(d) => d.min(live.config.max_lifetime).max(live.config.default_lifetime),
            None => live.config.default_lifetime,
        };
        if msg.has(attr::MOBILITY_TICKET) {
            return self.refresh_moving(now, tuple, msg, out, &auth, lifetime);
        }
        let checked = self.table.with_mut(tuple, |a| {
            a.check_owner(&auth.username, now.mono)?;
            if family.is_some_and(|ipv6| !a.has_family(ipv6)) {
                return Err(ErrorCode::PeerAddressFamilyMismatch);
            }
            if !lifetime.is_zero() {
                a.expires = now.mono + lifetime;
            }
            Ok(())
        });
        match checked {
            None => return self.error(msg, out, ErrorCode::AllocationMismatch, key),
            Some(Err(code)) => return self.error(msg, out, code, key),
            Some(Ok(())) => {}
        }
        if lifetime.is_zero() {
            // Dropping the allocation closes its relay socket and frees the port at once.
            drop(self.table.remove(tuple, Ended::Deleted));
            tracing::debug!(client = %tuple.client, "allocation deleted");
        }
        self.respond(msg, out, key, |w| {
            w.u32_attr(attr::LIFETIME, secs(lifetime));
        })
    }

    //= https://www.rfc-editor.org/rfc/rfc8656#section-9.2
    pub(super) fn on_create_permission(
        &self,
        now: Now,
        tuple: &FiveTuple,
        msg: &Message<'_>,
        out: &mut [u8],
    ) -> Outcome {
        let auth = match self.authenticate(now, tuple, msg, out) {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        let key = Some(&auth.key);
        let mut peers = [None::<IpAddr>; MAX_PEERS_PER_REQUEST];
        let mut count = 0;
        for (t, value) in msg.attrs() {
            if t != attr::XOR_PEER_ADDRESS {
                continue;
            }
            let peer = match attr::decode_xor_address(value, msg.transaction_id()) {
                Ok(peer) => peer,
                Err(_) => return self.error(msg, out, ErrorCode::BadRequest, key),
            };
            let peer = match self.check_peer(peer, PeerRequest::CreatePermission) {
                Ok(peer) => peer,
                Err(code) => return self.error(msg, out, code, key),
            };
            if count == MAX_PEERS_PER_REQUEST {
                return self.error(msg, out, ErrorCode::BadRequest, key);
            }
            peers[count] = Some(peer.ip());
            count += 1;
        }
        if count == 0 {
            return self.error(msg, out, ErrorCode::BadRequest, key);
        }
        let expires = now.mono + PERMISSION_LIFETIME;
        let installed = self.table.with_mut(tuple, |a| {
            a.check_owner(&auth.username, now.mono)?;
            //= https://www.rfc-editor.org/rfc/rfc8656#section-9.1
            // A peer of a family the allocation has no relayed address of: 443.
            if peers.iter().flatten().any(|ip| !a.has_family(ip.is_ipv6())) {
                return Err(ErrorCode::PeerAddressFamilyMismatch);
            }
            // All or nothing: refuse before installing any when the allocation is full.
            // Each new IP counts once, however often the request names it.
            let new = peers
                .iter()
                .enumerate()
                .filter_map(|(i, ip)| ip.filter(|ip| !peers[..i].contains(&Some(*ip))))
                .filter(|ip| !a.permissions.iter().any(|p| p.ip == *ip))
                .count();
            if a.permissions.len() + new > super::table::MAX_PERMISSIONS {
                return Err(ErrorCode::InsufficientCapacity);
            }
            for ip in peers.iter().flatten() {
                a.permit(*ip, expires);
            }
            Ok(())
        });
        match installed {
            None => self.error(msg, out, ErrorCode::AllocationMismatch, key),
            Some(Err(code)) => self.error(msg, out, code, key),
            Some(Ok(())) => self.respond(msg, out, key, |_| {}),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8656#section-11.2
    pub(super) fn on_channel_bind(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8]) -> Outcome {
        let auth = match self.authenticate(now, tuple, msg, out) {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        let key = Some(&auth.key);
        let number = match msg.attr(attr::CHANNEL_NUMBER) {
            Some(&[hi, lo, _, _]) if valid_channel(u16::from_be_bytes([hi, lo])) => u16::from_be_bytes([hi, lo]),
            _ => return self.error(msg, out, ErrorCode::BadRequest, key),
        };
        let peer = match self.requested_peer(msg, PeerRequest::ChannelBind) {
            Ok(peer) => peer,
            Err(code) => return self.error(msg, out, code, key),
        };
        let bound = self.table.with_mut(tuple, |a| {
            a.check_owner(&auth.username, now.mono)?;
            if a.tcp {
                // RFC 6062 §5: TCP allocations have no channels.
                return Err(ErrorCode::BadRequest);
            }
            //= https://www.rfc-editor.org/rfc/rfc8656#section-11.2
            if !a.has_family(peer.is_ipv6()) {
                return Err(ErrorCode::PeerAddressFamilyMismatch);
            }
            bind_channel(a, number, peer, now)
        });
        match bound {
            None => self.error(msg, out, ErrorCode::AllocationMismatch, key),
            Some(Err(code)) => self.error(msg, out, code, key),
            Some(Ok(())) => self.respond(msg, out, key, |_| {}),
        }
    }

    /// The one XOR-PEER-ADDRESS of a ChannelBind or Connect: missing or malformed is a 400, then
    /// the checks of [`Self::check_peer`].
    pub(super) fn requested_peer(&self, msg: &Message<'_>, request: PeerRequest) -> Result<SocketAddr, ErrorCode> {
        match msg.xor_address(attr::XOR_PEER_ADDRESS) {
            Some(Ok(peer)) => self.check_peer(peer, request),
            _ => Err(ErrorCode::BadRequest),
        }
    }

    /// Peer checks shared by CreatePermission, ChannelBind and Connect: family (443 when turnd
    /// has no relay address of it; the allocation's own families are checked under its lock)
    /// and policy (403, counted for `request`). turnd's own relayed addresses are always
    /// allowed (data to them is delivered in-process), for Connect only those of TCP
    /// allocations (it dials the address: a UDP allocation's port may be another service's over
    /// TCP). Returns the canonical form of the peer (IPv4-mapped IPv6 becomes IPv4).
    fn check_peer(&self, peer: SocketAddr, request: PeerRequest) -> Result<SocketAddr, ErrorCode> {
        let canonical = super::canonical_addr(peer);
        if self.config.relays.of(canonical.is_ipv6()).is_none() {
            return Err(ErrorCode::PeerAddressFamilyMismatch);
        }
        if self.is_own_relayed_address(canonical, request == PeerRequest::Connect) {
            return Ok(canonical);
        }
        match self.live().policy.check(peer.ip()) {
            Ok(()) => Ok(canonical),
            Err(refusal) => {
                tracing::debug!(%peer, reason = refusal.reason(), "peer refused");
                self.requests.peer_refusal(request, refusal.into());
                Err(ErrorCode::Forbidden)
            }
        }
    }
}

/// A Refresh's REQUESTED-ADDRESS-FAMILY: `Some(true)` for IPv6, `Some(false)` for IPv4, `None`
/// when absent; 400 when malformed, 440 for a value that names no family.
pub(super) fn refresh_family(msg: &Message<'_>) -> Result<Option<bool>, ErrorCode> {
    match msg.attr(attr::REQUESTED_ADDRESS_FAMILY) {
        None => Ok(None),
        Some([attr::FAMILY_IPV4, 0, 0, 0]) => Ok(Some(false)),
        Some([attr::FAMILY_IPV6, 0, 0, 0]) => Ok(Some(true)),
        Some([_, 0, 0, 0]) => Err(ErrorCode::AddressFamilyNotSupported),
        Some(_) => Err(ErrorCode::BadRequest),
    }
}

/// Binds or refreshes `number` → `peer` (RFC 8656 §11.2): a channel bound to another peer, or
/// a peer bound to another channel, is a 400; binding also refreshes the peer's permission.
fn bind_channel<R>(a: &mut Allocation<R>, number: u16, peer: SocketAddr, now: Now) -> Result<(), ErrorCode> {
    if a.channels.iter().any(|c| (c.number == number) != (c.peer == peer)) {
        return Err(ErrorCode::BadRequest);
    }
    // Every packet of the allocation scans its channels: their number is bounded. Checked
    // before the permission is touched, so a refused request changes nothing.
    let bound = a.channels.iter().position(|c| c.number == number);
    if bound.is_none() && a.channels.len() >= MAX_CHANNELS {
        return Err(ErrorCode::InsufficientCapacity);
    }
    if !a.permit(peer.ip(), now.mono + PERMISSION_LIFETIME) {
        return Err(ErrorCode::InsufficientCapacity);
    }
    let expires = now.mono + CHANNEL_LIFETIME;
    match bound {
        Some(i) => a.channels[i].expires = expires,
        None => a.channels.push(Channel { number, peer, expires }),
    }
    Ok(())
}

/// What a successful Allocate gets, kept in the allocation to answer retransmissions alike.
#[derive(Clone, Copy)]
struct Granted {
    relayed: SocketAddr,
    second: Option<SocketAddr>,
    address_error: Option<(bool, ErrorCode)>,
    reservation: Option<[u8; 8]>,
}

impl Granted {
    fn of<R>(a: &Allocation<R>) -> Self {
        Granted {
            relayed: a.relayed,
            second: a.second.as_ref().map(|s| s.relayed),
            address_error: a.address_error,
            reservation: a.reservation,
        }
    }
}

/// The relay sockets opened for a new allocation and what the answer reports about them.
struct Opened<R> {
    relay: R,
    relayed: SocketAddr,
    second: Option<SecondRelay<R>>,
    address_error: Option<(bool, ErrorCode)>,
    reservation: Option<[u8; 8]>,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
