//! `turnd import-coturn` on coturn's own example configuration and on a setup-guide style one:
//! the exact report, every converted value, `turnd check-config` on the output, errors that name
//! the line, and turnd serving coturn's client with an imported configuration.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::coturn::{self, Peer};
use common::{free_udp_port, Server};

/// coturn 4.6.1's example file (Debian's copy, with a first line naming its origin).
const EXAMPLE: &str = "tests/data/coturn/turnserver.conf";

fn turnd(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_turnd")).args(args).output().expect("run turnd")
}

/// `turnd import-coturn PATH -o OUT`: exit status, the report (stderr) and the TOML written.
fn import(path: &Path, out: &Path) -> (Output, String) {
    let output = turnd(&["import-coturn".as_ref(), path.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    let report = String::from_utf8(output.stderr.clone()).expect("UTF-8 report");
    (output, report)
}

/// `turnd check-config PATH` succeeds and says so.
fn check_config(path: &Path) {
    let output = turnd(&["check-config".as_ref(), path.as_os_str()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let toml = std::fs::read_to_string(path).unwrap_or_default();
    assert!(output.status.success(), "check-config failed: {stderr}\n{toml}");
    assert_eq!(stdout.trim(), format!("{}: ok", path.display()));
}

/// The report's groups: title word (`Ignored`, `Unsupported`, `Unknown`) to `(line, option)`s.
fn groups(report: &str) -> BTreeMap<String, Vec<(usize, String)>> {
    let mut out: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut current = None;
    for line in report.lines() {
        if let Some(entry) = line.strip_prefix("  line ") {
            let (number, rest) = entry.split_once(": ").expect("line N: option: reason");
            let option = rest.split(": ").next().unwrap().to_owned();
            let group = current.clone().expect("an entry under a group title");
            out.entry(group).or_default().push((number.parse().unwrap(), option));
        } else if !line.starts_with(' ') {
            current = line.split(' ').next().map(str::to_owned);
        }
    }
    out
}

fn options(entries: Option<&Vec<(usize, String)>>) -> Vec<&str> {
    entries.map(|e| e.iter().map(|(_, o)| o.as_str()).collect()).unwrap_or_default()
}

fn table(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().expect("the output is TOML")
}

fn strings(value: &toml::Value) -> Vec<&str> {
    value.as_array().expect("an array").iter().map(|v| v.as_str().expect("a string")).collect()
}

#[test]
fn coturns_example_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("turnserver.toml");
    let (output, report) = import(Path::new(EXAMPLE), &out);
    assert!(output.status.success(), "{report}");
    assert!(output.stdout.is_empty(), "the TOML goes to -o");
    let groups = groups(&report);
    // The spec: of the four options the example sets, turnd lacks only syslog.
    assert_eq!(options(groups.get("Unsupported")), ["syslog"], "{report}");
    assert_eq!(
        options(groups.get("Ignored")),
        ["no-rfc5780", "no-stun-backward-compatibility", "response-origin-only-with-rfc5780"],
        "{report}"
    );
    assert_eq!(groups.get("Unknown"), None, "{report}");
    assert!(report.starts_with("0 converted, 3 ignored, 1 unsupported, 0 unknown\n"), "{report}");
    // No credentials and no addresses in the file: the notes say what was filled in.
    assert!(report.contains("configures no credentials"), "{report}");
    assert!(report.contains("set server.listen and server.relay-ip"), "{report}");
    check_config(&out);
    let t = table(&out);
    assert_eq!(strings(&t["server"]["listen"]), ["127.0.0.1:3478"]);
    assert_eq!(strings(&t["auth"]["secrets"])[0].len(), 64, "a generated 256-bit secret");
}

/// A configuration as the TURN setup guides write it: every option the issue lists.
fn guide_config(dir: &Path) -> String {
    let generated = rcgen::generate_simple_self_signed(vec!["turn.example.com".into()]).unwrap();
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    format!(
        "# /etc/turnserver.conf for turn.example.com\n\
         listening-port=3478\n\
         tls-listening-port=5349\n\
         \n\
         fingerprint\n\
         lt-cred-mech\n\
         use-auth-secret\n\
         static-auth-secret=north-wind-rotated-2026\n\
         static-auth-secret=\"old secret\"\n\
         realm=turn.example.com\n\
         user=alice:wonderland\n\
         total-quota=100\n\
         stale-nonce=600\n\
         min-port=49160\n\
         max-port=49200\n\
         external-ip=203.0.113.10/10.0.0.5\n\
         cert={cert}\n\
         pkey={key}\n\
         no-multicast-peers\n\
         no-cli\n\
         denied-peer-ip=0.0.0.0-0.255.255.255\n\
         denied-peer-ip=10.0.0.0-10.255.255.255\n\
         denied-peer-ip=172.16.0.0-172.31.255.255\n\
         allowed-peer-ip=10.0.0.7\n\
         allowed-peer-ip=10.0.1.0-10.0.1.255\n",
        cert = cert.display(),
        key = key.display()
    )
}

#[test]
fn setup_guide_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("turnserver.conf");
    let out = dir.path().join("turnserver.toml");
    std::fs::write(&conf, guide_config(dir.path())).unwrap();
    let (output, report) = import(&conf, &out);
    assert!(output.status.success(), "{report}");
    let groups = groups(&report);
    assert_eq!(groups.get("Unsupported"), None, "{report}");
    assert_eq!(groups.get("Unknown"), None, "{report}");
    let ignored: Vec<(usize, String)> = groups["Ignored"].clone();
    let ignored: Vec<(usize, &str)> = ignored.iter().map(|(l, o)| (*l, o.as_str())).collect();
    // user= is ignored by coturn itself while REST secrets are set.
    assert_eq!(
        ignored,
        [(5, "fingerprint"), (6, "lt-cred-mech"), (11, "user"), (19, "no-multicast-peers"), (20, "no-cli")],
        "{report}"
    );
    assert!(report.starts_with("18 converted, 5 ignored, 0 unsupported, 0 unknown\n"), "{report}");
    check_config(&out);
    let t = table(&out);
    let server = &t["server"];
    assert_eq!(strings(&server["listen"]), ["0.0.0.0:3478"]);
    assert_eq!(strings(&server["tls-listen"]), ["0.0.0.0:5349"]);
    assert_eq!(server["external-ip"].as_str(), Some("203.0.113.10/10.0.0.5"));
    assert_eq!((server["min-port"].as_integer(), server["max-port"].as_integer()), (Some(49160), Some(49200)));
    assert_eq!(server["cert"].as_str(), Some(dir.path().join("fullchain.pem").to_str().unwrap()));
    assert_eq!(server["key"].as_str(), Some(dir.path().join("privkey.pem").to_str().unwrap()));
    let auth = &t["auth"];
    assert_eq!(auth["realm"].as_str(), Some("turn.example.com"));
    assert_eq!(strings(&auth["secrets"]), ["north-wind-rotated-2026", "old secret"]);
    assert_eq!(auth["nonce-lifetime"].as_integer(), Some(600));
    assert!(auth.get("users").is_none());
    assert_eq!(t["allocation"]["total-quota"].as_integer(), Some(100));
    assert_eq!(strings(&t["peers"]["denied"]), ["0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12"]);
    assert_eq!(strings(&t["peers"]["allowed"]), ["10.0.0.7/32", "10.0.1.0/24"]);
    // Each key names its coturn line; secrets are not repeated in comments.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("# coturn line 16: external-ip=203.0.113.10/10.0.0.5\nexternal-ip = "), "{text}");
    assert!(text.contains("# coturn line 8: static-auth-secret=…\n"), "{text}");

    // The long-term-user variant of the guide: no REST secret, so user= is converted.
    let users_only: String =
        guide_config(dir.path()).lines().filter(|l| !l.contains("auth-secret")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&conf, users_only).unwrap();
    let (output, report) = import(&conf, &out);
    assert!(output.status.success(), "{report}");
    check_config(&out);
    let users = table(&out)["auth"]["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 1);
    assert_eq!((users[0]["name"].as_str(), users[0]["password"].as_str()), (Some("alice"), Some("wonderland")));
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("turnserver.conf");
    let out = dir.path().join("turnserver.toml");
    #[rustfmt::skip]
    let cases = [
        ("realm=example.org\nlistening-port=34780\n\nmin-port=x\n", "4: min-port: `x` is not a whole number"),
        ("user=alice\n", "1: user: expected NAME:PASSWORD or NAME:0xKEY"),
        ("# c\ndenied-peer-ip=10.0.0.0/8\n", "2: denied-peer-ip: `10.0.0.0/8` is not an IP address or a FIRST-LAST range"),
        ("no-tcp=perhaps\n", "1: no-tcp: `perhaps` is not a boolean"),
    ];
    for (text, want) in cases {
        std::fs::write(&conf, text).unwrap();
        let (output, stderr) = import(&conf, &out);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        let prefix = format!("turnd: import-coturn: {}:{want}", conf.display());
        assert!(stderr.starts_with(&prefix), "{text}:\n{stderr}\nwanted {prefix}");
        assert!(!out.exists(), "nothing is written on an error");
    }
    let missing: PathBuf = dir.path().join("missing.conf");
    let (output, stderr) = import(&missing, &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.starts_with(&format!("turnd: import-coturn: cannot read {}: ", missing.display())), "{stderr}");
}

/// A coturn configuration for loopback, converted, runs turnd, and coturn's client relays
/// through it with the user the coturn file defined.
#[test]
fn imported_config_serves_coturns_client() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("turnserver.conf");
    let out = dir.path().join("turnserver.toml");
    let port = free_udp_port();
    let text = format!(
        "listening-ip=127.0.0.1\nlistening-port={port}\nrelay-ip=127.0.0.1\nrealm=coturn.test\nlt-cred-mech\n\
         user=alice:wonderland\nfingerprint\nallow-loopback-peers\nno-tls\nno-dtls\n"
    );
    std::fs::write(&conf, text).unwrap();
    let (output, report) = import(&conf, &out);
    assert!(output.status.success(), "{report}");
    let server = Server::turnd(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(server.addr, format!("127.0.0.1:{port}").parse().unwrap());
    let peer = Peer::start();
    coturn::uclient(&server, Some(&peer), &["-u", "alice", "-w", "wonderland"], &[], 100, 2);
}

/// Every long option the installed coturn's usage text lists is one the importer knows: a
/// bare line of it is converted, reported as ignored or unsupported, or refused for its
/// missing value, never reported as unknown.
#[test]
fn every_option_of_the_installed_coturn_is_known() {
    let usage = Command::new(coturn::tool("turnserver")).arg("-h").output().expect("run turnserver -h");
    let usage = String::from_utf8_lossy(&usage.stdout);
    // Option lines start with a space and a dash; the tab-indented lines below them describe.
    let mut names: Vec<&str> = usage
        .lines()
        .filter(|l| l.starts_with(' ') && l.trim_start().starts_with('-'))
        .flat_map(|l| l.split("--").skip(1))
        .map(|rest| rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).next().unwrap())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() > 100 && names.contains(&"listening-port"), "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    let (conf, out) = (dir.path().join("turnserver.conf"), dir.path().join("turnserver.toml"));
    for name in names {
        std::fs::write(&conf, format!("user=a:b\n{name}\n")).unwrap();
        let (output, report) = import(&conf, &out);
        match output.status.code() {
            Some(0) => assert!(!report.contains("Unknown"), "{name}: {report}"),
            Some(2) => assert!(report.contains(&format!(":2: {name}: ")), "{name}: {report}"),
            other => panic!("{name}: exit {other:?}: {report}"),
        }
    }
}
