//! `turnd bench` against a turnd started here (and coturn's turnserver): every mode runs
//! briefly (about a second, a few allocations, low rates) and prints a JSON line that parses,
//! with relayed traffic, sane loss outside flood, exact allocation counts and no failed
//! refreshes. Bursts reach turnd as GSO sends (and, with --no-gso, as single datagrams) and
//! every frame comes back, also to a tool that spins instead of sleeping (`--spin`). `turnd
//! bench --bare` carries one-way traffic through `turnd bench-forwarder`. No timing is
//! asserted. A non-loopback target is refused before anything is sent.

mod common;

use std::process::Command;

use common::coturn::Coturn;
use common::{config, Config, Server};
use serde_json::Value;

/// A turnd that allows loopback peers, without the per-source rate limits.
fn server() -> Server {
    Server::turnd(&config(0, "[limits]\nallocate-rate = 0\nchallenge-rate = 0\n"))
}

/// Runs `turnd bench TARGET --json ARGS` (a one-second window unless ARGS set one) and returns
/// its JSON line.
fn bench(target: &str, args: &[&str]) -> Value {
    let window: &[&str] = if args.contains(&"--duration") { &[] } else { &["--duration", "1"] };
    let out = Command::new(env!("CARGO_BIN_EXE_turnd"))
        .args(["bench", target, "--json", "--warmup", "0.2"])
        .args(window)
        .args(args)
        .output()
        .expect("run turnd bench");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench {args:?} failed: {stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_else(|| panic!("bench {args:?} printed nothing\n{stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bench {args:?}: not JSON ({e}): {line}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Relayed traffic, and loss (payloads sent in the window that never arrived) under `max_loss`.
fn assert_relayed(v: &Value, max_loss: f64) {
    assert!(num(v, "sent") > 0.0 && num(v, "relayed_pps") > 0.0 && num(v, "mbps") > 0.0, "{v}");
    let loss = num(v, "loss");
    assert!((0.0..=max_loss).contains(&loss), "loss {loss}: {v}");
}

#[test]
fn every_mode_runs_against_turnd() {
    let server = server();
    let target = server.addr.to_string();
    let pid = server.pid().to_string();
    let creds = ["--secret", "s3cret", "--server-pid", &pid];

    let one_way = bench(&target, &[&creds[..], &["--mode", "throughput", "-n", "4", "--rate", "2000"]].concat());
    assert_eq!((one_way["mode"].as_str(), one_way["framing"].as_str()), (Some("throughput"), Some("channel")));
    assert_relayed(&one_way, 0.5);
    assert!(one_way["p50_us"].is_null(), "one-way has no round trips: {one_way}");
    assert_eq!(one_way["spin"].as_bool(), Some(false), "{one_way}");
    assert!(num(&one_way, "server_cpu_s") >= 0.0 && num(&one_way, "rss_kib") > 0.0, "{one_way}");

    // Echoed over Send/Data indications from two worker threads, with the static user.
    let user = ["--user", "alice", "--password", "wonderland"];
    let echo = bench(
        &target,
        &[&user[..], &["-n", "4", "--rate", "1000", "--echo", "--send-indications", "--threads", "2"]].concat(),
    );
    assert_eq!(echo["framing"].as_str(), Some("send"));
    assert_relayed(&echo, 0.5);
    assert!(num(&echo, "p50_us") <= num(&echo, "p99_us"), "{echo}");

    let bursts = bench(
        &target,
        &[&creds[..], &["--mode", "bursts", "-n", "4", "--burst", "5", "--frame-interval", "20", "--echo"]].concat(),
    );
    assert_eq!(bursts["burst"].as_u64(), Some(5));
    assert_relayed(&bursts, 0.5);

    let latency = bench(&target, &[&creds[..], &["--mode", "latency", "-n", "2", "--rate", "500"]].concat());
    assert_relayed(&latency, 0.5);
    let (p50, p99, p999) = (num(&latency, "p50_us"), num(&latency, "p99_us"), num(&latency, "p999_us"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{latency}");

    // Flood: something is relayed; loss is whatever the machine makes of it.
    let flood = bench(&target, &[&creds[..], &["-n", "2", "--rate", "0", "--size", "100"]].concat());
    assert_relayed(&flood, 1.0);

    for delete in [false, true] {
        let args = [&creds[..], &["--mode", "alloc", "-n", "30", "--duration", "30", "--threads", "2"]].concat();
        let alloc = bench(&target, &[&args[..], if delete { &["--delete"][..] } else { &[] }].concat());
        assert_eq!((alloc["allocs"].as_u64(), alloc["alloc_failures"].as_u64()), (Some(30), Some(0)), "{alloc}");
        assert!(num(&alloc, "allocs_per_s") > 0.0 && alloc["p50_us"].is_number(), "{alloc}");
        assert!(alloc["server_cpu_s"].is_number(), "{alloc}");
    }

    let hold = bench(&target, &[&creds[..], &["--mode", "hold", "-n", "40", "--refresh-every", "0.3"]].concat());
    assert_eq!((hold["allocs"].as_u64(), hold["alloc_failures"].as_u64()), (Some(40), Some(0)), "{hold}");
    assert_eq!(hold["failed_refreshes"].as_u64(), Some(0), "{hold}");
    assert!(num(&hold, "refreshes") >= 40.0 && hold["rss_per_1000_allocs_kib"].is_number(), "{hold}");
}

/// `--spin`: the tool polls its non-blocking sockets instead of sleeping; requests (with
/// their 401 round trip), refreshes, deletes and relayed traffic all still get their answers.
#[test]
fn a_spinning_load_gets_every_answer() {
    let server = server();
    let target = server.addr.to_string();
    let creds = ["--secret", "s3cret", "--spin"];

    let alloc =
        bench(&target, &[&creds[..], &["--mode", "alloc", "-n", "30", "--delete", "--duration", "30"]].concat());
    assert_eq!((alloc["allocs"].as_u64(), alloc["alloc_failures"].as_u64()), (Some(30), Some(0)), "{alloc}");
    assert_eq!(alloc["spin"].as_bool(), Some(true), "{alloc}");

    let bursts = bench(
        &target,
        &[&creds[..], &["--mode", "bursts", "-n", "4", "--burst", "8", "--frame-interval", "20", "--echo"]].concat(),
    );
    assert_relayed(&bursts, 0.5);
    let latency = bench(&target, &[&creds[..], &["--mode", "latency", "-n", "2", "--rate", "500"]].concat());
    assert_relayed(&latency, 0.5);
    assert!(num(&latency, "p50_us") <= num(&latency, "p99_us"), "{latency}");

    let hold = bench(&target, &[&creds[..], &["--mode", "hold", "-n", "20", "--refresh-every", "0.3"]].concat());
    assert_eq!((hold["allocs"].as_u64(), hold["failed_refreshes"].as_u64()), (Some(20), Some(0)), "{hold}");
    assert!(num(&hold, "refreshes") >= 20.0, "{hold}");
}

#[test]
fn bursts_with_and_without_gso_deliver_every_frame() {
    let server = server();
    let target = server.addr.to_string();
    let args = ["--secret", "s3cret", "--mode", "bursts", "-n", "4", "--burst", "8", "--size", "1200", "--echo"];
    for (gso, flag) in [(true, &[][..]), (false, &["--no-gso"][..])] {
        let v = bench(&target, &[&args[..], flag].concat());
        assert_eq!(v["gso"].as_bool(), Some(gso), "{v}");
        let (sent, delivered) = (v["sent"].as_u64(), v["delivered"].as_u64());
        assert!(sent.is_some_and(|s| s > 0), "{v}");
        assert_eq!(delivered, sent, "every frame went there and back: {v}");
        assert_eq!(num(&v, "loss"), 0.0, "{v}");
        // relayed_pps counts both legs: the peer got every frame too.
        let relayed = num(&v, "relayed_pps") * num(&v, "duration_s");
        assert!((relayed - 2.0 * sent.unwrap_or(0) as f64).abs() < 0.5, "relayed {relayed}: {v}");
    }
}

/// `turnd bench-forwarder` to `to`, killed when dropped; its listening address.
struct Forwarder(std::process::Child, String);

impl Forwarder {
    fn start(to: &str) -> Forwarder {
        let mut child = Command::new(env!("CARGO_BIN_EXE_turnd"))
            .args(["bench-forwarder", "--listen", "127.0.0.1:0", "--to", to, "--exit-after", "120"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run turnd bench-forwarder");
        // It prints its address once its socket is bound.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read its address");
        let addr = line.strip_prefix("turnd bench-forwarder: ").and_then(|l| l.split(' ').next());
        let addr = addr.unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
        Forwarder(child, addr)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bench_bare_loads_the_bare_forwarder() {
    // A port for the tool's peer socket, free now (the forwarder sends only there).
    let peer_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let forwarder = Forwarder::start(&format!("127.0.0.1:{peer_port}"));
    let pid = forwarder.0.id().to_string();
    let bare = ["--bare", "--peer-port", &peer_port, "--server-pid", &pid, "-n", "4"];
    for size in ["100", "1200"] {
        let v = bench(&forwarder.1, &[&bare[..], &["--rate", "2000", "--size", size]].concat());
        assert_eq!((v["mode"].as_str(), v["framing"].as_str()), (Some("throughput"), Some("channel")), "{v}");
        assert_eq!(v["size"].as_u64(), size.parse().ok(), "{v}");
        assert_relayed(&v, 0.5);
        assert!(num(&v, "server_cpu_s") >= 0.0 && num(&v, "rss_kib") > 0.0, "{v}");
    }

    // What the forwarder cannot carry is refused before anything is sent.
    for (extra, why) in [
        (&["--echo"][..], "without --echo"),
        (&["--mode", "latency"][..], "--mode throughput"),
        (&["--send-indications"][..], "--send-indications"),
        (&["--threads", "2"][..], "one thread"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_turnd"))
            .args(["bench", &forwarder.1])
            .args(bare)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--bare") && stderr.contains(why), "{extra:?}: {stderr}");
    }
}

#[test]
fn refuses_non_loopback_targets_and_names_a_refused_peer() {
    // Refused before any socket is opened: nothing is sent to the documentation address.
    let out =
        Command::new(env!("CARGO_BIN_EXE_turnd")).args(["bench", "192.0.2.1:3478", "--secret", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to load 192.0.2.1:3478") && stderr.contains("--allow-remote"), "{stderr}");

    // turnd's default policy denies loopback peers: the error says how to allow the tool's peer.
    let server = Config { allowed: None, ..Config::default() }.start();
    let out = Command::new(env!("CARGO_BIN_EXE_turnd"))
        .args(["bench", &server.addr.to_string(), "--secret", "s3cret", "-n", "1", "--duration", "0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error 403") && stderr.contains("--allow-peer 127.0.0.1/32"), "{stderr}");
}

#[test]
fn works_against_coturn() {
    let coturn = Coturn::start(&[]);
    let target = format!("127.0.0.1:{}", coturn.port);
    let pid = coturn.pid().to_string();
    let user = ["--user", "alice", "--password", "wonderland", "--server-pid", &pid];
    for framing in [&[][..], &["--send-indications"]] {
        let v = bench(&target, &[&user[..], &["-n", "4", "--rate", "1000", "--echo"], framing].concat());
        assert_relayed(&v, 0.5);
        assert!(v["server_cpu_s"].is_number(), "{v}");
    }
    // coturn reads a GSO burst as the datagrams the kernel cuts it into.
    let bursts = ["--mode", "bursts", "-n", "4", "--burst", "8", "--size", "1200", "--echo"];
    let v = bench(&target, &[&user[..], &bursts[..]].concat());
    assert_eq!(v["gso"].as_bool(), Some(true), "{v}");
    assert_relayed(&v, 0.5);
    for wait in [&[][..], &["--spin"]] {
        let args = [&user[..], &["--mode", "alloc", "-n", "20", "--delete", "--duration", "30"], wait].concat();
        let alloc = bench(&target, &args);
        assert_eq!((alloc["allocs"].as_u64(), alloc["alloc_failures"].as_u64()), (Some(20), Some(0)), "{alloc}");
    }
    let hold = bench(&target, &[&user[..], &["--mode", "hold", "-n", "20", "--refresh-every", "0.3"]].concat());
    assert_eq!(hold["failed_refreshes"].as_u64(), Some(0), "{hold}");
}
