//! The IO shell: sockets, threads, runtimes and the clock. One worker thread per core, each
//! with its own current-thread tokio runtime and its own `SO_REUSEPORT` socket per listening
//! address; all protocol decisions are the sans-IO `turn::Server`'s.
//! Depends on `turn`, `auth` and `config`.

mod relay;
mod worker;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use crate::auth::{self, Credentials, NonceMinter};
use crate::config::{Config, UserSecret};
use crate::turn::policy::PeerPolicy;
use crate::turn::{Now, Server, ServerConfig};
pub use relay::{PortPool, RelaySocket};

use crate::stats::Stats;

/// Socket buffer size asked for on listeners: small datagrams cost ~1.3 KB of kernel accounting
/// each on loopback, so the defaults overflow in bursts. The kernel caps it at rmem_max/wmem_max.
const LISTENER_BUFFER: usize = 4 << 20;

/// Runs the daemon until SIGINT or SIGTERM, or until a worker fails.
pub fn run(config: Config) -> std::io::Result<()> {
    let server = Arc::new(build_server(&config));
    let stats = Arc::new(Stats::new(config.workers));
    let ports = Arc::new(PortPool::new(config.relay_ip, config.min_port, config.max_port));
    let (sockets, bound) = bind_listeners(&config.listen, config.workers)?;
    tracing::info!(
        listen = ?bound,
        relay_ip = %config.relay_ip,
        external_ip = ?config.external_ip,
        ports = %format_args!("{}-{}", config.min_port, config.max_port),
        workers = config.workers,
        realm = %config.realm,
        "turnd starting"
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Error>();
    for (index, listeners) in sockets.into_iter().enumerate() {
        let server = Arc::clone(&server);
        let ports = Arc::clone(&ports);
        let stats = Arc::clone(&stats);
        let failed = failed_tx.clone();
        std::thread::Builder::new().name(format!("turnd-worker-{index}")).spawn(move || {
            // A worker that stops would leave its SO_REUSEPORT sockets bound, and the kernel
            // would keep hashing clients to them: the whole process stops instead.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker::run(index, server, ports, stats, listeners)
            }));
            let error = match result {
                Ok(Ok(())) => std::io::Error::other(format!("worker {index} stopped")),
                Ok(Err(e)) => e,
                Err(_) => std::io::Error::other(format!("worker {index} panicked")),
            };
            let _ = failed.send(error);
        })?;
    }
    announce_ready(&bound)?;
    // Under systemd (Type=notify): every listener is bound and the workers are starting.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let result = tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT: stopping");
                Ok(())
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                Ok(())
            }
            Some(e) = failed_rx.recv() => {
                tracing::error!(error = %e, "a worker failed");
                Err(e)
            }
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        result
    })
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

/// Binds one `SO_REUSEPORT` socket per listening address for each worker. A port 0 is resolved
/// by the first bind, and the other workers bind the port it got. Returns the sockets by worker
/// and the bound addresses.
fn bind_listeners(listen: &[SocketAddr], workers: usize) -> std::io::Result<(Vec<Vec<UdpSocket>>, Vec<SocketAddr>)> {
    let mut by_worker: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(listen.len());
    for addr in listen {
        let mut actual = *addr;
        for sockets in by_worker.iter_mut() {
            let socket = listener_socket(actual)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on udp {actual}: {e}")))?;
            actual = socket.local_addr()?;
            sockets.push(socket);
        }
        bound.push(actual);
    }
    Ok((by_worker, bound))
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
/// `ready udp=ADDR ...` (tests and scripts wait for it).
fn announce_ready(bound: &[SocketAddr]) -> std::io::Result<()> {
    let mut line = String::from("ready");
    for addr in bound {
        line.push_str(&format!(" udp={addr}"));
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// The clock, read once per batch of packets. The IO shell is the only place that reads it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> Now {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Now { mono: Instant::now(), unix }
}
