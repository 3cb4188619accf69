//! The IO shell: sockets, threads, runtimes and the clock. One worker thread per core, each
//! with its own current-thread tokio runtime and its own `SO_REUSEPORT` socket per listening
//! address; all protocol decisions are the sans-IO `turn::Server`'s.
//! Depends on `turn`, `auth`, `config`, and `api`, which it starts.

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
use crate::config::{Config, UserSecret};
use crate::turn::policy::PeerPolicy;
use crate::turn::{Now, Server, ServerConfig};
pub use relay::{PortPool, RelaySocket};
pub use stream::StreamSettings;
pub use tls::{Certificates, TlsError};

use crate::stats::Stats;
use worker::{Shared, Sockets};

/// Socket buffer size asked for on listeners: small datagrams cost ~1.3 KB of kernel accounting
/// each on loopback, so the defaults overflow in bursts. The kernel caps it at rmem_max/wmem_max.
const LISTENER_BUFFER: usize = 4 << 20;

/// Runs the daemon until SIGINT or SIGTERM, or until a worker fails.
pub fn run(config: Config) -> std::io::Result<()> {
    raise_fd_limit();
    let streams = stream_settings(&config);
    // Validation guarantees cert and key when there is a TLS listener.
    let tls = match (&config.cert, &config.key, streams.tls_listen.is_empty()) {
        (Some(cert), Some(key), false) => {
            Some(Arc::new(Certificates::load(cert, key).map_err(|e| std::io::Error::other(e.to_string()))?))
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        server: Arc::new(build_server(&config)),
        ports: Arc::new(PortPool::new(config.relay_ip, config.min_port, config.max_port)),
        stats: Arc::new(Stats::new(config.workers)),
        connections: Arc::default(),
        tls: tls.as_ref().map(Certificates::server_config),
        streams,
        parked: Default::default(),
        heartbeats: (0..config.workers).map(|_| Default::default()).collect(),
        started: now().mono,
    });
    let (sockets, bound) = bind_listeners(&config.listen, &shared.streams, config.workers)?;
    // The credentials API binds now, so a busy port stops turnd before it says ready.
    let ready = api::Readiness::default();
    let listeners = api::Listeners { udp: bound.udp.clone(), tcp: bound.tcp.clone(), tls: bound.tls.clone() };
    let (server, stats) = (Arc::clone(&shared.server), Arc::clone(&shared.stats));
    let api_addr = api::start(&config, server, stats, ready.clone(), &listeners)?;
    tracing::info!(
        listen = %bound,
        relay_ip = %config.relay_ip,
        external_ip = ?config.external_ip,
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
            // would keep hashing clients to them: the whole process stops instead.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker::run(index, shared, sockets)));
            let error = match result {
                Ok(Ok(())) => std::io::Error::other(format!("worker {index} stopped")),
                Ok(Err(e)) => e,
                Err(_) => std::io::Error::other(format!("worker {index} panicked")),
            };
            let _ = failed.send(error);
        })?;
    }
    announce_ready(&bound, api_addr)?;
    // Under systemd (Type=notify): every listener is bound and the workers are starting.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    ready.set(true);

    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        // systemd's watchdog (WatchdogSec=): pinged at half its interval, and only while every
        // worker's heartbeat is fresh, so a stuck worker gets the service restarted.
        let watchdog = sd_notify::watchdog_enabled();
        let mut status = tokio::time::interval(watchdog.map_or(STATUS_INTERVAL, |d| d / 2));
        let result = loop {
            tokio::select! {
                _ = status.tick() => notify_status(&shared, watchdog),
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("SIGINT: stopping");
                    break Ok(());
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    break Ok(());
                }
                _ = hup.recv() => reload_certificates(tls.as_deref()),
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
        relay_ip: config.relay_ip,
        external_ip: config.external_ip,
        default_lifetime: std::time::Duration::from_secs(config.default_lifetime),
        max_lifetime: std::time::Duration::from_secs(config.max_lifetime),
        user_quota: config.user_quota,
        total_quota: config.total_quota,
    };
    let policy = PeerPolicy::new(config.allowed_peers.clone(), config.denied_peers.clone());
    Server::new(core, credentials, NonceMinter::new(config.nonce_lifetime), policy)
}

/// Binds each worker's own `SO_REUSEPORT` sockets: UDP on every listening address, TCP on the
/// same addresses when enabled, TLS on the TLS addresses. A port 0 is resolved by the first bind
/// and reused by the other workers (and by TCP beside UDP).
fn bind_listeners(
    listen: &[SocketAddr],
    streams: &StreamSettings,
    workers: usize,
) -> std::io::Result<(Vec<Sockets>, Bound)> {
    let mut by_worker: Vec<Sockets> =
        (0..workers).map(|_| Sockets { udp: Vec::new(), tcp: Vec::new(), tls: Vec::new() }).collect();
    let mut bound = Bound::default();
    let named = |kind: &str, addr: SocketAddr, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot listen on {kind} {addr}: {e}"))
    };
    for addr in listen {
        let mut actual = *addr;
        for sockets in by_worker.iter_mut() {
            let socket = listener_socket(actual).map_err(|e| named("udp", actual, e))?;
            actual = socket.local_addr()?;
            sockets.udp.push(socket);
        }
        bound.udp.push(actual);
        if streams.tcp {
            for sockets in by_worker.iter_mut() {
                sockets.tcp.push(stream::tcp_listener(actual).map_err(|e| named("tcp", actual, e))?);
            }
            bound.tcp.push(actual);
        }
    }
    for addr in &streams.tls_listen {
        let mut actual = *addr;
        for sockets in by_worker.iter_mut() {
            let listener = stream::tcp_listener(actual).map_err(|e| named("tls", actual, e))?;
            actual = listener.local_addr()?;
            sockets.tls.push(listener);
        }
        bound.tls.push(actual);
    }
    Ok((by_worker, bound))
}

/// The addresses turnd listens on, by kind.
#[derive(Debug, Default)]
struct Bound {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
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
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
    }
}

/// The clock, read once per batch of packets. The IO shell is the only place that reads it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> Now {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Now { mono: Instant::now(), unix }
}
