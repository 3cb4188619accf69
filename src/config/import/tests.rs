//! Unit tests of the coturn import: coturn's line syntax, each mapping, and the report.

use super::*;
use crate::config::tests::TlsFiles;
use crate::config::{Config, UserSecret as TurndSecret};

const GENERATED: &str = "generated-secret-for-the-tests";

fn import(text: &str) -> Imported {
    import_coturn(text, GENERATED).unwrap_or_else(|e| panic!("{text}\n=> {e}"))
}

/// The import of `text`, checked to be a valid turnd configuration.
fn config(text: &str) -> (Config, Report) {
    let imported = import(text);
    let config = Config::parse(&imported.toml, "imported.toml").unwrap_or_else(|e| panic!("{}\n=> {e}", imported.toml));
    (config, imported.report)
}

fn names(entries: &[Entry]) -> Vec<(usize, &str)> {
    entries.iter().map(|e| (e.line, e.option.as_str())).collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn lines_are_split_as_coturn_splits_them() {
    let text = "# comment\n  \t# indented comment\n\nrealm=a.example\nrealm b.example\n realm = \"c d\"  \r\n\
                fingerprint\nverbose\t=\t\nuser=x:\"y\"\n";
    let got: Vec<(usize, &str, &str)> = lines(text).map(|l| (l.number, l.name, l.value)).collect();
    assert_eq!(
        got,
        [
            (4, "realm", "a.example"),
            (5, "realm", "b.example"),
            (6, "realm", "c d"),
            (7, "fingerprint", ""),
            (8, "verbose", ""),
            (9, "user", "x:\"y\""),
        ]
    );
}

#[test]
fn ranges_become_the_fewest_cidrs() {
    #[rustfmt::skip]
    let cases: [(&str, &[&str]); 7] = [
        ("203.0.113.7", &["203.0.113.7/32"]),
        ("10.0.0.0-10.0.0.255", &["10.0.0.0/24"]),
        // coturn's own example.
        ("83.166.64.0-83.166.95.255", &["83.166.64.0/19"]),
        ("10.0.0.1-10.0.0.6", &["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]),
        ("0.0.0.0-255.255.255.255", &["0.0.0.0/0"]),
        ("2001:db8::-2001:db8::ffff", &["2001:db8::/112"]),
        ("2001:db8::1 - 2001:db8::2", &["2001:db8::1/128", "2001:db8::2/128"]),
    ];
    for (range, want) in cases {
        assert_eq!(peer_range(range), Some(nets(want)), "{range}");
    }
    for bad in ["10.0.0.9-10.0.0.1", "10.0.0.1-2001:db8::1", "10.0.0.0/8", "10.0.0.1-", "host.example"] {
        assert_eq!(peer_range(bad), None, "{bad}");
    }
}

#[test]
fn peer_lists_accumulate_and_loopback_can_be_allowed() {
    let text = "user=a:b\ndenied-peer-ip=203.0.113.0-203.0.113.127\ndenied-peer-ip=2001:db8::5\n\
                allowed-peer-ip=10.1.2.3\nallow-loopback-peers\nallowed-peer-ip=10.9.0.0-10.9.1.255\n";
    let (c, report) = config(text);
    assert_eq!(c.denied_peers, nets(&["203.0.113.0/25", "2001:db8::5/128"]));
    assert_eq!(c.allowed_peers, nets(&["127.0.0.0/8", "::1/128", "10.1.2.3/32", "10.9.0.0/23"]));
    assert_eq!(report.converted.len(), 6);
    let err = import_coturn("allowed-peer-ip=10.0.0.0/8\n", GENERATED).unwrap_err();
    assert_eq!((err.line, err.option.as_str()), (1, "allowed-peer-ip"));
    assert!(err.message.contains("no CIDR"), "{err}");
}

#[test]
fn listening_ips_times_ports() {
    let text = "listening-ip=10.0.0.5\nlistening-ip=2001:db8::5\nlistening-ip=10.0.0.5\nlistening-port=3479\n\
                alt-listening-port=3480\naux-server=10.0.0.6:3478\naux-server=[2001:db8::6]:3478\nuser=a:b\n";
    let (c, report) = config(text);
    let want: Vec<SocketAddr> = [
        "10.0.0.5:3479",
        "[2001:db8::5]:3479",
        "10.0.0.5:3480",
        "[2001:db8::5]:3480",
        "10.0.0.6:3478",
        "[2001:db8::6]:3478",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    assert_eq!(c.listen, want);
    assert_eq!(c.relay_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    assert!(report.unsupported.is_empty() && report.ignored.is_empty(), "{report}");
    // The key is commented with every line it came from.
    let toml = import(text).toml;
    let comments: Vec<&str> =
        toml.lines().take_while(|l| !l.starts_with("listen")).filter(|l| l.starts_with("# coturn line ")).collect();
    assert_eq!(comments.len(), 7, "{toml}");
    assert!(comments.contains(&"# coturn line 4: listening-port=3479"), "{toml}");
}

#[test]
fn without_listening_ip_turnd_listens_where_it_can_name_a_relay() {
    // 1:1 NAT with the private address: listen everywhere, relay on the private one.
    let (c, report) = config("external-ip=203.0.113.10/10.0.0.5\nuser=a:b\n");
    assert_eq!(c.listen, ["0.0.0.0:3478".parse().unwrap()]);
    assert_eq!(
        (c.relay_ip.to_string(), c.external_ip.unwrap().to_string()),
        ("10.0.0.5".into(), "203.0.113.10".into())
    );
    assert!(report.notes.iter().any(|n| n.starts_with("no listening-ip: coturn listens on every address")));
    // The public address only: relays on every address.
    let (c, _) = config("external-ip=203.0.113.10\nuser=a:b\n");
    assert_eq!((c.relay_ip.to_string(), c.external_ip.unwrap().to_string()), ("0.0.0.0".into(), "203.0.113.10".into()));
    // relay-ip alone: the first IPv4 one, and the first IPv6 one as the second relay.
    let (c, report) = config("relay-ip=2001:db8::5\nrelay-ip=10.0.0.5\nrelay-ip=10.0.0.6\nuser=a:b\n");
    assert_eq!((c.listen[0].to_string(), c.relay_ip.to_string()), ("0.0.0.0:3478".into(), "10.0.0.5".into()));
    assert_eq!(c.second_relay.map(|r| r.ip.to_string()), Some("2001:db8::5".into()));
    assert_eq!(names(&report.unsupported), [(3, "relay-ip")]);
    // Nothing to go on: loopback, with a note saying what to set.
    let (c, report) = config("user=a:b\n");
    assert_eq!(c.listen, ["127.0.0.1:3478".parse().unwrap()]);
    assert!(report.notes.iter().any(|n| n.contains("set server.listen and server.relay-ip")), "{report}");
    // A second external-ip, and one whose private part is not the relay address.
    let (c, report) =
        config("relay-ip=10.0.0.5\nexternal-ip=203.0.113.1/10.0.0.9\nexternal-ip=203.0.113.2\nuser=a:b\n");
    assert_eq!(c.external_ip, None);
    assert_eq!(names(&report.unsupported), [(2, "external-ip"), (3, "external-ip")]);
}

#[test]
fn a_dual_stack_relay_keeps_one_relay_per_family() {
    let text = "listening-ip=10.0.0.5\nlistening-ip=2001:db8::5\nrelay-ip=10.0.0.5\nrelay-ip=2001:db8::5\n\
                external-ip=203.0.113.10/10.0.0.5\nexternal-ip=2001:db8::5\nstatic-auth-secret=s\n\
                allocation-default-address-family=ipv6\n";
    let (c, report) = config(text);
    assert_eq!(
        (c.relay_ip.to_string(), c.external_ip.map(|e| e.to_string())),
        ("10.0.0.5".into(), Some("203.0.113.10".into()))
    );
    let second = c.second_relay.expect("the IPv6 relay");
    assert_eq!(
        (second.ip.to_string(), second.external.map(|e| e.to_string())),
        ("2001:db8::5".into(), Some("2001:db8::5".into()))
    );
    assert_eq!(c.default_family, crate::turn::DefaultFamily::Ipv6);
    assert!(report.unsupported.is_empty(), "{report}");
    // The IPv6 external-ip first, and its PRIVATE as the IPv6 relay.
    let (c, report) = config(
        "listening-ip=10.0.0.5\nexternal-ip=2001:db8::10/fd00::5\nexternal-ip=203.0.113.10/10.0.0.5\nuser=a:b\n",
    );
    assert_eq!(c.relay_ip.to_string(), "10.0.0.5");
    assert_eq!(
        c.second_relay.map(|r| (r.ip.to_string(), r.external)),
        Some(("fd00::5".into(), Some("2001:db8::10".parse().unwrap())))
    );
    assert!(report.unsupported.is_empty(), "{report}");
    // Next to a relay address turnd works out from the listen address, that address is written.
    let (c, report) =
        config("listening-ip=10.0.0.5\nexternal-ip=203.0.113.1\nexternal-ip=2001:db8::10/fd00::5\nuser=a:b\n");
    let relays = c.relays();
    assert_eq!(relays.v4.map(|r| (r.ip, r.external)), Some((ip("10.0.0.5"), Some(ip("203.0.113.1")))));
    assert_eq!(relays.v6.map(|r| (r.ip, r.external)), Some((ip("fd00::5"), Some(ip("2001:db8::10")))));
    assert!(report.unsupported.is_empty(), "{report}");
    // What turnd cannot take is reported with the reason: an IPv6 external-ip without an IPv6
    // relay, a loopback relay next to public listeners, and ipv6 as the default family without
    // an IPv6 relay.
    let cases: [(&str, (usize, &str), &str); 3] = [
        ("relay-ip=10.0.0.5\nexternal-ip=2001:db8::10\nuser=a:b\n", (2, "external-ip"), "no relay-ip of its family"),
        ("listening-ip=10.0.0.5\nrelay-ip=10.0.0.5\nrelay-ip=::1\nuser=a:b\n", (3, "relay-ip"), "is loopback but"),
        (
            "relay-ip=10.0.0.5\nallocation-default-address-family=ipv6\nuser=a:b\n",
            (2, "allocation-default-address-family"),
            "no IPv6 relay",
        ),
    ];
    for (text, unsupported, why) in cases {
        let (c, report) = config(text);
        assert_eq!(names(&report.unsupported), [unsupported], "{text}{report}");
        assert!(report.unsupported[0].reason.contains(why), "{text}{report}");
        assert_eq!(c.second_relay, None);
    }
}

#[test]
fn users_and_keys() {
    let key = "0xbc807ee29df3c9ffa736523fb2c4e8ee";
    let text = format!("realm=example.org\nuser=alice:pass:word\nuser=bob:{key}\nuser=alice:second\nlt-cred-mech\n");
    let (c, report) = config(&text);
    assert_eq!(c.realm, "example.org");
    let users: Vec<(&str, &TurndSecret)> = c.users.iter().map(|u| (u.name.as_str(), &u.secret)).collect();
    let bob_key = crate::config::parse_key(key).unwrap();
    assert_eq!(users, [("bob", &TurndSecret::Key(bob_key)), ("alice", &TurndSecret::Password("second".into()))]);
    // The earlier alice is reported; passwords never appear in comments or the report.
    assert_eq!(names(&report.ignored), [(2, "user"), (5, "lt-cred-mech")]);
    let toml = import(&text).toml;
    assert!(toml.contains("# coturn line 4: user=alice:…") && !toml.contains("user=alice:second"), "{toml}");
    assert!(!report.to_string().contains("pass:word"));
    for bad in ["user=alice", "user=:pw", "user=alice:", "user=bob:0x1234"] {
        let err = import_coturn(&format!("realm=r\n{bad}\n"), GENERATED).unwrap_err();
        assert_eq!((err.line, err.option.as_str()), (2, "user"), "{bad}");
    }
    // A 0x key without the realm it was made with.
    let report = import(&format!("user=bob:{key}\n")).report;
    assert!(report.notes.iter().any(|n| n.contains("set auth.realm")), "{report}");
}

#[test]
fn rest_secrets_accumulate_and_displace_users() {
    let text = "use-auth-secret\nstatic-auth-secret=first\nuser=alice:pw\nstatic-auth-secret=second\n\
                static-auth-secret=first\nrest-api-separator=/\n";
    let (c, report) = config(text);
    assert_eq!(c.secrets, ["first", "second"]);
    assert!(c.users.is_empty());
    assert_eq!(c.rest_separator, '/');
    // coturn ignores user= in REST mode, so turnd does not take it either.
    assert_eq!(names(&report.ignored), [(3, "user"), (5, "static-auth-secret")]);
    assert_eq!(
        names(&report.converted),
        [(1, "use-auth-secret"), (2, "static-auth-secret"), (4, "static-auth-secret"), (6, "rest-api-separator")]
    );
    assert!(!import(text).toml.contains("static-auth-secret=first"));
    // use-auth-secret alone means secrets in coturn's database: a generated one stands in.
    let (c, report) = config("use-auth-secret\n");
    assert_eq!(c.secrets, [GENERATED]);
    assert_eq!(names(&report.unsupported), [(1, "use-auth-secret")]);
    assert!(report.notes.iter().any(|n| n.contains("configures no credentials")), "{report}");
}

#[test]
fn numbers_and_lifetimes() {
    let text = "user=a:b\nmin-port=40000\nmax-port=50000\nstale-nonce=300\nmax-allocate-lifetime=120\n\
                user-quota=10\ntotal-quota=500\nmax-bps=125000\nbps-capacity=12500000\nrelay-threads=0\n\
                channel-lifetime=600\npermission-lifetime=60\nVerbose\nverbose\n";
    let (c, report) = config(text);
    assert_eq!((c.min_port, c.max_port, c.nonce_lifetime), (40000, 50000, 300));
    assert_eq!((c.max_lifetime, c.default_lifetime), (120, 120));
    assert_eq!((c.user_quota, c.total_quota, c.workers), (10, 500, 1));
    assert_eq!((c.limits.max_bps, c.limits.bps_capacity), (125_000, 12_500_000));
    assert_eq!(c.log_level, "debug");
    assert_eq!(names(&report.ignored), [(11, "channel-lifetime"), (14, "verbose")]);
    assert_eq!(names(&report.unsupported), [(12, "permission-lifetime")]);
    // Bare stale-nonce is coturn's 600; a repeated option keeps the last value.
    let (c, report) = config("user=a:b\nstale-nonce\nmin-port=1000\nmin-port=2000\n");
    assert_eq!((c.nonce_lifetime, c.min_port), (600, 2000));
    assert_eq!(names(&report.ignored), [(3, "min-port")]);
    #[rustfmt::skip]
    let bad = [
        ("min-port=60000\nmax-port=50000\n", 2, "max-port"),
        ("max-port=1000\n", 1, "max-port"),
        ("listening-port=http\n", 1, "listening-port"),
        ("listening-port=70000\n", 1, "listening-port"),
        ("stale-nonce=-5\n", 1, "stale-nonce"),
        ("max-bps=fast\n", 1, "max-bps"),
        ("realm\n", 1, "realm"),
        ("no-tcp=maybe\n", 1, "no-tcp"),
        ("listening-ip=eth0\n", 1, "listening-ip"),
        ("allocation-default-address-family=ipv5\n", 1, "allocation-default-address-family"),
    ];
    for (text, line, option) in bad {
        let err = import_coturn(text, GENERATED).unwrap_err();
        assert_eq!((err.line, err.option.as_str()), (line, option), "{text}: {err}");
    }
}

#[test]
fn booleans_transports_and_alternates() {
    let text = "user=a:b\nno-tcp\nno-tls=false\nno-multicast-peers=on\nno-udp=0\nalternate-server=203.0.113.5\n\
                alternate-server=[2001:db8::5]:3479\nno-dtls\n";
    let (c, report) = config(text);
    assert!(!c.tcp);
    assert!(c.redirect_all);
    assert_eq!(c.alternate_servers, ["203.0.113.5:3478".parse().unwrap(), "[2001:db8::5]:3479".parse().unwrap()]);
    assert_eq!(names(&report.ignored), [(3, "no-tls"), (4, "no-multicast-peers"), (5, "no-udp"), (8, "no-dtls")]);
    // TLS needs both files; without them the TLS options are reported.
    let report = import("user=a:b\ntls-listening-port=443\ncert=/etc/cert.pem\n").report;
    assert_eq!(names(&report.unsupported), [(2, "tls-listening-port"), (3, "cert")]);
    let report = import("user=a:b\nno-tls\ncert=/c\npkey=/k\n").report;
    assert_eq!(names(&report.ignored), [(3, "cert"), (4, "pkey")]);
    assert_eq!(names(&report.converted), [(1, "user"), (2, "no-tls")]);
    // coturn's mobility is turnd's, off unless asked for.
    let (c, report) = config("user=a:b\nmobility\n");
    assert!(c.mobility);
    assert_eq!(names(&report.converted), [(1, "user"), (2, "mobility")]);
    let (c, report) = config("user=a:b\nmobility=off\n");
    assert!(!c.mobility);
    assert_eq!(names(&report.ignored), [(2, "mobility")]);
}

#[test]
fn tls_listens_on_every_ip() {
    let files = TlsFiles::new();
    let (cert, key) = (&files.cert, &files.key);
    let text = format!(
        "user=a:b\nlistening-ip=10.0.0.5\nlistening-ip=2001:db8::5\ntls-listening-port=443\nalt-tls-listening-port=5350\n\
         cert={}\npkey=\"{}\"\n",
        cert.display(),
        key.display()
    );
    let (c, _) = config(&text);
    let want: Vec<SocketAddr> = ["10.0.0.5:443", "[2001:db8::5]:443", "10.0.0.5:5350", "[2001:db8::5]:5350"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(c.tls_listen, want);
    assert_eq!((c.cert.clone().unwrap(), c.key.clone().unwrap()), (cert.clone(), key.clone()));
    // A TLS port that is also a plain one: turnd cannot serve both on it.
    let text = format!("user=a:b\ntls-listening-port=3478\ncert={}\npkey={}\n", cert.display(), key.display());
    let (c, report) = config(&text);
    assert!(c.tls_listen.is_empty());
    assert_eq!(names(&report.unsupported), [(2, "tls-listening-port")]);
}

#[test]
fn demo_credentials_only_on_loopback() {
    let text = "listening-ip=10.0.0.5\nuser=demo:pw\nuser=a:b\nstatic-auth-secret=turnd-demo-secret\n";
    let report = import(text).report;
    assert_eq!(names(&report.unsupported), [(2, "user"), (4, "static-auth-secret")]);
    // The secret still put coturn in REST mode, where it ignores user=.
    assert_eq!(names(&report.ignored), [(3, "user")]);
    let (c, _) = config("listening-ip=127.0.0.1\nuser=demo:pw\n");
    assert_eq!(c.users[0].name, "demo");
}

#[test]
fn unknown_options_and_the_report() {
    let text = "user=a:b\n--realm=x\nfrobnicate=1\nstatic-auth-secret-file=/etc/s\nsyslog\nfingerprint;\n";
    let report = import(text).report;
    assert_eq!(
        names(&report.unknown),
        [(2, "--realm"), (3, "frobnicate"), (4, "static-auth-secret-file"), (6, "fingerprint;")]
    );
    assert!(report.unknown[0].reason.contains("leading dashes"));
    assert!(report.unknown[2].reason.contains("auth.secrets-file"));
    let shown = report.to_string();
    assert!(shown.starts_with("1 converted, 0 ignored, 1 unsupported, 4 unknown\n"), "{shown}");
    assert!(
        shown.contains("Unsupported (not converted: turnd has no equivalent):\n  line 5: syslog: turnd logs"),
        "{shown}"
    );
    assert!(shown.contains("Unknown (not coturn options; skipped):\n  line 2: --realm: coturn reads no leading dashes"));
    let report = import("user=a:b\nrealm=example.org;\n").report;
    assert!(report.notes[0].starts_with("line 2: the value of realm ends with a semicolon"), "{report}");
}

#[test]
fn every_option_in_coturns_example_is_known() {
    // Lines such as `#listening-ip=172.17.19.101` or `#no-tcp`: coturn's options, commented out.
    let example = include_str!("../../../tests/data/coturn/turnserver.conf");
    let mut seen = 0;
    for line in example.lines() {
        let Some(option) = line.strip_prefix('#') else { continue };
        let name = option.split('=').next().unwrap_or_default();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            continue;
        }
        if option.contains(' ') && !option.contains('=') {
            continue;
        }
        seen += 1;
        assert!(options::lookup(name).is_some(), "{line}");
    }
    assert!(seen > 90, "{seen}");
}

#[test]
fn every_option_converts_to_a_valid_file_or_names_its_line() {
    let values = [
        "",
        "1",
        "0",
        "off",
        "x",
        "10.0.0.5",
        "203.0.113.1/10.0.0.5",
        "127.0.0.1:3479",
        "ipv4",
        "10.0.0.1-10.0.0.9",
        "0.0.0.0",
        "::",
    ];
    for (name, _, _) in options::OPTIONS {
        for value in values {
            let text = format!("user=a:b\n{name}={value}\n");
            match import_coturn(&text, GENERATED) {
                Ok(imported) => {
                    let r = &imported.report;
                    // Each line is accounted for exactly once.
                    let counted = r.converted.len() + r.ignored.len() + r.unsupported.len() + r.unknown.len();
                    assert_eq!(counted, 2, "{text}{r}");
                    // File names would have to exist; everything else must validate.
                    if !["cert", "pkey"].contains(name) {
                        let parsed = Config::parse(&imported.toml, "imported.toml");
                        assert!(parsed.is_ok(), "{text}=> {:?}\n{}", parsed.err(), imported.toml);
                    }
                }
                Err(e) => assert_eq!((e.line, e.option.as_str()), (2, *name), "{text}"),
            }
        }
    }
}

#[test]
fn control_characters_in_coturn_values_still_give_a_file_that_parses() {
    let imported = import("static-auth-secret=abc\ncert=/etc/a\u{1}b.pem\npkey=/etc/k\u{7f}.pem\n");
    assert!(imported.toml.contains("# coturn line 2: cert=/etc/a\\u{1}b.pem"), "{}", imported.toml);
    if let Err(e) = crate::config::RawConfig::parse(&imported.toml, "imported") {
        panic!("import wrote TOML that does not parse: {e}\n{}", imported.toml);
    }
}

#[test]
fn address_options_combine_into_valid_files() {
    let files = TlsFiles::new();
    let tls = format!("cert={}\npkey={}", files.cert.display(), files.key.display());
    #[rustfmt::skip]
    let lines = [
        "listening-ip=10.0.0.5", "listening-ip=127.0.0.1", "listening-ip=0.0.0.0", "listening-ip=2001:db8::5",
        "relay-ip=10.0.0.5", "relay-ip=127.0.0.1", "relay-ip=0.0.0.0", "relay-ip=2001:db8::5",
        "external-ip=203.0.113.1", "external-ip=203.0.113.1/10.0.0.5", "external-ip=2001:db8::1",
        "listening-port=3479", "alt-listening-port=3480", "aux-server=10.0.0.6:3478", "no-tcp",
        "alternate-server=203.0.113.9:3478", "user=demo:pw", "static-auth-secret=turnd-demo-secret",
        &tls, "tls-listening-port=3478", "alt-tls-listening-port=3480",
    ];
    for a in lines {
        for b in lines {
            let text = format!("user=a:b\n{a}\n{b}\n");
            let Ok(imported) = import_coturn(&text, GENERATED) else { continue };
            let parsed = Config::parse(&imported.toml, "imported.toml");
            assert!(parsed.is_ok(), "{text}=> {:?}\n{}", parsed.err(), imported.toml);
        }
    }
}
