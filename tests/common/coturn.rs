//! coturn's test tools driving turnd (`turnutils_uclient`, `turnutils_peer`): finding them,
//! running them with a time limit, and reading uclient's summary; coturn's own server for A/B
//! comparisons. CI installs coturn; a missing tool fails the test.

use std::io::Read;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{free_udp_port, Server};

pub const UCLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// Absolute path of a coturn tool, or a clear failure.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("coturn tool `{name}` not found in PATH: install coturn (e.g. `apt-get install -y coturn`) to run the interop tests");
}

/// `turnutils_peer`: a UDP echo peer on 127.0.0.1 (or ::1). Killed on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Peer {
    pub fn start() -> Peer {
        Peer::start_on("127.0.0.1")
    }

    /// An echo peer on `ip` (a loopback address).
    pub fn start_on(ip: &str) -> Peer {
        let port = free_udp_port();
        let child = Command::new(tool("turnutils_peer"))
            .args(["-L", ip, "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn turnutils_peer");
        let mut peer = Peer { child, port };
        // Await readiness: the peer echoes datagrams once it is bound.
        let ip: std::net::IpAddr = ip.parse().expect("a loopback IP");
        let probe = UdpSocket::bind((ip, 0)).unwrap();
        probe.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..100 {
            probe.send_to(b"probe", (ip, port)).unwrap();
            if let Ok((n, _)) = probe.recv_from(&mut buf) {
                assert_eq!(&buf[..n], b"probe", "turnutils_peer did not echo the probe");
                return peer;
            }
            if let Ok(Some(st)) = peer.child.try_wait() {
                panic!("turnutils_peer exited early: {st}");
            }
        }
        let _ = peer.child.kill();
        panic!("turnutils_peer on port {port} did not echo within 10 s");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// coturn's own server on a free port, for A/B comparisons (the coturn package is installed
/// with the test tools): realm `turnd.test`, user alice/wonderland, loopback peers allowed, and
/// `extra` flags (e.g. `--mobility`). Killed on drop.
pub struct Coturn {
    child: Child,
    pub port: u16,
}

impl Coturn {
    pub fn start(extra: &[&str]) -> Coturn {
        let port = free_udp_port();
        let relay_base = free_udp_port().max(20_000);
        let child = Command::new(tool("turnserver"))
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--listening-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string(), "--relay-ip", "127.0.0.1"])
            .args(["--min-port", &relay_base.to_string(), "--max-port", &(relay_base + 200).to_string()])
            .args(["--realm", "turnd.test", "--lt-cred-mech", "--user", "alice:wonderland", "--allow-loopback-peers"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coturn's turnserver");
        // Ready when its TCP listener accepts; bounded to 10 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "coturn did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Coturn { child, port }
    }
}

impl Coturn {
    /// The process id (for `turnd bench --server-pid`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command with a time limit; returns (exit success, stdout + stderr).
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn tool");
    let (tx, rx) = mpsc::channel::<(u8, String)>();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t1 = tx.clone();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        let _ = t1.send((1, String::from_utf8_lossy(&s).into_owned()));
    });
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        let _ = tx.send((2, String::from_utf8_lossy(&s).into_owned()));
    });
    // Both pipes reach EOF when the process exits.
    let deadline = Instant::now() + limit;
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((1, s)) => stdout = Some(s),
            Ok((_, s)) => stderr = Some(s),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let (o, e) = (rx.recv_timeout(Duration::from_secs(2)), rx.recv_timeout(Duration::from_secs(2)));
                panic!("{cmd:?} did not finish within {limit:?}; partial output: {o:?} {e:?}");
            }
        }
    }
    let status = child.wait().expect("wait tool");
    (status.success(), format!("{}{}", stdout.unwrap(), stderr.unwrap()))
}

/// Summary of a `turnutils_uclient` run.
#[derive(Debug, Default)]
pub struct UclientSummary {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub lost_percent: f64,
    pub transmit_time: Option<u64>,
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Parses the closing lines uclient prints:
/// `start_mclient: tot_send_msgs=100, tot_recv_msgs=100`,
/// `Total transmit time is 2`, `Total lost packets 0 (0.000000%), total send dropped 0 (...)`.
pub fn parse_uclient(out: &str) -> Result<UclientSummary, String> {
    let mut s = UclientSummary::default();
    let mut have_counts = false;
    let mut have_lost = false;
    for line in out.lines() {
        if line.contains("tot_send_msgs=") && !line.contains("msz=") {
            s.sent = number_after(line, "tot_send_msgs=").ok_or("bad tot_send_msgs")?;
            s.received = number_after(line, "tot_recv_msgs=").ok_or("bad tot_recv_msgs")?;
            have_counts = true;
        }
        if line.contains("Total transmit time is") {
            s.transmit_time = number_after(line, "Total transmit time is");
        }
        if line.contains("Total lost packets") {
            s.lost = number_after(line, "Total lost packets").ok_or("bad lost count")?;
            let pct = line.split('(').nth(1).and_then(|r| r.split('%').next()).ok_or("bad lost percent")?;
            s.lost_percent = pct.trim().parse().map_err(|_| format!("bad percent {pct:?}"))?;
            have_lost = true;
        }
    }
    if !have_counts || !have_lost || s.transmit_time.is_none() {
        return Err("uclient printed no complete summary (allocation or auth failed?)".into());
    }
    Ok(s)
}

/// Runs uclient against `server` with the credential arguments `auth` (`-u U -w P`, or
/// `-W SECRET -u U`) and asserts that every message came back.
pub fn uclient(server: &Server, peer: Option<&Peer>, auth: &[&str], flags: &[&str], n: u64, m: u64) {
    let mut cmd = Command::new(tool("turnutils_uclient"));
    // -X: IPv4 relay; -c: no RTCP (EVEN-PORT) allocations; -z 5: 5 ms between packets.
    cmd.args(["-X", "-c", "-z", "5", "-p", &server.addr.port().to_string()]);
    cmd.args(["-n", &n.to_string(), "-m", &m.to_string()]);
    if let Some(p) = peer {
        cmd.args(["-e", "127.0.0.1", "-r", &p.port.to_string()]);
    }
    cmd.args(auth);
    cmd.args(flags);
    cmd.arg(server.addr.ip().to_string());
    let desc = format!("{cmd:?}");
    let (ok, out) = run_with_timeout(cmd, UCLIENT_TIMEOUT);
    let summary = match parse_uclient(&out) {
        Ok(s) => s,
        Err(e) => panic!("{desc}: {e}\nexit ok: {ok}\noutput:\n{out}"),
    };
    // With -y uclient pairs its clients up, rounding an odd -m up to an even count.
    let clients = if flags.contains(&"-y") { m + m % 2 } else { m };
    let expected = n * clients;
    assert!(summary.received > 0, "{desc}: no packets received: {summary:?}\n{out}");
    assert_eq!(summary.sent, expected, "{desc}: uclient did not send every message: {summary:?}\n{out}");
    assert_eq!(summary.lost, 0, "{desc}: packets lost: {summary:?}\n{out}");
    assert_eq!(summary.lost_percent, 0.0, "{desc}: packets lost: {summary:?}\n{out}");
    assert_eq!(summary.received, summary.sent, "{desc}: not every message came back: {summary:?}\n{out}");
    assert!(ok, "{desc}: uclient exited with failure\n{out}");
}
