//! `turnd bench`: a TURN load generator for any TURN server over UDP (turnd, coturn). It
//! allocates from many client sockets, runs its own peer on loopback and drives traffic from
//! worker threads with `sendmmsg`/`recvmmsg` (bursts as GSO sends, GRO on its sockets); it
//! reports offered and relayed packet rates, Mbps, loss, latency percentiles and, given the
//! server's PID, the server's CPU time over the measured window and its RSS. A client-side IO
//! shell built on the `stun` codec and `auth` keys: plain threads and sockets, no runtime.
// A client tool reads the clock like the IO shell does.
#![allow(clippy::disallowed_methods)]

mod client;
pub mod forwarder;
mod mmsg;
mod report;
mod sessions;
mod traffic;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::io::gro;
use client::{Client, Credentials, Wait};
use report::{Report, ServerProc};
use traffic::{Flow, Pacing, Plan};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Payloads at a fixed offered rate (or flat out with --rate 0), one-way or echoed
    Throughput,
    /// Video-like: --burst packets per flow every --frame-interval
    Bursts,
    /// Allocates a second, each with its 401 round trip (--delete frees each at once)
    Alloc,
    /// Round-trip percentiles at a fixed rate (echo)
    Latency,
    /// Keep --allocations alive, refreshed, and report the server's memory
    Hold,
}

/// `turnd bench` options.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// The TURN server, HOST:PORT (UDP)
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// What to measure
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    pub mode: Mode,
    /// TURN REST shared secret: the tool makes its own credentials with it
    #[arg(long, conflicts_with = "password")]
    pub secret: Option<String>,
    /// User name (static user with --password; the user part of REST credentials with --secret)
    #[arg(long, default_value = "turnd-bench")]
    pub user: String,
    /// Password of a static user
    #[arg(long)]
    pub password: Option<String>,
    /// Realm for the key [default: the realm of the server's 401]
    #[arg(long)]
    pub realm: Option<String>,
    /// Allocations (flows; for alloc, how many to make; for hold, how many to keep)
    #[arg(long, short = 'n', default_value_t = 16)]
    pub allocations: usize,
    /// Measured window in seconds (alloc: an upper bound)
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of traffic before the window, not counted
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Payloads a second over all flows, 0 = flood [default: throughput 10000, latency 1000];
    /// alloc: Allocates a second [default: 0, as fast as answers come]
    #[arg(long)]
    pub rate: Option<u64>,
    /// Payload bytes (24-1400)
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(24..=1400))]
    pub size: u16,
    /// The peer echoes every payload back (round trips; always on in latency mode)
    #[arg(long)]
    pub echo: bool,
    /// Send and Data indications instead of channels
    #[arg(long)]
    pub send_indications: bool,
    /// bursts: packets per flow per frame
    #[arg(long, default_value_t = 10)]
    pub burst: usize,
    /// bursts: milliseconds between a flow's frames
    #[arg(long, value_name = "MS", default_value_t = 33)]
    pub frame_interval: u64,
    /// Send a burst one datagram at a time instead of as one GSO send, and leave UDP GRO off on
    /// the tool's sockets (A/B comparisons)
    #[arg(long)]
    pub no_gso: bool,
    /// Worker threads
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The server's process id: its CPU seconds over the window and its RSS are reported
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// One JSON line instead of the table
    #[arg(long)]
    pub json: bool,
    /// alloc: delete each allocation right after making it
    #[arg(long)]
    pub delete: bool,
    /// hold: LIFETIME requested, seconds
    #[arg(long, default_value_t = 600)]
    pub lifetime: u32,
    /// hold: seconds between refreshes of each allocation [default: half the lifetime]
    #[arg(long, value_name = "SECONDS")]
    pub refresh_every: Option<f64>,
    /// IP the tool's peer sockets bind to
    #[arg(long, default_value = "127.0.0.1")]
    pub peer_ip: IpAddr,
    /// Port the peer socket binds to (0: any free port); with --bare, the one `turnd
    /// bench-forwarder --to` names
    #[arg(long, default_value_t = 0)]
    pub peer_port: u16,
    /// The target is `turnd bench-forwarder`, not a TURN server: no allocations; each flow
    /// sends its ChannelData straight to it (one-way throughput, one thread, channels)
    #[arg(long)]
    pub bare: bool,
    /// Allow a target or peer that is not loopback (load on a network you are allowed to load)
    #[arg(long)]
    pub allow_remote: bool,
    /// Poll the tool's sockets in a loop instead of sleeping until the server's answers and
    /// relayed payloads come: on loopback the server's sends then wake no thread of the tool,
    /// as sends to clients on other hosts never do, and the server's CPU figure leaves that
    /// out. Keeps each of the tool's threads busy
    #[arg(long)]
    pub spin: bool,
}

/// Why bench stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Options that cannot work (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A failure while running (exit 1).
    #[error("{0}")]
    Run(String),
}

impl BenchError {
    fn run(step: &str, e: impl std::fmt::Display) -> BenchError {
        BenchError::Run(format!("{step}: {e}"))
    }
}

/// Runs the benchmark and prints its report (table, or one JSON line with `--json`).
pub fn main(args: &BenchArgs) -> Result<(), BenchError> {
    let report = run(args)?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Runs the benchmark described by `args`.
pub fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let server = resolve(args)?;
    if args.bare && (args.mode != Mode::Throughput || args.echo || args.send_indications) {
        return Err(BenchError::Usage(
            "--bare loads `turnd bench-forwarder`, which forwards ChannelData one way: --mode throughput \
             without --echo or --send-indications"
                .into(),
        ));
    }
    let proc = args
        .server_pid
        .map(|pid| ServerProc::new(pid).map_err(|e| BenchError::Usage(format!("--server-pid {pid}: {e}"))))
        .transpose()?;
    // `turnd bench-forwarder` takes no credentials.
    let creds = Arc::new(match args.bare {
        true => Credentials { username: String::new(), password: String::new(), realm: None },
        false => credentials(args)?,
    });
    raise_fd_limit(args.allocations);
    let mut sampler = Sampler { proc, cpu_start: None, cpu: None, rss: None };
    let mut report = match args.mode {
        Mode::Throughput | Mode::Bursts | Mode::Latency => traffic_run(args, server, &creds, &mut sampler)?,
        Mode::Alloc => {
            let plan = sessions::AllocPlan {
                allocations: args.allocations,
                rate: args.rate.unwrap_or(0),
                delete: args.delete,
                threads: args.threads,
                limit: seconds("--duration", args.duration)?,
                wait: wait(args),
            };
            sessions::alloc(server, &creds, &plan, |start| sampler.sample(start))?
        }
        Mode::Hold => {
            let refresh = args.refresh_every.unwrap_or(f64::from(args.lifetime) / 2.0);
            let plan = sessions::HoldPlan {
                allocations: args.allocations,
                lifetime: args.lifetime,
                refresh_every: seconds("--refresh-every", refresh)?.max(Duration::from_millis(10)),
                hold: seconds("--duration", args.duration)?,
                wait: wait(args),
            };
            let proc = sampler.proc.as_ref();
            let rss = || proc.and_then(|p| p.rss_kib().ok());
            let mut sample = Sampler { proc: None, cpu_start: None, cpu: None, rss: None };
            let report = sessions::hold(server, &creds, &plan, rss, |start| {
                let cpu = proc.and_then(|p| p.cpu_seconds().ok());
                match start {
                    true => sample.cpu_start = cpu,
                    false => sample.cpu = cpu.zip(sample.cpu_start).map(|(end, start)| end - start),
                }
            })?;
            sampler.cpu = sample.cpu;
            sampler.rss = rss();
            report
        }
    };
    report.mode = mode_name(args.mode);
    report.target = server.to_string();
    report.allocations = args.allocations;
    report.threads = args.threads;
    report.spin = args.spin;
    report.rss_kib = sampler.rss;
    report.set_cpu(sampler.cpu);
    Ok(report)
}

/// How the tool's threads wait for the server (`--spin`).
fn wait(args: &BenchArgs) -> Wait {
    if args.spin {
        Wait::Spin
    } else {
        Wait::Block
    }
}

/// CPU at the window's start and end, RSS at its end.
struct Sampler {
    proc: Option<ServerProc>,
    cpu_start: Option<f64>,
    cpu: Option<f64>,
    rss: Option<u64>,
}

impl Sampler {
    fn sample(&mut self, start: bool) {
        let Some(proc) = &self.proc else { return };
        let cpu = proc.cpu_seconds().ok();
        if start {
            self.cpu_start = cpu;
        } else {
            self.cpu = cpu.zip(self.cpu_start).map(|(end, start)| end - start);
            self.rss = proc.rss_kib().ok();
        }
    }
}

/// Throughput, bursts and latency: open the flows, run, delete the allocations.
fn traffic_run(
    args: &BenchArgs,
    server: SocketAddr,
    creds: &Arc<Credentials>,
    sampler: &mut Sampler,
) -> Result<Report, BenchError> {
    let threads = args.threads.clamp(1, args.allocations.max(1));
    if args.allocations == 0 {
        return Err(BenchError::Usage("--allocations must be at least 1".into()));
    }
    if (args.bare || args.peer_port != 0) && threads > 1 {
        return Err(BenchError::Usage("--bare and --peer-port take one thread: one peer socket on one port".into()));
    }
    let (pacing, rate) = match args.mode {
        Mode::Bursts => {
            if args.burst == 0 || args.frame_interval == 0 {
                return Err(BenchError::Usage("--burst and --frame-interval must be at least 1".into()));
            }
            (Pacing::Bursts { k: args.burst, interval: Duration::from_millis(args.frame_interval) }, None)
        }
        mode => {
            let rate = args.rate.unwrap_or(if mode == Mode::Latency { 1_000 } else { 10_000 });
            (if rate == 0 { Pacing::Flood } else { Pacing::Rate(rate as f64) }, Some(rate))
        }
    };
    let plan = Plan {
        pacing,
        echo: args.echo || args.mode == Mode::Latency,
        channels: !args.send_indications,
        size: usize::from(args.size),
        warmup: seconds("--warmup", args.warmup)?,
        window: seconds("--duration", args.duration)?.max(Duration::from_millis(1)),
        threads,
        // Its socket drops are this host's to read only when it runs here.
        server_port: if server.ip().is_loopback() { server.port() } else { 0 },
        gso: AtomicBool::new(!args.no_gso),
        bare: args.bare,
        wait: wait(args),
    };
    let peers = (0..threads)
        .map(|_| peer_socket(SocketAddr::new(args.peer_ip, args.peer_port), !args.no_gso))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BenchError::run("peer socket", e))?;
    let mut flows = Vec::with_capacity(args.allocations);
    let mut challenge = None;
    for i in 0..args.allocations {
        let peer = peers[i % threads].local_addr().map_err(|e| BenchError::run("peer socket", e))?;
        let client = match args.bare {
            true => {
                Client::new(server, creds.clone(), None, plan.wait).map_err(|e| BenchError::run("client socket", e))
            }
            false => Client::allocated(server, creds, challenge.clone(), None, plan.wait)
                .map_err(|e| BenchError::run("allocate", e)),
        };
        let opened = client.and_then(|client| {
            let _ = socket2::SockRef::from(&client.socket).set_recv_buffer_size(1 << 20);
            if !args.no_gso {
                gro::enable(&client.socket);
            }
            Flow::open(client, peer, &plan)
        });
        match opened {
            Ok(flow) => {
                challenge = flow.client().challenge.clone();
                flows.push(flow);
            }
            Err(e) => {
                delete_flows(flows, args.bare);
                return Err(e);
            }
        }
    }
    let (burst, interval) = match plan.pacing {
        Pacing::Bursts { k, interval } => (Some(k), Some(interval.as_millis() as u64)),
        _ => (None, None),
    };
    let (flows, mut report) = traffic::run(flows, peers, plan, |start| sampler.sample(start))?;
    delete_flows(flows, args.bare);
    report.rate = rate;
    report.burst = burst;
    report.frame_interval_ms = interval;
    Ok(report)
}

/// Deletes the flows' allocations (`bare` flows have none).
fn delete_flows(flows: Vec<Flow>, bare: bool) {
    if bare {
        return;
    }
    let mut clients: Vec<Client> = flows.into_iter().map(Flow::into_client).collect();
    sessions::delete_all(&mut clients);
}

/// A peer socket with room for bursts, reading them as GRO bursts with `gro`.
fn peer_socket(addr: SocketAddr, gro: bool) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    let s = socket2::SockRef::from(&socket);
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    if gro {
        gro::enable(&socket);
    }
    Ok(socket)
}

/// The target's address; only loopback unless `--allow-remote`.
fn resolve(args: &BenchArgs) -> Result<SocketAddr, BenchError> {
    let server = args
        .target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| BenchError::Usage(format!("cannot resolve the target {} (HOST:PORT)", args.target)))?;
    if !args.allow_remote {
        if !server.ip().is_loopback() {
            return Err(BenchError::Usage(format!(
                "refusing to load {server}: it is not a loopback address (give --allow-remote to load a \
                 server you are allowed to load)"
            )));
        }
        if !args.peer_ip.is_loopback() {
            return Err(BenchError::Usage(format!(
                "refusing --peer-ip {}: not a loopback address (give --allow-remote)",
                args.peer_ip
            )));
        }
    }
    Ok(server)
}

/// Static credentials, or REST credentials valid for the run plus an hour.
fn credentials(args: &BenchArgs) -> Result<Credentials, BenchError> {
    let realm = args.realm.clone();
    match (&args.secret, &args.password) {
        (Some(secret), None) => {
            let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let run = (args.duration + args.warmup).max(0.0) as u64;
            let username = crate::auth::rest_username(unix + run + 3600, &args.user, ':');
            let password = crate::auth::rest_password(secret, &username);
            Ok(Credentials { username, password, realm })
        }
        (None, Some(password)) => Ok(Credentials { username: args.user.clone(), password: password.clone(), realm }),
        _ => Err(BenchError::Usage("give --secret, or --user and --password".into())),
    }
}

fn seconds(flag: &str, v: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(v).map_err(|_| BenchError::Usage(format!("{flag} {v}: not a number of seconds")))
}

/// Allocations need a socket each: raise the soft file limit towards the hard one.
fn raise_fd_limit(allocations: usize) {
    let want = allocations as u64 + 256;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Throughput => "throughput",
        Mode::Bursts => "bursts",
        Mode::Alloc => "alloc",
        Mode::Latency => "latency",
        Mode::Hold => "hold",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).unwrap().args
    }

    #[test]
    fn non_loopback_targets_and_peers_are_refused_unless_allowed() {
        let remote = parse(&["192.0.2.1:3478", "--secret", "s"]);
        let err = resolve(&remote).unwrap_err().to_string();
        assert!(err.contains("refusing to load 192.0.2.1:3478") && err.contains("--allow-remote"), "{err}");
        let allowed = parse(&["192.0.2.1:3478", "--secret", "s", "--allow-remote"]);
        assert_eq!(resolve(&allowed).unwrap(), "192.0.2.1:3478".parse().unwrap());
        let peer = parse(&["127.0.0.1:3478", "--secret", "s", "--peer-ip", "192.0.2.2"]);
        assert!(resolve(&peer).unwrap_err().to_string().contains("--peer-ip 192.0.2.2"));
        assert!(resolve(&parse(&["[::1]:3478", "--secret", "s"])).is_ok());
    }

    #[test]
    fn credentials_come_from_a_secret_or_a_password() {
        let rest = credentials(&parse(&["127.0.0.1:1", "--secret", "s", "--user", "u"])).unwrap();
        assert!(rest.username.ends_with(":u"));
        assert_eq!(rest.password, crate::auth::rest_password("s", &rest.username));
        let user = credentials(&parse(&["127.0.0.1:1", "--user", "alice", "--password", "pw"])).unwrap();
        assert_eq!((user.username.as_str(), user.password.as_str()), ("alice", "pw"));
        assert!(credentials(&parse(&["127.0.0.1:1"])).is_err());
        assert!(Cli::try_parse_from(["bench", "127.0.0.1:1", "--size", "10"]).is_err());
    }
}
