//! Configuration: turnserver.toml parsed once into a validated Config; CLI overrides.
//!
//! The file is deserialized into a [`RawConfig`] whose values remember where they came
//! from (a span of the file, or a command-line flag), optionally patched by
//! [`Overrides`], and finally checked as a whole by [`RawConfig::validate`], which also
//! fills in defaults. Every error names the dotted key (or the flag) and the line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use api::RawApi;
use parse_errors::parse_error;

mod api;
pub mod import;
mod nat;
mod overrides;
mod parse_errors;
mod relay;
mod secrets;
mod tcp;
#[cfg(test)]
mod tests;

pub use api::{
    api_key_entry, hash_api_key, read_jwks, ApiConfig, JwtConfig, API_KEY_PREFIX, MIN_API_KEY_LEN, TTL_RANGE,
};
pub use nat::Rfc5780;
pub use overrides::Overrides;
pub use secrets::MAX_SECRETS_FILE;

/// The TURN REST secret shipped in `turnserver.toml`; refused unless every address that serves
/// TURN (`listen`, `tls-listen`, the RFC 5780 alternate) is loopback.
pub const DEMO_SECRET: &str = "turnd-demo-secret";
/// The static user shipped in `turnserver.toml`; refused where [`DEMO_SECRET`] is.
pub const DEMO_USER: &str = "demo";
/// Upper bound of `server.receive-coalesce-us`: a millisecond, a twentieth of a 20 ms audio
/// frame interval and far below any jitter buffer.
const MAX_COALESCE_US: i64 = 1000;
/// Upper bound of `server.workers`.
pub const MAX_WORKERS: usize = 1024;
/// Upper bound of `auth.nonce-lifetime` and `allocation.max-lifetime`, in seconds.
pub const MAX_LIFETIME_SECS: u64 = 86_400;
type Range = std::ops::RangeInclusive<i64>;
type Checked<T> = Result<T, ConfigError>;
const PORTS: Range = 1..=65535;
const LIFETIMES: Range = 1..=MAX_LIFETIME_SECS as i64;
const QUOTAS: Range = 0..=u32::MAX as i64;
/// The `origin` used in errors about the embedded default file.
pub const EMBEDDED_ORIGIN: &str = "<embedded turnserver.toml>";
/// The `origin` used in errors about command-line flags.
pub const CLI_ORIGIN: &str = "command line";
/// The environment variable systemd sets to the directory of a service's credentials
/// (`LoadCredential=`); relative file names in the configuration name credentials while it is set.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A fully validated configuration. Every field is resolved; nothing needs checking again.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// UDP listening addresses (non-empty, no duplicates).
    pub listen: Vec<SocketAddr>,
    /// IP that relay sockets bind to (the first relay address; its family is the one
    /// `relay-ip` names first).
    pub relay_ip: IpAddr,
    /// Public IP advertised in XOR-RELAYED-ADDRESS instead of `relay_ip` (NAT'd hosts).
    pub external_ip: Option<IpAddr>,
    /// The relay address of the other family, when `relay-ip` (or `external-ip`) gives one.
    pub second_relay: Option<crate::turn::RelayAddr>,
    /// The family of a client that sends no REQUESTED-ADDRESS-FAMILY.
    pub default_family: crate::turn::DefaultFamily,
    /// Lowest relay port (inclusive).
    pub min_port: u16,
    /// Highest relay port (inclusive), `>= min_port`.
    pub max_port: u16,
    /// Number of worker threads; never 0 (0 in the file means one per core).
    pub workers: usize,
    /// Receive coalescing: a worker whose listener gets two or more datagrams per this window,
    /// sustained, sleeps after draining (at most this long), and reads what came meanwhile in one
    /// go; zero is off.
    pub receive_coalesce: std::time::Duration,
    /// `tracing_subscriber::EnvFilter` directives, already checked to parse.
    pub log_level: String,
    /// REALM for long-term credentials (non-empty, under 128 characters).
    pub realm: String,
    /// TURN REST shared secrets, `auth.secrets` then those of `secrets_file`; several allow
    /// rotation. The credentials API signs with the first.
    pub secrets: Vec<String>,
    /// The file more secrets were read from (`auth.secrets-file`), resolved.
    pub secrets_file: Option<PathBuf>,
    /// Separator between expiry and user in TURN REST usernames.
    pub rest_separator: char,
    /// Nonce lifetime in seconds (1..=86400).
    pub nonce_lifetime: u64,
    /// Offer RFC 8489 security in challenges: the nonce cookie, PASSWORD-ALGORITHMS (SHA-256
    /// keys) and USERHASH.
    pub rfc8489_security: bool,
    /// Static long-term users.
    pub users: Vec<User>,
    /// Allocation lifetime when the client asks for none, in seconds (1..=max_lifetime).
    pub default_lifetime: u64,
    /// Longest allocation lifetime granted, in seconds (1..=86400).
    pub max_lifetime: u64,
    /// Maximum allocations per username; 0 = unlimited.
    pub user_quota: u32,
    /// Maximum allocations in total; 0 = unlimited.
    pub total_quota: u32,
    /// Peer ranges always allowed (they win over every deny rule).
    pub allowed_peers: Vec<IpNet>,
    /// Peer ranges denied on top of the built-in special-purpose ranges.
    pub denied_peers: Vec<IpNet>,
    /// Serve TURN over TCP on each `listen` address too.
    pub tcp: bool,
    /// Addresses for TURN over TLS (no duplicates, none a TCP listen address).
    pub tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for TLS; set (and a file) whenever `tls_listen` is non-empty.
    pub cert: Option<PathBuf>,
    /// PEM private key for TLS; set (and a file) whenever `tls_listen` is non-empty.
    pub key: Option<PathBuf>,
    /// Seconds a new TCP/TLS connection has to send its first valid STUN message (1..=300).
    pub first_message_timeout: u64,
    /// Seconds a TLS handshake may take (1..=300).
    pub tls_handshake_timeout: u64,
    /// Seconds a TCP/TLS connection without an allocation may go without sending a complete
    /// frame (1..=3600).
    pub idle_timeout: u64,
    /// Most TCP/TLS client connections open at once (1..=1000000).
    pub max_connections: u32,
    /// Most TCP/TLS client connections from one IP address (1..=max_connections).
    pub max_connections_per_ip: u32,
    /// Seconds a stopping turnd keeps relaying for existing allocations (0 = stop at once).
    pub drain_time: u64,
    /// Request rates per source and bandwidth limits (`[limits]`); 0 = unlimited.
    pub limits: crate::turn::Limits,
    /// Servers new allocations are redirected to (300) while draining, or always with
    /// `redirect_all`.
    pub alternate_servers: Vec<SocketAddr>,
    pub redirect_all: bool,
    /// RFC 5780 NAT behaviour discovery (`server.rfc5780`), when on.
    pub rfc5780: Option<Rfc5780>,
    /// Hand out MOBILITY-TICKETs so an allocation can move to a new client address (RFC 8016).
    pub mobility: bool,
    /// The credentials HTTP API, when enabled.
    pub api: Option<ApiConfig>,
}

/// A static long-term-credential user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The username as sent in USERNAME.
    pub name: String,
    /// The password, or the precomputed long-term key.
    pub secret: UserSecret,
}

/// How a static user's long-term key is given. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum UserSecret {
    /// Plain password; the key is MD5(name:realm:password).
    Password(String),
    /// Precomputed key MD5(name:realm:password), as coturn's `turnadmin -k` prints it.
    Key([u8; 16]),
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSecret::Password(_) => f.write_str("Password(<redacted>)"),
            UserSecret::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

/// Secrets are shown as their count only.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("relay_ip", &self.relay_ip)
            .field("external_ip", &self.external_ip)
            .field("second_relay", &self.second_relay)
            .field("default_family", &self.default_family)
            .field("min_port", &self.min_port)
            .field("max_port", &self.max_port)
            .field("workers", &self.workers)
            .field("receive_coalesce", &self.receive_coalesce)
            .field("log_level", &self.log_level)
            .field("realm", &self.realm)
            .field("secrets", &Redacted(self.secrets.len()))
            .field("secrets_file", &self.secrets_file)
            .field("rest_separator", &self.rest_separator)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("rfc8489_security", &self.rfc8489_security)
            .field("users", &self.users)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("user_quota", &self.user_quota)
            .field("total_quota", &self.total_quota)
            .field("allowed_peers", &self.allowed_peers)
            .field("denied_peers", &self.denied_peers)
            .field("tcp", &self.tcp)
            .field("tls_listen", &self.tls_listen)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("first_message_timeout", &self.first_message_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("drain_time", &self.drain_time)
            .field("limits", &self.limits)
            .field("alternate_servers", &self.alternate_servers)
            .field("redirect_all", &self.redirect_all)
            .field("rfc5780", &self.rfc5780)
            .field("mobility", &self.mobility)
            .field("api", &self.api)
            .finish()
    }
}

/// Debug helper: shows how many secrets there are, never what they are.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted>", self.0)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The path that was read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{origin}:{line}: {message}")]
    Parse {
        /// The file (or `<embedded turnserver.toml>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What went wrong, naming the key where it can be told.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{origin}{}: {key}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file, or `command line` when a flag is at fault.
        origin: String,
        /// Dotted key (`server.min-port`, `auth.users[1].key`) or flag (`--listen`).
        key: String,
        /// 1-based line of the key, when it is in the file.
        line: Option<usize>,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl Config {
    /// The shipped `turnserver.toml`, embedded in the binary.
    pub const EMBEDDED: &'static str = include_str!("../../turnserver.toml");

    /// Parse and validate TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        RawConfig::parse(text, origin)?.validate()
    }

    /// The relay addresses by family.
    pub fn relays(&self) -> crate::turn::RelayAddrs {
        let first = crate::turn::RelayAddrs::single(self.relay_ip, self.external_ip);
        self.second_relay.map_or(first, |second| first.with(second))
    }

    /// Read, parse and validate a file; read errors name the path.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load_with(Some(path), &Overrides::default())
    }

    /// The shipped `turnserver.toml` (see [`Config::EMBEDDED`]), parsed and validated.
    pub fn embedded_default() -> Config {
        Config::parse(Config::EMBEDDED, EMBEDDED_ORIGIN)
            .expect("the embedded turnserver.toml is valid (checked by the tests)")
    }
}

/// Load `path` (or the embedded default when `None`), apply `overrides`, then validate
/// the result as a whole. Relative file names in the file name systemd credentials while
/// `$CREDENTIALS_DIRECTORY` is set, else files next to it.
pub fn load_with(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut raw = match path {
        Some(path) => {
            let origin = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            let text = String::from_utf8(bytes).map_err(|e| {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let (line, column) = parse_errors::line_col(&String::from_utf8_lossy(valid), valid.len());
                let message = "not UTF-8 text (TOML files are UTF-8)".to_owned();
                ConfigError::Parse { origin: origin.clone(), line, column, message }
            })?;
            let mut raw = RawConfig::parse(&text, &origin)?;
            raw.config_dir = Some(path.parent().unwrap_or(Path::new("")).to_path_buf());
            raw
        }
        None => RawConfig::parse(Config::EMBEDDED, EMBEDDED_ORIGIN)?,
    };
    raw.credentials_dir = std::env::var_os(CREDENTIALS_DIRECTORY).filter(|d| !d.is_empty()).map(PathBuf::from);
    overrides.apply(&mut raw)?;
    raw.validate()
}

// ---------------------------------------------------------------------------------------
// The unvalidated configuration, as serde reads it: every value remembers where it came
// from. Missing values are `None`; validation supplies the defaults.

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Byte offset of the value in the file.
    Offset(usize),
    /// A command-line flag.
    Flag(&'static str),
    /// The built-in default.
    Default,
}

/// A value and where it came from.
#[derive(Clone)]
struct Item<T> {
    value: T,
    at: At,
}

impl<T> Item<T> {
    fn new(value: T, at: At) -> Self {
        Item { value, at }
    }
    fn flag(value: T, flag: &'static str) -> Self {
        Item::new(value, At::Flag(flag))
    }
}

/// Reads a value with its place, the way [`toml::Spanned`] does (toml hands over the span as
/// a map of three private fields), and also a table toml has no span for: an implicit one, as
/// `api` in `[api.jwt]` without `[api]`, or `jwt` in `jwt.secret = …`, which `Spanned` refuses
/// with an error that names no key. Such a table gets [`At::Default`] (errors about the table
/// itself then have no line; those about its keys do).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Item<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_spanned::__unstable::{END_FIELD, NAME, START_FIELD, VALUE_FIELD};
        struct ItemVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ItemVisitor<T> {
            type Value = Item<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item<T>, A::Error> {
                let first: Option<String> = map.next_key()?;
                if first.as_deref() != Some(START_FIELD) {
                    // A table without a span: `first` is its first key.
                    let rest = serde::de::value::MapAccessDeserializer::new(Resumed { first, map });
                    return Ok(Item::new(T::deserialize(rest)?, At::Default));
                }
                let start: usize = map.next_value()?;
                let mut value = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        END_FIELD => map.next_value::<serde::de::IgnoredAny>().map(drop)?,
                        VALUE_FIELD => value = Some(map.next_value()?),
                        other => return Err(serde::de::Error::unknown_field(other, &[END_FIELD, VALUE_FIELD])),
                    }
                }
                let value = value.ok_or_else(|| serde::de::Error::missing_field(VALUE_FIELD))?;
                Ok(Item::new(value, At::Offset(start)))
            }
        }
        const FIELDS: [&str; 3] = [START_FIELD, END_FIELD, VALUE_FIELD];
        d.deserialize_struct(NAME, &FIELDS, ItemVisitor(std::marker::PhantomData))
    }
}

/// A map whose first key was read already: that key, then the rest.
struct Resumed<A> {
    first: Option<String>,
    map: A,
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for Resumed<A> {
    type Error = A::Error;
    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(serde::de::IntoDeserializer::into_deserializer(key)).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }
    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

type Opt<T> = Option<Item<T>>;
type List = Opt<Vec<Item<String>>>;

/// A parsed but not yet validated configuration; each value remembers its line or flag.
/// Obtain one with [`RawConfig::parse`], patch it with [`Overrides::apply`], then
/// call [`RawConfig::validate`].
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    #[serde(skip)]
    origin: String,
    /// Byte offsets of the file's newlines, to turn offsets into lines.
    #[serde(skip)]
    newlines: Vec<usize>,
    /// The directory of the file, against which its relative file names resolve.
    #[serde(skip)]
    config_dir: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY`: relative file names resolve against it when set.
    #[serde(skip)]
    credentials_dir: Option<PathBuf>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    allocation: RawAllocation,
    #[serde(default)]
    peers: RawPeers,
    #[serde(default)]
    limits: tcp::RawLimits,
    api: Opt<RawApi>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a [server] table")]
struct RawServer {
    listen: List,
    relay_ip: Opt<relay::Ips>,
    external_ip: Opt<relay::Ips>,
    default_family: Opt<String>,
    min_port: Opt<i64>,
    max_port: Opt<i64>,
    workers: Opt<i64>,
    receive_coalesce_us: Opt<i64>,
    log_level: Opt<String>,
    tcp: Opt<bool>,
    tls_listen: List,
    cert: Opt<String>,
    key: Opt<String>,
    alternate_servers: List,
    redirect_all: Opt<bool>,
    rfc5780: Opt<bool>,
    rfc5780_alternate: Opt<String>,
    mobility: Opt<bool>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "an [auth] table")]
struct RawAuth {
    realm: Opt<String>,
    secrets: List,
    secrets_file: Opt<String>,
    /// The same as `secrets-file`, under the name of NixOS's coturn option.
    static_auth_secret_file: Opt<String>,
    rest_separator: Opt<String>,
    nonce_lifetime: Opt<i64>,
    rfc8489_security: Opt<bool>,
    #[serde(default)]
    users: Vec<Item<RawUser>>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[auth.users]] table")]
struct RawUser {
    name: Opt<String>,
    password: Opt<String>,
    key: Opt<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "an [allocation] table")]
struct RawAllocation {
    default_lifetime: Opt<i64>,
    max_lifetime: Opt<i64>,
    user_quota: Opt<i64>,
    total_quota: Opt<i64>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a [peers] table")]
struct RawPeers {
    allowed: List,
    denied: List,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawConfig").field("origin", &self.origin).finish_non_exhaustive()
    }
}

fn invalid(origin: &str, key: &str, line: Option<usize>, reason: impl Into<String>) -> ConfigError {
    let (origin, key, reason) = (origin.to_owned(), key.to_owned(), reason.into());
    ConfigError::Invalid { origin, key, line, reason }
}

// ---------------------------------------------------------------------------------------
// Validation (and `RawConfig::parse`, which records what validation needs).

/// Where `opt` came from; `Default` when it is missing.
fn at<T>(opt: &Opt<T>) -> At {
    opt.as_ref().map_or(At::Default, |item| item.at)
}

/// The value of `opt`, or `default` marked as such.
fn or<T: Clone>(opt: &Opt<T>, default: T) -> Item<T> {
    opt.clone().unwrap_or(Item::new(default, At::Default))
}

impl RawConfig {
    /// Parse TOML text without validating values; `origin` names the file in errors.
    /// Syntax errors, unknown keys and wrongly typed values are reported here.
    pub fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| parse_error(text, origin, &e))?;
        raw.origin = origin.to_owned();
        raw.newlines = text.match_indices('\n').map(|(i, _)| i).collect();
        Ok(raw)
    }

    /// 1-based line of a value from the file.
    fn line(&self, at: At) -> Option<usize> {
        match at {
            At::Offset(offset) => Some(self.newlines.partition_point(|&n| n < offset) + 1),
            _ => None,
        }
    }

    /// The error for a value at `at`: file values name `key` and the line, flag values the flag.
    fn err(&self, key: &str, at: At, reason: impl Into<String>) -> ConfigError {
        match at {
            At::Flag(flag) => invalid(CLI_ORIGIN, flag, None, reason),
            at => invalid(&self.origin, key, self.line(at), reason),
        }
    }

    /// An integer key with its default, checked against `range`.
    fn int(&self, opt: &Opt<i64>, key: &str, default: i64, range: Range) -> Checked<Item<i64>> {
        let item = or(opt, default);
        if !range.contains(&item.value) {
            let reason = format!("{} is out of range {range:?}", item.value);
            return Err(self.err(key, item.at, reason));
        }
        Ok(item)
    }

    /// Check every value and every rule that ties values together; fill in defaults and
    /// resolve `relay-ip` and `workers = 0`. The first problem found is returned.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let (server, auth, alloc) = (&self.server, &self.auth, &self.allocation);
        // [server]
        let listen = self.listen()?;
        let rfc5780 = self.rfc5780(&listen)?;
        let streams = self.streams(&listen)?;
        let outside = outside_address(&listen, &streams.tls_listen, rfc5780.as_ref());
        let outside = outside.as_deref();
        let relays = self.relays(&listen, outside)?;
        let default_family = self.default_family(&relays.first, relays.second.as_ref())?;
        let (relay_ip, external_ip, second_relay) = (relays.first.ip, relays.first.external, relays.second);
        let min_port = self.int(&server.min_port, "server.min-port", 49152, PORTS)?;
        let max_port = self.int(&server.max_port, "server.max-port", 65535, PORTS)?;
        if min_port.value > max_port.value {
            let (min, max) = (min_port.value, max_port.value);
            let first = ("server.min-port", min_port.at);
            let (key, at) = blame(first, ("server.max-port", max_port.at));
            let reason = format!("min-port {min} is greater than max-port {max}");
            return Err(self.err(key, at, reason));
        }
        let (alternate_servers, redirect_all) = self.alternates()?;
        let workers = self.int(&server.workers, "server.workers", 0, 0..=MAX_WORKERS as i64)?;
        let workers = match workers.value as usize {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let coalesce = self.int(&server.receive_coalesce_us, "server.receive-coalesce-us", 200, 0..=MAX_COALESCE_US)?;
        let log_level = or(&server.log_level, "info".to_owned());
        let level = log_level.value.trim();
        let problem = if level.is_empty() {
            Some("it is empty; use \"off\" for no logs".to_owned())
        } else {
            log_filter(level).err()
        };
        if let Some(problem) = problem {
            let reason = format!("`{level}` is not a valid filter ({problem}); e.g. \"turnd=debug,warn\"");
            return Err(self.err("server.log-level", log_level.at, reason));
        }
        // [auth]
        let realm = or(&auth.realm, "turnd.local".to_owned());
        let chars = realm.value.chars();
        if !(1..128).contains(&chars.clone().count()) || chars.clone().any(char::is_control) {
            let reason = "must be 1 to 127 characters, with no control characters";
            return Err(self.err("auth.realm", realm.at, reason));
        }
        let separator = or(&auth.rest_separator, ":".to_owned());
        let rest_separator = match separator.value.chars().collect::<Vec<_>>()[..] {
            [c] if !c.is_ascii_digit() && !c.is_whitespace() && !c.is_control() => c,
            _ => {
                let reason = "must be exactly one character, not a digit or whitespace";
                return Err(self.err("auth.rest-separator", separator.at, reason));
            }
        };
        let nonce_lifetime = self.int(&auth.nonce_lifetime, "auth.nonce-lifetime", 600, LIFETIMES)?;
        let rfc8489_security = or(&auth.rfc8489_security, true).value;
        let (secrets, secrets_file) = self.secrets(outside)?;
        let users = self.users(outside)?;
        if secrets.is_empty() && users.is_empty() {
            let at = at(&auth.secrets);
            let reason = "no credentials: set auth.secrets or auth.secrets-file, or add an [[auth.users]] entry";
            return Err(self.err("auth.secrets", at, reason));
        }
        // [allocation]
        let max = &alloc.max_lifetime;
        let max_lifetime = self.int(max, "allocation.max-lifetime", 3600, LIFETIMES)?;
        let default_lifetime = or(&alloc.default_lifetime, 600);
        let (default, max) = (default_lifetime.value, max_lifetime.value);
        if !(1..=max).contains(&default) {
            let first = ("allocation.default-lifetime", default_lifetime.at);
            let second = ("allocation.max-lifetime", max_lifetime.at);
            let (key, at) = if default < 1 { first } else { blame(first, second) };
            let reason = format!("default-lifetime {default} must be in 1..=max-lifetime ({max})");
            return Err(self.err(key, at, reason));
        }
        let user_quota = self.int(&alloc.user_quota, "allocation.user-quota", 0, QUOTAS)?;
        let total_quota = self.int(&alloc.total_quota, "allocation.total-quota", 0, QUOTAS)?;
        // [peers]
        let allowed_peers = self.nets("peers.allowed", &self.peers.allowed)?;
        let denied_peers = self.nets("peers.denied", &self.peers.denied)?;
        // [api]
        let context = api::Context { listen: &listen, streams: &streams, external_ip, relay_ip, secrets: &secrets };
        let api = self.api(&context)?;
        let tcp::Streams { tcp, tls_listen, cert, key, .. } = streams;
        Ok(Config {
            listen,
            relay_ip,
            external_ip,
            second_relay,
            default_family,
            min_port: min_port.value as u16,
            max_port: max_port.value as u16,
            workers,
            receive_coalesce: std::time::Duration::from_micros(coalesce.value as u64),
            log_level: level.to_owned(),
            realm: realm.value,
            secrets,
            secrets_file,
            rest_separator,
            nonce_lifetime: nonce_lifetime.value as u64,
            rfc8489_security,
            users,
            default_lifetime: default_lifetime.value as u64,
            max_lifetime: max_lifetime.value as u64,
            user_quota: user_quota.value as u32,
            total_quota: total_quota.value as u32,
            allowed_peers,
            denied_peers,
            tcp,
            tls_listen,
            cert,
            key,
            first_message_timeout: streams.first_message_timeout,
            tls_handshake_timeout: streams.tls_handshake_timeout,
            idle_timeout: streams.idle_timeout,
            max_connections: streams.max_connections,
            max_connections_per_ip: streams.max_connections_per_ip,
            drain_time: streams.drain_time,
            limits: streams.limits,
            alternate_servers,
            redirect_all,
            rfc5780,
            mobility: or(&server.mobility, false).value,
            api,
        })
    }

    /// `server.alternate-servers` (real addresses: no port 0, no unspecified IP) and
    /// `server.redirect-all`, which needs at least one of them.
    fn alternates(&self) -> Checked<(Vec<SocketAddr>, bool)> {
        let items = or(&self.server.alternate_servers, Vec::new());
        let list = self.addresses("server.alternate-servers", &items.value)?;
        for (i, addr) in list.iter().enumerate() {
            if addr.port() == 0 || addr.ip().is_unspecified() {
                let reason = format!("{addr} is not an address a client can reach");
                return Err(self.err(&format!("server.alternate-servers[{i}]"), items.value[i].at, reason));
            }
        }
        let redirect_all = or(&self.server.redirect_all, false);
        if redirect_all.value && list.is_empty() {
            return Err(self.err(
                "server.redirect-all",
                redirect_all.at,
                "needs server.alternate-servers to redirect to",
            ));
        }
        Ok((list, redirect_all.value))
    }

    fn listen(&self) -> Checked<Vec<SocketAddr>> {
        let default = vec![Item::new("127.0.0.1:3478".to_owned(), At::Default)];
        let list = or(&self.server.listen, default);
        if list.value.is_empty() {
            return Err(self.err("server.listen", list.at, "must list at least one address"));
        }
        self.addresses("server.listen", &list.value)
    }

    /// Parse a list of `IP:PORT` addresses; the same address (other than port 0) twice is an error.
    fn addresses(&self, key: &str, list: &[Item<String>]) -> Checked<Vec<SocketAddr>> {
        let mut out: Vec<SocketAddr> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let key = format!("{key}[{i}]");
            let addr: SocketAddr = item.value.trim().parse().map_err(|_| {
                let reason = format!("`{}` is not an IP:PORT address (IPv6 as [::1]:3478)", item.value);
                self.err(&key, item.at, reason)
            })?;
            if addr.port() != 0 && out.contains(&addr) {
                return Err(self.err(&key, item.at, format!("{addr} is listed twice")));
            }
            out.push(addr);
        }
        Ok(out)
    }

    /// Parse `part` of `item` as an IP address.
    fn ip(&self, key: &str, item: &Item<String>, part: &str) -> Checked<IpAddr> {
        part.trim().parse().map_err(|_| {
            let reason = format!("`{}`: `{part}` is not an IP address", item.value);
            self.err(key, item.at, reason)
        })
    }

    fn users(&self, outside: Option<&str>) -> Checked<Vec<User>> {
        let mut out: Vec<User> = Vec::with_capacity(self.auth.users.len());
        for (i, Item { value: user, at }) in self.auth.users.iter().enumerate() {
            let key = |field: &str| format!("auth.users[{i}]{field}");
            let name = match &user.name {
                Some(name) if !name.value.is_empty() => name,
                Some(name) => return Err(self.err(&key(".name"), name.at, "must not be empty")),
                None => return Err(self.err(&key(".name"), *at, "missing")),
            };
            if out.iter().any(|u| u.name == name.value) {
                let reason = format!("user `{}` is defined twice", name.value);
                return Err(self.err(&key(".name"), name.at, reason));
            }
            if let (true, Some(outside)) = (name.value == DEMO_USER, outside) {
                let reason = format!(
                    "the demo user `{DEMO_USER}` is only accepted when every address that serves TURN \
                     is loopback, and {outside} is not; replace it with your own user and password"
                );
                return Err(self.err(&key(""), *at, reason));
            }
            let secret = match (&user.password, &user.key) {
                (Some(password), None) if password.value.is_empty() => {
                    return Err(self.err(&key(".password"), password.at, "must not be empty"));
                }
                (Some(password), None) => UserSecret::Password(password.value.clone()),
                (None, Some(k)) => UserSecret::Key(parse_key(&k.value).ok_or_else(|| {
                    let reason = "must be 32 hex digits, with or without 0x (as turnadmin -k prints)";
                    self.err(&key(".key"), k.at, reason)
                })?),
                (Some(_), Some(k)) => {
                    let reason = "set either `password` or `key`, not both";
                    return Err(self.err(&key(".key"), k.at, reason));
                }
                (None, None) => return Err(self.err(&key(""), *at, "needs `password` or `key`")),
            };
            out.push(User { name: name.value.clone(), secret });
        }
        Ok(out)
    }

    fn nets(&self, key: &str, list: &List) -> Checked<Vec<IpNet>> {
        let list = or(list, Vec::new());
        let mut out = Vec::with_capacity(list.value.len());
        for (i, item) in list.value.iter().enumerate() {
            let text = item.value.trim();
            let net = match (text.parse::<IpNet>(), text.parse::<IpAddr>()) {
                (Ok(net), _) => net.trunc(),
                (_, Ok(ip)) => IpNet::from(ip),
                _ => {
                    let reason = format!("`{}` is not a CIDR (e.g. 10.0.0.0/8) or IP address", item.value);
                    return Err(self.err(&format!("{key}[{i}]"), item.at, reason));
                }
            };
            out.push(net);
        }
        Ok(out)
    }
}

/// The log filter of `directives` (tracing-subscriber's EnvFilter syntax: targets, levels and
/// span names), as the daemon builds it from `server.log-level` or RUST_LOG, or why they are
/// refused. Three inputs found by fuzz/ config_parse are kept from tracing-subscriber 0.3.23:
/// non-ASCII text, on which its parser panics, and field filters (`span{field=value}`), whose
/// values it compiles as regular expressions (seconds for a 200-byte directive) or, without
/// regex, compares inconsistently (a debug assertion fails on two equal ones).
pub fn log_filter(directives: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    if !directives.is_ascii() {
        return Err("it has a character that is not ASCII".to_owned());
    }
    if directives.contains(['{', '}']) {
        return Err("field filters (`{…}`) are not supported; filter by target, span and level".to_owned());
    }
    tracing_subscriber::EnvFilter::builder().with_regex(false).parse(directives).map_err(|e| e.to_string())
}

/// The first address that serves TURN and is not loopback, described for errors (`server.tls-listen
/// address 0.0.0.0:5349`): the IO shell serves TURN on every `listen` address (UDP, and TCP),
/// every `tls-listen` address and, with RFC 5780, on the alternate IP too. `None` when all are
/// loopback, the one case where the demo credentials and a loopback relay without
/// `external-ip` are accepted.
fn outside_address(listen: &[SocketAddr], tls_listen: &[SocketAddr], rfc5780: Option<&Rfc5780>) -> Option<String> {
    let listen = listen.iter().map(|a| ("listen address", a.ip(), a.to_string()));
    let tls = tls_listen.iter().map(|a| ("server.tls-listen address", a.ip(), a.to_string()));
    let alternate = rfc5780.map(|r| ("RFC 5780 alternate IP", r.alternate_ip, r.alternate_ip.to_string()));
    listen
        .chain(tls)
        .chain(alternate)
        .find(|(_, ip, _)| !ip.is_loopback())
        .map(|(what, _, shown)| format!("{what} {shown}"))
}

/// Which of two values that contradict each other to name: a flag (what was just
/// typed) before a file value, and a value that was given before a default.
fn blame<'k>(first: (&'k str, At), second: (&'k str, At)) -> (&'k str, At) {
    match (first.1, second.1) {
        (At::Flag(_), _) => first,
        (_, At::Flag(_)) | (At::Default, _) => second,
        _ => first,
    }
}

/// Parse a long-term key: 32 hex digits, optionally prefixed by `0x`.
fn parse_key(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}
