//! ChannelData runs: the datagrams one UDP client sent in a row, as the IO shell received them,
//! in one GRO receive (a video frame's packets sent with GSO) or in one `recvmmsg` (the same
//! packets sent one at a time). Each is checked exactly as [`Server::handle_client`] checks a
//! ChannelData message (RFC 8656 §12.6), under one read lock for the run, and the payloads that
//! go to one peer in a row leave in one [`Relay::send_run`] (a GSO send), where each would
//! otherwise be a system call of its own.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use crate::stun::ChannelData;

use super::{FiveTuple, Now, Relay, Server};

/// Most payloads one [`Relay::send_run`] carries (the kernel's `UDP_MAX_SEGMENTS`).
pub const RUN_MAX: usize = 64;
/// Most payload bytes one [`Relay::send_run`] carries (a UDP datagram's limit, less headers).
pub const RUN_MAX_BYTES: usize = 65_000;

/// What [`Server::relay_channel_data_run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunRelayed {
    /// Messages relayed, from the first.
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Runs of two or more payloads that [`Relay::send_run`] sent as one.
    pub batched: usize,
}

/// Why one pass over a burst stopped.
enum Stop {
    /// Every message was relayed, or the next one takes another path.
    Done,
    /// The next message is for a peer on one of this server's own IPs: allowed only after the
    /// checks [`Server::handle_client`] makes, which take locks of their own.
    OwnIp(SocketAddr),
}

/// A run being gathered: the relay and peer, and the payloads.
struct Run<'a, R> {
    to: Option<(&'a R, SocketAddr)>,
    payloads: [&'a [u8]; RUN_MAX],
    len: usize,
    bytes: usize,
}

impl<'a, R: Relay> Run<'a, R> {
    /// Whether `payload` to `peer` through `relay` extends the run: same relay and peer, not
    /// longer than the first, the run not ended by a shorter one, and within the limits.
    fn extends(&self, relay: &R, peer: SocketAddr, payload: &[u8]) -> bool {
        let Some((r, p)) = self.to else { return false };
        let first = self.payloads[0].len();
        std::ptr::eq(r, relay)
            && p == peer
            && self.len < RUN_MAX
            && payload.len() <= first
            && self.payloads[self.len - 1].len() == first
            && self.bytes + payload.len() <= RUN_MAX_BYTES
    }

    /// Sends the run gathered so far; counts it in `done`.
    fn flush(&mut self, done: &mut RunRelayed) {
        if let Some((relay, peer)) = self.to.take() {
            if relay.send_run(&self.payloads[..self.len], peer) && self.len >= 2 {
                done.batched += 1;
            }
        }
        self.len = 0;
        self.bytes = 0;
    }
}

impl<R: Relay> Server<R> {
    /// Relays the ChannelData messages of `burst`, each `segment` bytes long (the last may be
    /// shorter: one GRO receive), that the UDP client of `tuple` sent in a row, from the first,
    /// as [`Server::handle_client`] would. Stops before the first message that takes another
    /// path (not ChannelData on a live channel, no permission, over a bandwidth limit, an
    /// allocation of this server as the peer, or a peer the policy refuses) and returns what it
    /// relayed: the caller hands that message to `handle_client`, which says what becomes of
    /// it, and calls again with the rest.
    pub fn relay_channel_data_run(&self, now: Now, tuple: &FiveTuple, burst: &[u8], segment: usize) -> RunRelayed {
        if segment == 0 {
            return RunRelayed::default();
        }
        self.relay_frames(now, tuple, burst.chunks(segment))
    }

    /// As [`Server::relay_channel_data_run`], for `datagrams` the UDP client of `tuple` sent in
    /// a row, each received on its own (each one ChannelData message).
    pub fn relay_channel_data_datagrams(&self, now: Now, tuple: &FiveTuple, datagrams: &[&[u8]]) -> RunRelayed {
        self.relay_frames(now, tuple, datagrams.iter().copied())
    }

    /// Relays `frames` from the first until one takes another path; see
    /// [`Server::relay_channel_data_run`].
    fn relay_frames<'f>(
        &self,
        now: Now,
        tuple: &FiveTuple,
        frames: impl Iterator<Item = &'f [u8]> + Clone,
    ) -> RunRelayed {
        let mut done = RunRelayed::default();
        let mut cleared = None;
        loop {
            let rest = frames.clone().skip(done.messages);
            // Every stop at an own-IP peer is at a peer other than `cleared`; once cleared, the
            // next pass gets past that message or stops for good: this ends.
            let Stop::OwnIp(peer) = self.relay_run_once(now, tuple, rest, cleared, &mut done) else { break };
            // As `relay_from_client`: another allocation of this server is delivered
            // in-process (by handle_client), any other port of this host only if the policy
            // allows it.
            if self.table.by_relayed(peer).is_some() || !self.policy_allows(peer.ip()) {
                break;
            }
            cleared = Some(peer);
        }
        done
    }

    /// One pass over `frames` under the allocation's read lock; see
    /// [`Server::relay_channel_data_run`]. `cleared` is an own-IP peer already checked.
    fn relay_run_once<'f>(
        &self,
        now: Now,
        tuple: &FiveTuple,
        frames: impl Iterator<Item = &'f [u8]>,
        cleared: Option<SocketAddr>,
        done: &mut RunRelayed,
    ) -> Stop {
        let max_bps = self.limits.max_bps.load(Ordering::Relaxed);
        let ticks = self.ticks(now.mono);
        let stop = self.table.with(tuple, |a| {
            if a.expires <= now.mono || a.tcp {
                return Stop::Done;
            }
            let mut run = Run::<R> { to: None, payloads: [&[]; RUN_MAX], len: 0, bytes: 0 };
            let mut stop = Stop::Done;
            for frame in frames {
                let Ok(cd) = ChannelData::parse(frame) else { break };
                let Some(peer) = a.peer_for_channel(cd.channel, now.mono) else { break };
                if Some(peer) != cleared && self.is_own_ip(peer.ip()) {
                    stop = Stop::OwnIp(peer);
                    break;
                }
                let Some((relay, _)) = a.relay_for(peer.is_ipv6()) else { break };
                if !a.permits(peer.ip(), now.mono)
                    || !a.to_peer.admit_bytes(ticks, cd.payload.len(), max_bps)
                    || !self.capacity_admits(true, now.mono, cd.payload.len())
                {
                    break;
                }
                if !run.extends(relay, peer, cd.payload) {
                    run.flush(done);
                    run.to = Some((relay, peer));
                }
                run.payloads[run.len] = cd.payload;
                run.len += 1;
                run.bytes += cd.payload.len();
                done.messages += 1;
                done.bytes += cd.payload.len();
            }
            run.flush(done);
            stop
        });
        stop.unwrap_or(Stop::Done)
    }
}
