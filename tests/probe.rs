//! `turnd probe` against a turnd on loopback: succeeds with REST and static credentials (under
//! the default peer policy), and fails naming the step when something is wrong.

mod common;

use std::process::{Command, Output};

use common::{free_udp_port, Config};

fn probe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_turnd")).arg("probe").args(args).output().unwrap()
}

#[test]
fn probe_succeeds_and_names_the_failing_step() {
    let server = Config::default_policy().start();
    let addr = server.addr.to_string();
    for args in [
        &["--server", &addr, "--secret", "s3cret"][..],
        &["--server", &addr, "--user", "alice", "--password", "wonderland"],
    ] {
        let out = probe(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with("ok: mapped 127.0.0.1:"), "{stdout}");
    }
    let wrong = probe(&["--server", &addr, "--user", "alice", "--password", "nope"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("probe failed at allocate: error 401"));

    // Nothing listening: the first step fails, after its bounded timeout.
    let silent = format!("127.0.0.1:{}", free_udp_port());
    let nobody = probe(&["--server", &silent, "--secret", "s3cret"]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("probe failed at binding"));
}
