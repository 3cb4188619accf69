//! Counters kept per worker and summed when read: each worker writes only its own cache line,
//! with a plain load and store (it is the only writer), so counting costs no shared atomic
//! operation per packet. Readers (the metrics endpoint) sum over the workers.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::turn::Discard;

/// What is counted. The discriminant indexes each worker's counter array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Payloads sent from clients out of relay sockets to peers (Send and ChannelData).
    PacketsToPeer,
    /// Client payloads relayed or forwarded in-process that came as ChannelData.
    ChannelDataFromClient,
    /// Client payloads relayed or forwarded in-process that came in Send indications.
    SendIndicationsFromClient,
    BytesToPeer,
    /// Payloads from peers delivered to clients as ChannelData.
    ChannelDataToClient,
    /// Payloads from peers delivered to clients as Data indications.
    DataIndicationsToClient,
    BytesToClient,
    /// Payloads delivered between two allocations of this server without the network.
    InternalForwards,
    /// STUN requests answered (success or error).
    Responses,
    /// Binding requests answered.
    BindingRequests,
    /// TCP and TLS client connections admitted, and closed again.
    TcpOpened,
    TlsOpened,
    TcpClosed,
    TlsClosed,
    /// TCP/TLS client connections closed at once: over `limits.max-connections(-per-ip)`.
    ConnectionsRefused,
    /// ICMP errors from the network relayed to clients (Data indications with ICMP).
    IcmpToClient,
    /// Runs of same-size frames to one UDP client or peer sent in one GSO send.
    GsoSends,
    /// Receives (listener or relay) that held a GRO burst of two or more datagrams.
    GroReceives,
    /// Receive-coalescing sleeps (each at most `server.receive-coalesce-us`) after a listener
    /// drain.
    CoalesceSleeps,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 19] = [
        Counter::PacketsToPeer,
        Counter::ChannelDataFromClient,
        Counter::SendIndicationsFromClient,
        Counter::BytesToPeer,
        Counter::ChannelDataToClient,
        Counter::DataIndicationsToClient,
        Counter::BytesToClient,
        Counter::InternalForwards,
        Counter::Responses,
        Counter::BindingRequests,
        Counter::TcpOpened,
        Counter::TlsOpened,
        Counter::TcpClosed,
        Counter::TlsClosed,
        Counter::ConnectionsRefused,
        Counter::IcmpToClient,
        Counter::GsoSends,
        Counter::GroReceives,
        Counter::CoalesceSleeps,
    ];
}

/// Where a dropped packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Peer,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Client, Side::Peer];

    /// The side as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
}

/// One worker's counters, alone on their cache lines.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerStats {
    counters: [AtomicU64; Counter::ALL.len()],
    /// Packets dropped without an answer, by side and reason.
    dropped: [[AtomicU64; Discard::ALL.len()]; Side::ALL.len()],
}

impl WorkerStats {
    /// Adds `n`. Only the owning worker calls this, so a load and a store suffice.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        bump(&self.counters[counter as usize], n);
    }

    /// Counts a packet from `side` dropped for `why`.
    #[inline]
    pub fn drop(&self, side: Side, why: Discard) {
        bump(&self.dropped[side as usize][discard_index(why)], 1);
    }
}

/// A load and a store: only the owning worker writes its counters.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

fn discard_index(why: Discard) -> usize {
    Discard::ALL.iter().position(|d| *d == why).unwrap_or(0)
}

/// The counters of every worker.
pub struct Stats {
    workers: Box<[WorkerStats]>,
}

impl Stats {
    pub fn new(workers: usize) -> Self {
        Stats { workers: (0..workers.max(1)).map(|_| WorkerStats::default()).collect() }
    }

    /// The counters worker `index` writes.
    pub fn worker(&self, index: usize) -> &WorkerStats {
        &self.workers[index % self.workers.len()]
    }

    /// The sum over all workers.
    pub fn total(&self, counter: Counter) -> u64 {
        self.workers.iter().map(|w| w.counters[counter as usize].load(Ordering::Relaxed)).sum()
    }

    /// Packets from `side` dropped for `why`, summed over all workers.
    pub fn dropped(&self, side: Side, why: Discard) -> u64 {
        self.workers.iter().map(|w| w.dropped[side as usize][discard_index(why)].load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_worker() {
        let stats = Stats::new(3);
        stats.worker(0).add(Counter::PacketsToPeer, 2);
        stats.worker(2).add(Counter::PacketsToPeer, 5);
        stats.worker(1).add(Counter::BytesToPeer, 100);
        assert_eq!(stats.total(Counter::PacketsToPeer), 7);
        assert_eq!(stats.total(Counter::BytesToPeer), 100);
        assert_eq!(stats.total(Counter::Responses), 0);
        stats.worker(0).drop(Side::Peer, Discard::Bandwidth);
        stats.worker(1).drop(Side::Peer, Discard::Bandwidth);
        stats.worker(1).drop(Side::Client, Discard::RateLimited);
        assert_eq!(stats.dropped(Side::Peer, Discard::Bandwidth), 2);
        assert_eq!(stats.dropped(Side::Client, Discard::RateLimited), 1);
        assert_eq!(stats.dropped(Side::Client, Discard::Bandwidth), 0);
        assert_eq!(std::mem::align_of::<WorkerStats>(), 128);
    }
}
