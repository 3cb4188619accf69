//! The fail2ban filter and jail shipped in systemd/fail2ban/ match turnd's real failure log
//! lines and nothing else, from a log file and from the journal, and a ban puts a rule in place.
//! Uses Debian's fail2ban (installed by scripts/test and .ci/run): fail2ban-regex for the file
//! form, and fail2ban's own Python code (tests/data/fail2ban/driver.py) for the journal form
//! and the ban action, which no fail2ban command runs without a journal or root.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::client::{rest_credentials, TurnClient};
use common::{unix_now, Config, Server};

const FILTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/fail2ban/filter.d/turnd.conf");
const JAIL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/fail2ban/jail.d/turnd.local");
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fail2ban/driver.py");
/// fail2ban's interpreter (the `#!` of fail2ban-regex), which sees its Python package.
const PYTHON: &str = "/usr/bin/python3";

/// The counts from fail2ban-regex's summary line: `Lines: N lines, I ignored, M matched, X missed`.
fn summary(out: &str) -> (u64, u64) {
    let line = out.lines().find(|l| l.starts_with("Lines:")).unwrap_or_else(|| panic!("no summary:\n{out}"));
    let count = |word: &str| -> u64 {
        let before = line.split(word).next().unwrap();
        before.rsplit(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty()).unwrap().parse().unwrap()
    };
    (count(" matched"), count(" missed"))
}

/// A server whose log holds five failed credential checks (wrong password three times, an
/// unknown user, an expired REST username) and one good login, all from 127.0.0.1.
fn server_with_five_failures() -> Server {
    let server = Config::default().start();
    for _ in 0..3 {
        let e = TurnClient::new(server.addr).allocate("alice", "wrong").expect_err("wrong password");
        assert_eq!(e.code, 401);
    }
    assert_eq!(TurnClient::new(server.addr).allocate("mallory", "x").unwrap_err().code, 401);
    let (expired, pass) = rest_credentials("s3cret", "carol", unix_now() - 60);
    assert_eq!(TurnClient::new(server.addr).allocate(&expired, &pass).unwrap_err().code, 401);
    let mut ok = TurnClient::new(server.addr);
    ok.allocate("alice", "wonderland").expect("a good login");
    ok.refresh(0).unwrap();
    server
}

/// Runs the driver with `args`, `stdin` on its standard input, `path` first in PATH.
fn driver(args: &[&str], stdin: &str, path: Option<&Path>) -> Output {
    let mut command = Command::new(PYTHON);
    command.arg(DRIVER).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = path {
        command.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
    }
    let mut child = command.spawn().expect("python3 (a dependency of Debian's fail2ban) is installed");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_filter_matches_failures_and_nothing_else() {
    let server = server_with_five_failures();
    let log = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(log.path(), server.stderr()).unwrap();
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(log.path())
        .arg(FILTER)
        .output()
        .expect("fail2ban-regex (Debian package fail2ban) is installed by scripts/test");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (matched, missed) = summary(&out);
    assert_eq!(matched, 5, "the five failed credential checks:\n{out}");
    assert!(missed >= 1, "startup lines are not failures:\n{out}");
    assert!(out.contains("127.0.0.1"), "the address is what fail2ban bans:\n{out}");
}

/// The jail reads the journal: fail2ban then builds `host turnd[pid]: MESSAGE`, with turnd's
/// own timestamp still in MESSAGE and no datepattern applied.
#[test]
fn the_filter_matches_failures_in_the_journal_form_too() {
    let server = server_with_five_failures();
    let out = driver(&["journal", FILTER], &server.stderr(), None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(stdout.contains("turnd-relay-0 turnd[4242]: "), "lines in fail2ban's journal form:\n{text}");
    let results: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("journal line:")).collect();
    let matched = results.iter().filter(|l| l.starts_with("matched")).count();
    assert_eq!(matched, 5, "the five failed credential checks:\n{text}");
    assert!(results.iter().filter(|l| l.starts_with("matched")).all(|l| *l == "matched 127.0.0.1"), "{text}");
    assert!(results.contains(&"missed"), "startup lines are not failures:\n{text}");
}

/// Stand-ins for iptables, ip6tables and nft that log their arguments and refuse, like the real
/// tools, a port match without a protocol that has ports (`-p all -m multiport`, `all dport`).
const FAKE_FIREWALL: &str = r#"#!/bin/sh
echo "$(basename "$0") $*" >> "$(dirname "$0")/calls"
case " $* " in
  *" -p all "*"-m multiport"*) echo "multiport needs -p tcp, -p udp, ..." >&2; exit 2 ;;
  *" all dport "*) echo "syntax error" >&2; exit 1 ;;
  *" -C "*) exit 1 ;;
esac
exit 0
"#;

#[test]
fn a_ban_blocks_udp_and_tcp_on_the_turn_ports() {
    let conf = tempfile::tempdir().unwrap();
    let status = Command::new("cp").arg("-r").arg("/etc/fail2ban/.").arg(conf.path()).status().unwrap();
    assert!(status.success(), "fail2ban's configuration is in /etc/fail2ban");
    std::fs::copy(FILTER, conf.path().join("filter.d/turnd.conf")).unwrap();
    std::fs::copy(JAIL, conf.path().join("jail.d/turnd.local")).unwrap();
    let bin = tempfile::tempdir().unwrap();
    for tool in ["iptables", "ip6tables", "nft"] {
        let path = bin.path().join(tool);
        std::fs::write(&path, FAKE_FIREWALL).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let out = driver(&["ban", conf.path().to_str().unwrap(), "198.51.100.7"], "", Some(bin.path()));
    let calls = std::fs::read_to_string(bin.path().join("calls")).unwrap_or_default();
    let text =
        format!("{}\n{}\ncalls:\n{calls}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the jail's ban action starts and bans:\n{text}");
    for proto in ["udp", "tcp"] {
        let covered = calls.lines().any(|l| l.contains(proto) && l.contains("3478") && l.contains("49152"));
        assert!(covered, "{proto} on 3478 and the relay range is blocked:\n{text}");
    }
    assert!(calls.contains("198.51.100.7"), "the banned address is in the chain:\n{text}");
}
