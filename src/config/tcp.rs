//! TURN over TCP and TLS settings: the `tcp`, `tls-listen`, `cert` and `key` keys of `[server]`
//! and the `[limits]` table (connection counts and timeouts), parsed and validated.

use std::net::SocketAddr;
use std::path::PathBuf;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::{blame, invalid, or, At, Checked, Opt, RawConfig, CLI_ORIGIN};
use crate::turn::Limits;

/// `[limits]` as serde reads it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a [limits] table")]
pub(super) struct RawLimits {
    first_message_timeout: Opt<i64>,
    tls_handshake_timeout: Opt<i64>,
    idle_timeout: Opt<i64>,
    max_connections: Opt<i64>,
    max_connections_per_ip: Opt<i64>,
    drain_time: Opt<i64>,
    allocate_rate: Opt<i64>,
    challenge_rate: Opt<i64>,
    max_bps: Opt<i64>,
    bps_capacity: Opt<i64>,
}

/// Upper bound of `limits.first-message-timeout` and `limits.tls-handshake-timeout`, seconds.
pub const MAX_STREAM_TIMEOUT_SECS: u64 = 300;
/// Upper bound of `limits.idle-timeout`, seconds.
pub const MAX_IDLE_TIMEOUT_SECS: u64 = 3600;
/// Default of `limits.idle-timeout`, seconds: coturn's `max-allocate-timeout`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: i64 = 60;
/// Upper bound of `limits.drain-time`, seconds.
pub const MAX_DRAIN_SECS: u64 = 86_400;
/// Upper bound of `limits.max-connections`.
pub const MAX_CONNECTIONS: u32 = 1_000_000;
/// Upper bound of `limits.allocate-rate` and `limits.challenge-rate`, a second.
pub const MAX_REQUEST_RATE: u32 = 1_000_000;
/// Upper bound of `limits.max-bps` and `limits.bps-capacity`: 100 Gbit/s in bytes a second.
pub const MAX_BPS: u64 = 12_500_000_000;
/// Default of `limits.allocate-rate` and `limits.challenge-rate`.
pub const DEFAULT_REQUEST_RATE: i64 = 100;

/// The validated TCP/TLS settings, copied into [`super::Config`].
pub(super) struct Streams {
    pub tcp: bool,
    pub tls_listen: Vec<SocketAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub first_message_timeout: u64,
    pub tls_handshake_timeout: u64,
    pub idle_timeout: u64,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub drain_time: u64,
    pub limits: Limits,
}

impl RawConfig {
    /// `[server]` `tcp`, `tls-listen`, `cert`, `key` and the `[limits]` table. A TLS address
    /// may not be a TCP listen address too, and TLS needs both a certificate and a key.
    pub(super) fn streams(&self, listen: &[SocketAddr]) -> Checked<Streams> {
        let server = &self.server;
        let tcp = or(&server.tcp, true).value;
        let tls_items = or(&server.tls_listen, Vec::new());
        let tls_listen = self.addresses("server.tls-listen", &tls_items.value)?;
        for (i, addr) in tls_listen.iter().enumerate() {
            if tcp && addr.port() != 0 && listen.contains(addr) {
                let reason = format!(
                    "{addr} is also a TCP listen address (server.tcp = true serves TCP on every listen \
                     address); use another port, or set tcp = false (--no-tcp)"
                );
                return Err(self.err(&format!("server.tls-listen[{i}]"), tls_items.value[i].at, reason));
            }
        }
        let cert = self.pem_file("server.cert", &server.cert, Pem::Certificates)?;
        let key = self.pem_file("server.key", &server.key, Pem::PrivateKey)?;
        if !tls_listen.is_empty() {
            for (name, flag, value) in [("server.cert", "--cert", &cert), ("server.key", "--key", &key)] {
                if value.is_none() {
                    let reason = format!("required because server.tls-listen is set: a PEM file ({flag})");
                    return Err(match tls_items.at {
                        At::Flag(_) => invalid(CLI_ORIGIN, flag, None, reason),
                        at => invalid(&self.origin, name, self.line(at), reason),
                    });
                }
            }
        }
        let limits = &self.limits;
        let timeouts = 1..=MAX_STREAM_TIMEOUT_SECS as i64;
        let first = self.int(&limits.first_message_timeout, "limits.first-message-timeout", 10, timeouts.clone())?;
        let handshake = self.int(&limits.tls_handshake_timeout, "limits.tls-handshake-timeout", 10, timeouts)?;
        let idle_range = 1..=MAX_IDLE_TIMEOUT_SECS as i64;
        let idle = self.int(&limits.idle_timeout, "limits.idle-timeout", DEFAULT_IDLE_TIMEOUT_SECS, idle_range)?;
        let counts = 1..=i64::from(MAX_CONNECTIONS);
        let total = self.int(&limits.max_connections, "limits.max-connections", 10_000, counts.clone())?;
        let per_ip = self.int(&limits.max_connections_per_ip, "limits.max-connections-per-ip", 100, counts)?;
        if per_ip.value > total.value {
            let first = ("limits.max-connections-per-ip", per_ip.at);
            let (name, at) = blame(first, ("limits.max-connections", total.at));
            let reason =
                format!("max-connections-per-ip {} is greater than max-connections {}", per_ip.value, total.value);
            return Err(self.err(name, at, reason));
        }
        let drain = self.int(&limits.drain_time, "limits.drain-time", 30, 0..=MAX_DRAIN_SECS as i64)?;
        let rates = 0..=i64::from(MAX_REQUEST_RATE);
        let allocate_rate =
            self.int(&limits.allocate_rate, "limits.allocate-rate", DEFAULT_REQUEST_RATE, rates.clone())?;
        let challenge_rate = self.int(&limits.challenge_rate, "limits.challenge-rate", DEFAULT_REQUEST_RATE, rates)?;
        let max_bps = self.int(&limits.max_bps, "limits.max-bps", 0, 0..=MAX_BPS as i64)?;
        let bps_capacity = self.int(&limits.bps_capacity, "limits.bps-capacity", 0, 0..=MAX_BPS as i64)?;
        let limits = Limits {
            allocate_rate: allocate_rate.value as u32,
            challenge_rate: challenge_rate.value as u32,
            max_bps: max_bps.value as u64,
            bps_capacity: bps_capacity.value as u64,
        };
        Ok(Streams {
            tcp,
            tls_listen,
            cert,
            key,
            first_message_timeout: first.value as u64,
            tls_handshake_timeout: handshake.value as u64,
            idle_timeout: idle.value as u64,
            max_connections: total.value as u32,
            max_connections_per_ip: per_ip.value as u32,
            drain_time: drain.value as u64,
            limits,
        })
    }

    /// `server.cert` or `server.key`: when given, a readable file (a relative name resolved as
    /// [`RawConfig::resolve`] says) that holds what the TLS setup (`io::tls`) reads from it, read
    /// with the same rustls PEM parser. Checked now, so that `turnd check-config` finds a wrong
    /// path or file before a restart does. Whether the key fits the certificate is left to the
    /// TLS setup.
    fn pem_file(&self, name: &str, opt: &Opt<String>, want: Pem) -> Checked<Option<PathBuf>> {
        let Some(item) = opt else { return Ok(None) };
        if item.value.trim().is_empty() {
            return Err(self.err(name, item.at, "must not be empty"));
        }
        let (path, how) = self.resolve(&item.value, item.at);
        let shown = path.display();
        if let Err(e) = std::fs::File::open(&path).and_then(|f| f.metadata()) {
            return Err(self.err(name, item.at, format!("cannot read {shown}: {e}{how}")));
        }
        if !path.is_file() {
            return Err(self.err(name, item.at, format!("{shown} is not a file{how}")));
        }
        let found = match want {
            Pem::Certificates => CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map(|certs| !certs.is_empty()),
            Pem::PrivateKey => match PrivateKeyDer::from_pem_file(&path) {
                Err(pem::Error::NoItemsFound) => Ok(false),
                other => other.map(|_| true),
            },
        };
        let problem = match found {
            Ok(true) => return Ok(Some(path)),
            Ok(false) => format!("{shown} holds no {}", want.expected()),
            Err(e) => format!("{shown} is not a readable PEM file ({e}); it should hold {}", want.expected()),
        };
        Err(self.err(name, item.at, problem))
    }
}

/// What a PEM file of the TLS setup must hold.
#[derive(Clone, Copy)]
enum Pem {
    /// `server.cert`: the certificate chain, at least one certificate.
    Certificates,
    /// `server.key`: the private key.
    PrivateKey,
}

impl Pem {
    fn expected(self) -> &'static str {
        match self {
            Pem::Certificates => "PEM certificate (-----BEGIN CERTIFICATE-----), as fullchain.pem does",
            Pem::PrivateKey => {
                "PEM private key (-----BEGIN PRIVATE KEY-----, or RSA / EC PRIVATE KEY), as privkey.pem does"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doc, invalid_of, ok, TlsFiles};
    use super::super::{load_with, Config, ConfigError, Overrides, CLI_ORIGIN};

    #[test]
    fn tcp_tls_and_limits_parse() {
        let tls = TlsFiles::new();
        let (cert_line, key_line) = (tls.cert_line(), tls.key_line());
        let c = ok(&[
            "[server]",
            "listen = ['127.0.0.1:3478']",
            "tcp = false",
            "tls-listen = ['127.0.0.1:5349', '[::1]:5349']",
            &cert_line,
            &key_line,
            "[limits]",
            "first-message-timeout = 3",
            "tls-handshake-timeout = 4",
            "idle-timeout = 5",
            "max-connections = 500",
            "max-connections-per-ip = 500",
            "allocate-rate = 0",
            "challenge-rate = 7",
            "max-bps = 125000",
            "bps-capacity = 12500000",
        ]);
        assert!(!c.tcp);
        assert_eq!(c.tls_listen, vec!["127.0.0.1:5349".parse().unwrap(), "[::1]:5349".parse().unwrap()]);
        assert_eq!((c.cert.as_ref(), c.key.as_ref()), (Some(&tls.cert), Some(&tls.key)));
        assert_eq!((c.first_message_timeout, c.tls_handshake_timeout, c.idle_timeout), (3, 4, 5));
        assert_eq!(ok(&[]).idle_timeout, 60);
        assert_eq!((c.max_connections, c.max_connections_per_ip), (500, 500));
        let limits =
            crate::turn::Limits { allocate_rate: 0, challenge_rate: 7, max_bps: 125_000, bps_capacity: 12_500_000 };
        assert_eq!(c.limits, limits);
        // Defaults: 100 requests a second per source, no bandwidth limit.
        let limits = crate::turn::Limits { allocate_rate: 100, challenge_rate: 100, max_bps: 0, bps_capacity: 0 };
        assert_eq!(ok(&[]).limits, limits);
        // With tcp = false, TLS may take a listen address's port.
        let c = ok(&["[server]", "tcp = false", "tls-listen = ['127.0.0.1:3478']", &cert_line, &key_line]);
        assert_eq!(c.tls_listen.len(), 1);
    }

    #[test]
    fn tcp_tls_and_limit_errors_name_key_and_line() {
        let tls = TlsFiles::new();
        let (cert_line, key_line) = (tls.cert_line(), tls.key_line());
        #[rustfmt::skip]
        let cases: Vec<(Vec<&str>, &str, Option<usize>)> = vec![
            (vec!["[server]", "tls-listen = ['127.0.0.1']"], "server.tls-listen[0]", Some(2)),
            (vec!["[server]", "tls-listen = ['127.0.0.1:5349',", "'127.0.0.1:5349']", &cert_line, &key_line],
             "server.tls-listen[1]", Some(3)),
            // TCP already serves 127.0.0.1:3478.
            (vec!["[server]", "listen = ['127.0.0.1:3478']", "tls-listen = ['127.0.0.1:3478']", &cert_line, &key_line],
             "server.tls-listen[0]", Some(3)),
            (vec!["[server]", "tls-listen = ['127.0.0.1:5349']", &key_line], "server.cert", Some(2)),
            (vec!["[server]", "tls-listen = ['127.0.0.1:5349']", &cert_line], "server.key", Some(2)),
            (vec!["[server]", "cert = '/nonexistent/turnd/cert.pem'"], "server.cert", Some(2)),
            (vec!["[server]", "key = '/'"], "server.key", Some(2)),
            (vec!["[server]", "key = ''"], "server.key", Some(2)),
            (vec!["[limits]", "first-message-timeout = 0"], "limits.first-message-timeout", Some(2)),
            (vec!["[limits]", "drain-time = 86401"], "limits.drain-time", Some(2)),
            (vec!["[limits]", "allocate-rate = -1"], "limits.allocate-rate", Some(2)),
            (vec!["[limits]", "challenge-rate = 1000001"], "limits.challenge-rate", Some(2)),
            (vec!["[limits]", "max-bps = 12500000001"], "limits.max-bps", Some(2)),
            (vec!["[limits]", "", "bps-capacity = -5"], "limits.bps-capacity", Some(3)),
            (vec!["[limits]", "", "drain-time = -1"], "limits.drain-time", Some(3)),
            (vec!["[limits]", "tls-handshake-timeout = 301"], "limits.tls-handshake-timeout", Some(2)),
            (vec!["[limits]", "idle-timeout = 0"], "limits.idle-timeout", Some(2)),
            (vec!["[limits]", "idle-timeout = 3601"], "limits.idle-timeout", Some(2)),
            (vec!["[limits]", "max-connections = 0"], "limits.max-connections", Some(2)),
            (vec!["[limits]", "max-connections = 1000001"], "limits.max-connections", Some(2)),
            (vec!["[limits]", "max-connections = 10", "max-connections-per-ip = 11"], "limits.max-connections-per-ip", Some(3)),
            (vec!["[limits]", "max-connections = 50"], "limits.max-connections", Some(2)),
        ];
        for (lines, key, line) in cases {
            let text = doc(&lines);
            let (got_key, got_line, reason) = invalid_of(&text);
            assert_eq!((got_key.as_str(), got_line), (key, line), "{text}\n=> {reason}");
        }
        let (_, _, reason) = invalid_of(&doc(&["[server]", "tls-listen = ['127.0.0.1:5349']", &cert_line]));
        assert!(reason.contains("required because server.tls-listen is set"), "{reason}");
        let (_, _, reason) = invalid_of(&doc(&["[server]", "cert = '/nonexistent/turnd/cert.pem'"]));
        assert!(reason.contains("/nonexistent/turnd/cert.pem"), "{reason}");
    }

    #[test]
    fn tcp_and_tls_flags() {
        let tls = TlsFiles::new();
        let o = Overrides {
            no_tcp: true,
            tls_listen: vec!["127.0.0.1:5349".into()],
            cert: Some(tls.cert.display().to_string()),
            key: Some(tls.key.display().to_string()),
            ..Overrides::default()
        };
        let c = load_with(None, &o).unwrap();
        assert!(!c.tcp);
        assert_eq!(c.tls_listen, vec!["127.0.0.1:5349".parse().unwrap()]);
        assert_eq!(c.cert.as_ref(), Some(&tls.cert));
        let d = Overrides::default;
        #[rustfmt::skip]
        let cases: Vec<(Overrides, &str)> = vec![
            (Overrides { tls_listen: vec!["x".into()], ..d() }, "--tls-listen"),
            (Overrides { tls_listen: vec!["127.0.0.1:5349".into()], ..d() }, "--cert"),
            (Overrides { tls_listen: vec!["127.0.0.1:5349".into()], cert: o.cert.clone(), ..d() }, "--key"),
            (Overrides { tls_listen: vec!["127.0.0.1:3478".into()], cert: o.cert.clone(), key: o.key.clone(), ..d() },
             "--tls-listen"),
            (Overrides { cert: Some("/nonexistent".into()), ..d() }, "--cert"),
        ];
        for (i, (o, flag)) in cases.into_iter().enumerate() {
            match load_with(None, &o) {
                Err(ConfigError::Invalid { origin, key, line: None, reason }) => {
                    assert_eq!((origin.as_str(), key.as_str()), (CLI_ORIGIN, flag), "case {i}: {reason}");
                }
                other => panic!("case {i}: {other:?}"),
            }
        }
    }
    #[test]
    fn cert_and_key_files_must_hold_what_tls_reads() {
        let tls = TlsFiles::new();
        let write = |name: &str, text: &str| {
            let path = tls.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let empty = write("empty.pem", "");
        let cert_text = std::fs::read_to_string(&tls.cert).unwrap();
        let key_text = std::fs::read_to_string(&tls.key).unwrap();
        let only_key = write("only-key.pem", &key_text);
        let only_cert = write("only-cert.pem", &cert_text);
        let cut = write("cut.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
        let listen = "tls-listen = ['127.0.0.1:5349']";
        let (cert_line, key_line) = (tls.cert_line(), tls.key_line());
        #[rustfmt::skip]
        let cases: Vec<([String; 2], &str, &str, &str)> = vec![
            ([format!("cert = '{empty}'"), key_line.clone()], "server.cert", &empty, "holds no PEM certificate"),
            ([format!("cert = '{only_key}'"), key_line.clone()], "server.cert", &only_key, "holds no PEM certificate"),
            ([format!("cert = '{cut}'"), key_line.clone()], "server.cert", &cut, "not a readable PEM file"),
            ([cert_line.clone(), format!("key = '{empty}'")], "server.key", &empty, "holds no PEM private key"),
            ([cert_line.clone(), format!("key = '{only_cert}'")], "server.key", &only_cert, "holds no PEM private key"),
        ];
        for ([cert, key], name, file, why) in cases {
            let text = doc(&["[server]", listen, &cert, &key]);
            let (got_name, line, reason) = invalid_of(&text);
            let want_line = if name == "server.cert" { 3 } else { 4 };
            assert_eq!((got_name.as_str(), line), (name, Some(want_line)), "{text}=> {reason}");
            assert!(reason.contains(file) && reason.contains(why), "{text}=> {reason}");
        }
        // Flags name the flag.
        let o = Overrides { cert: Some(empty.clone()), ..Overrides::default() };
        match load_with(None, &o) {
            Err(ConfigError::Invalid { origin, key, reason, .. }) => {
                assert_eq!((origin.as_str(), key.as_str()), (CLI_ORIGIN, "--cert"), "{reason}");
                assert!(reason.contains("holds no PEM certificate"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relative_cert_and_key_resolve_next_to_the_config_file() {
        let tls = TlsFiles::new();
        let conf = tls.dir.path().join("t.toml");
        let lines = ["[server]", "tls-listen = ['127.0.0.1:5349']", "cert = 'cert.pem'", "key = 'key.pem'"];
        std::fs::write(&conf, doc(&lines)).unwrap();
        let c = Config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.cert, c.key), (Some(tls.cert.clone()), Some(tls.key.clone())));
        // A missing one is looked for there, and the error says so.
        std::fs::remove_file(&tls.key).unwrap();
        match Config::load(&conf) {
            Err(ConfigError::Invalid { key, line, reason, .. }) => {
                assert_eq!((key.as_str(), line), ("server.key", Some(4)), "{reason}");
                assert!(reason.contains(&tls.key.display().to_string()), "{reason}");
                assert!(reason.contains("relative to the configuration file"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
