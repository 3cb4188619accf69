//! The data paths: Send indications and ChannelData from clients to peers, datagrams from peers
//! back to clients (ChannelData or Data indication), ICMP errors about what the relay sent
//! (Data indications with ICMP), and in-process delivery between two allocations of this server
//! (RFC 8656 §10, §11, §12). The per-packet code takes one read lock, allocates nothing and
//! copies no payload on the peer → client path.

use std::cell::Cell;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;

use crate::stun::{
    attr, data_indication_prefix, ChannelData, Class, Message, MessageType, MessageWriter, Method, CHANNEL_DATA_HEADER,
    DATA_INDICATION_PREFIX_MAX,
};

use super::{canonical_addr, AllocId, Allocation, Discard, FiveTuple, Now, Outcome, Relay, Server};

/// Bytes the IO shell keeps free in front of a peer datagram so the Data indication (or
/// ChannelData) header is written there without moving the payload.
pub const DATA_INDICATION_HEADROOM: usize = DATA_INDICATION_PREFIX_MAX;
/// Bytes the IO shell keeps free after a peer datagram for the padding to 4 bytes.
pub const PEER_TAILROOM: usize = 3;

/// ICMP errors relayed to one allocation's client a second (bursts of as many): enough for a
/// client to learn that a peer is gone or a path's MTU, too few for a peer (or anyone who can
/// make the network answer the relay with errors) to flood the client through turnd.
pub const ICMP_PER_SECOND: u32 = 5;

/// An ICMP error about a datagram a relay socket sent, as the IO shell read it from the
/// socket's error queue: the ICMP (or ICMPv6) type and code, and the header's info (the
/// next-hop MTU for "fragmentation needed" and "packet too big").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIcmp {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub info: u32,
}

impl PeerIcmp {
    /// Whether RFC 8656 §11 relays this error: ICMPv4 type 3 (destination unreachable) or 11
    /// (time exceeded); ICMPv6 type 1 (destination unreachable), 2 (packet too big) or 3 (time
    /// exceeded).
    pub fn is_relayed(self) -> bool {
        matches!((self.v6, self.icmp_type), (false, 3 | 11) | (true, 1..=3))
    }

    /// The ICMP attribute (RFC 8656 §18.13): Error Data is the next-hop MTU for ICMPv4 type 3
    /// code 4 and ICMPv6 type 2, and zero for anything else.
    pub fn attribute(self) -> attr::Icmp {
        let mtu = matches!((self.v6, self.icmp_type, self.code), (false, 3, 4) | (true, 2, _));
        attr::Icmp { icmp_type: self.icmp_type, code: self.code, error_data: if mtu { self.info } else { 0 } }
    }
}

/// Where a client → peer payload goes once the allocation has been checked.
enum Route {
    /// Sent out of the relay socket.
    Sent,
    /// To allocation `id` of this server, delivered in-process from this relayed address.
    Internal { from: SocketAddr, id: AllocId },
}

/// What the one pass over a client's allocation did with a ChannelData payload.
enum ChannelPass {
    Routed(Route),
    /// The channel's peer is at one of this server's own IPs: the pass sent nothing, and the
    /// payload takes [`Server::relay_from_client`], which checks that peer first.
    OwnIp(SocketAddr),
}

impl<R: Relay> Server<R> {
    //= https://www.rfc-editor.org/rfc/rfc8656#section-10.2
    pub(super) fn on_send(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8]) -> Outcome {
        let (Some(Ok(peer)), Some(payload)) = (msg.xor_address(attr::XOR_PEER_ADDRESS), msg.attr(attr::DATA)) else {
            return Outcome::Dropped(Discard::Malformed);
        };
        //= https://www.rfc-editor.org/rfc/rfc8489#section-6.3.2
        // An indication with an unknown comprehension-required attribute is discarded: it may
        // ask something of the relay that turnd would not do. Counted with the malformed.
        if !msg.unknown().is_empty() {
            return Outcome::Dropped(Discard::Malformed);
        }
        self.relay_from_client(now, tuple, canonical_addr(peer), payload, out)
    }

    //= https://www.rfc-editor.org/rfc/rfc8656#section-12.6
    pub(super) fn on_channel_data(&self, now: Now, tuple: &FiveTuple, packet: &[u8], out: &mut [u8]) -> Outcome {
        let Ok(cd) = ChannelData::parse(packet) else {
            return Outcome::Dropped(Discard::Malformed);
        };
        // One read lock finds the channel's peer and sends to it. A peer at one of this server's
        // own IPs (another allocation, or a port the policy may forbid) is checked outside the
        // lock first, as a Send indication's peer is.
        let max_bps = self.limits.max_bps.load(Ordering::Relaxed);
        let pass = self.table.with(tuple, |a| {
            if a.expires <= now.mono {
                return Err(Discard::NoAllocation);
            }
            let peer = a.peer_for_channel(cd.channel, now.mono).ok_or(Discard::NoChannel)?;
            if self.is_own_ip(peer.ip()) {
                return Ok(ChannelPass::OwnIp(peer));
            }
            self.route(a, now, peer, cd.payload, None, max_bps).map(ChannelPass::Routed)
        });
        let route = match pass {
            Some(Ok(ChannelPass::OwnIp(peer))) => return self.relay_from_client(now, tuple, peer, cd.payload, out),
            Some(Ok(ChannelPass::Routed(route))) => Some(Ok(route)),
            Some(Err(why)) => Some(Err(why)),
            None => None,
        };
        self.routed(now, route, cd.payload, out)
    }

    /// Sends `payload` from the allocation of `tuple` to `peer` if a permission allows it.
    fn relay_from_client(
        &self,
        now: Now,
        tuple: &FiveTuple,
        peer: SocketAddr,
        payload: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        // A permission is per IP, and every permission passed the peer policy when it was
        // installed, except one for turnd's own IP (allowed to reach another allocation). That
        // one must not reach other ports of this host: they go out only if the policy allows.
        let own_ip = self.is_own_ip(peer.ip());
        let internal = if own_ip { self.table.by_relayed(peer) } else { None };
        if own_ip && internal.is_none() && !self.policy_allows(peer.ip()) {
            return Outcome::Dropped(Discard::NoPermission);
        }
        let max_bps = self.limits.max_bps.load(Ordering::Relaxed);
        let route = self.table.with(tuple, |a| self.route(a, now, peer, payload, internal, max_bps));
        self.routed(now, route, payload, out)
    }

    /// Sends `payload` from allocation `a` to `peer` (of a family `a` has, through a permission,
    /// within its bandwidth) under the table's read lock, or says where it goes instead:
    /// to allocation `internal` (relayed at `peer`), in-process.
    fn route(
        &self,
        a: &Allocation<R>,
        now: Now,
        peer: SocketAddr,
        payload: &[u8],
        internal: Option<AllocId>,
        max_bps: u64,
    ) -> Result<Route, Discard> {
        if a.expires <= now.mono || a.tcp {
            return Err(Discard::NoAllocation);
        }
        if !a.permits(peer.ip(), now.mono) {
            return Err(Discard::NoPermission);
        }
        if !a.to_peer.admit_bytes(self.ticks(now.mono), payload.len(), max_bps)
            || !self.capacity_admits(true, now.mono, payload.len())
        {
            return Err(Discard::Bandwidth);
        }
        // The relay of the peer's family (a permission exists only for a family the
        // allocation has, RFC 8656 §9.1).
        let Some((relay, relayed)) = a.relay_for(peer.is_ipv6()) else {
            return Err(Discard::NoPermission);
        };
        if let Some(id) = internal {
            return Ok(Route::Internal { from: relayed, id });
        }
        relay.send_to(payload, peer);
        Ok(Route::Sent)
    }

    /// The outcome of a [`Server::route`] pass (`None`: the client has no allocation).
    fn routed(&self, now: Now, route: Option<Result<Route, Discard>>, payload: &[u8], out: &mut [u8]) -> Outcome {
        match route {
            None => Outcome::Dropped(Discard::NoAllocation),
            Some(Err(why)) => Outcome::Dropped(why),
            Some(Ok(Route::Sent)) => Outcome::Relayed { bytes: payload.len() },
            Some(Ok(Route::Internal { from, id })) => self.deliver_internal(now, from, id, payload, out),
        }
    }

    /// Delivers `payload`, sent by the allocation relayed at `from`, to allocation `id` as if it
    /// had arrived from the network: the receiver's permissions and channels apply.
    fn deliver_internal(&self, now: Now, from: SocketAddr, id: AllocId, payload: &[u8], out: &mut [u8]) -> Outcome {
        let start = DATA_INDICATION_HEADROOM;
        let Some(room) = out.get_mut(start..start + payload.len()) else {
            return Outcome::Dropped(Discard::Malformed);
        };
        room.copy_from_slice(payload);
        match self.handle_peer(now, id, from, out, payload.len()) {
            Ok((to, range)) => Outcome::Forward { to, start: range.start, end: range.end },
            Err(why) => Outcome::Dropped(why),
        }
    }

    /// A datagram from `peer` arrived on the relay of allocation `id`. The IO shell put the
    /// payload at `buf[DATA_INDICATION_HEADROOM..][..len]` with [`PEER_TAILROOM`] bytes after it.
    /// On success returns the client to send to and the range of `buf` to send: a ChannelData
    /// message when `peer` has a channel, else a Data indication (RFC 8656 §10.3, §12.7).
    //= https://www.rfc-editor.org/rfc/rfc8656#section-10.3
    pub fn handle_peer(
        &self,
        now: Now,
        id: AllocId,
        peer: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(FiveTuple, Range<usize>), Discard> {
        let peer = canonical_addr(peer);
        if buf.len() < DATA_INDICATION_HEADROOM + len + PEER_TAILROOM || len > usize::from(u16::MAX) {
            return Err(Discard::Malformed);
        }
        let max_bps = self.limits.max_bps.load(Ordering::Relaxed);
        let found = self.table.with_id(id, |a| {
            if a.expires <= now.mono {
                return Err(Discard::NoAllocation);
            }
            if !a.permits(peer.ip(), now.mono) {
                return Err(Discard::NoPermission);
            }
            if !a.to_client.admit_bytes(self.ticks(now.mono), len, max_bps)
                || !self.capacity_admits(false, now.mono, len)
            {
                return Err(Discard::Bandwidth);
            }
            Ok((a.tuple, a.channel_for_peer(peer, now.mono)))
        });
        let (tuple, channel) = found.ok_or(Discard::NoAllocation)??;
        let payload_end = DATA_INDICATION_HEADROOM + len;
        let range = match channel {
            Some(number) => frame_channel_data(&tuple, number, buf, len),
            None => {
                let mut prefix = [0u8; DATA_INDICATION_PREFIX_MAX];
                // Too long for a Data indication (only a stream client's data, delivered
                // in-process, can be): dropped, as a datagram too big for the path would be.
                let n = data_indication_prefix(&mut prefix, &indication_txid(id), peer, len as u16)
                    .ok_or(Discard::Malformed)?;
                let start = DATA_INDICATION_HEADROOM - n;
                buf[start..DATA_INDICATION_HEADROOM].copy_from_slice(&prefix[..n]);
                let end = DATA_INDICATION_HEADROOM + len.next_multiple_of(4);
                buf[payload_end..end].fill(0);
                start..end
            }
        };
        Ok((tuple, range))
    }
}

impl<R: Relay> Server<R> {
    /// The relay socket of allocation `id` got `icmp` back for a datagram it sent to `peer`
    /// (the datagram's destination, port 0 when the IO shell cannot tell it). When the type is
    /// one §11 relays, the allocation has a permission for the peer's IP (ports are not
    /// compared) and is within [`ICMP_PER_SECOND`], writes a Data indication with
    /// XOR-PEER-ADDRESS and ICMP (no DATA) into `out` and returns the client to send it to and
    /// its length. Always a Data indication, also on a channel: ChannelData cannot carry ICMP.
    //= https://www.rfc-editor.org/rfc/rfc8656#section-11
    pub fn handle_peer_icmp(
        &self,
        now: Now,
        id: AllocId,
        peer: SocketAddr,
        icmp: PeerIcmp,
        out: &mut [u8],
    ) -> Result<(FiveTuple, usize), Discard> {
        if !icmp.is_relayed() {
            return Err(Discard::IcmpType);
        }
        let peer = canonical_addr(peer);
        let found = self.table.with_id(id, |a| {
            if a.expires <= now.mono || a.tcp {
                return Err(Discard::NoAllocation);
            }
            if !a.permits(peer.ip(), now.mono) {
                return Err(Discard::NoPermission);
            }
            if !a.icmp.admit_rate(self.ticks(now.mono), ICMP_PER_SECOND) {
                return Err(Discard::RateLimited);
            }
            Ok(a.tuple)
        });
        let tuple = found.ok_or(Discard::NoAllocation)??;
        let kind = MessageType::new(Method::DATA, Class::Indication);
        let mut w = MessageWriter::new(out, kind, &indication_txid(id));
        w.xor_address(attr::XOR_PEER_ADDRESS, peer).icmp(icmp.attribute());
        // 52 bytes at most (an IPv6 peer): only a buffer shorter than that fails.
        let len = w.finish().map_err(|_| Discard::Malformed)?;
        Ok((tuple, len))
    }
}

/// Writes the ChannelData header in front of the payload (and stream padding after it).
fn frame_channel_data(tuple: &FiveTuple, number: u16, buf: &mut [u8], len: usize) -> Range<usize> {
    let start = DATA_INDICATION_HEADROOM - CHANNEL_DATA_HEADER;
    let mut header = [0u8; CHANNEL_DATA_HEADER];
    ChannelData::write_header(number, len as u16, &mut header);
    buf[start..DATA_INDICATION_HEADROOM].copy_from_slice(&header);
    let end = start + ChannelData::frame_len(len, tuple.pads_channel_data());
    buf[DATA_INDICATION_HEADROOM + len..end].fill(0);
    start..end
}

/// A transaction id for a Data indication. Indications need unique, not secret, ids
/// (RFC 8489 §6): a per-thread xorshift stream seeded from the allocation id.
fn indication_txid(id: AllocId) -> [u8; 12] {
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0) });
    STATE.with(|state| {
        let mut x = state.get() ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut txid = [0u8; 12];
        for chunk in txid.chunks_mut(4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..4]);
        }
        state.set(x);
        txid
    })
}
