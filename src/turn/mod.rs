//! TURN server protocol (RFC 8656; RFC 5766 clients too), sans-IO: requests in, responses and
//! relay sends out. No tokio, no sockets, no clock: time comes in as [`Now`], relay sockets are
//! reached through the [`RelayProvider`]/[`Relay`] traits the IO shell implements.
//! Depends on `auth` and `stun`.

mod binding;
mod burst;
pub mod counts;
mod data;
mod family;
pub mod limit;
mod mobility;
pub mod policy;
mod relay;
mod request;
mod reserve;
pub mod table;
mod tcp;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::auth::{
    Credentials, LongTermKey, NonceCheck, NonceMinter, PasswordAlgorithm, FEATURE_PASSWORD_ALGORITHMS,
    FEATURE_USERNAME_ANONYMITY, NONCE_MAX,
};
use crate::stun::{attr, classify, Class, Framing, Message, MessageType, MessageWriter, Method};
pub use binding::{NatAddresses, CHANGE_IP, CHANGE_PORT};
pub use burst::{RunRelayed, RUN_MAX, RUN_MAX_BYTES};
use counts::{AuthFailure, Counts, Ended, RequestCounts};
pub use data::{PeerIcmp, DATA_INDICATION_HEADROOM, ICMP_PER_SECOND, PEER_TAILROOM};
pub use family::{DefaultFamily, RelayAddr, RelayAddrs};
use limit::{Gcra, SourceLimiter};
use policy::PeerPolicy;
pub use relay::{OpenError, Relay, RelayOptions, RelayProvider};
pub use reserve::{MAX_RESERVATIONS, RESERVATION_LIFETIME};
pub use table::{AllocId, Allocation, AllocationTable, MAX_CHANNELS, MAX_PERMISSIONS};
pub use tcp::{BIND_TIMEOUT, MAX_UNBOUND_CONNECTIONS};

/// Permission lifetime (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// The longest USERNAME accepted, in bytes (RFC 8489 §14.3: fewer than 509).
pub const MAX_USERNAME_LEN: usize = 508;
/// How often the IO shell should call [`Server::expire`].
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The current time, as the IO shell read it: monotonic for lifetimes, Unix seconds for nonces
/// and REST credential expiry.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix: u64,
}

/// Transport between the client and turnd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    /// The transport as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// The client's 5-tuple: client address, turnd's address it reached, and the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
}

impl FiveTuple {
    /// Streams carry ChannelData padded to 4 bytes (RFC 8656 §12.5).
    fn pads_channel_data(&self) -> bool {
        self.transport != Transport::Udp
    }
}

/// What the IO shell must do after [`Server::handle_client`] or [`Server::handle_peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send `out[..len]` back to the client that sent the packet.
    Reply(usize),
    /// Send `out[..len]` back to the client from the local UDP socket `from` instead of the one
    /// the packet reached: an RFC 5780 CHANGE-REQUEST answer (another IP and/or port of turnd).
    ReplyFrom { len: usize, from: SocketAddr },
    /// A payload of `bytes` went out of a relay socket to a peer.
    Relayed { bytes: usize },
    /// Send `out[start..end]` to the client of another allocation (in-process delivery between
    /// two allocations of this server: client-to-client relaying without the network).
    Forward { to: FiveTuple, start: usize, end: usize },
    /// Dropped, and why (for counters and debugging).
    Dropped(Discard),
    /// RFC 6062 Connect: open a TCP connection from `from` (the relayed address) to `peer`, then
    /// report with [`Server::connect_finished`].
    Connect { connection: u32, allocation: AllocId, from: SocketAddr, peer: SocketAddr },
    /// RFC 6062 ConnectionBind succeeded: send `out[..len]` on this client data connection, then
    /// pipe its bytes to and from the peer data connection `connection`.
    Bound { connection: u32, allocation: AllocId, len: usize },
}

/// Why a packet was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    Malformed,
    NoAllocation,
    NoPermission,
    NoChannel,
    NotARequest,
    /// Over its source's Allocate or 401/438 rate ([`Limits`]); from a peer: over the
    /// allocation's ICMP rate ([`ICMP_PER_SECOND`]).
    RateLimited,
    /// The answer to an unauthenticated UDP request would have been more than 2x (Binding)
    /// or 3x (any other) the request's size; a spoofed source must not gain by reflection.
    Amplification,
    /// Over the allocation's or the relay's bandwidth ([`Limits`]).
    Bandwidth,
    /// An ICMP error of a type RFC 8656 §11 does not relay (only destination unreachable,
    /// packet too big and time exceeded are).
    IcmpType,
}

impl Discard {
    /// Every reason, in index order (for per-reason counters).
    pub const ALL: [Discard; 9] = [
        Discard::Malformed,
        Discard::NoAllocation,
        Discard::NoPermission,
        Discard::NoChannel,
        Discard::NotARequest,
        Discard::RateLimited,
        Discard::Amplification,
        Discard::Bandwidth,
        Discard::IcmpType,
    ];

    /// The reason as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Discard::Malformed => "malformed",
            Discard::NoAllocation => "no_allocation",
            Discard::NoPermission => "no_permission",
            Discard::NoChannel => "no_channel",
            Discard::NotARequest => "not_a_request",
            Discard::RateLimited => "rate_limited",
            Discard::Amplification => "amplification",
            Discard::Bandwidth => "bandwidth",
            Discard::IcmpType => "icmp_type",
        }
    }
}

/// Static settings of the protocol core, derived from the config.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The relay addresses, one per family at most (with their external IPs, NAT'd VMs).
    pub relays: RelayAddrs,
    /// The family of a client that sends no REQUESTED-ADDRESS-FAMILY.
    pub default_family: DefaultFamily,
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    /// 0 = unlimited.
    pub user_quota: u32,
    /// 0 = unlimited.
    pub total_quota: u32,
    pub limits: Limits,
    /// Where new allocations are sent (300 Try Alternate) while draining, or always with
    /// `redirect_all`; the first of the client's address family, in turn.
    pub alternates: Vec<SocketAddr>,
    pub redirect_all: bool,
    /// Offer RFC 8489 security in 401/438 (nonce cookie, PASSWORD-ALGORITHMS, USERHASH);
    /// without it challenges have RFC 5389's shape. Requests are checked the same either way.
    pub rfc8489_security: bool,
    /// RFC 8016 mobility: MOBILITY-TICKETs on Allocate, allocations moved by Refresh.
    pub mobility: bool,
}

/// Rates the core enforces; 0 = unlimited. All reloadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Allocate requests a second from one source IP (an IPv6 /64), authenticated or not.
    pub allocate_rate: u32,
    /// 401 and 438 answers a second to one source IP.
    pub challenge_rate: u32,
    /// Bytes a second each allocation relays in each direction (coturn's max-bps).
    pub max_bps: u64,
    /// Bytes a second the whole relay carries in each direction (coturn's bps-capacity).
    pub bps_capacity: u64,
}

/// [`Limits`] as the packet paths read them: plain atomics, no lock.
#[derive(Default)]
struct LiveLimits {
    allocate_rate: AtomicU32,
    challenge_rate: AtomicU32,
    max_bps: AtomicU64,
    bps_capacity: AtomicU64,
}

impl LiveLimits {
    fn set(&self, limits: &Limits) {
        self.allocate_rate.store(limits.allocate_rate, Ordering::Relaxed);
        self.challenge_rate.store(limits.challenge_rate, Ordering::Relaxed);
        self.max_bps.store(limits.max_bps, Ordering::Relaxed);
        self.bps_capacity.store(limits.bps_capacity, Ordering::Relaxed);
    }
}

/// The rate-limiting state: per-source request rates and the relay's total bandwidth, one
/// cell per direction.
#[derive(Default)]
struct Limiters {
    allocates: SourceLimiter,
    challenges: SourceLimiter,
    to_peers: Gcra,
    to_clients: Gcra,
}

/// TURN error responses (RFC 8656 §18, RFC 8489 §14.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    UnknownAttribute,
    AllocationMismatch,
    StaleNonce,
    TryAlternate,
    AddressFamilyNotSupported,
    WrongCredentials,
    UnsupportedTransport,
    PeerAddressFamilyMismatch,
    AllocationQuotaReached,
    MobilityForbidden,
    ConnectionAlreadyExists,
    ConnectionFailure,
    InsufficientCapacity,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::UnknownAttribute => 420,
            ErrorCode::AllocationMismatch => 437,
            ErrorCode::StaleNonce => 438,
            ErrorCode::TryAlternate => 300,
            ErrorCode::AddressFamilyNotSupported => 440,
            ErrorCode::WrongCredentials => 441,
            ErrorCode::UnsupportedTransport => 442,
            ErrorCode::PeerAddressFamilyMismatch => 443,
            ErrorCode::AllocationQuotaReached => 486,
            ErrorCode::MobilityForbidden => 405,
            ErrorCode::ConnectionAlreadyExists => 446,
            ErrorCode::ConnectionFailure => 447,
            ErrorCode::InsufficientCapacity => 508,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad Request",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnknownAttribute => "Unknown Attribute",
            ErrorCode::AllocationMismatch => "Allocation Mismatch",
            ErrorCode::StaleNonce => "Stale Nonce",
            ErrorCode::TryAlternate => "Try Alternate",
            ErrorCode::AddressFamilyNotSupported => "Address Family not Supported",
            ErrorCode::WrongCredentials => "Wrong Credentials",
            ErrorCode::UnsupportedTransport => "Unsupported Transport Protocol",
            ErrorCode::PeerAddressFamilyMismatch => "Peer Address Family Mismatch",
            ErrorCode::AllocationQuotaReached => "Allocation Quota Reached",
            ErrorCode::MobilityForbidden => "Mobility Forbidden",
            ErrorCode::ConnectionAlreadyExists => "Connection Already Exists",
            ErrorCode::ConnectionFailure => "Connection Timeout or Failure",
            ErrorCode::InsufficientCapacity => "Insufficient Capacity",
        }
    }
}

/// The TURN server: configuration, credentials, peer policy and the allocation table.
/// Shared by every worker (`&self` everywhere); the table does its own locking.
pub struct Server<R> {
    /// As started: its relay and external IPs never change (allocations carry them).
    config: ServerConfig,
    /// What a reload may change, swapped whole; read once per request, never per packet.
    live: RwLock<Arc<Live>>,
    nonces: NonceMinter,
    table: AllocationTable<R>,
    /// Ports held for EVEN-PORT reservations, by RESERVATION-TOKEN.
    reservations: reserve::Reservations<R>,
    tcp: tcp::TcpConnections,
    /// Set when the process drains: no new allocations, existing ones keep relaying.
    draining: AtomicBool,
    limits: LiveLimits,
    limiters: Limiters,
    /// The limiters' time zero: the first [`Now`] the server saw.
    epoch: OnceLock<Instant>,
    /// Turns of the alternate servers.
    next_alternate: AtomicUsize,
    /// Authentication failures, peer and Allocate refusals (per request, never per packet).
    requests: RequestCounts,
    /// The RFC 5780 addresses when NAT behaviour discovery is on ([`Server::with_rfc5780`]).
    nat: Option<NatAddresses>,
    /// MOBILITY-TICKETs (RFC 8016).
    tickets: mobility::TicketMinter,
}

/// The settings a reload replaces: lifetimes and quotas, credentials, peer policy.
pub(crate) struct Live {
    pub config: ServerConfig,
    pub credentials: Credentials,
    pub policy: PeerPolicy,
}

/// A request that passed authentication.
pub(crate) struct Authenticated<'a> {
    /// USERNAME, or the static user a USERHASH names.
    pub username: std::borrow::Cow<'a, str>,
    pub key: Signer,
}

/// The key responses to an authenticated request are signed with, and how: a request with
/// MESSAGE-INTEGRITY-SHA256 is answered with it, one with MESSAGE-INTEGRITY with that
/// (RFC 8489 §9.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signer {
    pub key: LongTermKey,
    pub sha256: bool,
}

impl Signer {
    fn sign(&self, w: &mut MessageWriter<'_>) {
        if self.sha256 {
            w.integrity_sha256(self.key.as_bytes());
        } else {
            w.integrity(self.key.as_bytes());
        }
    }
}

/// PASSWORD-ALGORITHMS as turnd sends it in every 401/438 with the password-algorithms
/// feature bit (RFC 8489 §14.11): SHA-256 first (preferred), then MD5, no parameters.
pub const PASSWORD_ALGORITHMS: [u8; 8] = [0, 2, 0, 0, 0, 1, 0, 0];
/// The security features turnd's nonces announce (RFC 8489 §9.2).
const NONCE_FEATURES: u32 = FEATURE_PASSWORD_ALGORITHMS | FEATURE_USERNAME_ANONYMITY;

impl<R: Relay> Server<R> {
    pub fn new(config: ServerConfig, credentials: Credentials, nonces: NonceMinter, policy: PeerPolicy) -> Self {
        let limits = LiveLimits::default();
        limits.set(&config.limits);
        let live = RwLock::new(Arc::new(Live { config: config.clone(), credentials, policy }));
        Server {
            config,
            live,
            nonces,
            table: AllocationTable::new(),
            reservations: Default::default(),
            tcp: Default::default(),
            draining: AtomicBool::new(false),
            limits,
            limiters: Limiters::default(),
            epoch: OnceLock::new(),
            next_alternate: AtomicUsize::new(0),
            requests: RequestCounts::default(),
            nat: None,
            tickets: mobility::TicketMinter::new(),
        }
    }

    /// Replaces lifetimes, quotas, credentials and peer policy for the requests that follow
    /// (RFC 8656 leaves running allocations as they are: they keep relaying, and a credential
    /// that is no longer valid is refused at its next Refresh). The relay and external IPs stay
    /// as started.
    pub fn reload(&self, config: ServerConfig, credentials: Credentials, policy: PeerPolicy) {
        self.limits.set(&config.limits);
        let live = Arc::new(Live { config, credentials, policy });
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// Stops taking new allocations (they get 508); existing ones keep relaying.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the live peer policy allows `ip`, read in place: the per-packet check of a peer
    /// at one of the server's own IPs takes no reference to the configuration (an atomic pair
    /// on a count every worker shares).
    fn policy_allows(&self, ip: IpAddr) -> bool {
        self.live.read().unwrap_or_else(|e| e.into_inner()).policy.check(ip).is_ok()
    }

    /// `now` as nanoseconds since the limiters' epoch.
    fn ticks(&self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_init(|| now);
        now.saturating_duration_since(epoch).as_nanos() as u64
    }

    /// Whether the relay's bandwidth in one direction admits `bytes` more now.
    fn capacity_admits(&self, to_peers: bool, now: Instant, bytes: usize) -> bool {
        let rate = self.limits.bps_capacity.load(Ordering::Relaxed);
        let cell = if to_peers { &self.limiters.to_peers } else { &self.limiters.to_clients };
        rate == 0 || cell.admit_bytes(self.ticks(now), bytes, rate)
    }

    /// The allocation table (for the IO shell's relay sockets and for gauges).
    pub fn table(&self) -> &AllocationTable<R> {
        &self.table
    }

    /// What the core has counted since start, and the allocations that exist now.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        counts.allocations = self.table.len();
        self.requests.read_into(&mut counts);
        self.table.read_counts(&mut counts);
        counts
    }

    /// The TCP/TLS connection of a stream client closed: its allocation, if any, ends with it
    /// (RFC 8656 §3.1), and its relay socket closes.
    pub fn client_disconnected(&self, tuple: &FiveTuple) {
        drop(self.table.remove(tuple, Ended::ConnectionClosed));
    }

    /// Handles one datagram (or stream frame) from a client; responses are written into `out`.
    pub fn handle_client<P>(
        &self,
        now: Now,
        tuple: &FiveTuple,
        packet: &[u8],
        relays: &mut P,
        out: &mut [u8],
    ) -> Outcome
    where
        P: RelayProvider<Relay = R>,
    {
        match classify(packet) {
            Framing::ChannelData => self.on_channel_data(now, tuple, packet, out),
            Framing::Stun => match Message::parse(packet) {
                Ok(msg) => self.on_message(now, tuple, &msg, relays, out),
                Err(_) => Outcome::Dropped(Discard::Malformed),
            },
            Framing::Other => Outcome::Dropped(Discard::Malformed),
        }
    }

    /// Ends expired allocations (closing their relays) and reservations (freeing their ports),
    /// and prunes permissions and channels.
    pub fn expire(&self, now: Instant) -> usize {
        self.tcp.expire(now);
        self.reservations.expire(now);
        self.table.expire(now)
    }

    fn on_message<P>(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, relays: &mut P, out: &mut [u8]) -> Outcome
    where
        P: RelayProvider<Relay = R>,
    {
        match msg.class() {
            Class::Request => {}
            Class::Indication if msg.method() == Method::SEND => return self.on_send(now, tuple, msg, out),
            // Binding indications are keepalives; responses are not for a server.
            _ => return Outcome::Dropped(Discard::NotARequest),
        }
        // Over UDP the source may be spoofed: the answer gets at most the reflection budget.
        let out = match tuple.transport {
            Transport::Udp => {
                let binding_answer = binding::answer_len(tuple, msg, self.nat_for(tuple).is_some());
                let budget = reflection_budget(msg, binding_answer).min(out.len());
                &mut out[..budget]
            }
            Transport::Tcp | Transport::Tls => out,
        };
        //= https://www.rfc-editor.org/rfc/rfc8489#section-6.3
        // Unknown comprehension-required attributes are looked at once authentication is done:
        // a request without valid credentials is challenged first, and the 420 to one with
        // them is signed, since a client over UDP discards an unsigned answer to a signed
        // request (RFC 8489 §9.2.5). Binding, and methods turnd does not know, authenticate
        // nothing.
        if !msg.unknown().is_empty() {
            let key = match msg.method() {
                Method::ALLOCATE
                | Method::REFRESH
                | Method::CREATE_PERMISSION
                | Method::CHANNEL_BIND
                | Method::CONNECT
                | Method::CONNECTION_BIND => match self.authenticate(now, tuple, msg, out) {
                    Ok(auth) => Some(auth.key),
                    Err(outcome) => return outcome,
                },
                _ => None,
            };
            return self.error(msg, out, ErrorCode::UnknownAttribute, key.as_ref());
        }
        match msg.method() {
            Method::BINDING => self.on_binding(tuple, msg, out),
            Method::ALLOCATE => {
                let rate = self.limits.allocate_rate.load(Ordering::Relaxed);
                if !self.limiters.allocates.admit(tuple.client.ip(), self.ticks(now.mono), rate) {
                    return Outcome::Dropped(Discard::RateLimited);
                }
                self.on_allocate(now, tuple, msg, relays, out)
            }
            Method::REFRESH => self.on_refresh(now, tuple, msg, out),
            Method::CREATE_PERMISSION => self.on_create_permission(now, tuple, msg, out),
            Method::CHANNEL_BIND => self.on_channel_bind(now, tuple, msg, out),
            Method::CONNECT => self.on_connect(now, tuple, msg, out),
            Method::CONNECTION_BIND => self.on_connection_bind(now, tuple, msg, out),
            _ => self.error(msg, out, ErrorCode::BadRequest, None),
        }
    }

    /// Long-term credential check (RFC 8489 §9.2.4). `Err` carries the error response to send.
    pub(crate) fn authenticate<'m>(
        &self,
        now: Now,
        tuple: &FiveTuple,
        msg: &Message<'m>,
        out: &mut [u8],
    ) -> Result<Authenticated<'m>, Outcome> {
        let sha256 = msg.has(attr::MESSAGE_INTEGRITY_SHA256);
        if !msg.has(attr::MESSAGE_INTEGRITY) && !sha256 {
            self.requests.auth_failure(AuthFailure::MissingCredentials);
            return Err(self.challenge(now, tuple, msg, out, ErrorCode::Unauthorized));
        }
        let live = self.live();
        //= https://www.rfc-editor.org/rfc/rfc8489#section-14.4
        // USERHASH stands in for USERNAME (static users only: the hashes are precomputed).
        let username: Option<std::borrow::Cow<'m, str>> = match (msg.text(attr::USERNAME), msg.attr(attr::USERHASH)) {
            (Some(name), _) => name.ok().map(Into::into),
            (None, Some(hash)) => match live.credentials.user_by_hash(hash) {
                Some(name) => Some(name.to_owned().into()),
                // A USERHASH of no static user.
                None => return Err(self.auth_failed(now, tuple, msg, out, crate::auth::AuthError::UnknownUser)),
            },
            (None, None) => None,
        };
        let (Some(username), Some(Ok(realm)), Some(nonce)) = (username, msg.text(attr::REALM), msg.attr(attr::NONCE))
        else {
            self.requests.auth_failure(AuthFailure::MissingAttributes);
            return Err(self.error(msg, out, ErrorCode::BadRequest, None));
        };
        //= https://www.rfc-editor.org/rfc/rfc8489#section-14.3
        // USERNAME is fewer than 509 bytes.
        if username.len() > MAX_USERNAME_LEN {
            self.requests.auth_failure(AuthFailure::MissingAttributes);
            return Err(self.error(msg, out, ErrorCode::BadRequest, None));
        }
        let features = match self.nonces.check_features(nonce, now.unix, tuple.client.ip()) {
            (NonceCheck::Valid, features) => features,
            (check, _) => {
                let why = if check == NonceCheck::Stale { AuthFailure::StaleNonce } else { AuthFailure::BadNonce };
                self.requests.auth_failure(why);
                return Err(self.challenge(now, tuple, msg, out, ErrorCode::StaleNonce));
            }
        };
        if realm != live.credentials.realm() {
            self.requests.auth_failure(AuthFailure::WrongRealm);
            return Err(self.challenge(now, tuple, msg, out, ErrorCode::Unauthorized));
        }
        let Some(algorithm) = password_algorithm(msg, features) else {
            // Bid-down protection: counted with the other malformed credentials.
            self.requests.auth_failure(AuthFailure::MissingAttributes);
            return Err(self.error(msg, out, ErrorCode::BadRequest, None));
        };
        let verify = |key: &[u8]| if sha256 { msg.check_integrity_sha256(key) } else { msg.check_integrity(key) };
        match live.credentials.find_key_for(&username, algorithm, now.unix, verify) {
            Ok(key) => Ok(Authenticated { username, key: Signer { key, sha256 } }),
            Err(e) => Err(self.auth_failed(now, tuple, msg, out, e)),
        }
    }

    /// Counts and logs a failed credential check and answers it with a 401.
    fn auth_failed(
        &self,
        now: Now,
        tuple: &FiveTuple,
        msg: &Message<'_>,
        out: &mut [u8],
        e: crate::auth::AuthError,
    ) -> Outcome {
        self.requests.auth_failure(e.into());
        let outcome = self.challenge(now, tuple, msg, out, ErrorCode::Unauthorized);
        // One line per failed credential check, at the default level: fail2ban's filter
        // (systemd/fail2ban/) matches it. Missing-credential challenges are not failures,
        // and a source over its 401 rate gets neither an answer nor more lines.
        if outcome != Outcome::Dropped(Discard::RateLimited) {
            tracing::info!(ip = %tuple.client.ip(), reason = %e, "authentication failed");
        }
        outcome
    }

    /// 401 or 438 with REALM, a fresh NONCE with the RFC 8489 cookie and PASSWORD-ALGORITHMS,
    /// no MESSAGE-INTEGRITY; nothing when the source is over its challenge rate. When even
    /// without its reason phrase that is over a UDP request's reflection budget, the plain
    /// 16-character nonce without PASSWORD-ALGORITHMS (RFC 5389's challenge) is tried: the
    /// client then authenticates with MD5 keys, which the nonce's MAC binds it to.
    fn challenge(&self, now: Now, tuple: &FiveTuple, msg: &Message<'_>, out: &mut [u8], code: ErrorCode) -> Outcome {
        let rate = self.limits.challenge_rate.load(Ordering::Relaxed);
        if !self.limiters.challenges.admit(tuple.client.ip(), self.ticks(now.mono), rate) {
            return Outcome::Dropped(Discard::RateLimited);
        }
        let live = self.live();
        let realm = live.credentials.realm();
        if live.config.rfc8489_security {
            let mut nonce = [0u8; NONCE_MAX];
            let nonce = self.nonces.mint_with(now.unix, tuple.client.ip(), NONCE_FEATURES, &mut nonce);
            let outcome = self.respond_error(msg, out, code, None, |w| {
                w.attr(attr::REALM, realm.as_bytes())
                    .attr(attr::NONCE, nonce.as_bytes())
                    .attr(attr::PASSWORD_ALGORITHMS, &PASSWORD_ALGORITHMS);
            });
            if outcome != Outcome::Dropped(Discard::Amplification) {
                return outcome;
            }
        }
        let mut nonce = [0u8; NONCE_MAX];
        let nonce = self.nonces.mint_with(now.unix, tuple.client.ip(), 0, &mut nonce);
        self.respond_error(msg, out, code, None, |w| {
            w.attr(attr::REALM, realm.as_bytes()).attr(attr::NONCE, nonce.as_bytes());
        })
    }

    /// An error response; with `key` it carries MESSAGE-INTEGRITY (authenticated requests).
    pub(crate) fn error(&self, msg: &Message<'_>, out: &mut [u8], code: ErrorCode, key: Option<&Signer>) -> Outcome {
        self.respond_error(msg, out, code, key, |w| {
            if code == ErrorCode::UnknownAttribute {
                w.unknown_attributes(msg.unknown());
            }
        })
    }

    fn respond_error(
        &self,
        msg: &Message<'_>,
        out: &mut [u8],
        code: ErrorCode,
        key: Option<&Signer>,
        attrs: impl Fn(&mut MessageWriter<'_>),
    ) -> Outcome {
        let kind = MessageType::new(msg.method(), Class::Error);
        let outcome = self.write(msg, kind, out, key, |w| {
            w.error_code(code.code(), code.reason());
            attrs(w);
        });
        if outcome != Outcome::Dropped(Discard::Amplification) {
            return outcome;
        }
        // Over the reflection budget of a small unauthenticated request: the reason phrase is
        // optional (RFC 8489 §14.8), so try once more without it.
        self.write(msg, kind, out, key, |w| {
            w.error_code(code.code(), "");
            attrs(w);
        })
    }

    /// A success response to `msg` with the attributes `attrs` writes.
    pub(crate) fn respond(
        &self,
        msg: &Message<'_>,
        out: &mut [u8],
        key: Option<&Signer>,
        attrs: impl FnOnce(&mut MessageWriter<'_>),
    ) -> Outcome {
        let kind = MessageType::new(msg.method(), Class::Success);
        self.write(msg, kind, out, key, attrs)
    }

    fn write(
        &self,
        msg: &Message<'_>,
        kind: MessageType,
        out: &mut [u8],
        key: Option<&Signer>,
        attrs: impl FnOnce(&mut MessageWriter<'_>),
    ) -> Outcome {
        let mut w = MessageWriter::new(out, kind, msg.transaction_id());
        attrs(&mut w);
        if let Some(key) = key {
            key.sign(&mut w);
        }
        // Answer FINGERPRINT with FINGERPRINT (RFC 8489 §7.3: useful to multiplexing clients).
        if msg.has(attr::FINGERPRINT) {
            w.fingerprint();
        }
        match w.finish() {
            Ok(len) => Outcome::Reply(len),
            // Only the reflection budget of a UDP request makes `out` this short: the IO shell
            // passes buffers of at least 1500 bytes, far above any response.
            Err(_) => Outcome::Dropped(Discard::Amplification),
        }
    }

    /// Whether `ip` is one of turnd's own relay IPs, in its private (relay-ip) or advertised
    /// (external-ip) form, of either family; IPv4-embedding IPv6 forms are compared as IPv4.
    fn is_own_ip(&self, ip: IpAddr) -> bool {
        let ip = policy::canonical(ip);
        let own = |r: RelayAddr| policy::canonical(r.ip) == ip || r.external.map(policy::canonical) == Some(ip);
        self.config.relays.iter().any(own)
    }

    /// Whether `addr` (canonical) is the relayed address of a live allocation of this server;
    /// with `tcp_only`, of one with a TCP relay (RFC 6062): the port index knows family and port,
    /// not which transport listens there.
    fn is_own_relayed_address(&self, addr: SocketAddr, tcp_only: bool) -> bool {
        self.is_own_ip(addr.ip())
            && self
                .table
                .by_relayed(addr)
                .and_then(|id| self.table.with_id(id, |a| a.tcp || !tcp_only))
                .unwrap_or(false)
    }
}

/// The largest answer a UDP request may get: 2x its size for Binding, 3x for any other, so a
/// spoofed source gains little by reflection. A Binding answer always has room for its
/// mandatory attributes, `binding_answer` bytes ([`binding::answer_len`]): an IPv6
/// XOR-MAPPED-ADDRESS makes the answer to a bare 20-byte request 44 bytes (2.2x), the least
/// RFC 8489 allows; with RFC 5780 on, RESPONSE-ORIGIN and OTHER-ADDRESS make it 56 bytes over
/// IPv4 (2.8x) and 92 over IPv6 (4.6x), the price of the opt-in.
fn reflection_budget(msg: &Message<'_>, binding_answer: usize) -> usize {
    const BARE_IPV6_BINDING_ANSWER: usize = 20 + 4 + 20;
    let len = msg.as_bytes().len();
    if msg.method() == Method::BINDING {
        (2 * len).max(BARE_IPV6_BINDING_ANSWER).max(binding_answer)
    } else {
        3 * len
    }
}

/// The password algorithm of a request whose nonce carried `features` (RFC 8489 §9.2.4), or
/// `None` for a bid-down attempt (400). With the password-algorithms bit: neither
/// PASSWORD-ALGORITHM nor PASSWORD-ALGORITHMS means MD5 (RFC 5389 clients echo the nonce and
/// nothing else); otherwise both must be present, PASSWORD-ALGORITHMS exactly as sent and
/// PASSWORD-ALGORITHM one of its entries. Without the bit, MD5.
fn password_algorithm(msg: &Message<'_>, features: u32) -> Option<PasswordAlgorithm> {
    if features & FEATURE_PASSWORD_ALGORITHMS == 0 {
        return Some(PasswordAlgorithm::Md5);
    }
    match (msg.attr(attr::PASSWORD_ALGORITHM), msg.attr(attr::PASSWORD_ALGORITHMS)) {
        (None, None) => Some(PasswordAlgorithm::Md5),
        (Some(chosen), Some(list)) if list == PASSWORD_ALGORITHMS => {
            let chosen = attr::decode_password_algorithm(chosen).ok()?;
            if !attr::lists_password_algorithm(list, chosen) {
                return None;
            }
            match chosen {
                attr::ALGORITHM_MD5 => Some(PasswordAlgorithm::Md5),
                attr::ALGORITHM_SHA256 => Some(PasswordAlgorithm::Sha256),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The canonical form of a peer address (IPv4-mapped and -compatible IPv6 become IPv4).
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(policy::canonical(addr.ip()), addr.port())
}

#[cfg(test)]
mod tests;
