//! What the core decides per request or per allocation, counted for the metrics endpoint:
//! authentication failures by reason, peer refusals by request and rule, refused Allocates by
//! reason, allocations created and ended by transport. Never touched per relayed packet: one
//! relaxed (or release) atomic increment per event, and [`Counts`] is the snapshot a scrape reads.
//! Every label value is a fixed word: none names a user, key or address.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::auth::AuthError;

use super::Transport;

/// Why a request did not authenticate (RFC 8489 §9.2.4), one per failed `authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No MESSAGE-INTEGRITY: the ordinary first 401 challenge every client gets.
    MissingCredentials,
    /// MESSAGE-INTEGRITY without USERNAME, REALM or NONCE, or with a USERNAME of 509 bytes or
    /// more (400).
    MissingAttributes,
    /// A nonce this process issued to this client, past its lifetime (438).
    StaleNonce,
    /// A nonce this process did not issue to this client, e.g. one from before a restart (438).
    BadNonce,
    /// A REALM other than ours (401).
    WrongRealm,
    /// Neither a static user nor, with REST secrets, a REST username (401).
    UnknownUser,
    /// A REST username whose expiry has passed (401).
    Expired,
    /// A username that must be a REST username and does not parse as one (401).
    BadRestUsername,
    /// A known user, but MESSAGE-INTEGRITY does not verify: a wrong password (401).
    BadIntegrity,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 9] = [
        AuthFailure::MissingCredentials,
        AuthFailure::MissingAttributes,
        AuthFailure::StaleNonce,
        AuthFailure::BadNonce,
        AuthFailure::WrongRealm,
        AuthFailure::UnknownUser,
        AuthFailure::Expired,
        AuthFailure::BadRestUsername,
        AuthFailure::BadIntegrity,
    ];

    /// The reason as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing_credentials",
            AuthFailure::MissingAttributes => "missing_attributes",
            AuthFailure::StaleNonce => "stale_nonce",
            AuthFailure::BadNonce => "bad_nonce",
            AuthFailure::WrongRealm => "wrong_realm",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Expired => "expired",
            AuthFailure::BadRestUsername => "bad_rest_username",
            AuthFailure::BadIntegrity => "bad_integrity",
        }
    }
}

impl From<AuthError> for AuthFailure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::UnknownUser => AuthFailure::UnknownUser,
            AuthError::Expired => AuthFailure::Expired,
            AuthError::Malformed => AuthFailure::BadRestUsername,
            AuthError::BadIntegrity => AuthFailure::BadIntegrity,
        }
    }
}

/// The request that named a peer the policy refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRequest {
    CreatePermission,
    ChannelBind,
    /// RFC 6062 Connect.
    Connect,
}

impl PeerRequest {
    pub const ALL: [PeerRequest; 3] = [PeerRequest::CreatePermission, PeerRequest::ChannelBind, PeerRequest::Connect];

    /// The request as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            PeerRequest::CreatePermission => "create_permission",
            PeerRequest::ChannelBind => "channel_bind",
            PeerRequest::Connect => "connect",
        }
    }
}

/// Which part of the peer policy refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// The operator's `peers.denied` list.
    Denied,
    /// A built-in special-purpose range (loopback, RFC 1918, link-local, ...).
    SpecialPurpose,
}

impl RefusedBy {
    pub const ALL: [RefusedBy; 2] = [RefusedBy::Denied, RefusedBy::SpecialPurpose];

    /// The rule as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            RefusedBy::Denied => "denied",
            RefusedBy::SpecialPurpose => "special_purpose",
        }
    }
}

impl From<super::policy::Refusal> for RefusedBy {
    fn from(r: super::policy::Refusal) -> Self {
        match r {
            super::policy::Refusal::Denied => RefusedBy::Denied,
            super::policy::Refusal::SpecialPurpose(_) => RefusedBy::SpecialPurpose,
        }
    }
}

/// Why an authenticated Allocate got no allocation although it was well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocateRefusal {
    /// `allocation.user-quota` reached (486).
    UserQuota,
    /// `allocation.total-quota` reached (508).
    TotalQuota,
    /// The process is draining (508).
    Draining,
    /// No free relay port, or no file descriptor left (508).
    PortsExhausted,
}

impl AllocateRefusal {
    pub const ALL: [AllocateRefusal; 4] = [
        AllocateRefusal::UserQuota,
        AllocateRefusal::TotalQuota,
        AllocateRefusal::Draining,
        AllocateRefusal::PortsExhausted,
    ];

    /// The reason as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            AllocateRefusal::UserQuota => "user_quota",
            AllocateRefusal::TotalQuota => "total_quota",
            AllocateRefusal::Draining => "draining",
            AllocateRefusal::PortsExhausted => "ports_exhausted",
        }
    }
}

/// How an allocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its lifetime passed without a Refresh.
    Expired,
    /// Refresh with LIFETIME 0.
    Deleted,
    /// The TCP/TLS connection it was made over closed (RFC 8656 §3.1).
    ConnectionClosed,
}

impl Ended {
    pub const ALL: [Ended; 3] = [Ended::Expired, Ended::Deleted, Ended::ConnectionClosed];

    /// The reason as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Ended::Expired => "expired",
            Ended::Deleted => "deleted",
            Ended::ConnectionClosed => "connection_closed",
        }
    }
}

/// The kind of an allocation: the transport its client reached turnd over and its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationKind {
    pub transport: Transport,
    /// An RFC 6062 TCP relay (else UDP).
    pub tcp_relay: bool,
}

impl AllocationKind {
    /// Every kind that can exist (a TCP relay needs a stream control connection).
    pub const ALL: [AllocationKind; 5] = [
        AllocationKind { transport: Transport::Udp, tcp_relay: false },
        AllocationKind { transport: Transport::Tcp, tcp_relay: false },
        AllocationKind { transport: Transport::Tcp, tcp_relay: true },
        AllocationKind { transport: Transport::Tls, tcp_relay: false },
        AllocationKind { transport: Transport::Tls, tcp_relay: true },
    ];

    /// The relay as a metrics label.
    pub fn relay_name(self) -> &'static str {
        if self.tcp_relay {
            "tcp"
        } else {
            "udp"
        }
    }

    fn index(self) -> usize {
        let transport = match self.transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        };
        transport * 2 + usize::from(self.tcp_relay)
    }
}

/// Index space of [`AllocationKind::index`] (UDP with a TCP relay included, always 0).
const KINDS: usize = 6;

/// The per-request counts, owned by the `Server`.
#[derive(Default)]
pub(super) struct RequestCounts {
    auth_failures: [AtomicU64; AuthFailure::ALL.len()],
    peer_refusals: [[AtomicU64; RefusedBy::ALL.len()]; PeerRequest::ALL.len()],
    allocate_refusals: [AtomicU64; AllocateRefusal::ALL.len()],
}

impl RequestCounts {
    pub(super) fn auth_failure(&self, why: AuthFailure) {
        bump(&self.auth_failures[why as usize]);
    }

    pub(super) fn peer_refusal(&self, request: PeerRequest, by: RefusedBy) {
        bump(&self.peer_refusals[request as usize][by as usize]);
    }

    pub(super) fn allocate_refusal(&self, why: AllocateRefusal) {
        bump(&self.allocate_refusals[why as usize]);
    }

    pub(super) fn read_into(&self, counts: &mut Counts) {
        read(&self.auth_failures, &mut counts.auth_failures);
        for (from, to) in self.peer_refusals.iter().zip(&mut counts.peer_refusals) {
            read(from, to);
        }
        read(&self.allocate_refusals, &mut counts.allocate_refusals);
    }
}

/// Allocations created and ended by kind, owned by the allocation table. An allocation's end
/// is counted after its creation (the table's shard lock orders them) with release stores,
/// and a snapshot reads the ends first with acquire loads: created minus ended is never below
/// the allocations that exist.
#[derive(Default)]
pub(super) struct AllocationCounts {
    created: [AtomicU64; KINDS],
    ended: [[AtomicU64; Ended::ALL.len()]; KINDS],
}

impl AllocationCounts {
    pub(super) fn created(&self, kind: AllocationKind) {
        self.created[kind.index()].fetch_add(1, Ordering::Release);
    }

    pub(super) fn ended(&self, kind: AllocationKind, why: Ended) {
        self.ended[kind.index()][why as usize].fetch_add(1, Ordering::Release);
    }

    pub(super) fn read_into(&self, counts: &mut Counts) {
        for (from, to) in self.ended.iter().zip(&mut counts.ended) {
            for (a, v) in from.iter().zip(to) {
                *v = a.load(Ordering::Acquire);
            }
        }
        for (a, v) in self.created.iter().zip(&mut counts.created) {
            *v = a.load(Ordering::Acquire);
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read<const N: usize>(from: &[AtomicU64; N], to: &mut [u64; N]) {
    for (a, v) in from.iter().zip(to) {
        *v = a.load(Ordering::Relaxed);
    }
}

/// A snapshot of the core's counts (see `Server::counts`), totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allocations that exist (or are being made) now: the unlabelled total.
    pub allocations: usize,
    auth_failures: [u64; AuthFailure::ALL.len()],
    peer_refusals: [[u64; RefusedBy::ALL.len()]; PeerRequest::ALL.len()],
    allocate_refusals: [u64; AllocateRefusal::ALL.len()],
    created: [u64; KINDS],
    ended: [[u64; Ended::ALL.len()]; KINDS],
}

impl Counts {
    pub fn auth_failures(&self, why: AuthFailure) -> u64 {
        self.auth_failures[why as usize]
    }

    pub fn peer_refusals(&self, request: PeerRequest, by: RefusedBy) -> u64 {
        self.peer_refusals[request as usize][by as usize]
    }

    pub fn allocate_refusals(&self, why: AllocateRefusal) -> u64 {
        self.allocate_refusals[why as usize]
    }

    /// Allocations of `kind` created since start.
    pub fn created(&self, kind: AllocationKind) -> u64 {
        self.created[kind.index()]
    }

    /// Allocations of any kind that ended for `why` since start.
    pub fn ended(&self, why: Ended) -> u64 {
        self.ended.iter().map(|by_reason| by_reason[why as usize]).sum()
    }

    /// Allocations of `kind` that exist now: created and not yet ended.
    pub fn active(&self, kind: AllocationKind) -> u64 {
        self.created(kind).saturating_sub(self.ended[kind.index()].iter().sum())
    }
}
