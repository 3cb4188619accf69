//! The fail2ban filter shipped in systemd/fail2ban/ matches turnd's real failure log lines and
//! nothing else. Uses Debian's fail2ban-regex (installed by scripts/test and .ci/run).

mod common;

use std::process::Command;

use common::client::{rest_credentials, TurnClient};
use common::{unix_now, Config};

/// The counts from fail2ban-regex's summary line: `Lines: N lines, I ignored, M matched, X missed`.
fn summary(out: &str) -> (u64, u64) {
    let line = out.lines().find(|l| l.starts_with("Lines:")).unwrap_or_else(|| panic!("no summary:\n{out}"));
    let count = |word: &str| -> u64 {
        let before = line.split(word).next().unwrap();
        before.rsplit(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty()).unwrap().parse().unwrap()
    };
    (count(" matched"), count(" missed"))
}

#[test]
fn the_filter_matches_failures_and_nothing_else() {
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

    let log = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(log.path(), server.stderr()).unwrap();
    let filter = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/fail2ban/filter.d/turnd.conf");
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(log.path())
        .arg(filter)
        .output()
        .expect("fail2ban-regex (Debian package fail2ban) is installed by scripts/test");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (matched, missed) = summary(&out);
    assert_eq!(matched, 5, "the five failed credential checks:\n{out}");
    assert!(missed >= 1, "startup lines are not failures:\n{out}");
    assert!(out.contains("127.0.0.1"), "the address is what fail2ban bans:\n{out}");
}
