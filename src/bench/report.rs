//! What a bench run reports (a table for people, one JSON line for scripts) and the server's
//! CPU time and RSS read from /proc.

use std::fmt::Write as _;
use std::io;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The server process whose CPU time and memory are sampled.
pub struct ServerProc {
    pid: u32,
    ticks_per_second: f64,
}

impl ServerProc {
    /// Checks that /proc/PID/stat is readable.
    pub fn new(pid: u32) -> io::Result<Self> {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let proc = ServerProc { pid, ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 } };
        proc.cpu_seconds()?;
        Ok(proc)
    }

    /// User plus system CPU time so far, in seconds (utime and stime of /proc/PID/stat).
    pub fn cpu_seconds(&self) -> io::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The command name is in parentheses and may contain spaces: count fields after it.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        match (tick(11), tick(12)) {
            (Some(user), Some(system)) => Ok((user + system) as f64 / self.ticks_per_second),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected /proc/{}/stat", self.pid))),
        }
    }

    /// Resident set size in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> io::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no VmRSS in /proc/{}/status", self.pid)))
    }
}

/// Datagrams the kernel dropped (receive buffer full) on the UDP sockets bound to any of
/// `ports`, summed from the `drops` column of /proc/net/udp and /proc/net/udp6 (this network
/// namespace: the tool's own sockets, and a loopback server's).
pub fn udp_drops(ports: &[u16]) -> u64 {
    let mut total = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(table) = std::fs::read_to_string(file) else { continue };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port =
                fields.get(1).and_then(|a| a.rsplit_once(':')).and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if port.is_some_and(|p| ports.contains(&p)) {
                total += fields.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

/// One run's results. Fields that do not apply to the mode are `null` in JSON and left out of
/// the table.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub target: String,
    pub allocations: usize,
    pub threads: usize,
    /// The measured window (after warm-up), seconds.
    pub duration_s: f64,
    pub rate: Option<u64>,
    pub size: Option<usize>,
    pub echo: Option<bool>,
    /// "channel" (ChannelData) or "send" (Send/Data indications).
    pub framing: Option<&'static str>,
    pub burst: Option<usize>,
    pub frame_interval_ms: Option<u64>,
    /// bursts: whether each burst went out as GSO sends (false with `--no-gso`, or when the
    /// kernel refused GSO).
    pub gso: Option<bool>,
    /// The tool polled its sockets instead of sleeping (`--spin`).
    pub spin: bool,
    /// Payloads the clients sent in the window.
    pub sent: Option<u64>,
    /// Of those, how many reached their end: the peer (one-way) or the client again (echo).
    pub delivered: Option<u64>,
    pub offered_pps: Option<f64>,
    /// Payloads the server relayed a second (both directions in echo mode).
    pub relayed_pps: Option<f64>,
    /// Relayed payload bits a second, in millions.
    pub mbps: Option<f64>,
    /// 1 - delivered/sent.
    pub loss: Option<f64>,
    /// Datagrams dropped in the window by the kernel on the tool's peer sockets (the tool's own
    /// share of the loss) and on the server's listening port.
    pub peer_drops: Option<u64>,
    pub server_drops: Option<u64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
    pub allocs: Option<u64>,
    pub alloc_failures: Option<u64>,
    pub allocs_per_s: Option<f64>,
    pub refreshes: Option<u64>,
    pub failed_refreshes: Option<u64>,
    pub server_cpu_s: Option<f64>,
    pub relayed_per_cpu_s: Option<f64>,
    pub allocs_per_cpu_s: Option<f64>,
    pub rss_kib: Option<u64>,
    pub rss_per_1000_allocs_kib: Option<f64>,
}

impl Report {
    /// Latency percentiles from a histogram of nanoseconds (nothing when it is empty).
    pub fn set_latency(&mut self, ns: &Histogram<u64>) {
        if ns.is_empty() {
            return;
        }
        let us = |v: u64| (v as f64 / 1000.0 * 10.0).round() / 10.0;
        self.p50_us = Some(us(ns.value_at_quantile(0.50)));
        self.p99_us = Some(us(ns.value_at_quantile(0.99)));
        self.p999_us = Some(us(ns.value_at_quantile(0.999)));
        self.max_us = Some(us(ns.max()));
    }

    /// Server CPU over the window, and what it bought.
    pub fn set_cpu(&mut self, cpu_s: Option<f64>) {
        let Some(cpu) = cpu_s else { return };
        // Clock ticks: 10 ms on most kernels.
        self.server_cpu_s = Some((cpu * 1000.0).round() / 1000.0);
        if cpu > 0.0 {
            let relayed = self.relayed_pps.map(|pps| pps * self.duration_s);
            self.relayed_per_cpu_s = relayed.map(|r| (r / cpu).round());
            if self.mode == "alloc" {
                self.allocs_per_cpu_s = self.allocs.map(|a| (a as f64 / cpu).round());
            }
        }
    }

    /// The JSON line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a Report always serialises")
    }

    /// A two-column table of the fields that apply.
    pub fn table(&self) -> String {
        let f = |v: f64| {
            if v.abs() >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        };
        let rows: Vec<(&str, Option<String>)> = vec![
            ("mode", Some(self.mode.to_owned())),
            ("target", Some(self.target.clone())),
            ("allocations", Some(self.allocations.to_string())),
            ("threads", Some(self.threads.to_string())),
            ("window (s)", Some(f(self.duration_s))),
            ("rate (requested)", self.rate.map(|r| if r == 0 { "flood".to_owned() } else { r.to_string() })),
            ("payload size (bytes)", self.size.map(|v| v.to_string())),
            ("echo", self.echo.map(|v| v.to_string())),
            ("framing", self.framing.map(str::to_owned)),
            ("burst (packets)", self.burst.map(|v| v.to_string())),
            ("frame interval (ms)", self.frame_interval_ms.map(|v| v.to_string())),
            ("bursts as GSO sends", self.gso.map(|v| v.to_string())),
            ("spinning (--spin)", self.spin.then(|| "true".to_owned())),
            ("sent", self.sent.map(|v| v.to_string())),
            ("delivered", self.delivered.map(|v| v.to_string())),
            ("offered pps", self.offered_pps.map(f)),
            ("relayed pps", self.relayed_pps.map(f)),
            ("relayed Mbps", self.mbps.map(f)),
            ("loss", self.loss.map(|l| format!("{:.4}%", l * 100.0))),
            ("dropped at the tool's peer", self.peer_drops.map(|v| v.to_string())),
            ("dropped at the server's port", self.server_drops.map(|v| v.to_string())),
            ("p50 (µs)", self.p50_us.map(f)),
            ("p99 (µs)", self.p99_us.map(f)),
            ("p99.9 (µs)", self.p999_us.map(f)),
            ("max (µs)", self.max_us.map(f)),
            ("allocations made", self.allocs.map(|v| v.to_string())),
            ("allocation failures", self.alloc_failures.map(|v| v.to_string())),
            ("allocations/s", self.allocs_per_s.map(f)),
            ("refreshes", self.refreshes.map(|v| v.to_string())),
            ("failed refreshes", self.failed_refreshes.map(|v| v.to_string())),
            ("server CPU (s)", self.server_cpu_s.map(f)),
            ("relayed per CPU-s", self.relayed_per_cpu_s.map(f)),
            ("allocations per CPU-s", self.allocs_per_cpu_s.map(f)),
            ("server RSS (KiB)", self.rss_kib.map(|v| v.to_string())),
            ("RSS per 1,000 allocations (KiB)", self.rss_per_1000_allocs_kib.map(f)),
        ];
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in rows {
            if let Some(value) = value {
                let pad = width - key.chars().count();
                let _ = writeln!(out, "{key}{:pad$}  {value}", "");
            }
        }
        out
    }
}

/// A histogram of nanoseconds from 1 ns to 60 s with three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_cpu_and_rss_are_read() {
        let me = ServerProc::new(std::process::id()).unwrap();
        assert!(me.cpu_seconds().unwrap() >= 0.0);
        assert!(me.rss_kib().unwrap() > 0);
        assert!(ServerProc::new(u32::MAX).is_err());
    }

    #[test]
    fn udp_drops_are_read_for_bound_ports() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(udp_drops(&[socket.local_addr().unwrap().port()]), 0);
    }

    #[test]
    fn table_and_json_show_what_applies() {
        let mut r = Report { mode: "latency", target: "127.0.0.1:3478".into(), duration_s: 2.0, ..Report::default() };
        r.relayed_pps = Some(1000.0);
        let mut h = latency_histogram();
        for v in [10_000, 20_000, 30_000] {
            h.record(v).unwrap();
        }
        r.set_latency(&h);
        r.set_cpu(Some(0.5));
        assert_eq!(r.relayed_per_cpu_s, Some(4000.0));
        let table = r.table();
        assert!(table.contains("relayed pps") && table.contains("p99 (µs)") && !table.contains("refreshes"));
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["mode"], "latency");
        assert!(json["p50_us"].as_f64().unwrap() >= 19.9);
        assert!(json["allocs"].is_null() && json["gso"].is_null());
        r.gso = Some(false);
        assert!(r.table().lines().any(|l| l.starts_with("bursts as GSO sends") && l.ends_with(" false")));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&r.json()).unwrap()["gso"], false);
    }
}
