//! `turnd import-coturn`: a coturn `turnserver.conf` converted into `turnserver.toml`, and a
//! report of every option that was not converted and why. Pure: text in, TOML text and report
//! out; the caller reads and writes the files.
//!
//! The file is read as coturn reads it (`read_config_file` in coturn's `mainrelay.c`): lines
//! whose first non-blank character is `#` are comments; a line is `name`, `name=value` or
//! `name value` (any run of spaces, tabs and `=` separates them); a value in double quotes loses
//! them; there are no comments after a value and no leading `--`. Options given twice keep the
//! last value, except the repeatable ones (`listening-ip`, `relay-ip`, `external-ip`, `user`,
//! `static-auth-secret`, `allowed-peer-ip`, `denied-peer-ip`, `alternate-server`, `aux-server`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

mod options;
mod server;
#[cfg(test)]
mod tests;
mod write;

use super::{DEMO_SECRET, DEMO_USER};
use options::{Arg, Target, Treatment};
use write::{array, string, TomlOut};

/// coturn's defaults that the conversion needs.
const COTURN_PORT: u16 = 3478;
const COTURN_TLS_PORT: u16 = 5349;
const COTURN_STALE_NONCE: u64 = 600;
const COTURN_MAX_LIFETIME: u64 = 3600;
/// turnd's `allocation.default-lifetime` (coturn's too), which must not exceed max-lifetime.
const DEFAULT_LIFETIME: u64 = 600;
const MIN_PORT: u64 = 49152;
const MAX_PORT: u64 = 65535;

/// A converted file: the TOML text and what the conversion left out.
#[derive(Debug)]
pub struct Imported {
    /// The `turnserver.toml` text, each key commented with the coturn lines it came from.
    pub toml: String,
    /// What was converted, ignored, unsupported or unknown.
    pub report: Report,
}

/// What became of each option of the coturn file, each list in line order.
#[derive(Debug, Default)]
pub struct Report {
    /// Options written as turnd keys.
    pub converted: Vec<Entry>,
    /// Options left out because turnd already behaves so, or they mean nothing to turnd.
    pub ignored: Vec<Entry>,
    /// Options left out because turnd has no equivalent.
    pub unsupported: Vec<Entry>,
    /// Names that are no coturn option (coturn skips them too).
    pub unknown: Vec<Entry>,
    /// What differs without an option saying so (defaults, values turnd needs).
    pub notes: Vec<String>,
}

/// One option line of the coturn file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The option's name as written.
    pub option: String,
    /// Why it was left out (empty for converted options).
    pub reason: String,
}

/// A line the conversion cannot make sense of.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {option}: {message}")]
pub struct ImportError {
    /// 1-based line number.
    pub line: usize,
    /// The option on that line.
    pub option: String,
    /// What is wrong with its value.
    pub message: String,
}

/// Convert the text of a coturn `turnserver.conf`. `generated_secret` becomes the TURN REST
/// secret when the file configures no credentials (coturn then relays for anyone; turnd
/// always authenticates); the caller makes it random.
pub fn import_coturn(text: &str, generated_secret: &str) -> Result<Imported, ImportError> {
    let mut c = Conversion::default();
    for line in lines(text) {
        if line.value.ends_with(';') {
            c.report.notes.push(format!(
                "line {}: the value of {} ends with a semicolon, which coturn and turnd take as part of it",
                line.number, line.name
            ));
        }
        let Some((arg, treatment)) = options::lookup(line.name) else {
            c.report.unknown.push(line.entry(options::unknown_reason(line.name)));
            continue;
        };
        if arg == Arg::Flag && !boolean(&line)? {
            c.report.ignored.push(line.entry("set to off, coturn's default"));
            continue;
        }
        match treatment {
            Treatment::Ignore(reason) => c.report.ignored.push(line.entry(reason)),
            Treatment::Unsupported(reason) => c.report.unsupported.push(line.entry(reason)),
            Treatment::Map(target) => {
                if arg == Arg::Value && line.value.is_empty() {
                    return Err(line.error("needs a value"));
                }
                c.take(target, &line)?;
            }
        }
    }
    c.finish(generated_secret)
}

impl fmt::Display for Report {
    /// The report printed on stderr: counts, then each group with line numbers and reasons.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} converted, {} ignored, {} unsupported, {} unknown",
            self.converted.len(),
            self.ignored.len(),
            self.unsupported.len(),
            self.unknown.len()
        )?;
        let groups = [
            ("Ignored (turnd already behaves so, or it means nothing to turnd):", &self.ignored),
            ("Unsupported (not converted: turnd has no equivalent):", &self.unsupported),
            ("Unknown (not coturn options; skipped):", &self.unknown),
        ];
        for (title, entries) in groups.into_iter().filter(|(_, e)| !e.is_empty()) {
            writeln!(f, "{title}")?;
            for e in entries {
                writeln!(f, "  line {}: {}: {}", e.line, e.option, e.reason)?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "Notes:")?;
            for note in &self.notes {
                writeln!(f, "  - {note}")?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Reading lines as coturn does.

/// An option line: its number, name and value (empty when bare).
struct Line<'a> {
    number: usize,
    name: &'a str,
    value: &'a str,
}

impl Line<'_> {
    fn entry(&self, reason: &str) -> Entry {
        Entry { line: self.number, option: self.name.to_owned(), reason: reason.to_owned() }
    }

    fn error(&self, message: impl Into<String>) -> ImportError {
        ImportError { line: self.number, option: self.name.to_owned(), message: message.into() }
    }

    /// Where a key came from, for the comment above it; `secret` hides the value.
    fn src(&self, secret: bool) -> Src {
        let shown = match (self.value.is_empty(), secret) {
            (true, _) => self.name.to_owned(),
            (false, true) => format!("{}=…", self.name),
            (false, false) => format!("{}={}", self.name, self.value),
        };
        Src { line: self.number, name: self.name.to_owned(), shown }
    }

    /// The value as a whole number in `min..=max`.
    fn int(&self, min: u64, max: u64) -> Result<u64, ImportError> {
        match self.value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.error(format!("`{}` is not a whole number from {min} to {max}", self.value))),
        }
    }

    fn port(&self) -> Result<u16, ImportError> {
        self.int(1, 65535).map(|p| p as u16)
    }

    /// An IP address, IPv6 with or without brackets.
    fn ip(&self, text: &str) -> Result<IpAddr, ImportError> {
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        bare.parse().map_err(|_| self.error(format!("`{text}` is not an IP address")))
    }

    /// `IP:PORT` (IPv6 as `[IP]:PORT`); a bare IP takes `default_port`.
    fn address(&self, default_port: Option<u16>) -> Result<SocketAddr, ImportError> {
        if let Ok(addr) = self.value.parse::<SocketAddr>() {
            return Ok(addr);
        }
        match (default_port, self.ip(self.value)) {
            (Some(port), Ok(ip)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(self.error(format!("`{}` is not an IP:PORT address (IPv6 as [::1]:3478)", self.value))),
        }
    }
}

/// The option lines of `text`, split as coturn's `parse_arg_string` does.
fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let separator = |c: char| c == ' ' || c == '=' || c == '\t';
    text.lines().enumerate().filter_map(move |(i, raw)| {
        let s = raw.trim_start_matches([' ', '\t']);
        if s.starts_with('#') {
            return None;
        }
        let s = s.trim_end();
        if s.is_empty() {
            return None;
        }
        let (name, value) = match s.find(separator) {
            Some(at) => (&s[..at], s[at..].trim_start_matches(separator)),
            None => (s, ""),
        };
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.trim_end().strip_suffix('"').unwrap_or(quoted.trim_end()),
            None => value,
        };
        Some(Line { number: i + 1, name, value })
    })
}

/// A boolean as coturn's `get_bool_value` reads it (bare is on); anything else is an error,
/// as coturn exits on it.
fn boolean(line: &Line<'_>) -> Result<bool, ImportError> {
    match (line.value.chars().next(), line.value) {
        (None, _) => Ok(true),
        (Some('0' | 'n' | 'N' | 'f' | 'F'), _) => Ok(false),
        (Some('y' | 'Y' | 't' | 'T' | '1'..='9'), _) => Ok(true),
        (_, "off" | "OFF" | "Off") => Ok(false),
        (_, "on" | "ON" | "On") => Ok(true),
        _ => Err(line.error(format!("`{}` is not a boolean (on/off, yes/no, 1/0, true/false)", line.value))),
    }
}

/// coturn's peer range syntax, `IP` or `FIRST-LAST` (inclusive), as the fewest CIDRs that
/// cover exactly that range. `None` when it is neither (coturn takes no CIDR here).
pub fn peer_range(text: &str) -> Option<Vec<IpNet>> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    match (first.trim().parse().ok()?, last.trim().parse().ok()?) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => Some(Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect()),
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => Some(Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// What the options say, gathered before anything is written.

/// The coturn line a value came from.
#[derive(Clone, Debug)]
struct Src {
    line: usize,
    name: String,
    /// `name=value`, the value hidden for secrets.
    shown: String,
}

impl Src {
    fn entry(&self, reason: impl Into<String>) -> Entry {
        Entry { line: self.line, option: self.name.clone(), reason: reason.into() }
    }
}

type One<T> = Option<(T, Src)>;
type Many<T> = Vec<(T, Src)>;
/// `external-ip`: the public address and, in the `PUBLIC/PRIVATE` form, the private one.
type External = (IpAddr, Option<IpAddr>);

/// A static user's secret as coturn's `user=` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UserSecret {
    Password(String),
    /// `0x` and 32 hex digits: MD5(name:realm:password).
    Key(String),
}

#[derive(Default)]
struct Conversion {
    report: Report,
    port: One<u16>,
    tls_port: One<u16>,
    alt_port: One<u16>,
    alt_tls_port: One<u16>,
    listening_ips: Many<IpAddr>,
    aux_servers: Many<SocketAddr>,
    relay_ips: Many<IpAddr>,
    external_ips: Many<External>,
    min_port: One<u64>,
    max_port: One<u64>,
    workers: One<u64>,
    log_level: One<&'static str>,
    realm: One<String>,
    users: Many<(String, UserSecret)>,
    use_auth_secret: Option<Src>,
    secrets: Many<String>,
    separator: One<char>,
    nonce_lifetime: One<u64>,
    max_lifetime: One<u64>,
    user_quota: One<u64>,
    total_quota: One<u64>,
    max_bps: One<u64>,
    bps_capacity: One<u64>,
    allow_loopback: Option<Src>,
    allowed: Many<Vec<IpNet>>,
    denied: Many<Vec<IpNet>>,
    no_tcp: Option<Src>,
    no_tls: Option<Src>,
    mobility: Option<Src>,
    cert: One<String>,
    pkey: One<String>,
    alternates: Many<SocketAddr>,
    /// Every listen address written is loopback (turnd's demo credentials work only then).
    all_loopback: bool,
    /// The first relay-ip and external-ip of the second family, once the first is chosen.
    other_family: (One<IpAddr>, One<External>),
    /// `allocation-default-address-family=ipv6`, written once the relays are known.
    default_family: Option<Src>,
}

/// Set a single-valued option; coturn keeps the last one, so an earlier one is reported.
fn set<T>(slot: &mut One<T>, value: T, src: Src, ignored: &mut Vec<Entry>) {
    if let Some((_, old)) = slot.replace((value, src.clone())) {
        ignored.push(old.entry(format!("set again on line {}, whose value coturn keeps", src.line)));
    }
}

impl Conversion {
    /// Record what an option to be converted says, checking its value.
    fn take(&mut self, target: Target, line: &Line<'_>) -> Result<(), ImportError> {
        let src = line.src(matches!(target, Target::StaticAuthSecret));
        let ignored = &mut self.report.ignored;
        match target {
            Target::ListeningPort => set(&mut self.port, line.port()?, src, ignored),
            Target::TlsListeningPort => set(&mut self.tls_port, line.port()?, src, ignored),
            Target::AltListeningPort => set(&mut self.alt_port, line.port()?, src, ignored),
            Target::AltTlsListeningPort => set(&mut self.alt_tls_port, line.port()?, src, ignored),
            Target::ListeningIp => self.listening_ips.push((line.ip(line.value)?, src)),
            Target::AuxServer => self.aux_servers.push((line.address(None)?, src)),
            Target::RelayIp => self.relay_ips.push((line.ip(line.value)?, src)),
            Target::ExternalIp => {
                let (public, private) = line.value.split_once('/').map_or((line.value, None), |(a, b)| (a, Some(b)));
                let private = private.map(|p| line.ip(p)).transpose()?;
                self.external_ips.push(((line.ip(public)?, private), src));
            }
            Target::MinPort => set(&mut self.min_port, line.int(1, 65535)?, src, ignored),
            Target::MaxPort => set(&mut self.max_port, line.int(1, 65535)?, src, ignored),
            Target::RelayThreads => {
                let n = line.value.parse::<u64>().map_err(|_| line.error("must be a whole number"))?;
                set(&mut self.workers, n.clamp(1, super::MAX_WORKERS as u64), src, ignored);
            }
            // coturn's Verbose wins over verbose, whichever comes first.
            Target::Verbose if self.log_level.as_ref().is_some_and(|(l, _)| *l == "debug") => {
                ignored.push(line.entry("Verbose, given before, wins over verbose"));
            }
            Target::Verbose => set(&mut self.log_level, "info", src, ignored),
            Target::ExtraVerbose => set(&mut self.log_level, "debug", src, ignored),
            Target::Realm => {
                let chars = line.value.chars();
                if chars.clone().count() > 127 || chars.clone().any(char::is_control) {
                    return Err(line.error("turnd takes 1 to 127 characters, with no control characters"));
                }
                set(&mut self.realm, line.value.to_owned(), src, ignored);
            }
            Target::User => self.take_user(line)?,
            Target::UseAuthSecret => self.use_auth_secret = Some(src),
            Target::StaticAuthSecret => match self.secrets.iter().find(|(s, _)| s == line.value) {
                Some((_, first)) => {
                    let reason = format!("the same secret as line {}", first.line);
                    self.report.ignored.push(line.entry(&reason));
                }
                None => self.secrets.push((line.value.to_owned(), src)),
            },
            Target::RestApiSeparator => match line.value.chars().next() {
                Some(c) if !c.is_ascii_digit() && !c.is_whitespace() && !c.is_control() => {
                    set(&mut self.separator, c, src, ignored)
                }
                _ => return Err(line.error("turnd takes one character that is not a digit or whitespace")),
            },
            Target::StaleNonce => {
                match optional(line, COTURN_STALE_NONCE, super::MAX_LIFETIME_SECS)? {
                    0 => self.report.unsupported.push(line.entry(
                        "0 (nonces that never expire): turnd's nonces always expire (auth.nonce-lifetime, 600 s)",
                    )),
                    n => set(&mut self.nonce_lifetime, n, src, ignored),
                }
            }
            Target::MaxAllocateLifetime => {
                let n = optional(line, COTURN_MAX_LIFETIME, super::MAX_LIFETIME_SECS)?;
                if n == 0 {
                    return Err(line.error("turnd takes 1 to 86400 seconds"));
                }
                set(&mut self.max_lifetime, n, src, ignored);
            }
            Target::ChannelLifetime | Target::PermissionLifetime => {
                let fixed = if target == Target::ChannelLifetime { 600 } else { 300 };
                let n = optional(line, fixed, u64::MAX)?;
                let reason = format!("turnd uses RFC 8656's fixed {fixed} s");
                let entry = line.entry(&reason);
                match n == fixed {
                    true => self.report.ignored.push(entry),
                    false => self.report.unsupported.push(entry),
                }
            }
            Target::UserQuota => set(&mut self.user_quota, line.int(0, u32::MAX.into())?, src, ignored),
            Target::TotalQuota => set(&mut self.total_quota, line.int(0, u32::MAX.into())?, src, ignored),
            Target::MaxBps => set(&mut self.max_bps, line.int(0, super::tcp::MAX_BPS)?, src, ignored),
            Target::BpsCapacity => set(&mut self.bps_capacity, line.int(0, super::tcp::MAX_BPS)?, src, ignored),
            Target::AllowedPeerIp | Target::DeniedPeerIp => {
                let nets = peer_range(line.value).ok_or_else(|| {
                    line.error(format!(
                        "`{}` is not an IP address or a FIRST-LAST range of one family (coturn takes no CIDR here)",
                        line.value
                    ))
                })?;
                match target {
                    Target::AllowedPeerIp => self.allowed.push((nets, src)),
                    _ => self.denied.push((nets, src)),
                }
            }
            Target::AllowLoopbackPeers => self.allow_loopback = Some(src),
            Target::NoTcp => self.no_tcp = Some(src),
            Target::NoTls => self.no_tls = Some(src),
            Target::Mobility => self.mobility = Some(src),
            Target::Cert => set(&mut self.cert, line.value.to_owned(), src, ignored),
            Target::Pkey => set(&mut self.pkey, line.value.to_owned(), src, ignored),
            Target::AlternateServer => {
                let addr = line.address(Some(COTURN_PORT))?;
                if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
                    return Err(line.error(format!("{addr} is not an address a client can be sent to")));
                }
                match self.alternates.iter().find(|(a, _)| *a == addr) {
                    Some((_, first)) => {
                        let reason = format!("the same address as line {}", first.line);
                        self.report.ignored.push(line.entry(&reason));
                    }
                    None => self.alternates.push((addr, src)),
                }
            }
            Target::AddressFamily => match line.value {
                "ipv4" => self.report.ignored.push(line.entry("turnd relays over IPv4, coturn's default")),
                "ipv6" => self.default_family = Some(src),
                "keep" => self.report.ignored.push(line.entry(
                    "turnd's default-family = \"listener\" already relays a client over the family it reached turnd by",
                )),
                _ => return Err(line.error("must be ipv4, ipv6 or keep")),
            },
        }
        Ok(())
    }

    /// `user=NAME:PASSWORD` or `user=NAME:0xKEY`; a name given again replaces the earlier one.
    fn take_user(&mut self, line: &Line<'_>) -> Result<(), ImportError> {
        let shape = "expected NAME:PASSWORD or NAME:0xKEY (32 hex digits, as turnadmin -k prints)";
        let (name, rest) = line.value.split_once(':').ok_or_else(|| line.error(shape))?;
        let rest = rest.trim_start_matches([' ', '\t']);
        if name.is_empty() || rest.is_empty() {
            return Err(line.error(shape));
        }
        let secret = match rest.strip_prefix("0x") {
            Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => UserSecret::Key(rest.into()),
            Some(_) => return Err(line.error(shape)),
            None => UserSecret::Password(rest.to_owned()),
        };
        let src = Src { line: line.number, name: line.name.to_owned(), shown: format!("user={name}:…") };
        if let Some(i) = self.users.iter().position(|((n, _), _)| n == name) {
            let (_, old) = self.users.remove(i);
            let reason = format!("user {name} is defined again on line {}, which coturn keeps", line.number);
            self.report.ignored.push(old.entry(reason));
        }
        self.users.push(((name.to_owned(), secret), src));
        Ok(())
    }

    /// Resolve what the options say together, write the TOML and complete the report.
    fn finish(mut self, generated_secret: &str) -> Result<Imported, ImportError> {
        let mut out = TomlOut::new();
        self.server(&mut out)?;
        self.auth(&mut out, generated_secret);
        self.rest(&mut out);
        let (toml, converted) = out.finish();
        let mut report = self.report;
        report.converted = converted;
        for list in [&mut report.ignored, &mut report.unsupported, &mut report.unknown] {
            list.sort_by_key(|e| e.line);
        }
        report.notes.push(
            "coturn relays to peers on private (RFC 1918), CGNAT, link-local and other special-purpose \
             addresses unless denied-peer-ip says otherwise; turnd refuses them by default. For peers on a \
             private network (a media server, say), add their range to peers.allowed."
                .to_owned(),
        );
        Ok(Imported { toml, report })
    }

    /// The `[auth]` table and its `[[auth.users]]`.
    fn auth(&mut self, out: &mut TomlOut, generated_secret: &str) {
        out.table("auth");
        if let Some((realm, src)) = &self.realm {
            out.key("realm", string(realm), &[src]);
        }
        // coturn's REST mode, decided by the file (before any secret is left out below).
        let rest_mode = self.use_auth_secret.is_some() || !self.secrets.is_empty();
        if !self.all_loopback {
            let demo = |what: &str| format!("turnd refuses its demo {what} unless every listen address is loopback");
            let (demo_secrets, secrets) =
                std::mem::take(&mut self.secrets).into_iter().partition(|(s, _)| s == DEMO_SECRET);
            self.secrets = secrets;
            let (demo_users, users) =
                std::mem::take(&mut self.users).into_iter().partition(|((n, _), _)| n == DEMO_USER);
            self.users = users;
            for (_, src) in demo_secrets {
                self.report.unsupported.push(src.entry(demo("secret")));
            }
            for (_, src) in demo_users {
                self.report.unsupported.push(src.entry(demo("user name: rename the user")));
            }
        }
        if !self.secrets.is_empty() {
            let srcs: Vec<&Src> = self.use_auth_secret.iter().chain(self.secrets.iter().map(|(_, s)| s)).collect();
            out.key("secrets", array(self.secrets.iter().map(|(s, _)| string(s))), &srcs);
        } else if let Some(src) = &self.use_auth_secret {
            self.report.unsupported.push(src.entry(
                "without static-auth-secret coturn reads the secrets from its database (turn_secret table), which \
                 turnd does not: list them in auth.secrets or auth.secrets-file",
            ));
        }
        if let Some((c, src)) = &self.separator {
            out.key("rest-separator", string(&c.to_string()), &[src]);
        }
        if let Some((n, src)) = &self.nonce_lifetime {
            out.key("nonce-lifetime", n.to_string(), &[src]);
        }
        let users = std::mem::take(&mut self.users);
        let users = match rest_mode {
            true => {
                for (_, src) in users {
                    self.report.ignored.push(src.entry(
                        "coturn ignores user= while use-auth-secret or static-auth-secret is set; left out so that \
                         turnd accepts no more than coturn did",
                    ));
                }
                Vec::new()
            }
            false => users,
        };
        if self.secrets.is_empty() && users.is_empty() {
            out.comment("The coturn file has no credentials (coturn then relays for anyone); turnd always");
            out.comment("authenticates: a random TURN REST secret generated for this file.");
            out.key("secrets", array([string(generated_secret)]), &[]);
            self.report.notes.push(
                "the coturn file configures no credentials, so coturn relays for anyone; turnd always \
                 authenticates. auth.secrets holds a random secret generated now: hand out TURN REST credentials \
                 made with it (`turnd credentials --secret SECRET --user NAME`, or the [api] sidecar), or add users"
                    .to_owned(),
            );
        }
        if self.realm.is_none() && users.iter().any(|((_, s), _)| matches!(s, UserSecret::Key(_))) {
            self.report.notes.push(
                "the 0x keys of user= lines were computed with coturn's realm, and the file sets none: set \
                 auth.realm to the realm they were made with"
                    .to_owned(),
            );
        }
        for ((name, secret), src) in &users {
            out.array_table("auth.users");
            out.key("name", string(name), &[src]);
            match secret {
                UserSecret::Password(password) => out.key("password", string(password), &[]),
                UserSecret::Key(key) => out.key("key", string(key), &[]),
            }
        }
    }

    /// `[allocation]`, `[limits]` and `[peers]`, each only when a coturn option sets one of its keys.
    fn rest(&mut self, out: &mut TomlOut) {
        if self.max_lifetime.is_some() || self.user_quota.is_some() || self.total_quota.is_some() {
            out.table("allocation");
            if let Some((max, src)) = &self.max_lifetime {
                out.key("max-lifetime", max.to_string(), &[src]);
                if *max < DEFAULT_LIFETIME {
                    out.key("default-lifetime", max.to_string(), &[src]);
                }
            }
            for (key, slot) in [("user-quota", &self.user_quota), ("total-quota", &self.total_quota)] {
                if let Some((n, src)) = slot {
                    out.key(key, n.to_string(), &[src]);
                }
            }
        }
        if self.max_bps.is_some() || self.bps_capacity.is_some() {
            out.table("limits");
            for (key, slot) in [("max-bps", &self.max_bps), ("bps-capacity", &self.bps_capacity)] {
                if let Some((n, src)) = slot {
                    out.key(key, n.to_string(), &[src]);
                }
            }
        }
        if self.allow_loopback.is_none() && self.allowed.is_empty() && self.denied.is_empty() {
            return;
        }
        out.table("peers");
        let loopback: [IpNet; 2] = [
            IpNet::new(Ipv4Addr::new(127, 0, 0, 0).into(), 8).expect("8 is a valid IPv4 prefix length"),
            IpNet::new(Ipv6Addr::LOCALHOST.into(), 128).expect("128 is a valid IPv6 prefix length"),
        ];
        let allowed: Vec<(Vec<IpNet>, &Src)> = (self.allow_loopback.iter().map(|s| (loopback.to_vec(), s)))
            .chain(self.allowed.iter().map(|(nets, s)| (nets.clone(), s)))
            .collect();
        for (key, list) in [("allowed", allowed), ("denied", self.denied.iter().map(|(n, s)| (n.clone(), s)).collect())]
        {
            if list.is_empty() {
                continue;
            }
            let srcs: Vec<&Src> = list.iter().map(|(_, s)| *s).collect();
            let nets = list.iter().flat_map(|(nets, _)| nets.iter().map(|n| string(&n.to_string())));
            out.key(key, array(nets), &srcs);
        }
    }
}

/// A whole number that coturn takes bare (meaning `default`), at most `max`.
fn optional(line: &Line<'_>, default: u64, max: u64) -> Result<u64, ImportError> {
    match line.value {
        "" => Ok(default),
        _ => line.int(0, max),
    }
}
