//! The IO shell: sockets, threads, runtimes and the clock. One worker thread per core, each
//! with its own current-thread tokio runtime and its own `SO_REUSEPORT` socket per listening
//! address; all protocol decisions are the sans-IO `turn::Server`'s.
//! Depends on `turn`, `auth`, `config`, and `api`, which it starts.

mod coalesce;
pub mod gro;
pub mod gso;
mod relay;
mod stream;
mod tls;
mod worker;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use crate::api;
use crate::auth::{self, Credentials, NonceMinter};
use crate::config::{ApiConfig, Config, Rfc5780, UserSecret};
use crate::turn::policy::PeerPolicy;
use crate::turn::{NatAddresses, Now, Server, ServerConfig};
pub use relay::{PortPool, RelaySocket};
pub use stream::StreamSettings;
pub use tls::{Certificates, TlsError};

use crate::stats::Stats;
use worker::{Shared, Sockets};

/// Socket buffer size asked for on listeners: small datagrams cost ~1.3 KB of kernel accounting
/// each on loopback, so the defaults overflow in bursts. The kernel caps it at rmem_max/wmem_max.
pub const LISTENER_BUFFER: usize = 4 << 20;

/// Reads the configuration again for SIGHUP (the CLI re-reads the same file with the same
/// flags, and applies the log level itself); an error keeps the running configuration.
pub type Reload = Box<dyn FnMut() -> Result<Config, String>>;

/// Runs the daemon until SIGINT or SIGTERM (after draining), or until a worker fails.
pub fn run(config: Config, mut reload: Reload) -> std::io::Result<()> {
    raise_fd_limit();
    let streams = stream_settings(&config);
    // Validation guarantees cert and key when there is a TLS listener.
    let tls = match (&config.cert, &config.key, streams.tls_listen.is_empty()) {
        (Some(cert), Some(key), false) => {
            Some(Arc::new(Certificates::load(cert, key).map_err(|e| std::io::Error::other(e.to_string()))?))
        }
        _ => None,
    };
    let (sockets, bound, nat) = bind_listeners(&config.listen, config.rfc5780.as_ref(), &streams, config.workers)?;
    let mut server = build_server(&config);
    if let Some(nat) = nat {
        let [primary, primary_ip_alternate_port, alternate_ip_primary_port, alternate] = nat.sockets();
        tracing::info!(
            %primary, %primary_ip_alternate_port, %alternate_ip_primary_port, %alternate,
            "RFC 5780 NAT behaviour discovery: Binding over UDP on these four addresses"
        );
        server = server.with_rfc5780(nat);
    }
    let shared = Arc::new(Shared {
        server: Arc::new(server),
        ports: Arc::new(PortPool::new(
            &config.relays().iter().map(|r| r.ip).collect::<Vec<_>>(),
            config.min_port,
            config.max_port,
        )),
        stats: Arc::new(Stats::new(config.workers)),
        connections: Arc::default(),
        tls: tls.as_ref().map(Certificates::server_config),
        streams,
        parked: Default::default(),
        heartbeats: (0..config.workers).map(|_| Default::default()).collect(),
        started: now().mono,
        coalesce: config.receive_coalesce,
    });
    // The credentials API binds now, so a busy port stops turnd before it says ready.
    let ready = api::Readiness::default();
    let listeners = api::Listeners { udp: bound.udp.clone(), tcp: bound.tcp.clone(), tls: bound.tls.clone() };
    let (server, stats) = (Arc::clone(&shared.server), Arc::clone(&shared.stats));
    let api = api::start(&config, server, stats, ready.clone(), &listeners)?;
    tracing::info!(
        listen = %bound,
        relay_ip = %config.relay_ip,
        external_ip = ?config.external_ip,
        second_relay = ?config.second_relay,
        ports = %format_args!("{}-{}", config.min_port, config.max_port),
        workers = config.workers,
        realm = %config.realm,
        "turnd starting"
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Error>();
    for (index, sockets) in sockets.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let failed = failed_tx.clone();
        std::thread::Builder::new().name(format!("turnd-worker-{index}")).spawn(move || {
            // A worker that stops would leave its SO_REUSEPORT sockets bound, and the kernel
            // would keep hashing clients to them: the whole process stops instead. (A worker
            // stops too when one of its listener tasks does, for the same reason.)
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker::run(index, shared, sockets)));
            let error = match result {
                Ok(Ok(())) => std::io::Error::other(format!("worker {index} stopped")),
                Ok(Err(e)) => e,
                Err(_) => std::io::Error::other(format!("worker {index} panicked")),
            };
            let _ = failed.send(error);
        })?;
    }
    // SIGTERM, SIGINT and SIGHUP are handled before anything announces readiness: one sent right
    // after the announcement drains or reloads instead of killing the process (the default action).
    // Each is one listener for the whole run: every runtime's driver (the workers' too) delivers
    // signals, and one that lands while no listener exists is lost, so a listener made afresh
    // in each `select!` (as `ctrl_c()` is) could miss the second signal of a drain.
    let (mut stop, mut hup) = {
        use tokio::signal::unix::{signal, SignalKind};
        let _runtime = runtime.enter();
        let stop = Stop { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? };
        (stop, signal(SignalKind::hangup())?)
    };
    // `/readyz` turns ready before anything announces readiness, so whoever acts on the
    // announcement (systemd, a test harness, a load balancer) never sees "not ready" after it.
    ready.set(true);
    // Under systemd (Type=notify): every listener is bound and the workers are starting.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    announce_ready(&bound, api.as_ref().map(api::Api::addr))?;

    runtime.block_on(async {
        // systemd's watchdog (WatchdogSec=): pinged at half its interval, and only while every
        // worker's heartbeat is fresh, so a stuck worker gets the service restarted.
        let watchdog = sd_notify::watchdog_enabled();
        let mut status = tokio::time::interval(watchdog.map_or(STATUS_INTERVAL, |d| d / 2));
        let mut running = config;
        let result = loop {
            tokio::select! {
                _ = status.tick() => notify_status(&shared, watchdog),
                name = stop.recv() => {
                    tracing::info!("{name}: stopping");
                    ready.set(false);
                    break drain(&shared, running.drain_time, &mut stop).await;
                }
                _ = hup.recv() => {
                    reload_certificates(tls.as_deref());
                    reload_config(&shared, api.as_ref(), &mut running, &mut reload);
                }
                Some(e) = failed_rx.recv() => {
                    tracing::error!(error = %e, "a worker failed");
                    break Err(e);
                }
            }
        };
        ready.set(false);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        result
    })
}

/// How often STATUS= goes to systemd when there is no watchdog to pace it.
const STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// STATUS= with the active allocations, and WATCHDOG=1 when every worker is alive.
fn notify_status(shared: &Shared, watchdog: Option<std::time::Duration>) {
    let status = format!("{} allocations active", shared.server.table().len());
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
    if let Some(interval) = watchdog {
        match shared.stalled_worker(interval / 2) {
            None => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            Some(worker) => tracing::error!(worker, "worker not responding: watchdog not notified"),
        }
    }
}

/// Graceful stop (STOPPING=1): no new allocations (508), relaying for the existing ones until
/// the last one ends or `drain_time` seconds pass; another SIGINT/SIGTERM stops at once.
async fn drain(shared: &Shared, drain_time: u64, stop: &mut Stop) -> std::io::Result<()> {
    shared.server.drain();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(drain_time);
    let mut check = tokio::time::interval(DRAIN_CHECK);
    tracing::info!(allocations = shared.server.table().len(), drain_time, "draining");
    loop {
        if shared.server.table().is_empty() {
            tracing::info!("drained: the last allocation has ended");
            return Ok(());
        }
        tokio::select! {
            _ = check.tick() => {}
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!(allocations = shared.server.table().len(), "drain time over: stopping");
                return Ok(());
            }
            name = stop.recv() => {
                tracing::info!(allocations = shared.server.table().len(), "{name} while draining: stopping now");
                return Ok(());
            }
        }
    }
}

/// The two signals that stop the daemon, each with one listener that lives as long as the run.
struct Stop {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Stop {
    /// Waits for SIGTERM or SIGINT and names the one that came.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// How often a drain looks whether the last allocation has ended.
const DRAIN_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// SIGHUP: reads the configuration again and applies what can change while running (secrets,
/// users, realm, peer policy, lifetimes, quotas, the credentials API's keys and JWT settings;
/// the log level is the CLI's). A configuration with an error is refused whole; keys that need
/// a restart are named and left as they were.
fn reload_config(shared: &Shared, api: Option<&api::Api>, running: &mut Config, reload: &mut Reload) {
    let refused = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "SIGHUP: configuration not reloaded; the running one stays");
    };
    let new = match reload() {
        Ok(new) => new,
        Err(e) => return refused(&e),
    };
    let (applied, restart_only) = settle(running, new);
    // The API first: it is the one part that can still fail, and then nothing has changed.
    if let Err(e) = api.map_or(Ok(()), |api| api.reload(&applied)) {
        return refused(&format!("credentials API: {e}"));
    }
    for key in restart_only {
        tracing::warn!(key, "SIGHUP: this key changes only with a restart; the running value stays");
    }
    let (core, credentials, policy) = server_settings(&applied);
    shared.server.reload(core, credentials, policy);
    let api_keys = applied.api.as_ref().map(|a| a.key_hashes.len());
    tracing::info!(
        secrets = applied.secrets.len(),
        users = applied.users.len(),
        api_keys,
        "SIGHUP: configuration reloaded"
    );
    *running = applied;
}

/// `new` with every key that changes only with a restart set back to its running value, so
/// that the next reload compares with what really runs; and the keys that were set back.
fn settle(old: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let api_restart = |a: &ApiConfig| (a.listen, a.rate_per_ip, a.rate_per_user, a.cors_origins.clone(), a.metrics);
    let restart_only = [
        ("server.listen", old.listen != new.listen),
        ("server.relay-ip", old.relays().iter().map(|r| r.ip).ne(new.relays().iter().map(|r| r.ip))),
        ("server.external-ip", old.relays().iter().map(|r| r.external).ne(new.relays().iter().map(|r| r.external))),
        ("server.min-port/max-port", (old.min_port, old.max_port) != (new.min_port, new.max_port)),
        ("server.workers", old.workers != new.workers),
        ("server.rfc5780/rfc5780-alternate", old.rfc5780 != new.rfc5780),
        ("server.tcp", old.tcp != new.tcp),
        ("server.tls-listen", old.tls_listen != new.tls_listen),
        ("server.cert/key", (&old.cert, &old.key) != (&new.cert, &new.key)),
        ("auth.nonce-lifetime", old.nonce_lifetime != new.nonce_lifetime),
        ("limits (connections and timeouts)", stream_settings(old) != stream_settings(&new)),
        ("[api] (enabling or disabling the credentials API)", old.api.is_some() != new.api.is_some()),
        (
            "api.listen/rate-per-ip/rate-per-user/cors-origins/metrics",
            matches!((&old.api, &new.api), (Some(o), Some(n)) if api_restart(o) != api_restart(n)),
        ),
    ];
    new.listen.clone_from(&old.listen);
    new.relay_ip = old.relay_ip;
    new.external_ip = old.external_ip;
    new.second_relay = old.second_relay;
    (new.min_port, new.max_port, new.workers) = (old.min_port, old.max_port, old.workers);
    new.rfc5780 = old.rfc5780;
    (new.tcp, new.nonce_lifetime) = (old.tcp, old.nonce_lifetime);
    new.tls_listen.clone_from(&old.tls_listen);
    (new.cert, new.key) = (old.cert.clone(), old.key.clone());
    (new.first_message_timeout, new.tls_handshake_timeout) = (old.first_message_timeout, old.tls_handshake_timeout);
    new.idle_timeout = old.idle_timeout;
    (new.max_connections, new.max_connections_per_ip) = (old.max_connections, old.max_connections_per_ip);
    match (&old.api, &mut new.api) {
        (Some(old), Some(new)) => {
            new.listen = old.listen;
            (new.rate_per_ip, new.rate_per_user, new.metrics) = (old.rate_per_ip, old.rate_per_user, old.metrics);
            new.cors_origins.clone_from(&old.cors_origins);
        }
        (old_api, new_api) => new_api.clone_from(old_api),
    }
    let changed = restart_only.iter().filter(|(_, changed)| *changed).map(|(key, _)| *key).collect();
    (new, changed)
}

/// SIGHUP: new TLS handshakes get the certificate now on disk; open connections keep theirs.
/// A broken new certificate leaves the old one in place.
fn reload_certificates(tls: Option<&Certificates>) {
    match tls.map(Certificates::reload) {
        None => tracing::info!("SIGHUP: no TLS certificate to reload"),
        Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
        Some(Err(e)) => tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; the old one stays in use"),
    }
}

/// Raises the soft limit on open files to the hard limit: every TCP/TLS client and every relay
/// is a descriptor, and the usual soft limit of 1024 is far below what a relay needs.
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The sans-IO server with credentials, nonces and policy from the config.
pub fn build_server(config: &Config) -> Server<RelaySocket> {
    let (core, credentials, policy) = server_settings(config);
    Server::new(core, credentials, NonceMinter::new(config.nonce_lifetime), policy)
}

/// The parts of the config the protocol core takes (and a reload replaces); public for tests
/// and benches that drive the core without sockets.
pub fn server_settings(config: &Config) -> (ServerConfig, Credentials, PeerPolicy) {
    let users = config
        .users
        .iter()
        .map(|u| {
            let secret = match &u.secret {
                UserSecret::Password(p) => auth::UserSecret::Password(p.clone()),
                UserSecret::Key(k) => auth::UserSecret::Key(*k),
            };
            (u.name.clone(), secret)
        })
        .collect();
    let credentials = Credentials::new(&config.realm, config.secrets.clone(), config.rest_separator, users);
    let core = ServerConfig {
        relays: config.relays(),
        default_family: config.default_family,
        default_lifetime: std::time::Duration::from_secs(config.default_lifetime),
        max_lifetime: std::time::Duration::from_secs(config.max_lifetime),
        user_quota: config.user_quota,
        total_quota: config.total_quota,
        limits: config.limits,
        alternates: config.alternate_servers.clone(),
        redirect_all: config.redirect_all,
        rfc8489_security: config.rfc8489_security,
        mobility: config.mobility,
    };
    let policy = PeerPolicy::new(config.allowed_peers.clone(), config.denied_peers.clone());
    (core, credentials, policy)
}

/// Binds each worker's own `SO_REUSEPORT` sockets: UDP on every listening address, TCP on the
/// same addresses when enabled, TLS on the TLS addresses. A port 0 is resolved by the first bind
/// and reused by the other workers (and by TCP beside UDP). With RFC 5780 the first listening
/// address is bound together with its three other RFC 5780 sockets (UDP; TCP too for those
/// that are listening addresses), whose addresses are returned.
fn bind_listeners(
    listen: &[SocketAddr],
    rfc5780: Option<&Rfc5780>,
    streams: &StreamSettings,
    workers: usize,
) -> std::io::Result<(Vec<Sockets>, Bound, Option<NatAddresses>)> {
    let mut by_worker: Vec<Sockets> =
        (0..workers).map(|_| Sockets { udp: Vec::new(), tcp: Vec::new(), tls: Vec::new() }).collect();
    let mut bound = Bound::default();
    let mut nat = None;
    for (index, addr) in listen.iter().enumerate() {
        if addr.port() != 0 && nat.is_some_and(|n: NatAddresses| n.sockets().contains(addr)) {
            // Bound already, as one of the RFC 5780 sockets.
            bound.push(*addr, streams.tcp);
            continue;
        }
        let rfc5780 = rfc5780.filter(|_| index == 0);
        // Port 0: UDP picks a free port and TCP must take the same number, which something else
        // may hold over TCP (or, with RFC 5780, one of the other three sockets needs a port that
        // is taken); then it is all bound again on another port (bounded).
        let attempts = if addr.port() == 0 { PORT_ZERO_ATTEMPTS } else { 1 };
        let mut result = Err(std::io::Error::other("not bound"));
        for _ in 0..attempts {
            result = match rfc5780 {
                Some(rfc5780) => bind_rfc5780(rfc5780, listen, streams.tcp, workers).map(|(pairs, n)| {
                    nat = Some(n);
                    pairs
                }),
                None => bind_pair(*addr, streams.tcp, workers).map(|pair| vec![pair]),
            };
            if result.is_ok() {
                break;
            }
        }
        let pairs = result?;
        // The first pair is `addr` itself, its port resolved.
        bound.push(pairs.first().map_or(*addr, |pair| pair.2), streams.tcp);
        for (udp, tcp, _) in pairs {
            let mut tcp = tcp.into_iter();
            for (sockets, udp) in by_worker.iter_mut().zip(udp) {
                sockets.udp.push(udp);
                sockets.tcp.extend(tcp.next());
            }
        }
    }
    for addr in &streams.tls_listen {
        let mut actual = *addr;
        for sockets in by_worker.iter_mut() {
            let listener = stream::tcp_listener(actual).map_err(|e| listen_error("tls", actual, e))?;
            actual = listener.local_addr()?;
            sockets.tls.push(listener);
        }
        bound.tls.push(actual);
    }
    Ok((by_worker, bound, nat))
}

/// The four RFC 5780 sockets of each worker, the primary (the first listening address) first:
/// UDP, and TCP beside it where the address is a listening address. All or none.
fn bind_rfc5780(rfc5780: &Rfc5780, listen: &[SocketAddr], tcp: bool, workers: usize) -> BoundRfc5780 {
    let primary = bind_pair(rfc5780.primary, tcp, workers)?;
    let nat = rfc5780.resolve(primary.2.port()).ok_or_else(|| {
        let reason = format!("RFC 5780: no alternate port for primary port {}", primary.2.port());
        std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)
    })?;
    let mut pairs = vec![primary];
    for addr in &nat.sockets()[1..] {
        pairs.push(bind_pair(*addr, tcp && listen.contains(addr), workers)?);
    }
    Ok((pairs, nat))
}

/// Each worker's UDP sockets, TCP listeners and the address, for each RFC 5780 socket.
type BoundRfc5780 = std::io::Result<(Vec<BoundPair>, NatAddresses)>;
type BoundPair = (Vec<UdpSocket>, Vec<std::net::TcpListener>, SocketAddr);

/// A bind error that names what could not be bound.
fn listen_error(kind: &str, addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {kind} {addr}: {e}"))
}

/// Tries with a fresh port 0 this many times when TCP cannot take the port UDP got.
const PORT_ZERO_ATTEMPTS: usize = 32;

/// One UDP socket per worker on `addr` (port 0 resolved by the first), and as many TCP
/// listeners on the same port when `tcp`; all or none.
fn bind_pair(addr: SocketAddr, tcp: bool, workers: usize) -> std::io::Result<BoundPair> {
    let mut actual = addr;
    let mut udp = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = listener_socket(actual).map_err(|e| listen_error("udp", actual, e))?;
        actual = socket.local_addr()?;
        udp.push(socket);
    }
    let mut listeners = Vec::new();
    if tcp {
        for _ in 0..workers {
            listeners.push(stream::tcp_listener(actual).map_err(|e| listen_error("tcp", actual, e))?);
        }
    }
    Ok((udp, listeners, actual))
}

/// The addresses turnd listens on, by kind.
#[derive(Debug, Default)]
struct Bound {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
}

impl Bound {
    /// A listening address: UDP, and TCP when `tcp`.
    fn push(&mut self, addr: SocketAddr, tcp: bool) {
        self.udp.push(addr);
        if tcp {
            self.tcp.push(addr);
        }
    }
}

impl std::fmt::Display for Bound {
    /// `udp=ADDR tcp=ADDR tls=ADDR ...`, the form of the ready line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sep = "";
        for (kind, addrs) in [("udp", &self.udp), ("tcp", &self.tcp), ("tls", &self.tls)] {
            for addr in addrs {
                write!(f, "{sep}{kind}={addr}")?;
                sep = " ";
            }
        }
        Ok(())
    }
}

fn listener_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(LISTENER_BUFFER);
    let _ = socket.set_send_buffer_size(LISTENER_BUFFER);
    socket.set_nonblocking(true)?;
    // A client's burst (a video frame's ChannelData) is read in one receive.
    gro::enable(&socket);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Tells whoever started turnd that every listener is bound: one stdout line
/// `ready udp=ADDR tcp=ADDR ... [api=ADDR]` (tests and scripts wait for it).
fn announce_ready(bound: &Bound, api: Option<SocketAddr>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match api {
        Some(api) => writeln!(stdout, "ready {bound} api={api}")?,
        None => writeln!(stdout, "ready {bound}")?,
    }
    stdout.flush()
}

/// TCP/TLS settings from the config.
fn stream_settings(config: &Config) -> StreamSettings {
    StreamSettings {
        tcp: config.tcp,
        tls_listen: config.tls_listen.clone(),
        first_message_timeout: std::time::Duration::from_secs(config.first_message_timeout),
        tls_handshake_timeout: std::time::Duration::from_secs(config.tls_handshake_timeout),
        idle_timeout: std::time::Duration::from_secs(config.idle_timeout),
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
    }
}

/// The clock, read once per batch of packets. The IO shell is the only place that reads it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> Now {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Now { mono: mono(), unix }
}

/// The monotonic clock alone, for timing in the IO shell (one `clock_gettime`, where [`now`]
/// also reads the wall clock).
#[allow(clippy::disallowed_methods)]
pub(crate) fn mono() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `[api]` table listening on `listen`, then `extra` keys of it.
    fn config(listen: &str, extra: &str) -> Config {
        let text = format!(
            "[auth]\nsecrets = ['s']\n[api]\nlisten = '{listen}'\nkeys = ['{}']\n{extra}",
            crate::config::api_key_entry("first-api-key-0123456789")
        );
        Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn settle_keeps_restart_only_keys_and_names_them() {
        let old = config("127.0.0.1:0", "");
        let new = config(
            "127.0.0.1:9",
            "rate-per-ip = 5\ndefault-ttl = 600\n[api.jwt]\nsecret = '0123456789abcdef0123456789abcdef'\n",
        );
        let (applied, changed) = settle(&old, new.clone());
        assert_eq!(changed, ["api.listen/rate-per-ip/rate-per-user/cors-origins/metrics"]);
        let (running, applied) = (old.api.as_ref().unwrap(), applied.api.as_ref().unwrap());
        assert_eq!((applied.listen, applied.rate_per_ip), (running.listen, running.rate_per_ip));
        // What a reload changes is taken.
        assert_eq!((applied.default_ttl, &applied.jwt), (600, &new.api.as_ref().unwrap().jwt));
        // Enabling or disabling the API needs a restart: the running state stays.
        let without = Config::parse("[auth]\nsecrets = ['t']\n", "t.toml").unwrap();
        let (applied, changed) = settle(&old, without.clone());
        assert_eq!((applied.api, applied.secrets), (old.api.clone(), vec!["t".to_owned()]));
        assert_eq!(changed, ["[api] (enabling or disabling the credentials API)"]);
        let (applied, _) = settle(&without, old.clone());
        assert_eq!(applied.api, None);
        // Nothing changed, nothing named.
        assert!(settle(&old, old.clone()).1.is_empty());
    }
}
