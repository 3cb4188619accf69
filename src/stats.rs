//! Counters kept per worker and summed when read: each worker writes only its own cache line,
//! with a plain load and store (it is the only writer), so counting costs no shared atomic
//! operation per packet. Readers (the metrics endpoint) sum over the workers.

use std::sync::atomic::{AtomicU64, Ordering};

/// What is counted. The discriminant indexes each worker's counter array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Payloads sent from clients out of relay sockets to peers (Send and ChannelData).
    PacketsToPeer,
    BytesToPeer,
    /// Payloads from peers delivered to clients as ChannelData.
    ChannelDataToClient,
    /// Payloads from peers delivered to clients as Data indications.
    DataIndicationsToClient,
    BytesToClient,
    /// Payloads delivered between two allocations of this server without the network.
    InternalForwards,
    /// Client packets dropped without an answer (no allocation, permission or channel, malformed).
    Dropped,
    /// STUN requests answered (success or error).
    Responses,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 8] = [
        Counter::PacketsToPeer,
        Counter::BytesToPeer,
        Counter::ChannelDataToClient,
        Counter::DataIndicationsToClient,
        Counter::BytesToClient,
        Counter::InternalForwards,
        Counter::Dropped,
        Counter::Responses,
    ];
}

/// One worker's counters, alone on their cache lines.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerStats {
    counters: [AtomicU64; Counter::ALL.len()],
}

impl WorkerStats {
    /// Adds `n`. Only the owning worker calls this, so a load and a store suffice.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        let c = &self.counters[counter as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
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
        assert_eq!(stats.total(Counter::Dropped), 0);
        assert_eq!(std::mem::align_of::<WorkerStats>(), 128);
    }
}
