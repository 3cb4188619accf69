use super::parse_errors::line_col;
use super::*;

/// A valid `[auth]` table: credentials are the only thing validation requires.
const AUTH: &str = "[auth]\nsecrets = ['s3cret']\n";

/// A file made of `lines` (line N of the file is `lines[N - 1]`). Files without an
/// `[auth` header get [`AUTH`] appended after their own lines.
pub(super) fn doc(lines: &[&str]) -> String {
    let mut text = lines.join("\n") + "\n";
    if !lines.iter().any(|l| l.contains("[auth")) {
        text.push_str(AUTH);
    }
    text
}

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "t.toml")
}

pub(super) fn ok(lines: &[&str]) -> Config {
    let text = doc(lines);
    parse(&text).unwrap_or_else(|e| panic!("{text}\n=> {e}"))
}

/// A self-signed certificate and its private key as PEM files (`cert.pem`, `key.pem`) in a
/// temporary directory, for `server.cert` and `server.key`.
pub(super) struct TlsFiles {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        TlsFiles { dir, cert, key }
    }

    /// The `cert = '…'` line of a `[server]` table.
    pub fn cert_line(&self) -> String {
        format!("cert = '{}'", self.cert.display())
    }

    /// The `key = '…'` line of a `[server]` table.
    pub fn key_line(&self) -> String {
        format!("key = '{}'", self.key.display())
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The key, line and reason of an `Invalid` error, panicking on anything else.
pub(super) fn invalid_of(text: &str) -> (String, Option<usize>, String) {
    match parse(text) {
        Err(ConfigError::Invalid { origin, key, line, reason }) => {
            assert_eq!(origin, "t.toml");
            (key, line, reason)
        }
        other => panic!("expected an Invalid error for\n{text}\ngot {other:?}"),
    }
}

/// The line and message of a `Parse` error, panicking on anything else.
pub(super) fn parse_error_of(text: &str) -> (usize, String) {
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
    assert_eq!(c.relay_ip, ip("127.0.0.1"));
    assert_eq!(c.external_ip, None);
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert!(c.workers >= 1);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.realm, "turnd.local");
    assert_eq!(c.secrets, vec![DEMO_SECRET.to_owned()]);
    assert_eq!(c.rest_separator, ':');
    assert_eq!(c.nonce_lifetime, 600);
    assert!(c.rfc8489_security);
    let demo = User { name: "demo".into(), secret: UserSecret::Password("demo-password".into()) };
    assert_eq!(c.users, vec![demo]);
    assert_eq!((c.default_lifetime, c.max_lifetime), (600, 3600));
    assert_eq!((c.user_quota, c.total_quota), (0, 0));
    assert!(c.allowed_peers.is_empty() && c.denied_peers.is_empty());
    assert!(c.tcp && c.tls_listen.is_empty() && c.cert.is_none() && c.key.is_none());
    assert_eq!((c.first_message_timeout, c.tls_handshake_timeout), (10, 10));
    assert_eq!((c.max_connections, c.max_connections_per_ip), (10_000, 100));
    // The shipped file runs without the API (its [api] table is commented out).
    assert_eq!(c.api, None);
    // Loading with no path and no overrides is the same thing.
    assert_eq!(load_with(None, &Overrides::default()).unwrap(), c);
}

#[test]
fn defaults_apply_to_missing_tables_and_keys() {
    let c = parse(AUTH).unwrap();
    let shipped = Config::embedded_default();
    assert_eq!((c.listen, c.relay_ip), (shipped.listen, shipped.relay_ip));
    assert_eq!((c.min_port, c.max_port, c.workers), (49152, 65535, shipped.workers));
    assert_eq!((c.log_level.as_str(), c.realm.as_str()), ("info", "turnd.local"));
    assert_eq!((c.rest_separator, c.nonce_lifetime), (':', 600));
    assert!(c.rfc8489_security);
    assert_eq!((c.default_lifetime, c.max_lifetime), (600, 3600));
    assert_eq!((c.user_quota, c.total_quota), (0, 0));
    assert!(c.users.is_empty() && c.allowed_peers.is_empty() && c.denied_peers.is_empty());
}

#[test]
fn rfc8489_security_can_be_turned_off() {
    let c = parse("[auth]\nsecrets = ['s']\nrfc8489-security = false\n").unwrap();
    assert!(!c.rfc8489_security);
    let e = parse("[auth]\nsecrets = ['s']\nrfc8489-security = 'no'\n").unwrap_err().to_string();
    assert!(e.contains("rfc8489-security"), "{e}");
}

#[test]
fn debug_redacts_secrets() {
    let mut c = Config::embedded_default();
    c.users.push(User { name: "k".into(), secret: UserSecret::Key([0xab; 16]) });
    let shown = format!("{c:?}");
    for secret in [DEMO_SECRET, "demo-password", "171", "abab", "0xab"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(shown.contains("turnd.local") && shown.contains("redacted"), "{shown}");
    let o = Overrides { auth_secrets: vec!["topsecret".into()], users: vec!["u:pw123".into()], ..Overrides::default() };
    let shown = format!("{o:?}");
    assert!(!shown.contains("topsecret") && !shown.contains("pw123"), "{shown}");
}

#[test]
fn unknown_keys_name_the_key_table_and_line() {
    #[rustfmt::skip]
    let cases: [(&[&str], &str, &str, usize); 13] = [
        (&["lisen = 1", "[server]"], "lisen", "the top level", 1),
        (&["[server]", "listen = ['127.0.0.1:3478']", "lisen = 1"], "lisen", "[server]", 3),
        (&["[server]", "rfc5780 = true", "rfc5780-alternates = '127.0.0.2'"], "rfc5780-alternates", "[server]", 3),
        (&["[auth]", "realm = 'r'", "", "secret = ['x']"], "secret", "[auth]", 4),
        (&["[auth]", "secret-file = 'x'"], "secret-file", "[auth]", 2),
        (
            &["[[auth.users]]", "name = 'a'", "password = 'p'", "[[auth.users]]", "passwd = 'p'"],
            "passwd", "[[auth.users]]", 5,
        ),
        (&["[auth]", "users = [{ name = 'a', pass = 'b' }]"], "pass", "[[auth.users]]", 2),
        (&["[allocation]", "lifetime = 5"], "lifetime", "[allocation]", 2),
        (&["[server]", "[peers]", "allowed = []", "allow = []"], "allow", "[peers]", 4),
        (&["server.lisen = 1"], "lisen", "[server]", 1),
        (&["[limits]", "max-conns = 1"], "max-conns", "[limits]", 2),
        (&["[api]", "key = []"], "key", "[api]", 2),
        (&["[api]", "keys = []", "[api.jwt]", "secrets = 'x'"], "secrets", "[api.jwt]", 4),
    ];
    for (lines, key, table, line) in cases {
        let (got_line, message) = parse_error_of(&doc(lines));
        assert_eq!(got_line, line, "{lines:?}: {message}");
        let expected = format!("unknown key `{key}` in {table} (expected one of `");
        assert!(message.starts_with(&expected), "{message}");
    }
    let err = parse("[server]\nlisen = 1\n").unwrap_err().to_string();
    let expected = "t.toml:2: unknown key `lisen` in [server] (expected one of `listen`, \
                    `relay-ip`, `external-ip`, `default-family`, `min-port`, `max-port`, `workers`, `receive-coalesce-us`, `log-level`, `tcp`, \
                    `tls-listen`, `cert`, `key`, `alternate-servers`, `redirect-all`, `rfc5780`, \
                    `rfc5780-alternate`, `mobility`)";
    assert_eq!(err, expected);
}

#[test]
fn implicit_tables_and_dotted_keys_parse_like_explicit_ones() {
    let secret = "'0123456789abcdef0123456789abcdef'";
    let keys = "['sha256:c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a']";
    let explicit = ok(&["[api]", "[api.jwt]", &format!("secret = {secret}")]).api;
    assert!(explicit.as_ref().is_some_and(|api| api.jwt.is_some()));
    let (line, dotted) = (format!("secret = {secret}"), format!("jwt.secret = {secret}"));
    for lines in [&["[api.jwt]", &line][..], &["[api]", &dotted]] {
        assert_eq!(ok(lines).api, explicit, "{lines:?}");
    }
    let c = ok(&[&format!("api.keys = {keys}"), "[server]"]);
    assert_eq!(c.api, ok(&["[api]", &format!("keys = {keys}")]).api);
    assert!(c.api.is_some());
    // Unknown keys and wrong types under them are named with their table and line.
    #[rustfmt::skip]
    let cases: [(&[&str], usize, &str); 4] = [
        (&["[api.foo]"], 1, "unknown key `foo` in [api]"),
        (&["[api.jwt]", "secrt = 'x'"], 2, "unknown key `secrt` in [api.jwt]"),
        (&["[api]", "", "jwt.leewy = 1"], 3, "unknown key `leewy` in [api.jwt]"),
        (&["[api.jwt]", "leeway = 'x'"], 2, "api.jwt.leeway: invalid type: string"),
    ];
    for (lines, line, message) in cases {
        let (got_line, got) = parse_error_of(&doc(lines));
        assert_eq!(got_line, line, "{lines:?}: {got}");
        assert!(got.starts_with(message), "{lines:?}: {got}");
    }
    // A table where a value belongs: the key and the line are named.
    let (line, message) = parse_error_of(&doc(&["[server]", "listen.x = 1"]));
    assert_eq!(line, 2, "{message}");
    assert!(message.starts_with("server.listen.x: ") && message.contains("expected an array"), "{message}");
}

#[test]
fn type_errors_name_the_key_and_line() {
    #[rustfmt::skip]
    let cases: [(&[&str], &str, usize, &str); 5] = [
        (&["[server]", "", "min-port = 'a'"], "server.min-port", 3, "expected an integer"),
        (&["[auth]", "realm = 5"], "auth.realm", 2, "expected a string"),
        (&["[auth]", "secrets = 'x'"], "auth.secrets", 2, "expected an array"),
        (
            &["[[auth.users]]", "name = 'a'", "[[auth.users]]", "name = 7"],
            "auth.users[1].name", 4, "expected a string",
        ),
        (&["allocation.user-quota = true"], "allocation.user-quota", 1, "expected an integer"),
    ];
    for (lines, key, line, what) in cases {
        let (got_line, message) = parse_error_of(&doc(lines));
        assert_eq!(got_line, line, "{lines:?}: {message}");
        assert!(message.starts_with(&format!("{key}: ")), "{message}");
        assert!(message.contains(what), "{message}");
    }
    // In one-line arrays and inline tables, and under quoted keys, the key is named too.
    #[rustfmt::skip]
    let cases: [(&str, &str, &str); 6] = [
        ("[auth]\nsecrets = [123456]\n", "auth.secrets", "expected a string"),
        ("[auth]\nsecrets = ['a,b', \"c=}\\\"\", 7]\n", "auth.secrets", "expected a string"),
        ("server = { min-port = 'a' }\n[auth]\nsecrets = ['s']\n", "server.min-port", "expected an integer"),
        ("server = { listen = ['127.0.0.1:1'], tls-listen = [], workers = 'a' }\n[auth]\nsecrets = ['s']\n",
         "server.workers", "expected an integer"),
        ("[server]\n\"min-port\" = 'a'\n[auth]\nsecrets = ['s']\n", "server.min-port", "expected an integer"),
        ("[auth]\nusers = [{ name = 'a', password = 5 }]\n", "auth.users.password", "expected a string"),
    ];
    for (text, key, what) in cases {
        let (_, message) = parse_error_of(text);
        assert!(message.starts_with(&format!("{key}: ")) && message.contains(what), "{text}=> {message}");
    }
    // Inside an array the key cannot be told, but the line still is.
    assert_eq!(parse_error_of(&doc(&["[server]", "listen = [", "  'a:1',", "  2,", "]"])).0, 4);
    // Syntax errors and duplicate keys have a line too.
    assert_eq!(parse_error_of("[server]\nmin-port = 1\n[auth\n").0, 3);
    assert_eq!(parse_error_of("[server]\nmin-port = 1\nmin-port = 2\n").0, 3);
}

#[test]
fn validation_errors_name_the_key_and_line() {
    const USER_A: [&str; 4] = ["[[auth.users]]", "name = 'a'", "password = 'p'", "[[auth.users]]"];
    fn user_b<'a>(rest: &[&'a str]) -> Vec<&'a str> {
        [&USER_A[..], rest].concat()
    }
    let hex = "key = '0123456789abcdef0123456789abcdef'";
    let bad_hex = "key = '0x0123456789abcdef0123456789abcdeg'";
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, &str, Option<usize>)> = vec![
        // [server]
        (vec!["[server]", "listen = []"], "server.listen", Some(2)),
        (vec!["[server]", "listen = ['127.0.0.1:1',", " 'nonsense']"], "server.listen[1]", Some(3)),
        (vec!["[server]", "listen = ['127.0.0.1:1', '127.0.0.1:1']"], "server.listen[1]", Some(2)),
        (vec!["[server]", "listen = ['0.0.0.0:3478']"], "server.relay-ip", Some(2)),
        (vec!["[server]", "listen = ['[::]:3478']"], "server.relay-ip", Some(2)),
        (vec!["[server]", "relay-ip = '1.2.3'"], "server.relay-ip", Some(2)),
        (vec!["[server]", "relay-ip = '0.0.0.0'"], "server.relay-ip", Some(2)),
        (vec!["[server]", "relay-ip = '224.0.0.1'"], "server.relay-ip", Some(2)),
        (vec!["[server]", "listen = ['10.0.0.5:1']", "relay-ip='::1'"], "server.relay-ip", Some(3)),
        (vec!["[server]", "listen = ['127.0.0.1:1', '10.0.0.5:1']"], "server.relay-ip", None),
        (vec!["[server]", "external-ip = '203.0.113.1/10.0.0.1/3'"], "server.external-ip", Some(2)),
        (vec!["[server]", "external-ip = '0.0.0.0'"], "server.external-ip", Some(2)),
        (vec!["[server]", "external-ip = '2001:db8::1'"], "server.external-ip", Some(2)),
        (vec!["[server]", "external-ip = '203.0.113.1/fd00::1'"], "server.external-ip", Some(2)),
        (
            vec!["[server]", "relay-ip = '10.0.0.2'", "external-ip = '203.0.113.1/10.0.0.1'"],
            "server.external-ip", Some(3),
        ),
        // relay-ip and external-ip lists, default-family
        (vec!["[server]", "relay-ip = []"], "server.relay-ip", Some(2)),
        (vec!["[server]", "relay-ip = ['127.0.0.1',", " '127.0.0.2']"], "server.relay-ip[1]", Some(3)),
        (vec!["[server]", "relay-ip = ['127.0.0.1', 'x']"], "server.relay-ip[1]", Some(2)),
        (
            vec!["[server]", "listen = ['0.0.0.0:1']", "relay-ip = ['10.0.0.5', '::1']",
                 "external-ip = ['203.0.113.1', '2001:db8::1', '198.51.100.1']"],
            "server.external-ip[2]", Some(4),
        ),
        (
            vec!["[server]", "relay-ip = ['127.0.0.1']", "external-ip = ['203.0.113.1', '2001:db8::1']"],
            "server.external-ip[1]", Some(3),
        ),
        (vec!["[server]", "default-family = 'ipv5'"], "server.default-family", Some(2)),
        (vec!["[server]", "relay-ip = ['127.0.0.1', 'ff02::1']"], "server.relay-ip[1]", Some(2)),
        (vec!["[server]", "external-ip = '2001:db8::1/ff02::1'"], "server.external-ip", Some(2)),
        (vec!["[server]", "default-family = 'ipv6'"], "server.default-family", Some(2)),
        (vec!["[server]", "min-port = 0"], "server.min-port", Some(2)),
        (vec!["[server]", "max-port = 65536"], "server.max-port", Some(2)),
        (vec!["[server]", "min-port = 60000", "max-port = 50000"], "server.min-port", Some(2)),
        (vec!["[server]", "", "max-port = 1000"], "server.max-port", Some(3)),
        (vec!["[server]", "workers = 1025"], "server.workers", Some(2)),
        (vec!["[server]", "workers = -1"], "server.workers", Some(2)),
        (vec!["[server]", "log-level = 'turnd=loud'"], "server.log-level", Some(2)),
        (vec!["[server]", "log-level = ''"], "server.log-level", Some(2)),
        // Made tracing-subscriber's parser panic (fuzz/ config_parse): refused before it.
        (vec!["[server]", "log-level = 'x, [{Ƅ}]'"], "server.log-level", Some(2)),
        // [auth]
        (vec!["[auth]", "secrets = ['s']", "realm = ''"], "auth.realm", Some(3)),
        (vec!["[auth]", "secrets = ['s']", "realm = \"a\\tb\""], "auth.realm", Some(3)),
        (vec!["[auth]", "secrets=['s']", "rest-separator = '--'"], "auth.rest-separator", Some(3)),
        (vec!["[auth]", "secrets = ['s']", "rest-separator = ''"], "auth.rest-separator", Some(3)),
        (vec!["[auth]", "secrets = ['s']", "rest-separator = '7'"], "auth.rest-separator", Some(3)),
        (vec!["[auth]", "secrets = ['s']", "nonce-lifetime = 0"], "auth.nonce-lifetime", Some(3)),
        (vec!["[auth]", "secrets=['s']", "nonce-lifetime = 99999"], "auth.nonce-lifetime", Some(3)),
        (vec!["[auth]", "secrets = ['a', '']"], "auth.secrets[1]", Some(2)),
        (vec!["[auth]", "secrets = []"], "auth.secrets", Some(2)),
        (vec!["[auth]", "realm = 'r'"], "auth.secrets", None),
        (user_b(&["name = 'b'", "key = '0x1234'"]), "auth.users[1].key", Some(6)),
        (user_b(&["name = 'b'", bad_hex]), "auth.users[1].key", Some(6)),
        (user_b(&["name = 'b'", "password = 'p'", hex]), "auth.users[1].key", Some(7)),
        (user_b(&["name = 'b'"]), "auth.users[1]", Some(4)),
        (user_b(&["password = 'p'"]), "auth.users[1].name", Some(4)),
        (user_b(&["name = ''", "password = 'p'"]), "auth.users[1].name", Some(5)),
        (user_b(&["name = 'a'", "password = 'q'"]), "auth.users[1].name", Some(5)),
        (user_b(&["name = 'b'", "password = ''"]), "auth.users[1].password", Some(6)),
        // the demo credentials off loopback
        (
            vec!["[server]", "listen = ['127.0.0.1:1', '10.0.0.5:1']", "relay-ip = '10.0.0.5'",
                 "[auth]", "secrets = ['x',", "  'turnd-demo-secret']"],
            "auth.secrets[1]", Some(6),
        ),
        (
            vec!["[server]", "listen = ['0.0.0.0:3478']", "relay-ip = '10.0.0.5'",
                 "[[auth.users]]", "name = 'demo'", "password = 'x'"],
            "auth.users[0]", Some(4),
        ),
        // [allocation]
        (vec!["[allocation]", "default-lifetime = 0"], "allocation.default-lifetime", Some(2)),
        (vec!["[allocation]", "default-lifetime = 4000"], "allocation.default-lifetime", Some(2)),
        (vec!["[allocation]", "max-lifetime = 300"], "allocation.max-lifetime", Some(2)),
        (vec!["[allocation]", "max-lifetime = 0"], "allocation.max-lifetime", Some(2)),
        (vec!["[allocation]", "max-lifetime = 86401"], "allocation.max-lifetime", Some(2)),
        (vec!["[allocation]", "user-quota = -1"], "allocation.user-quota", Some(2)),
        (vec!["[allocation]", "total-quota = 4294967296"], "allocation.total-quota", Some(2)),
        // [peers]
        (vec!["[peers]", "allowed = ['10.0.0.0/8', '10.0.0.0/33']"], "peers.allowed[1]", Some(2)),
        (vec!["[peers]", "denied = [", "'example.com']"], "peers.denied[0]", Some(3)),
    ];
    for (lines, key, line) in cases {
        let text = doc(&lines);
        let (got_key, got_line, reason) = invalid_of(&text);
        assert_eq!((got_key.as_str(), got_line), (key, line), "{text}\n=> {reason}");
        assert!(!reason.is_empty());
    }
}

#[test]
fn error_messages_read_well() {
    let err = parse(&doc(&["[server]", "min-port = 0"])).unwrap_err().to_string();
    assert_eq!(err, "t.toml:2: server.min-port: 0 is out of range 1..=65535");
    let text = doc(&["[server]", "listen = ['0.0.0.0:3478']", "relay-ip = '10.0.0.5'", "[auth]"]);
    let err = parse(&(text + "secrets = ['turnd-demo-secret']\n")).unwrap_err().to_string();
    assert!(err.starts_with("t.toml:5: auth.secrets[0]: the demo secret"), "{err}");
    assert!(err.contains("replace it"), "{err}");
    let err = parse(&doc(&["[server]", "listen = ['0.0.0.0:3478']"])).unwrap_err().to_string();
    assert!(err.starts_with("t.toml:2: server.relay-ip: required"), "{err}");
    let err = parse(&doc(&["[[auth.users]]", "name = 'b'", "key = 'zz'"])).unwrap_err();
    assert!(err.to_string().starts_with("t.toml:3: auth.users[0].key: must be 32 hex"), "{err}");
}

#[test]
fn relay_ip_resolution() {
    let c = ok(&["[server]", "listen = ['10.1.2.3:3478', '10.1.2.4:3478']"]);
    assert_eq!(c.relay_ip, ip("10.1.2.3"));
    let c = ok(&["[server]", "listen = ['0.0.0.0:3478']", "relay-ip = '10.0.0.5'"]);
    assert_eq!(c.relay_ip, ip("10.0.0.5"));
    // PUBLIC/PRIVATE sets relay-ip to PRIVATE.
    let c = ok(&["[server]", "listen = ['0.0.0.0:3478']", "external-ip = '203.0.113.10/10.0.0.5'"]);
    assert_eq!((c.relay_ip, c.external_ip), (ip("10.0.0.5"), Some(ip("203.0.113.10"))));
    // An explicit relay-ip equal to PRIVATE is fine; PUBLIC alone keeps the listen IP.
    let c = ok(&[
        "[server]",
        "listen = ['10.0.0.5:3478']",
        "relay-ip = '10.0.0.5'",
        "external-ip = '203.0.113.10/10.0.0.5'",
    ]);
    assert_eq!(c.relay_ip, ip("10.0.0.5"));
    let c = ok(&["[server]", "listen = ['10.0.0.5:3478']", "external-ip = '203.0.113.10'"]);
    assert_eq!((c.relay_ip, c.external_ip), (ip("10.0.0.5"), Some(ip("203.0.113.10"))));
    // A loopback relay is fine behind an external IP; IPv6 works like IPv4.
    let c = ok(&["[server]", "listen = ['0.0.0.0:1']", "external-ip = '203.0.113.1/127.0.0.1'"]);
    assert_eq!(c.relay_ip, ip("127.0.0.1"));
    assert_eq!(ok(&["[server]", "listen = ['[::1]:3478']"]).relay_ip, ip("::1"));
}

#[test]
fn relay_addresses_per_family_and_default_family() {
    use crate::turn::{DefaultFamily, RelayAddr};
    // Today's single relay-ip: one family, the listener default.
    let c = ok(&["[server]", "relay-ip = '127.0.0.1'"]);
    assert_eq!((c.second_relay, c.default_family), (None, DefaultFamily::Listener));
    // One IPv4 and one IPv6, in either order; the first is relay_ip.
    let c = ok(&["[server]", "listen = ['127.0.0.1:1', '[::1]:1']", "relay-ip = ['::1', '127.0.0.1']"]);
    assert_eq!(c.relay_ip, ip("::1"));
    assert_eq!(c.second_relay, Some(RelayAddr { ip: ip("127.0.0.1"), external: None }));
    assert_eq!((c.relays().v4.unwrap().ip, c.relays().v6.unwrap().ip), (ip("127.0.0.1"), ip("::1")));
    // external-ip per family, PUBLIC/PRIVATE setting the relay IP of its family.
    let c = ok(&[
        "[server]",
        "listen = ['0.0.0.0:1']",
        "external-ip = ['203.0.113.10/10.0.0.5', '2001:db8::10/fd00::5']",
        "default-family = 'ipv6'",
    ]);
    assert_eq!((c.relay_ip, c.external_ip), (ip("10.0.0.5"), Some(ip("203.0.113.10"))));
    assert_eq!(c.second_relay, Some(RelayAddr { ip: ip("fd00::5"), external: Some(ip("2001:db8::10")) }));
    assert_eq!(c.default_family, DefaultFamily::Ipv6);
    // A repeated flag gives both families too.
    let o = Overrides { relay_ip: vec!["127.0.0.1".into(), "::1".into()], ..Default::default() };
    let c = load_with(None, &o).unwrap();
    assert_eq!(c.second_relay.map(|r| r.ip), Some(ip("::1")));
    let o = Overrides { relay_ip: vec!["127.0.0.1".into(), "127.0.0.2".into()], ..Default::default() };
    match load_with(None, &o) {
        Err(ConfigError::Invalid { key, line: None, .. }) => assert_eq!(key, "--relay-ip"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shipped_file_deploys_behind_nat_as_its_comment_and_the_readme_say() {
    let fresh = "secrets = [\"0123456789abcdef0123456789abcdef\"]";
    let own = |text: &str| {
        text.replace("secrets = [\"turnd-demo-secret\"]", fresh).replace("name = \"demo\"", "name = \"alice\"")
    };
    // The file's "Deploying on a VM" steps 1-3.
    let text = own(&Config::EMBEDDED
        .replace("listen = [\"127.0.0.1:3478\"]", "listen = [\"10.0.0.5:3478\"]")
        .replace("# external-ip = \"203.0.113.10/10.0.0.5\"", "external-ip = \"203.0.113.10/10.0.0.5\""));
    assert!(text.contains("\nexternal-ip = ") && text.contains(fresh), "the file's steps no longer apply");
    let c = Config::parse(&text, "vm.toml").unwrap_or_else(|e| panic!("the file edited as it says is refused: {e}"));
    assert_eq!((c.relay_ip, c.external_ip), (ip("10.0.0.5"), Some(ip("203.0.113.10"))));
    // README: the same with flags, on the file with the demo credentials replaced.
    let flags = Overrides {
        listen: vec!["10.0.0.5:3478".into()],
        external_ip: vec!["203.0.113.10/10.0.0.5".into()],
        ..Overrides::default()
    };
    let mut raw = RawConfig::parse(&own(Config::EMBEDDED), "turnserver.toml").unwrap();
    flags.apply(&mut raw).unwrap();
    let c = raw.validate().unwrap_or_else(|e| panic!("the README's command is refused: {e}"));
    let listen: SocketAddr = "10.0.0.5:3478".parse().unwrap();
    assert_eq!((c.listen[0], c.relay_ip, c.external_ip), (listen, ip("10.0.0.5"), Some(ip("203.0.113.10"))));
    // Flags override keys: --external-ip's PRIVATE replaces a relay-ip the file pins...
    let pinned = doc(&["[server]", "listen = ['10.0.0.5:3478']", "relay-ip = '10.0.0.4'"]);
    let mut raw = RawConfig::parse(&pinned, "t.toml").unwrap();
    flags.apply(&mut raw).unwrap();
    assert_eq!(raw.validate().unwrap().relay_ip, ip("10.0.0.5"));
    // ...while the file contradicting itself is still an error at its line.
    let (key, line, reason) = invalid_of(&doc(&[
        "[server]",
        "listen = ['10.0.0.5:3478']",
        "relay-ip = '10.0.0.4'",
        "external-ip = '203.0.113.10/10.0.0.5'",
    ]));
    assert_eq!((key.as_str(), line), ("server.external-ip", Some(4)), "{reason}");
    assert!(reason.contains("conflicts with server.relay-ip = 10.0.0.4"), "{reason}");
}

#[test]
fn demo_credentials_only_on_loopback() {
    let c = ok(&[
        "[server]",
        "listen = ['127.0.0.1:3478', '[::1]:3478']",
        "[auth]",
        "secrets = ['turnd-demo-secret']",
        "[[auth.users]]",
        "name = 'demo'",
        "password = 'x'",
    ]);
    assert_eq!((c.secrets.len(), c.users.len()), (1, 1));
    // The shipped file with a public listen address: the demo secret is refused first...
    let mut raw = RawConfig::parse(Config::EMBEDDED, EMBEDDED_ORIGIN).unwrap();
    let o = Overrides { listen: vec!["0.0.0.0:3478".into()], relay_ip: vec!["10.0.0.5".into()], ..Default::default() };
    o.apply(&mut raw).unwrap();
    match raw.clone().validate() {
        Err(ConfigError::Invalid { origin, key, line: Some(_), reason }) => {
            assert_eq!((origin.as_str(), key.as_str()), (EMBEDDED_ORIGIN, "auth.secrets[0]"));
            assert!(reason.contains("replace it"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // ...then, once the secret is replaced, the demo user...
    let o = Overrides { auth_secrets: vec!["fresh".into()], ..Default::default() };
    o.apply(&mut raw).unwrap();
    match raw.clone().validate() {
        Err(ConfigError::Invalid { key, reason, .. }) => {
            assert_eq!(key, "auth.users[0]");
            assert!(reason.contains("replace it"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // ...and with both replaced the result is valid.
    let o = Overrides { users: vec!["alice:pw".into()], ..Default::default() };
    o.apply(&mut raw).unwrap();
    let c = raw.validate().unwrap();
    let alice = User { name: "alice".into(), secret: UserSecret::Password("pw".into()) };
    assert_eq!((c.users, c.secrets), (vec![alice], vec!["fresh".to_owned()]));
}

#[test]
fn demo_credentials_and_loopback_relays_consider_every_address_that_serves_turn() {
    let tls = TlsFiles::new();
    let (cert, key) = (tls.cert_line(), tls.key_line());
    let demo_secret = ["[auth]", "secrets = ['turnd-demo-secret']"];
    let demo_user = ["[auth]", "secrets = ['s']", "[[auth.users]]", "name = 'demo'", "password = 'x'"];
    // A public TLS listener, or a public RFC 5780 alternate IP, next to a loopback listen address
    // (relay-ip set, so that the relay check passes and the credentials are what is refused).
    let public_tls: &[&str] = &["[server]", "relay-ip = '192.0.2.5'", "tls-listen = ['0.0.0.0:5349']", &cert, &key];
    let public_alternate: &[&str] =
        &["[server]", "relay-ip = '192.0.2.5'", "rfc5780 = true", "rfc5780-alternate = '192.0.2.7:3479'"];
    for (server, outside) in
        [(public_tls, "server.tls-listen address 0.0.0.0:5349"), (public_alternate, "RFC 5780 alternate IP 192.0.2.7")]
    {
        for (credentials, want) in [(&demo_secret[..], "auth.secrets[0]"), (&demo_user[..], "auth.users[0]")] {
            let text = doc(&[server, credentials].concat());
            let (key, _, reason) = invalid_of(&text);
            assert_eq!(key, want, "{text}=> {reason}");
            assert!(reason.contains("only accepted when every address that serves TURN"), "{reason}");
            assert!(reason.contains(outside), "{text}=> {reason}");
        }
        // A loopback relay (here the default: the loopback listen IP) is refused the same way.
        let text = doc(&[&[server[0]], &server[2..]].concat());
        let (key, line, reason) = invalid_of(&text);
        assert_eq!((key.as_str(), line), ("server.relay-ip", None), "{text}=> {reason}");
        assert!(reason.contains(&format!("127.0.0.1 is loopback but {outside} is not")), "{reason}");
    }
    // As flags on the embedded file: the file's loopback relay-ip is refused first, then (given
    // a public relay-ip) its demo secret.
    let mut o = Overrides {
        tls_listen: vec!["0.0.0.0:5349".into()],
        cert: Some(tls.cert.display().to_string()),
        key: Some(tls.key.display().to_string()),
        ..Overrides::default()
    };
    let keys = ["server.relay-ip", "auth.secrets[0]"];
    for want in keys {
        match load_with(None, &o) {
            Err(ConfigError::Invalid { origin, key, reason, .. }) => {
                assert_eq!((origin.as_str(), key.as_str()), (EMBEDDED_ORIGIN, want), "{reason}");
                assert!(reason.contains("server.tls-listen address 0.0.0.0:5349"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        o.relay_ip = vec!["192.0.2.5".into()];
    }
    // Every address loopback, of either family: the demo credentials and a loopback relay are fine.
    let c = ok(&[
        &["[server]", "tls-listen = ['[::1]:5349']", &cert, &key, "rfc5780 = true", "rfc5780-alternate = '127.0.0.2'"],
        &demo_user[..],
    ]
    .concat());
    assert_eq!((c.relay_ip, c.users[0].name.as_str()), (ip("127.0.0.1"), "demo"));
}

#[test]
fn user_keys_parse() {
    let c = ok(&[
        "[[auth.users]]",
        "name = 'k'",
        "key = '0x000102030405060708090a0b0c0d0E0F'",
        "[[auth.users]]",
        "name = 'l'",
        "key = 'ffffffffffffffffffffffffffffffff'",
    ]);
    let expected: [u8; 16] = std::array::from_fn(|i| i as u8);
    assert_eq!(c.users[0].secret, UserSecret::Key(expected));
    assert_eq!(c.users[1].secret, UserSecret::Key([0xff; 16]));
    assert_eq!(parse_key("+f0102030405060708090a0b0c0d0e0f"), None);
    assert_eq!(parse_key("0x0102030405060708090a0b0c0d0e0f"), None);
}

#[test]
fn peers_parse_cidrs_and_ips() {
    let c = ok(&["[peers]", "allowed = ['10.1.2.3/8', '192.168.1.7', 'fd00::/8']", "denied = ['203.0.113.0/24']"]);
    let nets = |v: &[&str]| v.iter().map(|s| s.parse::<IpNet>().unwrap()).collect::<Vec<_>>();
    assert_eq!(c.allowed_peers, nets(&["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]));
    assert_eq!(c.denied_peers, nets(&["203.0.113.0/24"]));
}

#[test]
fn receive_coalescing_defaults_on_and_is_bounded() {
    assert_eq!(ok(&["[server]"]).receive_coalesce, std::time::Duration::from_micros(200));
    assert_eq!(ok(&["[server]", "receive-coalesce-us = 0"]).receive_coalesce, std::time::Duration::ZERO);
    assert_eq!(ok(&["[server]", "receive-coalesce-us = 1000"]).receive_coalesce, std::time::Duration::from_millis(1));
    for bad in ["receive-coalesce-us = 1001", "receive-coalesce-us = -1"] {
        let message = parse(&format!("[server]\n{bad}\n")).unwrap_err().to_string();
        assert!(message.starts_with("t.toml:2: server.receive-coalesce-us: "), "{message}");
        assert!(message.contains("out of range 0..=1000"), "{message}");
    }
}

#[test]
fn workers_zero_resolves_to_at_least_one() {
    assert!(ok(&["[server]", "workers = 0"]).workers >= 1);
    assert_eq!(ok(&["[server]", "workers = 3"]).workers, 3);
}

pub(super) fn load_text(text: &str, o: &Overrides) -> Result<Config, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    load_with(Some(file.path()), o)
}

#[test]
fn overrides_replace_lists_and_scalars() {
    let text = doc(&[
        "[server]",
        "listen = ['127.0.0.1:3478', '127.0.0.2:3478']",
        "[auth]",
        "secrets = ['a', 'b']",
        "[[auth.users]]",
        "name = 'u'",
        "password = 'p'",
        "[peers]",
        "allowed = ['10.0.0.0/8']",
    ]);
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
    assert_eq!(c.relay_ip, ip("127.0.0.9"));
    assert_eq!(c.realm, "example.org");
    assert_eq!(c.secrets, vec!["c".to_owned()]);
    let x = User { name: "x".into(), secret: UserSecret::Password("y:z".into()) };
    let v = User { name: "v".into(), secret: UserSecret::Password("w".into()) };
    assert_eq!(c.users, vec![x, v]);
    let nets: Vec<IpNet> = vec!["192.168.0.0/16".parse().unwrap(), "172.16.0.1/32".parse().unwrap()];
    assert_eq!(c.allowed_peers, nets);
    assert_eq!((c.min_port, c.max_port, c.workers), (40000, 40100, 2));
    assert_eq!(c.log_level, "turnd=debug,warn");
    // An explicit relay-ip in the file is kept.
    let text = doc(&["[server]", "relay-ip = '127.0.0.1'"]);
    assert_eq!(load_text(&text, &o).unwrap().relay_ip, ip("127.0.0.1"));
    // --external-ip PUBLIC/PRIVATE with an unspecified --listen.
    let o = Overrides {
        listen: vec!["0.0.0.0:3478".into()],
        external_ip: vec!["198.51.100.7/10.0.0.8".into()],
        ..Default::default()
    };
    let c = load_text(AUTH, &o).unwrap();
    assert_eq!((c.relay_ip, c.external_ip), (ip("10.0.0.8"), Some(ip("198.51.100.7"))));
}

#[test]
fn bad_overrides_name_the_flag() {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let some = |s: &str| Some(s.to_owned());
    let d = Overrides::default;
    #[rustfmt::skip]
    let cases: Vec<(Overrides, &str)> = vec![
        (Overrides { listen: strings(&["127.0.0.1"]), ..d() }, "--listen"),
        (Overrides { listen: strings(&["127.0.0.1:1", "127.0.0.1:1"]), ..d() }, "--listen"),
        (Overrides { relay_ip: strings(&["x"]), ..d() }, "--relay-ip"),
        (Overrides { relay_ip: strings(&["0.0.0.0"]), ..d() }, "--relay-ip"),
        (Overrides { external_ip: strings(&["1.2.3.4/x"]), ..d() }, "--external-ip"),
        (Overrides { relay_ip: strings(&["10.0.0.2"]), external_ip: strings(&["1.2.3.4/10.0.0.1"]), ..d() },
         "--external-ip"),
        (Overrides { realm: some(""), ..d() }, "--realm"),
        (Overrides { auth_secrets: strings(&[""]), ..d() }, "--auth-secret"),
        (Overrides { users: strings(&["nocolon"]), ..d() }, "--user"),
        (Overrides { users: strings(&[":pw"]), ..d() }, "--user"),
        (Overrides { users: strings(&["a:b", "a:c"]), ..d() }, "--user"),
        (Overrides { allow_peers: strings(&["10/8"]), ..d() }, "--allow-peer"),
        (Overrides { min_port: Some(0), ..d() }, "--min-port"),
        (Overrides { max_port: Some(u64::MAX), ..d() }, "--max-port"),
        (Overrides { min_port: Some(2000), max_port: Some(1000), ..d() }, "--min-port"),
        (Overrides { max_port: Some(1000), ..d() }, "--max-port"),
        (Overrides { workers: Some(5000), ..d() }, "--workers"),
        (Overrides { log_level: some("a=b=c"), ..d() }, "--log-level"),
    ];
    for (i, (o, flag)) in cases.into_iter().enumerate() {
        match load_with(None, &o) {
            Err(ConfigError::Invalid { origin, key, line, reason }) => {
                assert_eq!(key, flag, "case {i}: {reason}");
                assert_eq!((origin.as_str(), line), (CLI_ORIGIN, None), "case {i}");
            }
            other => panic!("case {i}: {other:?}"),
        }
    }
    // An unspecified --listen needs a relay IP: the error says how to give one.
    let o = Overrides { listen: strings(&["0.0.0.0:3478"]), ..d() };
    match load_with(None, &o) {
        Err(ConfigError::Invalid { origin, key, line: None, reason }) => {
            assert_eq!((origin.as_str(), key.as_str()), (EMBEDDED_ORIGIN, "server.relay-ip"));
            assert!(reason.contains("--relay-ip") && reason.contains("0.0.0.0:3478"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let err = load_with(None, &Overrides { max_port: Some(1000), ..d() }).unwrap_err();
    let expected = "command line: --max-port: min-port 49152 is greater than max-port 1000";
    assert_eq!(err.to_string(), expected);
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
fn a_config_file_that_is_not_utf8_names_the_line() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"[auth]\nsecrets = ['s']\nrealm = 'caf\xe9'\n").unwrap();
    match Config::load(file.path()) {
        Err(e @ ConfigError::Parse { line: 3, column: 13, .. }) => {
            let expected = format!("{}:3: not UTF-8 text", file.path().display());
            assert!(e.to_string().starts_with(&expected), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_control_character_in_a_comment_is_named() {
    let (line, message) = parse_error_of("[auth]\n# a\u{1}b\nsecrets = ['s']\n");
    assert_eq!(line, 2, "{message}");
    assert!(message.starts_with("the control character U+0001 is not allowed in TOML"), "{message}");
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncdé f", 0), (1, 1));
    assert_eq!(line_col("ab\ncdé f", 3), (2, 1));
    assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn mobility_is_opt_in() {
    assert!(!ok(&[]).mobility);
    assert!(ok(&["[server]", "mobility = true"]).mobility);
    let (line, message) = parse_error_of(&doc(&["[server]", "mobility = 'yes'"]));
    assert_eq!(line, 2, "{message}");
    assert!(message.contains("server.mobility"), "{message}");
}

#[test]
fn alternate_servers_and_redirect_all() {
    let c = ok(&["[server]", "alternate-servers = ['192.0.2.7:3478', '[2001:db8::7]:3478']", "redirect-all = true"]);
    let expected: Vec<std::net::SocketAddr> =
        vec!["192.0.2.7:3478".parse().unwrap(), "[2001:db8::7]:3478".parse().unwrap()];
    assert_eq!((c.alternate_servers, c.redirect_all), (expected, true));
    let c = ok(&[]);
    assert_eq!((c.alternate_servers.len(), c.redirect_all), (0, false));
    for (lines, key, line) in [
        (vec!["[server]", "alternate-servers = ['192.0.2.7:0']"], "server.alternate-servers[0]", Some(2)),
        (
            vec!["[server]", "alternate-servers = ['192.0.2.7:1', '0.0.0.0:3478']"],
            "server.alternate-servers[1]",
            Some(2),
        ),
        (vec!["[server]", "alternate-servers = ['192.0.2.7']"], "server.alternate-servers[0]", Some(2)),
        (vec!["[server]", "", "redirect-all = true"], "server.redirect-all", Some(3)),
    ] {
        let (got_key, got_line, reason) = invalid_of(&doc(&lines));
        assert_eq!((got_key.as_str(), got_line), (key, line), "{lines:?}: {reason}");
    }
}

/// Field filters are refused in log-level (fuzz/ config_parse found tracing-subscriber taking
/// seconds on one, and failing a debug assertion on two equal ones); targets, spans and levels
/// are what a log filter for turnd needs.
#[test]
fn log_level_takes_targets_spans_and_levels_not_field_filters() {
    let c = ok(&["[server]", "log-level = 'turnd::io[conn]=debug,turnd=info,warn'"]);
    assert!(log_filter(&c.log_level).is_ok());
    for filter in ["turnd[conn{client=a(b}]=debug", "t[{x=v}]=info,t[{x=v}]=info"] {
        let text = doc(&["[server]", &format!("log-level = '{filter}'")]);
        let (key, line, reason) = invalid_of(&text);
        assert_eq!((key.as_str(), line), ("server.log-level", Some(2)), "{reason}");
        assert!(reason.contains("field filters"), "{reason}");
    }
}
