//! The allocation table: allocations keyed by 5-tuple, by relayed family and port and by
//! mobility ticket, sharded by locks. Every method is synchronous, so no guard can cross an
//! `.await`; a method takes at most one lock at a time (it releases one before taking the next),
//! so there is no lock order to break.
//!
//! An allocation lives in the shard of its id; its 5-tuple's entry is in the shard the 5-tuple
//! hashes to. The two are the same shard until a mobility Refresh (RFC 8016) moves the
//! allocation to another 5-tuple; the id, and so the allocation's shard, never changes. A lookup
//! by 5-tuple checks that the allocation it finds still has that 5-tuple, so a move seen half
//! done finds the allocation on neither or on the old tuple only, never on both.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// The per-packet maps' hasher: foldhash, seeded per process like std's SipHash but about a
/// third of its cost on a 5-tuple (SipHash was ~4 % of the relay path's CPU under `perf`).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::counts::{AllocationCounts, AllocationKind, Counts, Ended};
use super::limit::Gcra;
use super::mobility::Ticket;
use super::{ErrorCode, FiveTuple};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
/// A channel number stays tied to its peer this long after the binding expires (RFC 8656 §12).
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);
/// Permissions one allocation may hold (each costs memory; coturn has no limit).
pub const MAX_PERMISSIONS: usize = 1024;
/// Channels one allocation may hold, bound or cooling down (RFC 8656 allows 4,096, turnd's
/// range 16,384): each ChannelData and each peer datagram of the allocation scans them, so one
/// client must not make its packets dear with thousands. A WebRTC client binds one per remote
/// candidate it tries; coturn has no limit.
pub const MAX_CHANNELS: usize = 256;

/// Identifies an allocation for its whole life; never reused. The low bits name its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllocId(pub u64);

impl AllocId {
    fn shard(self) -> usize {
        (self.0 as usize) & (SHARDS - 1)
    }
}

/// A permission for one peer IP (RFC 8656 §9).
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    pub ip: IpAddr,
    pub expires: Instant,
}

/// A channel binding (RFC 8656 §12).
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    pub number: u16,
    pub peer: SocketAddr,
    pub expires: Instant,
}

/// The second relayed address of a dual allocation (RFC 8656 §7.2: ADDITIONAL-ADDRESS-FAMILY),
/// of the other family than the first, and its relay socket.
pub struct SecondRelay<R> {
    pub relayed: SocketAddr,
    pub relay: R,
}

/// One allocation and the relay sockets it owns (dropping it closes them).
pub struct Allocation<R> {
    pub id: AllocId,
    pub tuple: FiveTuple,
    /// The relayed transport address as advertised to the client (external IP when configured).
    pub relayed: SocketAddr,
    /// A dual allocation's relayed address of the other family.
    pub second: Option<SecondRelay<R>>,
    /// A dual allocation that got one family only: the other family and why (ADDRESS-ERROR-CODE).
    pub address_error: Option<(bool, super::ErrorCode)>,
    /// The RESERVATION-TOKEN of the port held next to this one (EVEN-PORT with the R bit).
    pub reservation: Option<[u8; 8]>,
    pub username: Box<str>,
    pub key: super::Signer,
    pub expires: Instant,
    /// Transaction id of the Allocate that created it, to answer its retransmissions.
    pub txid: [u8; 12],
    /// A TCP relay (RFC 6062): no Send, ChannelBind or ChannelData.
    pub tcp: bool,
    pub permissions: Vec<Permission>,
    pub channels: Vec<Channel>,
    /// Its current MOBILITY-TICKET (RFC 8016), when the client asked for one.
    pub ticket: Option<Ticket>,
    /// Transaction id of the Refresh that last moved it, to answer its retransmissions.
    pub moved_by: Option<[u8; 12]>,
    /// Bandwidth used client → peer and peer → client (`limits.max-bps`).
    pub to_peer: Gcra,
    pub to_client: Gcra,
    /// ICMP errors relayed to the client (RFC 8656 §11), at most `ICMP_PER_SECOND`.
    pub icmp: Gcra,
    pub relay: R,
}

impl<R> Allocation<R> {
    /// May `username` act on this allocation now? An allocation past its lifetime is gone
    /// (437 Allocation Mismatch); another user's is 441 Wrong Credentials (RFC 8656 §7.3).
    pub fn check_owner(&self, username: &str, now: Instant) -> Result<(), ErrorCode> {
        if self.expires <= now {
            return Err(ErrorCode::AllocationMismatch);
        }
        if *self.username != *username {
            return Err(ErrorCode::WrongCredentials);
        }
        Ok(())
    }

    /// The relay socket and relayed address of a family (peers are reached from the relayed
    /// address of their own family, RFC 8656 §9).
    pub fn relay_for(&self, ipv6: bool) -> Option<(&R, SocketAddr)> {
        if self.relayed.is_ipv6() == ipv6 {
            return Some((&self.relay, self.relayed));
        }
        self.second.as_ref().filter(|s| s.relayed.is_ipv6() == ipv6).map(|s| (&s.relay, s.relayed))
    }

    /// Whether the allocation has a relayed address of this family.
    pub fn has_family(&self, ipv6: bool) -> bool {
        self.relay_for(ipv6).is_some()
    }

    /// Its relayed addresses: one, or two for a dual allocation.
    pub fn relayed_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.relayed).chain(self.second.as_ref().map(|s| s.relayed))
    }

    /// Whether `ip` has an unexpired permission.
    pub fn permits(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.iter().any(|p| p.ip == ip && p.expires > now)
    }

    /// The unexpired channel bound to `peer`.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels.iter().find(|c| c.peer == peer && c.expires > now).map(|c| c.number)
    }

    /// The peer of an unexpired channel.
    pub fn peer_for_channel(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        self.channels.iter().find(|c| c.number == number && c.expires > now).map(|c| c.peer)
    }

    /// Installs or refreshes a permission; false when the allocation holds too many.
    pub fn permit(&mut self, ip: IpAddr, expires: Instant) -> bool {
        if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
            p.expires = expires;
            return true;
        }
        if self.permissions.len() >= MAX_PERMISSIONS {
            return false;
        }
        self.permissions.push(Permission { ip, expires });
        true
    }

    /// Its kind, for the counts by transport.
    pub fn kind(&self) -> AllocationKind {
        AllocationKind { transport: self.tuple.transport, tcp_relay: self.tcp }
    }

    fn prune(&mut self, now: Instant) {
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires + CHANNEL_COOLDOWN > now);
    }
}

struct Shard<R> {
    by_tuple: FastMap<FiveTuple, AllocId>,
    allocs: FastMap<AllocId, Allocation<R>>,
}

/// Why an allocation could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The 5-tuple already has an allocation (437).
    Exists,
}

/// The sharded allocation table.
pub struct AllocationTable<R> {
    shards: Box<[RwLock<Shard<R>>]>,
    hasher: foldhash::fast::RandomState,
    next_seq: AtomicU64,
    /// Relayed family (IPv6?) and port → allocation, for delivering data between two
    /// allocations in the process.
    by_port: RwLock<FastMap<(bool, u16), AllocId>>,
    /// Mobility ticket → allocation (RFC 8016), read only by Refresh requests that carry one.
    by_ticket: Mutex<HashMap<Ticket, AllocId>>,
    total: AtomicUsize,
    per_user: Mutex<HashMap<Box<str>, u32>>,
    counts: AllocationCounts,
}

impl<R> Default for AllocationTable<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> AllocationTable<R> {
    pub fn new() -> Self {
        AllocationTable {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Shard { by_tuple: FastMap::default(), allocs: FastMap::default() }))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            next_seq: AtomicU64::new(1),
            by_port: RwLock::new(FastMap::default()),
            by_ticket: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            per_user: Mutex::new(HashMap::new()),
            counts: AllocationCounts::default(),
        }
    }

    /// A fresh id in the shard that `tuple` hashes to.
    pub fn reserve_id(&self, tuple: &FiveTuple) -> AllocId {
        let shard = self.shard_of(tuple) as u64;
        AllocId((self.next_seq.fetch_add(1, Ordering::Relaxed) << SHARD_BITS) | shard)
    }

    /// Number of live allocations.
    pub fn len(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts a new allocation against the total and per-user quotas (0 = unlimited) before
    /// it is created; `false` when a quota is reached. Undo with [`Self::release_quota`].
    pub fn take_quota(&self, username: &str, user_quota: u32, total_quota: u32) -> Result<(), QuotaError> {
        if total_quota != 0 && self.total.fetch_add(1, Ordering::AcqRel) >= total_quota as usize {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(QuotaError::Total);
        } else if total_quota == 0 {
            self.total.fetch_add(1, Ordering::AcqRel);
        }
        let mut users = lock(&self.per_user);
        let count = users.entry(username.into()).or_insert(0);
        if user_quota != 0 && *count >= user_quota {
            drop(users);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(QuotaError::User);
        }
        *count += 1;
        Ok(())
    }

    /// Gives back what [`Self::take_quota`] took.
    pub fn release_quota(&self, username: &str) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        let mut users = lock(&self.per_user);
        if let Entry::Occupied(mut e) = users.entry(username.into()) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Inserts an allocation whose quota was taken. On error the allocation is dropped (its
    /// relay closed) and its quota released.
    pub fn insert(&self, alloc: Allocation<R>) -> Result<(), InsertError> {
        let (id, tuple, ticket) = (alloc.id, alloc.tuple, alloc.ticket);
        let mut keys = [None; 2];
        for (key, addr) in keys.iter_mut().zip(alloc.relayed_addrs()) {
            *key = Some(relayed_key(addr));
        }
        {
            let mut shard = self.write(id.shard());
            if shard.by_tuple.contains_key(&tuple) {
                drop(shard);
                self.release_quota(&alloc.username);
                return Err(InsertError::Exists);
            }
            // Counted under the shard lock, so before any removal of it is.
            self.counts.created(alloc.kind());
            shard.by_tuple.insert(tuple, id);
            shard.allocs.insert(id, alloc);
        }
        {
            let mut by_port = write(&self.by_port);
            for key in keys.into_iter().flatten() {
                by_port.insert(key, id);
            }
        }
        if let Some(ticket) = ticket {
            lock(&self.by_ticket).insert(ticket, id);
        }
        Ok(())
    }

    /// Removes the allocation of `tuple`, releasing its quota and counting it as ended for
    /// `why`; returns it (drop closes the relay).
    pub fn remove(&self, tuple: &FiveTuple, why: Ended) -> Option<Allocation<R>> {
        let i = self.shard_of(tuple);
        let alloc = {
            let mut shard = self.write(i);
            let id = *shard.by_tuple.get(tuple)?;
            if id.shard() == i {
                let alloc = take_if_at(&mut shard, id, tuple)?;
                shard.by_tuple.remove(tuple);
                alloc
            } else {
                // Moved here from a tuple of another shard (RFC 8016).
                drop(shard);
                let alloc = take_if_at(&mut self.write(id.shard()), id, tuple)?;
                self.unindex(tuple, id);
                alloc
            }
        };
        self.forget(&alloc, why);
        Some(alloc)
    }

    /// Moves allocation `id` to the 5-tuple `to` (RFC 8016 mobility) if `check`, run on it under
    /// its shard's write lock, accepts; `to` must have no other allocation (437). A changed
    /// `ticket` is re-indexed. The allocation keeps its id, relay and everything else.
    pub fn relocate<T>(
        &self,
        id: AllocId,
        to: &FiveTuple,
        check: impl FnOnce(&mut Allocation<R>) -> Result<T, ErrorCode>,
    ) -> Result<T, ErrorCode> {
        // Claim `to` first: from now on nothing else can be allocated there, and a lookup of
        // `to` finds nothing until the allocation's tuple says `to`.
        let claimed = {
            let mut shard = self.write(self.shard_of(to));
            match shard.by_tuple.get(to) {
                Some(&held) if held == id => false,
                Some(_) => return Err(ErrorCode::AllocationMismatch),
                None => {
                    shard.by_tuple.insert(*to, id);
                    true
                }
            }
        };
        let moved = {
            let mut shard = self.write(id.shard());
            match shard.allocs.get_mut(&id) {
                None => Err(ErrorCode::AllocationMismatch),
                Some(a) => {
                    let before = (a.tuple, a.ticket);
                    check(a).map(|t| {
                        a.tuple = *to;
                        (t, before, a.ticket)
                    })
                }
            }
        };
        match moved {
            Ok((t, (from, old_ticket), new_ticket)) => {
                if from != *to {
                    self.unindex(&from, id);
                }
                if old_ticket != new_ticket {
                    {
                        let mut tickets = lock(&self.by_ticket);
                        if let Some(old) = old_ticket {
                            tickets.remove(&old);
                        }
                        if let Some(new) = new_ticket {
                            tickets.insert(new, id);
                        }
                    }
                    // Ended meanwhile (before `forget` could see the new ticket): no entry
                    // may outlive its allocation.
                    if !self.read(id.shard()).allocs.contains_key(&id) {
                        self.forget_ticket(new_ticket, id);
                    }
                }
                Ok(t)
            }
            Err(code) => {
                if claimed {
                    self.unindex(to, id);
                }
                Err(code)
            }
        }
    }

    /// The allocation a mobility ticket belongs to.
    pub fn by_ticket(&self, ticket: &Ticket) -> Option<AllocId> {
        lock(&self.by_ticket).get(ticket).copied()
    }

    /// Copies the numbers of allocations created and ended, by kind, into `counts`.
    pub fn read_counts(&self, counts: &mut Counts) {
        self.counts.read_into(counts);
    }

    /// Runs `f` on the allocation of `tuple` under a read lock.
    pub fn with<T>(&self, tuple: &FiveTuple, f: impl FnOnce(&Allocation<R>) -> T) -> Option<T> {
        let i = self.shard_of(tuple);
        let shard = self.read(i);
        let id = *shard.by_tuple.get(tuple)?;
        if id.shard() == i {
            return shard.allocs.get(&id).filter(|a| a.tuple == *tuple).map(f);
        }
        drop(shard);
        self.read(id.shard()).allocs.get(&id).filter(|a| a.tuple == *tuple).map(f)
    }

    /// Runs `f` on the allocation of `tuple` under a write lock.
    pub fn with_mut<T>(&self, tuple: &FiveTuple, f: impl FnOnce(&mut Allocation<R>) -> T) -> Option<T> {
        let i = self.shard_of(tuple);
        let mut shard = self.write(i);
        let id = *shard.by_tuple.get(tuple)?;
        if id.shard() != i {
            drop(shard);
            shard = self.write(id.shard());
        }
        shard.allocs.get_mut(&id).filter(|a| a.tuple == *tuple).map(f)
    }

    /// Runs `f` on the allocation `id` under a read lock.
    pub fn with_id<T>(&self, id: AllocId, f: impl FnOnce(&Allocation<R>) -> T) -> Option<T> {
        self.read(id.shard()).allocs.get(&id).map(f)
    }

    /// The allocation with a relayed address of `addr`'s family and port (relay IPs are one
    /// per family, so family and port name a relayed address, private or advertised).
    pub fn by_relayed(&self, addr: SocketAddr) -> Option<AllocId> {
        read(&self.by_port).get(&relayed_key(addr)).copied()
    }

    /// Removes expired allocations and prunes expired permissions and channels; returns how
    /// many allocations ended. Each removed allocation's relay is dropped (closed) here.
    pub fn expire(&self, now: Instant) -> usize {
        let mut removed = 0;
        for i in 0..SHARDS {
            let dead: Vec<Allocation<R>> = {
                let mut shard = self.write(i);
                let shard = &mut *shard;
                for a in shard.allocs.values_mut() {
                    a.prune(now);
                }
                let ids: Vec<AllocId> = shard.allocs.values().filter(|a| a.expires <= now).map(|a| a.id).collect();
                ids.iter()
                    .filter_map(|id| {
                        let a = shard.allocs.remove(id)?;
                        if self.shard_of(&a.tuple) == i && shard.by_tuple.get(&a.tuple) == Some(id) {
                            shard.by_tuple.remove(&a.tuple);
                        }
                        Some(a)
                    })
                    .collect()
            };
            for alloc in &dead {
                // A moved allocation's tuple entry is in another shard.
                if self.shard_of(&alloc.tuple) != i {
                    self.unindex(&alloc.tuple, alloc.id);
                }
                self.forget(alloc, Ended::Expired);
            }
            removed += dead.len();
        }
        removed
    }

    fn forget(&self, alloc: &Allocation<R>, why: Ended) {
        self.counts.ended(alloc.kind(), why);
        {
            let mut by_port = write(&self.by_port);
            for key in alloc.relayed_addrs().map(relayed_key) {
                if by_port.get(&key) == Some(&alloc.id) {
                    by_port.remove(&key);
                }
            }
        }
        self.forget_ticket(alloc.ticket, alloc.id);
        self.release_quota(&alloc.username);
    }

    /// Removes the entry of `ticket` if it still names `id`.
    fn forget_ticket(&self, ticket: Option<Ticket>, id: AllocId) {
        let Some(ticket) = ticket else { return };
        let mut tickets = lock(&self.by_ticket);
        if tickets.get(&ticket) == Some(&id) {
            tickets.remove(&ticket);
        }
    }

    /// Removes the entry of `tuple` if it still names `id`.
    fn unindex(&self, tuple: &FiveTuple, id: AllocId) {
        let mut shard = self.write(self.shard_of(tuple));
        if shard.by_tuple.get(tuple) == Some(&id) {
            shard.by_tuple.remove(tuple);
        }
    }

    fn shard_of(&self, tuple: &FiveTuple) -> usize {
        (self.hasher.hash_one(tuple) as usize) & (SHARDS - 1)
    }

    fn read(&self, i: usize) -> RwLockReadGuard<'_, Shard<R>> {
        read(&self.shards[i])
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Shard<R>> {
        write(&self.shards[i])
    }
}

/// Takes allocation `id` out of `shard` if it is still at `tuple`.
fn take_if_at<R>(shard: &mut Shard<R>, id: AllocId, tuple: &FiveTuple) -> Option<Allocation<R>> {
    if shard.allocs.get(&id)?.tuple != *tuple {
        return None;
    }
    shard.allocs.remove(&id)
}

/// Which quota stopped an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaError {
    User,
    Total,
}

/// The key of a relayed address in the index: its family and port.
fn relayed_key(addr: SocketAddr) -> (bool, u16) {
    (super::canonical_addr(addr).is_ipv6(), addr.port())
}

// A poisoned lock means a panic happened while it was held; the table's invariants are kept by
// short non-panicking critical sections, so carrying on with the data is sound.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    // Real threads race here; the clock only dates the allocation.
    #![allow(clippy::disallowed_methods)]

    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::auth::LongTermKey;
    use crate::turn::{Signer, Transport};

    fn tuple(port: u16) -> FiveTuple {
        FiveTuple {
            client: SocketAddr::from(([127, 0, 0, 1], port)),
            server: "127.0.0.1:3478".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    fn allocation(table: &AllocationTable<()>, at: &FiveTuple, expires: Instant) -> AllocId {
        table.take_quota("alice", 0, 0).unwrap();
        let id = table.reserve_id(at);
        let alloc = Allocation {
            id,
            tuple: *at,
            relayed: "127.0.0.1:50000".parse().unwrap(),
            second: None,
            address_error: None,
            reservation: None,
            username: "alice".into(),
            key: Signer { key: LongTermKey::Md5([0; 16]), sha256: false },
            expires,
            txid: [0; 12],
            tcp: false,
            permissions: Vec::new(),
            channels: Vec::new(),
            ticket: None,
            moved_by: None,
            to_peer: Gcra::default(),
            to_client: Gcra::default(),
            icmp: Gcra::default(),
            relay: (),
        };
        table.insert(alloc).unwrap();
        id
    }

    fn entries(table: &AllocationTable<()>) -> usize {
        (0..SHARDS).map(|i| table.read(i).by_tuple.len()).sum()
    }

    /// One thread moves an allocation around 64 tuples while others look every tuple up: a
    /// lookup only ever finds it at the tuple it has, and in the end exactly one tuple has it.
    /// The moves go on (at least 5,000, for at most 10 s) until every reader has found it: a
    /// reader scheduled only after the moves would race nothing.
    #[test]
    fn lookups_racing_moves_never_see_a_stale_tuple() {
        let table = Arc::new(AllocationTable::new());
        let later = Instant::now() + Duration::from_secs(600);
        let id = allocation(&table, &tuple(1000), later);
        let done = Arc::new(AtomicBool::new(false));
        let found: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let (table, done, found) = (Arc::clone(&table), Arc::clone(&done), Arc::clone(&found));
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        for port in 1000..1064 {
                            if let Some(at) = table.with(&tuple(port), |a| a.tuple) {
                                assert_eq!(at, tuple(port), "found at a tuple it does not have");
                                found[i].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = 1000;
        for step in 0u32.. {
            let raced = found.iter().all(|f| f.load(Ordering::Relaxed) > 0);
            if step >= 5_000 && (raced || Instant::now() > deadline) {
                break;
            }
            last = 1000 + (step % 64) as u16;
            table.relocate(id, &tuple(last), |_| Ok::<_, ErrorCode>(())).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(found.iter().all(|f| f.load(Ordering::Relaxed) > 0), "a reader found nothing in 10 s of moves");
        let at: Vec<u16> = (1000..1064).filter(|p| table.with(&tuple(*p), |_| ()).is_some()).collect();
        assert_eq!(at, [last]);
        assert_eq!(entries(&table), 1);
    }

    /// Moves racing the end of the allocation leave no entry behind, whoever wins.
    #[test]
    fn moves_racing_expiry_leave_nothing_behind() {
        let minter = crate::turn::mobility::TicketMinter::with_key([3; 32]);
        for round in 0..200u16 {
            let table = Arc::new(AllocationTable::new());
            let now = Instant::now();
            let id = allocation(&table, &tuple(1000), now + Duration::from_secs(600));
            let (a, b) = (tuple(2000 + round), tuple(3000 + round));
            let fresh = minter.mint();
            let mover = {
                let table = Arc::clone(&table);
                std::thread::spawn(move || {
                    let moved = table.relocate(id, &a, |al| {
                        al.ticket = Some(fresh);
                        Ok(())
                    });
                    let _ = table.relocate(id, &b, |_| Ok(()));
                    moved
                })
            };
            for t in [tuple(1000), a, b] {
                drop(table.remove(&t, Ended::Deleted));
            }
            let moved = mover.join().unwrap();
            // Whatever is left is found where it is, and ends cleanly.
            for t in [tuple(1000), a, b] {
                drop(table.remove(&t, Ended::Deleted));
            }
            assert_eq!((table.len(), entries(&table)), (0, 0), "round {round}: {moved:?}");
            assert_eq!(table.by_ticket(&fresh), None, "round {round}");
        }
    }
}
