//! Shared harness for turnd's integration tests: starts the `turnd` binary with a
//! generated TOML config, waits for its `ready` line, and kills it on drop.
// Tests are the IO side: they read the real clock (for every test crate that uses `common`).
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

pub mod api;
pub mod client;
pub mod coturn;
pub mod keys;
pub mod message;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long turnd may take to print its `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running turnd process. Killed on drop; its stderr is printed when a test panics.
pub struct Server {
    child: Mutex<Child>,
    /// The first `udp=` address of the ready line.
    pub addr: SocketAddr,
    /// Every `kind=addr` item of the ready line, in order.
    pub listeners: Vec<(String, SocketAddr)>,
    stderr_buf: Arc<Mutex<String>>,
    stderr_thread: Mutex<Option<JoinHandle<()>>>,
    _config: tempfile::NamedTempFile,
}

impl Server {
    /// Starts turnd with `config_toml` and waits until it reports that every listener is bound.
    pub fn turnd(config_toml: &str) -> Server {
        Server::turnd_with(config_toml, |_| {})
    }

    /// [`Server::turnd`], with `prepare` adjusting the command before it is spawned (e.g. a
    /// resource limit for the child only, set with `CommandExt::pre_exec`).
    pub fn turnd_with(config_toml: &str, prepare: impl FnOnce(&mut Command)) -> Server {
        use std::io::Write;
        let mut file =
            tempfile::Builder::new().prefix("turnd-test-").suffix(".toml").tempfile().expect("create config tempfile");
        file.write_all(config_toml.as_bytes()).expect("write config");
        file.flush().expect("flush config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_turnd"));
        command.arg("--config").arg(file.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        prepare(&mut command);
        let mut child = command.spawn().expect("spawn turnd");

        let stderr_buf = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr piped");
        let sink = stderr_buf.clone();
        let stderr_thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match err.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        });

        // stdout: forward lines over a channel until the ready line, then keep draining.
        let out = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = &tx {
                    if t.send(line).is_err() {
                        tx = None;
                    }
                }
            }
        });

        let mut server = Server {
            child: Mutex::new(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            listeners: Vec::new(),
            stderr_buf,
            stderr_thread: Mutex::new(Some(stderr_thread)),
            _config: file,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(listeners) = parse_ready_line(&line) {
                        server.listeners = listeners;
                        break;
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "turnd printed no ready line within {:?}\nstdout so far: {:?}\nstderr:\n{}",
                    READY_TIMEOUT,
                    seen,
                    server.stderr()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "turnd closed stdout (exited?) before its ready line\nstdout: {:?}\nstderr:\n{}",
                    seen,
                    server.stderr()
                ),
            }
        }
        server.addr = match server.listeners.iter().find(|(k, _)| k == "udp") {
            Some((_, a)) => *a,
            None => panic!("ready line has no udp= listener: {:?}", server.listeners),
        };
        server
    }

    /// The address of the first listener of the given kind (`udp`, `tcp`, ...).
    pub fn listener(&self, kind: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(k, _)| k == kind).map(|(_, a)| *a)
    }

    /// The config file turnd was started with (tests rewrite it before a SIGHUP).
    pub fn config_path(&self) -> &std::path::Path {
        self._config.path()
    }

    /// Sends a signal (`kill -SIG pid`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{sig}");
    }

    /// Waits (bounded by `within`) for turnd to exit; its status, or None if it is still running.
    pub fn wait_exit(&self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until turnd has logged `needle` on stderr.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.stderr_so_far().contains(needle) {
            assert!(std::time::Instant::now() < deadline, "turnd never logged {needle:?}:\n{}", self.stderr_so_far());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// [`Server::turnd`] with RLIMIT_NOFILE (soft and hard, so turnd cannot raise it) at `limit`.
    pub fn turnd_with_nofile(config_toml: &str, limit: u64) -> Server {
        use std::os::unix::process::CommandExt as _;
        Server::turnd_with(config_toml, |command| {
            let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: runs in the child between fork and exec; setrlimit is async-signal-safe and
            // the closure allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        })
    }

    /// CPU time (user + system) turnd has used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/PID/stat");
        // Fields after the command name (which may hold spaces, so split after its ')').
        let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// True while the process is still running.
    pub fn is_running(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// Kills turnd (if still running) and returns everything it wrote to stderr.
    pub fn stderr(&self) -> String {
        self.kill();
        if let Some(h) = self.stderr_thread.lock().unwrap().take() {
            let _ = h.join();
        }
        self.stderr_buf.lock().unwrap().clone()
    }

    /// What turnd wrote to stderr so far, without stopping it.
    pub fn stderr_so_far(&self) -> String {
        self.stderr_buf.lock().unwrap().clone()
    }

    fn kill(&self) {
        let mut c = self.child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let err = self.stderr();
        if std::thread::panicking() && !err.is_empty() {
            eprintln!("----- turnd stderr -----\n{err}\n------------------------");
        }
    }
}

/// Parses `ready udp=127.0.0.1:3478 tcp=...`; `None` if the line is not a ready line.
pub fn parse_ready_line(line: &str) -> Option<Vec<(String, SocketAddr)>> {
    let mut words = line.split_whitespace();
    if words.next()? != "ready" {
        return None;
    }
    let mut out = Vec::new();
    for w in words {
        let (k, v) = w.split_once('=')?;
        match v.parse() {
            Ok(a) => out.push((k.to_string(), a)),
            Err(_) => continue, // a future item that is not an address
        }
    }
    Some(out)
}

/// A UDP port that was free a moment ago on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().unwrap().port()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Builder for a turnd configuration. `Config::default()` is the common test setup:
/// listen on 127.0.0.1 (port 0), relay on 127.0.0.1, realm "turnd.test", secret "s3cret",
/// user alice/wonderland, loopback peers allowed.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: Vec<String>,
    pub relay_ip: String,
    pub min_port: Option<u16>,
    pub max_port: Option<u16>,
    pub workers: Option<u32>,
    pub log_level: String,
    pub realm: String,
    pub secrets: Vec<String>,
    pub rest_separator: Option<String>,
    pub nonce_lifetime: Option<u64>,
    pub users: Vec<(String, String)>,
    pub default_lifetime: Option<u32>,
    pub max_lifetime: Option<u32>,
    pub user_quota: Option<u32>,
    pub total_quota: Option<u32>,
    /// `None` leaves the `allowed` key out (turnd's default policy).
    pub allowed: Option<Vec<String>>,
    pub denied: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec!["127.0.0.1:0".into()],
            relay_ip: "127.0.0.1".into(),
            min_port: None,
            max_port: None,
            workers: Some(2),
            log_level: "info".into(),
            realm: "turnd.test".into(),
            secrets: vec!["s3cret".into()],
            rest_separator: None,
            nonce_lifetime: None,
            users: vec![("alice".into(), "wonderland".into())],
            default_lifetime: None,
            max_lifetime: None,
            user_quota: None,
            total_quota: None,
            allowed: Some(vec!["127.0.0.0/8".into(), "::1/128".into()]),
            denied: None,
        }
    }
}

fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

impl Config {
    /// The default setup but with turnd's default peer policy (`allowed = []`).
    pub fn default_policy() -> Self {
        Config { allowed: Some(vec![]), ..Config::default() }
    }

    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen = vec![format!("127.0.0.1:{port}")];
        self
    }

    pub fn ports(mut self, min: u16, max: u16) -> Self {
        self.min_port = Some(min);
        self.max_port = Some(max);
        self
    }

    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        t.push_str("[server]\n");
        t.push_str(&format!("listen = {}\n", toml_list(&self.listen)));
        t.push_str(&format!("relay-ip = {}\n", toml_str(&self.relay_ip)));
        if let Some(p) = self.min_port {
            t.push_str(&format!("min-port = {p}\n"));
        }
        if let Some(p) = self.max_port {
            t.push_str(&format!("max-port = {p}\n"));
        }
        if let Some(w) = self.workers {
            t.push_str(&format!("workers = {w}\n"));
        }
        t.push_str(&format!("log-level = {}\n", toml_str(&self.log_level)));
        t.push_str("\n[auth]\n");
        t.push_str(&format!("realm = {}\n", toml_str(&self.realm)));
        t.push_str(&format!("secrets = {}\n", toml_list(&self.secrets)));
        if let Some(s) = &self.rest_separator {
            t.push_str(&format!("rest-separator = {}\n", toml_str(s)));
        }
        if let Some(n) = self.nonce_lifetime {
            t.push_str(&format!("nonce-lifetime = {n}\n"));
        }
        for (name, pass) in &self.users {
            t.push_str(&format!("\n[[auth.users]]\nname = {}\npassword = {}\n", toml_str(name), toml_str(pass)));
        }
        let mut alloc = String::new();
        if let Some(v) = self.default_lifetime {
            alloc.push_str(&format!("default-lifetime = {v}\n"));
        }
        if let Some(v) = self.max_lifetime {
            alloc.push_str(&format!("max-lifetime = {v}\n"));
        }
        if let Some(v) = self.user_quota {
            alloc.push_str(&format!("user-quota = {v}\n"));
        }
        if let Some(v) = self.total_quota {
            alloc.push_str(&format!("total-quota = {v}\n"));
        }
        if !alloc.is_empty() {
            t.push_str("\n[allocation]\n");
            t.push_str(&alloc);
        }
        let mut peers = String::new();
        if let Some(a) = &self.allowed {
            peers.push_str(&format!("allowed = {}\n", toml_list(a)));
        }
        if let Some(d) = &self.denied {
            peers.push_str(&format!("denied = {}\n", toml_list(d)));
        }
        if !peers.is_empty() {
            t.push_str("\n[peers]\n");
            t.push_str(&peers);
        }
        t
    }

    /// Starts turnd with this configuration.
    pub fn start(&self) -> Server {
        Server::turnd(&self.to_toml())
    }
}

/// The default test config listening on 127.0.0.1:`listen_port` (0: turnd picks), merged with
/// `extra`: TOML text whose `key = value` lines replace or add keys of the table they
/// follow (`[server]`, `[auth]`, `[allocation]`, `[peers]`); `[[auth.users]]` blocks add users.
pub fn config(listen_port: u16, extra: &str) -> String {
    let base = Config::default().listen_port(listen_port).to_toml();
    merge_toml(&base, extra)
}

/// Line-based merge of simple TOML (tables of `key = value` lines, array-of-table blocks).
pub fn merge_toml(base: &str, extra: &str) -> String {
    // Each section: header line ("" for top level) and its lines.
    fn split(text: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.starts_with('[') {
                out.push((l.to_string(), Vec::new()));
            } else {
                out.last_mut().unwrap().1.push(l.to_string());
            }
        }
        out
    }
    fn key(line: &str) -> &str {
        line.split('=').next().unwrap_or("").trim()
    }
    let mut sections = split(base);
    for (header, lines) in split(extra) {
        if header.starts_with("[[") {
            sections.push((header, lines));
            continue;
        }
        let idx = match sections.iter().position(|(h, _)| *h == header) {
            Some(i) => i,
            None => {
                sections.push((header.clone(), Vec::new()));
                sections.len() - 1
            }
        };
        for line in lines {
            let body = &mut sections[idx].1;
            match body.iter().position(|l| key(l) == key(&line)) {
                Some(i) => body[i] = line,
                None => body.push(line),
            }
        }
    }
    // Array-of-table blocks must come after the plain table of the same prefix; keep order
    // but move every [[x]] block to the end so later `[table]` keys are not swallowed.
    let (aot, plain): (Vec<_>, Vec<_>) = sections.into_iter().partition(|(h, _)| h.starts_with("[["));
    let mut t = String::new();
    for (h, lines) in plain.into_iter().chain(aot) {
        if h.is_empty() && lines.is_empty() {
            continue;
        }
        if !h.is_empty() {
            t.push('\n');
            t.push_str(&h);
            t.push('\n');
        }
        for l in lines {
            t.push_str(&l);
            t.push('\n');
        }
    }
    t
}

/// How many datagrams are waiting on `socket` now, read and discarded (non-blocking).
pub fn drain_datagrams(socket: &UdpSocket) -> usize {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        match socket.recv_from(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return n,
            Err(e) => panic!("socket: {e}"),
        }
    }
}

/// How long a peer socket from [`peer_socket`] waits for a relayed datagram.
pub const PEER_WAIT: Duration = Duration::from_secs(5);

/// A UDP peer on loopback `ip` (`"127.0.0.1"`, `"[::1]"`) whose reads wait [`PEER_WAIT`].
pub fn peer_socket(ip: &str) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(PEER_WAIT)).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The next datagram at a peer from [`peer_socket`] and where it came from; panics when none
/// comes in time.
pub fn recv_peer(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("peer received nothing from the relay within the timeout");
    (buf[..n].to_vec(), from)
}
