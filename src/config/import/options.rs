//! Every option of coturn 4.6's `turnserver.conf` (its `long_options` table) and what
//! `turnd import-coturn` does with it: converts it, drops it because turnd already behaves so
//! (or it means nothing to turnd), or reports it as unsupported, each with the reason.

/// How coturn reads an option's value (`set_option` in coturn's `mainrelay.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arg {
    /// A value is required (`name=value`).
    Value,
    /// A boolean: bare means on; `0`, `no`, `false`, `off`, ... mean off (`get_bool_value`).
    Flag,
    /// Bare or with a value that coturn does not look at: present means on.
    Bare,
    /// An optional number; bare means coturn's default (`get_int_value`).
    OptionalInt,
}

/// What becomes of an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Treatment {
    /// Converted into turnd keys (see [`Target`]).
    Map(Target),
    /// Dropped: turnd already behaves so, or the option means nothing to turnd.
    Ignore(&'static str),
    /// Dropped: turnd has no equivalent.
    Unsupported(&'static str),
}

/// The coturn options that become turnd keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    ListeningPort,
    TlsListeningPort,
    AltListeningPort,
    AltTlsListeningPort,
    ListeningIp,
    AuxServer,
    RelayIp,
    ExternalIp,
    MinPort,
    MaxPort,
    RelayThreads,
    Verbose,
    ExtraVerbose,
    Realm,
    User,
    UseAuthSecret,
    StaticAuthSecret,
    RestApiSeparator,
    StaleNonce,
    MaxAllocateLifetime,
    ChannelLifetime,
    PermissionLifetime,
    UserQuota,
    TotalQuota,
    MaxBps,
    BpsCapacity,
    AllowedPeerIp,
    DeniedPeerIp,
    AllowLoopbackPeers,
    NoTcp,
    NoTls,
    Cert,
    Pkey,
    AlternateServer,
    AddressFamily,
    Mobility,
}

use Arg::{Bare, Flag, OptionalInt, Value};
use Target::*;
use Treatment::{Ignore, Map, Unsupported};

const NO_CLI: &str = "turnd has no telnet CLI";
const NO_DB: &str = "turnd has no user database: use static users (user=) or REST secrets (static-auth-secret)";
const NO_PROMETHEUS: &str = "turnd serves Prometheus metrics at /metrics on the [api] listener (enable [api] with an \
                             API key; the metric names differ, see the README's \"Metrics\")";
const NO_DH: &str = "turnd's TLS (rustls) uses ECDHE only, no finite-field Diffie-Hellman";
const LOGS: &str = "turnd logs to stderr, which systemd's journal keeps (and forwards to syslog); redirect stderr \
                    for a file";
const NO_WEB_ADMIN: &str = "only for coturn's web admin, which turnd does not have";
const NO_USER_DB: &str = "turnd has no user database to poll";
const TLS_VERSIONS: &str = "turnd never offers TLS 1.0 or 1.1";

/// coturn's options in the order of its `long_options` table (and two older names).
#[rustfmt::skip]
pub(super) const OPTIONS: &[(&str, Arg, Treatment)] = &[
    ("listening-device", Value, Unsupported("turnd binds to addresses, not devices: list the device's IPs in listening-ip")),
    ("listening-port", Value, Map(ListeningPort)),
    ("tls-listening-port", Value, Map(TlsListeningPort)),
    ("alt-listening-port", Value, Map(AltListeningPort)),
    ("alt-tls-listening-port", Value, Map(AltTlsListeningPort)),
    ("tcp-proxy-port", Value, Unsupported("turnd does not take the PROXY protocol from a load balancer")),
    ("listening-ip", Value, Map(ListeningIp)),
    ("relay-device", Value, Unsupported("turnd binds relays to an address, not a device: set relay-ip")),
    ("relay-ip", Value, Map(RelayIp)),
    ("external-ip", Value, Map(ExternalIp)),
    ("relay-threads", Value, Map(RelayThreads)),
    ("min-port", Value, Map(MinPort)),
    ("max-port", Value, Map(MaxPort)),
    ("lt-cred-mech", Flag, Ignore("turnd always uses the long-term credential mechanism")),
    ("no-auth", Flag, Unsupported("turnd always authenticates: it relays for no anonymous client")),
    ("user", Value, Map(User)),
    ("userdb", Value, Unsupported(NO_DB)),
    ("db", Value, Unsupported(NO_DB)),
    ("psql-userdb", Value, Unsupported(NO_DB)),
    ("sql-userdb", Value, Unsupported(NO_DB)),
    ("mysql-userdb", Value, Unsupported(NO_DB)),
    ("mongo-userdb", Value, Unsupported(NO_DB)),
    ("redis-userdb", Value, Unsupported(NO_DB)),
    ("redis-statsdb", Value, Unsupported("turnd keeps no statistics in Redis: scrape /metrics on the [api] listener")),
    ("prometheus", Bare, Unsupported(NO_PROMETHEUS)),
    ("prometheus-port", Value, Unsupported(NO_PROMETHEUS)),
    ("prometheus-address", Value, Unsupported(NO_PROMETHEUS)),
    ("prometheus-username-labels", Bare, Unsupported("turnd's metrics never carry user names")),
    ("use-auth-secret", Bare, Map(UseAuthSecret)),
    ("static-auth-secret", Value, Map(StaticAuthSecret)),
    ("no-auth-pings", Bare, Ignore(NO_USER_DB)),
    ("no-dynamic-ip-list", Bare, Ignore(NO_USER_DB)),
    ("no-dynamic-realms", Bare, Ignore(NO_USER_DB)),
    ("realm", Value, Map(Realm)),
    ("server-name", Value, Ignore("only for coturn's oAuth, which turnd does not have")),
    ("oauth", Flag, Unsupported("turnd has no oAuth third-party authorization (its [api] sidecar takes JWTs)")),
    ("user-quota", Value, Map(UserQuota)),
    ("total-quota", Value, Map(TotalQuota)),
    ("max-bps", Value, Map(MaxBps)),
    ("bps-capacity", Value, Map(BpsCapacity)),
    ("verbose", Flag, Map(Verbose)),
    ("Verbose", Flag, Map(ExtraVerbose)),
    ("daemon", Flag, Unsupported("turnd stays in the foreground: run it under systemd (turnd.service)")),
    ("no-software-attribute", Flag, Ignore("turnd sends no SOFTWARE attribute")),
    ("software-attribute", Flag, Unsupported("turnd sends no SOFTWARE attribute")),
    ("fingerprint", Flag, Ignore("turnd answers every request that carries FINGERPRINT (as WebRTC clients' do) with \
                                 FINGERPRINT")),
    ("check-origin-consistency", Flag, Unsupported("turnd does not check ORIGIN attributes")),
    ("no-udp", Flag, Unsupported("turnd always serves UDP on its listen addresses")),
    ("no-tcp", Flag, Map(NoTcp)),
    ("no-tls", Flag, Map(NoTls)),
    ("no-dtls", Flag, Ignore("turnd has no DTLS")),
    ("no-udp-relay", Flag, Unsupported("turnd always offers UDP relays")),
    ("no-tcp-relay", Flag, Unsupported("turnd always offers TCP relays (RFC 6062) to the peers its policy allows")),
    ("stale-nonce", OptionalInt, Map(StaleNonce)),
    ("max-allocate-lifetime", OptionalInt, Map(MaxAllocateLifetime)),
    ("channel-lifetime", OptionalInt, Map(ChannelLifetime)),
    ("permission-lifetime", OptionalInt, Map(PermissionLifetime)),
    ("stun-only", Flag, Unsupported("turnd always serves TURN")),
    ("no-stun", Flag, Unsupported("turnd always answers Binding requests")),
    ("cert", Value, Map(Cert)),
    ("raw-public-keys", Flag, Unsupported("turnd's TLS uses X.509 certificates only")),
    ("pkey", Value, Map(Pkey)),
    ("pkey-pwd", Value, Unsupported("turnd reads unencrypted PEM keys only: decrypt the key (openssl pkey)")),
    ("log-file", Value, Unsupported(LOGS)),
    ("no-stdout-log", Flag, Unsupported(LOGS)),
    ("syslog", Flag, Unsupported(LOGS)),
    ("simple-log", Flag, Ignore("turnd writes no log file to roll over")),
    ("new-log-timestamp", Flag, Ignore("turnd's log lines always carry ISO 8601 timestamps")),
    ("new-log-timestamp-format", Value, Unsupported("turnd's log timestamps have one format (ISO 8601)")),
    ("aux-server", Value, Map(AuxServer)),
    ("udp-self-balance", Flag, Unsupported("turnd does not balance over auxiliary servers with ALTERNATE-SERVER")),
    ("alternate-server", Value, Map(AlternateServer)),
    ("tls-alternate-server", Value, Unsupported("turnd has one alternate-servers list for every transport (see \
                                                 alternate-server)")),
    ("rest-api-separator", Value, Map(RestApiSeparator)),
    ("max-allocate-timeout", Value, Unsupported("turnd has no allocation-setup timeout (TCP/TLS connections have \
                                                 limits.first-message-timeout)")),
    ("no-multicast-peers", Flag, Ignore("turnd always refuses multicast and broadcast peers")),
    ("allow-loopback-peers", Flag, Map(AllowLoopbackPeers)),
    ("allowed-peer-ip", Value, Map(AllowedPeerIp)),
    ("denied-peer-ip", Value, Map(DeniedPeerIp)),
    ("cipher-list", Value, Unsupported("turnd's TLS (rustls) offers its own TLS 1.2/1.3 AEAD cipher suites; the \
                                        list cannot be changed")),
    ("pidfile", Value, Unsupported("turnd writes no PID file; systemd tracks the process")),
    ("secure-stun", Flag, Unsupported("turnd answers Binding requests without authentication")),
    ("CA-file", Value, Unsupported("turnd does not verify client certificates")),
    ("dh-file", Value, Ignore(NO_DH)),
    ("proc-user", Value, Unsupported("turnd does not change its user: start it as that user (systemd User=; \
                                      turnd.service uses DynamicUser)")),
    ("proc-group", Value, Unsupported("turnd does not change its group: start it in that group (systemd Group=)")),
    ("mobility", Flag, Map(Mobility)),
    ("no-cli", Flag, Ignore(NO_CLI)),
    ("cli-ip", Value, Ignore(NO_CLI)),
    ("cli-port", Value, Ignore(NO_CLI)),
    ("cli-password", Value, Ignore(NO_CLI)),
    ("web-admin", Flag, Unsupported("turnd has no web admin (its [api] sidecar serves metrics and a self-test page)")),
    ("web-admin-ip", Value, Ignore(NO_WEB_ADMIN)),
    ("web-admin-port", Value, Ignore(NO_WEB_ADMIN)),
    ("web-admin-listen-on-workers", Flag, Ignore(NO_WEB_ADMIN)),
    ("server-relay", Flag, Unsupported("turnd always checks permissions before relaying")),
    ("cli-max-output-sessions", Value, Ignore(NO_CLI)),
    ("ec-curve-name", Value, Unsupported("turnd's TLS (rustls) chooses the curve itself (X25519, P-256, P-384)")),
    ("dh566", Flag, Ignore(NO_DH)),
    ("dh1066", Flag, Ignore(NO_DH)),
    ("ne", Value, Ignore("selects one of coturn's network engines; turnd runs one worker per core")),
    ("no-tlsv1", Flag, Ignore(TLS_VERSIONS)),
    ("no-tlsv1_1", Flag, Ignore(TLS_VERSIONS)),
    ("no-tlsv1_2", Flag, Unsupported("turnd offers TLS 1.2 and 1.3; 1.2 cannot be turned off")),
    ("secret-key-file", Value, Ignore("only for coturn's encrypted MySQL passwords")),
    (
        "keep-address-family",
        Flag,
        Unsupported("turnd follows RFC 8656's address families; set server.default-family for clients that name none"),
    ),
    ("allocation-default-address-family", Value, Map(AddressFamily)),
    ("acme-redirect", Value, Unsupported("turnd serves no HTTP on its TURN ports: let certbot answer ACME itself")),
    ("log-binding", Flag, Unsupported("turnd does not log Binding requests")),
    ("no-rfc5780", Bare, Ignore("turnd's RFC 5780 NAT behaviour discovery is off unless `server.rfc5780 = true`")),
    ("no-stun-backward-compatibility", Flag, Ignore("turnd answers only RFC 5389/8489 Binding requests, with \
                                                     XOR-MAPPED-ADDRESS only")),
    ("response-origin-only-with-rfc5780", Flag, Ignore("turnd sends RESPONSE-ORIGIN only with RFC 5780")),
    ("respond-http-unsupported", Flag, Ignore("turnd closes connections that do not speak STUN")),
    ("version", Bare, Ignore("prints coturn's version; no setting")),
    ("syslog-facility", Value, Unsupported(LOGS)),
    // Older coturn releases (before 4.5) took these.
    ("no-loopback-peers", Flag, Ignore("turnd always refuses loopback peers")),
    ("prod", Flag, Ignore("turnd sends no SOFTWARE attribute")),
];

/// How coturn reads `name`, and what becomes of it; `None`: not a coturn option.
pub(super) fn lookup(name: &str) -> Option<(Arg, Treatment)> {
    OPTIONS.iter().find(|(n, _, _)| *n == name).map(|&(_, arg, treatment)| (arg, treatment))
}

/// Why an option coturn does not know was skipped.
pub(super) fn unknown_reason(name: &str) -> &'static str {
    if name.starts_with('-') {
        "coturn reads no leading dashes in its file (it logs \"Bad configuration format\" and skips the line); \
         remove them if the option was meant"
    } else if name == "static-auth-secret-file" {
        "an option of NixOS's coturn module, not of coturn: point turnd's auth.secrets-file at the file"
    } else {
        "not a coturn option (coturn logs \"Bad configuration format\" and skips the line)"
    }
}
