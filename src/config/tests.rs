use super::*;

/// A valid minimal file body: credentials are the only thing validation requires.
const AUTH: &str = "[auth]\nsecrets = [\"s3cret\"]\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "t.toml")
}

/// The (key, line) of an `Invalid` error, panicking on anything else.
fn invalid_of(text: &str) -> (String, Option<usize>, String) {
    match parse(text) {
        Err(ConfigError::Invalid { origin, key, line, reason }) => {
            assert_eq!(origin, "t.toml");
            (key, line, reason)
        }
        other => panic!("expected an Invalid error for\n{text}\ngot {other:?}"),
    }
}

fn parse_error_of(text: &str) -> (usize, String) {
    match parse(text) {
        Err(ConfigError::Parse { origin, line, message, .. }) => {
            assert_eq!(origin, "t.toml");
            (line, message)
        }
        other => panic!("expected a Parse error for\n{text}\ngot {other:?}"),
    }
}

#[test]
fn embedded_default_is_what_the_file_says() {
    let c = Config::embedded_default();
    assert_eq!(c.listen, vec!["127.0.0.1:3478".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.relay_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.external_ip, None);
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert!(c.workers >= 1);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.realm, "turnd.local");
    assert_eq!(c.secrets, vec![DEMO_SECRET.to_owned()]);
    assert_eq!(c.rest_separator, ':');
    assert_eq!(c.nonce_lifetime, 600);
    assert_eq!(c.users, vec![User { name: "demo".into(), secret: UserSecret::Password("demo-password".into()) }]);
    assert_eq!((c.default_lifetime, c.max_lifetime), (600, 3600));
    assert_eq!((c.user_quota, c.total_quota), (0, 0));
    assert!(c.allowed_peers.is_empty() && c.denied_peers.is_empty());
    // Loading with no path and no overrides is the same thing.
    assert_eq!(load_with(None, &Overrides::default()).unwrap(), c);
}

#[test]
fn defaults_apply_to_missing_tables_and_keys() {
    let c = parse(AUTH).unwrap();
    let shipped = Config::embedded_default();
    assert_eq!(c.listen, shipped.listen);
    assert_eq!(c.relay_ip, shipped.relay_ip);
    assert_eq!((c.min_port, c.max_port, c.nonce_lifetime), (49152, 65535, 600));
    assert_eq!((c.default_lifetime, c.max_lifetime), (600, 3600));
    assert!(c.users.is_empty());
}

#[test]
fn debug_redacts_secrets() {
    let mut c = Config::embedded_default();
    c.users.push(User { name: "k".into(), secret: UserSecret::Key([0xab; 16]) });
    let shown = format!("{c:?}");
    for secret in [DEMO_SECRET, "demo-password", "171", "abab", "0xab"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(shown.contains("turnd.local") && shown.contains("redacted"));
    let o = Overrides { auth_secrets: vec!["topsecret".into()], users: vec!["u:pw123".into()], ..Overrides::default() };
    let shown = format!("{o:?}");
    assert!(!shown.contains("topsecret") && !shown.contains("pw123"), "{shown}");
}

#[test]
fn unknown_keys_name_the_key_table_and_line() {
    let cases = [
        ("lisen = 1\n[server]\n", "`lisen`", "the top level", 1),
        ("[server]\nlisten = [\"127.0.0.1:3478\"]\nlisen = 1\n", "`lisen`", "[server]", 3),
        ("[auth]\nrealm = \"r\"\n\nsecret = [\"x\"]\n", "`secret`", "[auth]", 4),
        (
            "[auth]\n[[auth.users]]\nname = \"a\"\n[[auth.users]]\nname = \"b\"\npasswd = \"p\"\n",
            "`passwd`",
            "[[auth.users]]",
            6,
        ),
        ("[allocation]\nlifetime = 5\n", "`lifetime`", "[allocation]", 2),
        ("[server]\n[peers]\nallowed = []\nallow = []\n", "`allow`", "[peers]", 4),
        ("server.lisen = 1\n", "`lisen`", "[server]", 1),
        ("[auth]\nusers = [{ name = \"a\", pass = \"b\" }]\n", "`pass`", "[[auth.users]]", 2),
    ];
    for (text, key, table, line) in cases {
        let (got_line, message) = parse_error_of(text);
        assert_eq!(got_line, line, "{text}: {message}");
        assert!(message.contains(&format!("unknown key {key} in {table}")), "{message}");
        assert!(message.contains("expected one of"), "{message}");
    }
    let err = parse("[server]\nlisen = 1\n").unwrap_err().to_string();
    assert!(
        err.starts_with("t.toml:2: unknown key `lisen` in [server] (expected one of `listen`, `relay-ip`"),
        "{err}"
    );
}

#[test]
fn type_errors_name_the_key_and_line() {
    let cases = [
        ("[server]\n\nmin-port = \"a\"\n", "server.min-port", 3, "expected an integer"),
        ("[auth]\nrealm = 5\n", "auth.realm", 2, "expected a string"),
        ("[auth]\nsecrets = \"x\"\n", "auth.secrets", 2, "expected an array"),
        ("[[auth.users]]\nname = \"a\"\n[[auth.users]]\nname = 7\n", "auth.users[1].name", 4, "string"),
        ("allocation.user-quota = true\n", "allocation.user-quota", 1, "integer"),
    ];
    for (text, key, line, what) in cases {
        let (got_line, message) = parse_error_of(text);
        assert_eq!(got_line, line, "{text}: {message}");
        assert!(message.starts_with(&format!("{key}: ")), "{message}");
        assert!(message.contains(what), "{message}");
    }
    // Inside an array the key cannot be told, but the line still is.
    assert_eq!(parse_error_of("[server]\nlisten = [\n  \"a:1\",\n  2,\n]\n").0, 4);
    // Syntax errors have a line too.
    assert_eq!(parse_error_of("[server]\nmin-port = 1\n[auth\n").0, 3);
    assert_eq!(parse_error_of("[server]\nmin-port = 1\nmin-port = 2\n").0, 3);
}

#[test]
fn validation_errors_name_the_key_and_line() {
    let users = |body: &str| format!("{AUTH}[[auth.users]]\nname = \"a\"\npassword = \"p\"\n\n[[auth.users]]\n{body}");
    #[rustfmt::skip]
    let cases: Vec<(String, &str, Option<usize>)> = vec![
        // [server]
        (format!("[server]\nlisten = []\n{AUTH}"), "server.listen", Some(2)),
        (format!("[server]\nlisten = [\"127.0.0.1:1\",\n \"nonsense\"]\n{AUTH}"), "server.listen[1]", Some(3)),
        (format!("[server]\nlisten = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n{AUTH}"), "server.listen[1]", Some(2)),
        (format!("[server]\nlisten = [\"0.0.0.0:3478\"]\n{AUTH}"), "server.relay-ip", Some(2)),
        (format!("[server]\nlisten = [\"[::]:3478\"]\n{AUTH}"), "server.relay-ip", Some(2)),
        (format!("[server]\nrelay-ip = \"1.2.3\"\n{AUTH}"), "server.relay-ip", Some(2)),
        (format!("[server]\nrelay-ip = \"0.0.0.0\"\n{AUTH}"), "server.relay-ip", Some(2)),
        (format!("[server]\nexternal-ip = \"203.0.113.1/10.0.0.1/3\"\n{AUTH}"), "server.external-ip", Some(2)),
        (format!("[server]\nexternal-ip = \"0.0.0.0\"\n{AUTH}"), "server.external-ip", Some(2)),
        (format!("[server]\nexternal-ip = \"2001:db8::1\"\n{AUTH}"), "server.external-ip", Some(2)),
        (format!("[server]\nrelay-ip = \"10.0.0.2\"\nexternal-ip = \"203.0.113.1/10.0.0.1\"\n{AUTH}"), "server.external-ip", Some(3)),
        (format!("[server]\nlisten = [\"10.0.0.5:3478\"]\nrelay-ip = \"127.0.0.1\"\n{AUTH}"), "server.relay-ip", Some(3)),
        (format!("[server]\nlisten = [\"127.0.0.1:3478\", \"10.0.0.5:3478\"]\n{AUTH}"), "server.relay-ip", None),
        (format!("[server]\nmin-port = 0\n{AUTH}"), "server.min-port", Some(2)),
        (format!("[server]\nmax-port = 65536\n{AUTH}"), "server.max-port", Some(2)),
        (format!("[server]\nmin-port = 60000\nmax-port = 50000\n{AUTH}"), "server.min-port", Some(2)),
        (format!("[server]\n\nmax-port = 1000\n{AUTH}"), "server.max-port", Some(3)),
        (format!("[server]\nworkers = 1025\n{AUTH}"), "server.workers", Some(2)),
        (format!("[server]\nworkers = -1\n{AUTH}"), "server.workers", Some(2)),
        (format!("[server]\nlog-level = \"turnd=loud\"\n{AUTH}"), "server.log-level", Some(2)),
        (format!("[server]\nlog-level = \"\"\n{AUTH}"), "server.log-level", Some(2)),
        // [auth]
        (format!("{AUTH}realm = \"\"\n"), "auth.realm", Some(3)),
        (format!("{AUTH}realm = \"{}\"\n", "r".repeat(128)), "auth.realm", Some(3)),
        (format!("{AUTH}rest-separator = \"::\"\n"), "auth.rest-separator", Some(3)),
        (format!("{AUTH}rest-separator = \"\"\n"), "auth.rest-separator", Some(3)),
        (format!("{AUTH}rest-separator = \"7\"\n"), "auth.rest-separator", Some(3)),
        (format!("{AUTH}nonce-lifetime = 0\n"), "auth.nonce-lifetime", Some(3)),
        (format!("{AUTH}nonce-lifetime = 86401\n"), "auth.nonce-lifetime", Some(3)),
        ("[auth]\nsecrets = [\"a\", \"\"]\n".to_owned(), "auth.secrets[1]", Some(2)),
        ("[auth]\nsecrets = []\n".to_owned(), "auth.secrets", Some(2)),
        ("[auth]\nrealm = \"r\"\n".to_owned(), "auth.secrets", None),
        (users("name = \"b\"\nkey = \"0x1234\"\n"), "auth.users[1].key", Some(9)),
        (users("name = \"b\"\nkey = \"0x0123456789abcdef0123456789abcdeg\"\n"), "auth.users[1].key", Some(9)),
        (users("name = \"b\"\npassword = \"p\"\nkey = \"0123456789abcdef0123456789abcdef\"\n"), "auth.users[1].key", Some(10)),
        (users("name = \"b\"\n"), "auth.users[1]", Some(7)),
        (users("password = \"p\"\n"), "auth.users[1].name", Some(7)),
        (users("name = \"\"\npassword = \"p\"\n"), "auth.users[1].name", Some(8)),
        (users("name = \"a\"\npassword = \"q\"\n"), "auth.users[1].name", Some(8)),
        (users("name = \"b\"\npassword = \"\"\n"), "auth.users[1].password", Some(9)),
        // the demo credentials off loopback
        (format!("[server]\nlisten = [\"127.0.0.1:3478\", \"10.0.0.5:3478\"]\nrelay-ip = \"10.0.0.5\"\n[auth]\nsecrets = [\"x\",\n  \"{DEMO_SECRET}\"]\n"), "auth.secrets[1]", Some(6)),
        (format!("[server]\nlisten = [\"0.0.0.0:3478\"]\nrelay-ip = \"10.0.0.5\"\n{AUTH}[[auth.users]]\nname = \"demo\"\npassword = \"x\"\n"), "auth.users[0]", Some(6)),
        // [allocation]
        (format!("{AUTH}[allocation]\ndefault-lifetime = 0\n"), "allocation.default-lifetime", Some(4)),
        (format!("{AUTH}[allocation]\ndefault-lifetime = 4000\n"), "allocation.default-lifetime", Some(4)),
        (format!("{AUTH}[allocation]\nmax-lifetime = 300\n"), "allocation.max-lifetime", Some(4)),
        (format!("{AUTH}[allocation]\nmax-lifetime = 0\n"), "allocation.max-lifetime", Some(4)),
        (format!("{AUTH}[allocation]\nmax-lifetime = 86401\n"), "allocation.max-lifetime", Some(4)),
        (format!("{AUTH}[allocation]\nuser-quota = -1\n"), "allocation.user-quota", Some(4)),
        (format!("{AUTH}[allocation]\ntotal-quota = 4294967296\n"), "allocation.total-quota", Some(4)),
        // [peers]
        (format!("{AUTH}[peers]\nallowed = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"), "peers.allowed[1]", Some(4)),
        (format!("{AUTH}[peers]\ndenied = [\n\"example.com\"]\n"), "peers.denied[0]", Some(5)),
    ];
    for (text, key, line) in cases {
        let (got_key, got_line, reason) = invalid_of(&text);
        assert_eq!((got_key.as_str(), got_line), (key, line), "{text}\n=> {reason}");
        assert!(!reason.is_empty());
    }
}

#[test]
fn error_messages_read_well() {
    let err = parse(&format!("[server]\nmin-port = 0\n{AUTH}")).unwrap_err().to_string();
    assert_eq!(err, "t.toml:2: server.min-port: 0 is out of range 1..=65535");
    let err = parse("[server]\nlisten = [\"0.0.0.0:3478\"]\n[auth]\nsecrets = [\"turnd-demo-secret\"]\nrelay-ip = 1\n");
    assert!(matches!(err, Err(ConfigError::Parse { line: 5, .. })));
    let err = parse(
        "[server]\nlisten = [\"0.0.0.0:3478\"]\nrelay-ip = \"10.0.0.5\"\n[auth]\nsecrets = [\"turnd-demo-secret\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("t.toml:5: auth.secrets[0]: the demo secret"), "{err}");
    assert!(err.contains("replace it"), "{err}");
    let err = parse("[server]\nlisten = [\"0.0.0.0:3478\"]\n[auth]\nsecrets = [\"x\"]\n").unwrap_err().to_string();
    assert!(err.starts_with("t.toml:2: server.relay-ip: required"), "{err}");
}

#[test]
fn relay_ip_resolution() {
    let c = parse(&format!("[server]\nlisten = [\"10.1.2.3:3478\", \"127.0.0.1:3478\"]\n{AUTH}")).unwrap();
    assert_eq!(c.relay_ip, "10.1.2.3".parse::<IpAddr>().unwrap());
    let c = parse(&format!("[server]\nlisten = [\"0.0.0.0:3478\"]\nrelay-ip = \"10.0.0.5\"\n{AUTH}")).unwrap();
    assert_eq!(c.relay_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    // PUBLIC/PRIVATE sets relay-ip to PRIVATE.
    let text = format!("[server]\nlisten = [\"0.0.0.0:3478\"]\nexternal-ip = \"203.0.113.10/10.0.0.5\"\n{AUTH}");
    let c = parse(&text).unwrap();
    assert_eq!(c.relay_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    assert_eq!(c.external_ip, Some("203.0.113.10".parse().unwrap()));
    // An explicit relay-ip equal to PRIVATE is fine; PUBLIC alone keeps the listen IP.
    let text = format!("[server]\nlisten = [\"10.0.0.5:3478\"]\nrelay-ip = \"10.0.0.5\"\nexternal-ip = \"203.0.113.10/10.0.0.5\"\n{AUTH}");
    assert_eq!(parse(&text).unwrap().relay_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    let text = format!("[server]\nlisten = [\"10.0.0.5:3478\"]\nexternal-ip = \"203.0.113.10\"\n{AUTH}");
    let c = parse(&text).unwrap();
    assert_eq!((c.relay_ip, c.external_ip), ("10.0.0.5".parse().unwrap(), Some("203.0.113.10".parse().unwrap())));
    // IPv6 listen.
    let c = parse(&format!("[server]\nlisten = [\"[::1]:3478\"]\n{AUTH}")).unwrap();
    assert_eq!(c.relay_ip, "::1".parse::<IpAddr>().unwrap());
}

#[test]
fn demo_credentials_only_on_loopback() {
    let text = format!("[server]\nlisten = [\"127.0.0.1:3478\", \"[::1]:3478\"]\n[auth]\nsecrets = [\"{DEMO_SECRET}\"]\n[[auth.users]]\nname = \"demo\"\npassword = \"x\"\n");
    assert!(parse(&text).is_ok());
    let o = Overrides { listen: vec!["0.0.0.0:3478".into()], relay_ip: Some("10.0.0.5".into()), ..Default::default() };
    let mut raw = RawConfig::parse(Config::EMBEDDED, EMBEDDED_ORIGIN).unwrap();
    o.apply(&mut raw).unwrap();
    match raw.clone().validate() {
        Err(ConfigError::Invalid { origin, key, line: Some(_), reason }) => {
            assert_eq!((origin.as_str(), key.as_str()), (EMBEDDED_ORIGIN, "auth.secrets[0]"));
            assert!(reason.contains("replace it"));
        }
        other => panic!("{other:?}"),
    }
    let o = Overrides { auth_secrets: vec!["fresh".into()], ..Default::default() };
    o.apply(&mut raw).unwrap();
    match raw.clone().validate() {
        Err(ConfigError::Invalid { key, reason, .. }) => {
            assert_eq!(key, "auth.users[0]");
            assert!(reason.contains("replace it"));
        }
        other => panic!("{other:?}"),
    }
    let o = Overrides { users: vec!["alice:pw".into()], ..Default::default() };
    o.apply(&mut raw).unwrap();
    let c = raw.validate().unwrap();
    assert_eq!(c.users, vec![User { name: "alice".into(), secret: UserSecret::Password("pw".into()) }]);
}

#[test]
fn user_keys_parse() {
    let text = format!("{AUTH}[[auth.users]]\nname = \"k\"\nkey = \"0x000102030405060708090a0b0c0d0E0F\"\n[[auth.users]]\nname = \"l\"\nkey = \"ffffffffffffffffffffffffffffffff\"\n");
    let c = parse(&text).unwrap();
    let expected: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(c.users[0].secret, UserSecret::Key(expected));
    assert_eq!(c.users[1].secret, UserSecret::Key([0xff; 16]));
    assert_eq!(parse_key("+f0102030405060708090a0b0c0d0e0f"), None);
}

#[test]
fn peers_parse_cidrs_and_ips() {
    let text = format!(
        "{AUTH}[peers]\nallowed = [\"10.1.2.3/8\", \"192.168.1.7\", \"fd00::/8\"]\ndenied = [\"203.0.113.0/24\"]\n"
    );
    let c = parse(&text).unwrap();
    let nets = |v: &[&str]| v.iter().map(|s| s.parse::<IpNet>().unwrap()).collect::<Vec<_>>();
    assert_eq!(c.allowed_peers, nets(&["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]));
    assert_eq!(c.denied_peers, nets(&["203.0.113.0/24"]));
}

#[test]
fn workers_zero_resolves_to_at_least_one() {
    assert!(parse(&format!("[server]\nworkers = 0\n{AUTH}")).unwrap().workers >= 1);
    assert_eq!(parse(&format!("[server]\nworkers = 3\n{AUTH}")).unwrap().workers, 3);
}

fn load_text(text: &str, o: &Overrides) -> Result<Config, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    load_with(Some(file.path()), o)
}

#[test]
fn overrides_replace_lists_and_scalars() {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:3478\", \"127.0.0.2:3478\"]\n[auth]\nsecrets = [\"a\", \"b\"]\n\
         [[auth.users]]\nname = \"u\"\npassword = \"p\"\n[peers]\nallowed = [\"10.0.0.0/8\"]\n"
    );
    let o = Overrides {
        listen: vec!["127.0.0.9:4000".into()],
        realm: Some("example.org".into()),
        auth_secrets: vec!["c".into()],
        users: vec!["x:y:z".into(), "v:w".into()],
        allow_peers: vec!["192.168.0.0/16".into(), "172.16.0.1".into()],
        min_port: Some(40000),
        max_port: Some(40100),
        workers: Some(2),
        log_level: Some("turnd=debug,warn".into()),
        ..Overrides::default()
    };
    let c = load_text(&text, &o).unwrap();
    assert_eq!(c.listen, vec!["127.0.0.9:4000".parse::<SocketAddr>().unwrap()]);
    // The file's relay-ip came from the default rule, so it follows the new listen list.
    assert_eq!(c.relay_ip, "127.0.0.9".parse::<IpAddr>().unwrap());
    assert_eq!(c.realm, "example.org");
    assert_eq!(c.secrets, vec!["c".to_owned()]);
    assert_eq!(c.users[0], User { name: "x".into(), secret: UserSecret::Password("y:z".into()) });
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.allowed_peers.len(), 2);
    assert_eq!((c.min_port, c.max_port, c.workers), (40000, 40100, 2));
    assert_eq!(c.log_level, "turnd=debug,warn");
    // An explicit relay-ip in the file is kept.
    let text = format!("[server]\nrelay-ip = \"127.0.0.1\"\n{AUTH}");
    assert_eq!(load_text(&text, &o).unwrap().relay_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    // --relay-ip and --external-ip.
    let o = Overrides {
        listen: vec!["0.0.0.0:3478".into()],
        external_ip: Some("198.51.100.7/10.0.0.8".into()),
        ..Default::default()
    };
    let c = load_text(AUTH, &o).unwrap();
    assert_eq!((c.relay_ip, c.external_ip), ("10.0.0.8".parse().unwrap(), Some("198.51.100.7".parse().unwrap())));
}

#[test]
fn bad_overrides_name_the_flag() {
    let cases: Vec<(Overrides, &str)> = vec![
        (Overrides { listen: vec!["127.0.0.1".into()], ..Default::default() }, "--listen"),
        (Overrides { listen: vec!["0.0.0.0:1".into()], ..Default::default() }, "server.relay-ip"),
        (Overrides { relay_ip: Some("x".into()), ..Default::default() }, "--relay-ip"),
        (Overrides { external_ip: Some("1.2.3.4/x".into()), ..Default::default() }, "--external-ip"),
        (Overrides { realm: Some(String::new()), ..Default::default() }, "--realm"),
        (Overrides { auth_secrets: vec![String::new()], ..Default::default() }, "--auth-secret"),
        (Overrides { users: vec!["nocolon".into()], ..Default::default() }, "--user"),
        (Overrides { users: vec![":pw".into()], ..Default::default() }, "--user"),
        (Overrides { users: vec!["a:b".into(), "a:c".into()], ..Default::default() }, "--user"),
        (Overrides { allow_peers: vec!["10/8".into()], ..Default::default() }, "--allow-peer"),
        (Overrides { min_port: Some(0), ..Default::default() }, "--min-port"),
        (Overrides { max_port: Some(u64::MAX), ..Default::default() }, "--max-port"),
        (Overrides { min_port: Some(2000), max_port: Some(1000), ..Default::default() }, "--min-port"),
        (Overrides { workers: Some(5000), ..Default::default() }, "--workers"),
        (Overrides { log_level: Some("a=b=c".into()), ..Default::default() }, "--log-level"),
    ];
    for (o, flag) in cases {
        match load_with(None, &o) {
            Err(ConfigError::Invalid { origin, key, line, reason }) => {
                assert_eq!(key, flag, "{o:?}: {reason}");
                if flag.starts_with("--") {
                    assert_eq!((origin.as_str(), line), (CLI_ORIGIN, None), "{o:?}");
                }
            }
            other => panic!("{o:?}: {other:?}"),
        }
    }
    // The default min-port with a too-low --max-port names the flag.
    let o = Overrides { max_port: Some(1000), ..Default::default() };
    let err = load_with(None, &o).unwrap_err().to_string();
    assert!(err.starts_with("command line: --max-port: min-port 49152 is greater"), "{err}");
}

#[test]
fn load_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    match Config::load(&path) {
        Err(e @ ConfigError::Read { .. }) => assert!(e.to_string().contains("missing.toml"), "{e}"),
        other => panic!("{other:?}"),
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, b"[server]\nmin-port = 0\n").unwrap();
    match Config::load(file.path()) {
        Err(ConfigError::Invalid { origin, line: Some(2), .. }) => {
            assert_eq!(origin, file.path().display().to_string());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncdé f", 0), (1, 1));
    assert_eq!(line_col("ab\ncdé f", 3), (2, 1));
    assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
    assert_eq!(line_col("ab", 99), (1, 3));
}
