//! The `[api]` table (the credentials HTTP API) and its `[api.jwt]` sub-table, parsed and
//! validated into an [`ApiConfig`]; also the API-key hash format both the file and `--api-key`
//! end up in.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::tcp::Streams;
use super::{at, invalid, or, Checked, Item, List, Opt, RawConfig, Redacted, CLI_ORIGIN};

/// How an API key's hash is written in `api.keys`: `sha256:` and 64 hex digits.
pub const API_KEY_PREFIX: &str = "sha256:";
/// Shortest API key accepted from `--api-key`.
pub const MIN_API_KEY_LEN: usize = 16;
/// Shortest HS256 secret accepted in `api.jwt.secret`.
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// Bounds of credential lifetimes handed out, in seconds (and of `api.default-ttl`).
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;
/// Upper bound of the per-minute rate limits.
pub const MAX_RATE: u32 = 1_000_000;

/// `[api]` as serde reads it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "an [api] table")]
pub(super) struct RawApi {
    pub(super) listen: Opt<String>,
    keys: List,
    pub(super) public_host: Opt<String>,
    uris: List,
    default_ttl: Opt<i64>,
    rate_per_ip: Opt<i64>,
    rate_per_user: Opt<i64>,
    cors_origins: List,
    metrics: Opt<bool>,
    jwt: Opt<RawJwt>,
    /// Plain keys from `--api-key`, hashed by validation.
    #[serde(skip)]
    pub(super) cli_keys: Vec<String>,
}

/// `[api.jwt]` as serde reads it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "an [api.jwt] table")]
struct RawJwt {
    secret: Opt<String>,
    jwks_file: Opt<String>,
    issuer: Opt<String>,
    audience: Opt<String>,
    leeway: Opt<i64>,
}

/// The validated `[api]` table. `Debug` shows how many keys there are, never their hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where the HTTP API listens (TCP).
    pub listen: SocketAddr,
    /// SHA-256 of every accepted API key (from `api.keys` and `--api-key`).
    pub key_hashes: Vec<[u8; 32]>,
    /// Host put in the TURN URIs: a DNS name or an IP address (IPv6 without brackets).
    pub public_host: String,
    /// URIs handed out as they are; empty = built from `public_host` and the listeners.
    pub uris: Vec<String>,
    /// Credential lifetime when a request names none, in seconds (within [`TTL_RANGE`]).
    pub default_ttl: u64,
    /// Credential requests per minute from one source IP (IPv6: one /64); 0 = unlimited.
    pub rate_per_ip: u32,
    /// Credential requests per minute per API key or JWT subject; 0 = unlimited.
    pub rate_per_user: u32,
    /// Origins allowed to call the API from a browser (`*` = any); empty = no CORS headers.
    pub cors_origins: Vec<String>,
    /// Serve `/metrics` on this listener.
    pub metrics: bool,
    /// JWT bearer tokens, when accepted.
    pub jwt: Option<JwtConfig>,
}

/// The validated `[api.jwt]` table. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// HS256 shared secret (at least [`MIN_JWT_SECRET_LEN`] characters).
    pub secret: Option<String>,
    /// JSON Web Key Set file with the RS256/ES256 public keys (checked to parse).
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim (always set with `jwks_file`).
    pub issuer: Option<String>,
    /// Required `aud` claim (always set with `jwks_file`).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("key_hashes", &Redacted(self.key_hashes.len()))
            .field("public_host", &self.public_host)
            .field("uris", &self.uris)
            .field("default_ttl", &self.default_ttl)
            .field("rate_per_ip", &self.rate_per_ip)
            .field("rate_per_user", &self.rate_per_user)
            .field("cors_origins", &self.cors_origins)
            .field("metrics", &self.metrics)
            .field("jwt", &self.jwt)
            .finish()
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &Redacted(usize::from(self.secret.is_some())))
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// SHA-256 of an API key: what `api.keys` stores and what a presented key is compared with.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// An API key's entry for `api.keys`: `sha256:` and the hex SHA-256 of the key, the same as
/// `printf %s KEY | sha256sum` prints.
pub fn api_key_entry(key: &str) -> String {
    let hex: String = hash_api_key(key).iter().map(|b| format!("{b:02x}")).collect();
    format!("{API_KEY_PREFIX}{hex}")
}

/// Reads a JSON Web Key Set and keeps the keys turnd can verify with (RS256 and ES256 on
/// P-256, whose `alg`, when given, names one of those). Fails when the file cannot be read, is
/// not a JWK set, or has no such key.
pub fn read_jwks(path: &Path) -> Result<JwkSet, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let set: JwkSet =
        serde_json::from_slice(&text).map_err(|e| format!("{} is not a JSON Web Key Set: {e}", path.display()))?;
    let keys: Vec<Jwk> = set.keys.into_iter().filter(usable_jwk).collect();
    if keys.is_empty() {
        return Err(format!("{} has no RS256 or ES256 (P-256) public key", path.display()));
    }
    Ok(JwkSet { keys })
}

/// An RSA or P-256 public key that `jsonwebtoken` accepts, not marked for another algorithm.
fn usable_jwk(jwk: &Jwk) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    let alg_ok = match jwk.common.key_algorithm {
        None => true,
        Some(alg) => matches!(alg, KeyAlgorithm::RS256 | KeyAlgorithm::ES256),
    };
    let kind_ok = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => true,
        AlgorithmParameters::EllipticCurve(ec) => ec.curve == EllipticCurve::P256,
        _ => false,
    };
    alg_ok && kind_ok && jsonwebtoken::DecodingKey::from_jwk(jwk).is_ok()
}

/// What the `[api]` validation needs from the rest of the configuration.
pub(super) struct Context<'a> {
    pub listen: &'a [SocketAddr],
    pub streams: &'a Streams,
    pub external_ip: Option<IpAddr>,
    pub relay_ip: IpAddr,
    pub secrets: &'a [String],
}

impl RawConfig {
    /// The `[api]` table, when present (or enabled by `--api-listen`).
    pub(super) fn api(&self, ctx: &Context<'_>) -> Checked<Option<ApiConfig>> {
        let Some(Item { value: api, at: table_at }) = &self.api else { return Ok(None) };
        let listen_item = or(&api.listen, "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_item.value.trim().parse().map_err(|_| {
            let reason = format!("`{}` is not an IP:PORT address (IPv6 as [::1]:8080)", listen_item.value);
            self.err("api.listen", listen_item.at, reason)
        })?;
        let taken = ctx.streams.tcp.then_some(ctx.listen).into_iter().flatten().chain(&ctx.streams.tls_listen);
        if let Some(clash) = taken.into_iter().find(|a| listen.port() != 0 && **a == listen) {
            let reason = format!("{clash} is already a TURN TCP or TLS address");
            return Err(self.err("api.listen", listen_item.at, reason));
        }
        if ctx.secrets.is_empty() {
            let reason = "the credentials API signs with the first TURN REST secret: set auth.secrets";
            return Err(self.err("auth.secrets", at(&self.auth.secrets), reason));
        }
        let key_hashes = self.api_keys(api)?;
        let jwt = api.jwt.as_ref().map(|jwt| self.jwt(&jwt.value, jwt.at)).transpose()?;
        if key_hashes.is_empty() && jwt.is_none() {
            let reason = "no way to authenticate callers: set api.keys (or --api-key) or add an [api.jwt] table";
            return Err(self.err("api.keys", at(&api.keys).or_table(*table_at), reason));
        }
        let public_host = match &api.public_host {
            Some(item) => parse_host(&item.value).ok_or_else(|| {
                let reason = format!("`{}` is not a DNS name or IP address (no port, no scheme)", item.value);
                self.err("api.public-host", item.at, reason)
            })?,
            None => {
                let listen_ip = Some(ctx.listen[0].ip()).filter(|ip| !ip.is_unspecified());
                ctx.external_ip.or(listen_ip).unwrap_or(ctx.relay_ip).to_string()
            }
        };
        let uris = self.uris(api)?;
        let ttl = i64::try_from(*TTL_RANGE.start()).unwrap_or(0)..=i64::try_from(*TTL_RANGE.end()).unwrap_or(0);
        let default_ttl = self.int(&api.default_ttl, "api.default-ttl", 3600, ttl)?.value as u64;
        let rates = 0..=i64::from(MAX_RATE);
        let rate_per_ip = self.int(&api.rate_per_ip, "api.rate-per-ip", 60, rates.clone())?.value as u32;
        let rate_per_user = self.int(&api.rate_per_user, "api.rate-per-user", 30, rates)?.value as u32;
        let cors_origins = self.cors_origins(api)?;
        let metrics = or(&api.metrics, true).value;
        Ok(Some(ApiConfig {
            listen,
            key_hashes,
            public_host,
            uris,
            default_ttl,
            rate_per_ip,
            rate_per_user,
            cors_origins,
            metrics,
            jwt,
        }))
    }

    /// `api.keys` (hashes) and `--api-key` (plain keys, hashed here).
    fn api_keys(&self, api: &RawApi) -> Checked<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for (i, item) in or(&api.keys, Vec::new()).value.iter().enumerate() {
            let hash = parse_key_hash(&item.value).ok_or_else(|| {
                let reason = format!(
                    "must be \"{API_KEY_PREFIX}\" and 64 hex digits, the SHA-256 of the key \
                     (`turnd api-key-hash KEY` or `printf %s KEY | sha256sum` prints it)"
                );
                self.err(&format!("api.keys[{i}]"), item.at, reason)
            })?;
            out.push(hash);
        }
        for key in &api.cli_keys {
            if key.chars().count() < MIN_API_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                let reason = format!(
                    "an API key must be at least {MIN_API_KEY_LEN} characters without spaces \
                     (e.g. `openssl rand -hex 24`)"
                );
                return Err(invalid(CLI_ORIGIN, "--api-key", None, reason));
            }
            out.push(hash_api_key(key));
        }
        Ok(out)
    }

    fn jwt(&self, jwt: &RawJwt, table_at: super::At) -> Checked<JwtConfig> {
        let secret = match &jwt.secret {
            Some(s) if s.value.chars().count() < MIN_JWT_SECRET_LEN => {
                let reason = format!(
                    "an HS256 secret must be at least {MIN_JWT_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
                );
                return Err(self.err("api.jwt.secret", s.at, reason));
            }
            s => s.as_ref().map(|s| s.value.clone()),
        };
        let jwks_file = match &jwt.jwks_file {
            Some(item) => {
                let (path, how) = self.resolve(&item.value, item.at);
                read_jwks(&path).map_err(|reason| self.err("api.jwt.jwks-file", item.at, format!("{reason}{how}")))?;
                Some(path)
            }
            None => None,
        };
        if secret.is_none() && jwks_file.is_none() {
            let reason = "set secret (HS256) or jwks-file (RS256/ES256), or remove the table";
            return Err(self.err("api.jwt", table_at, reason));
        }
        let mut claims = [("api.jwt.issuer", &jwt.issuer, None), ("api.jwt.audience", &jwt.audience, None)];
        for (name, item, out) in claims.iter_mut() {
            match item {
                Some(item) if item.value.trim().is_empty() => {
                    return Err(self.err(name, item.at, "must not be empty"));
                }
                Some(item) => *out = Some(item.value.clone()),
                None if jwks_file.is_some() => {
                    let reason = "required with jwks-file: a key set such as Google's signs tokens for many \
                                  issuers and audiences (Firebase: issuer \
                                  \"https://securetoken.google.com/PROJECT\", audience \"PROJECT\")";
                    return Err(self.err(name, table_at, reason));
                }
                None => {}
            }
        }
        let [(_, _, issuer), (_, _, audience)] = claims;
        let leeway = self.int(&jwt.leeway, "api.jwt.leeway", 60, 0..=300)?.value as u64;
        Ok(JwtConfig { secret, jwks_file, issuer, audience, leeway })
    }

    fn uris(&self, api: &RawApi) -> Checked<Vec<String>> {
        let mut out = Vec::new();
        for (i, item) in or(&api.uris, Vec::new()).value.iter().enumerate() {
            let uri = item.value.trim();
            let scheme_ok = uri.starts_with("turn:") || uri.starts_with("turns:") || uri.starts_with("stun:");
            if !scheme_ok || uri.len() > 512 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
                let reason = format!(
                    "`{}` is not a TURN URI such as \"turn:turn.example.com:3478?transport=udp\" or \
                     \"turns:turn.example.com:5349?transport=tcp\"",
                    item.value
                );
                return Err(self.err(&format!("api.uris[{i}]"), item.at, reason));
            }
            out.push(uri.to_owned());
        }
        Ok(out)
    }

    fn cors_origins(&self, api: &RawApi) -> Checked<Vec<String>> {
        let list = or(&api.cors_origins, Vec::new());
        let mut out = Vec::new();
        for (i, item) in list.value.iter().enumerate() {
            let origin = item.value.trim();
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            let valid = match rest {
                _ if origin == "*" => list.value.len() == 1,
                Some(host) => !host.is_empty() && !host.contains('/') && host.bytes().all(|b| b.is_ascii_graphic()),
                None => false,
            };
            if !valid {
                let reason = format!(
                    "`{}` is not an origin such as \"https://app.example.com\" (scheme and host, optional \
                     port, no path), or \"*\" alone for any origin",
                    item.value
                );
                return Err(self.err(&format!("api.cors-origins[{i}]"), item.at, reason));
            }
            out.push(origin.to_owned());
        }
        Ok(out)
    }
}

/// `a` unless it is the default, then `table`: a missing key is blamed on its table's line.
trait OrTable {
    fn or_table(self, table: super::At) -> super::At;
}

impl OrTable for super::At {
    fn or_table(self, table: super::At) -> super::At {
        match self {
            super::At::Default => table,
            at => at,
        }
    }
}

/// `sha256:` and 64 hex digits (either case) into the 32-byte hash.
fn parse_key_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.trim().strip_prefix(API_KEY_PREFIX)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A host for TURN URIs: an IP address (IPv6 with or without brackets; stored without) or a DNS
/// name of letters, digits and hyphens in dot-separated labels of 1 to 63 characters.
fn parse_host(text: &str) -> Option<String> {
    let text = text.trim();
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    if let Some(ip) = unbracketed.and_then(|t| t.parse::<Ipv6Addr>().ok()) {
        return Some(ip.to_string());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name_ok = (1..=253).contains(&text.len()) && text.split('.').all(label_ok);
    // A name of digits and dots only would be read as an IPv4 address by clients.
    let numeric = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    (name_ok && !numeric).then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doc, invalid_of, ok};
    use super::super::{load_with, ConfigError, Overrides};
    use super::*;

    const ENTRY: &str = "sha256:c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a";
    const KEYS: &str = "keys = ['sha256:c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a']";

    /// A JWKS file with one P-256 key.
    fn jwks() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let text = r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn relative_jwks_file_resolves_next_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(jwks().path(), dir.path().join("jwks.json")).unwrap();
        let conf = dir.path().join("t.toml");
        let lines = ["[api]", "[api.jwt]", "jwks-file = 'jwks.json'", "issuer = 'i'", "audience = 'a'"];
        std::fs::write(&conf, doc(&lines)).unwrap();
        let c = super::super::Config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
        let jwt = c.api.and_then(|api| api.jwt).expect("[api.jwt]");
        assert_eq!(jwt.jwks_file, Some(dir.path().join("jwks.json")));
    }

    #[test]
    fn api_table_parses_with_defaults() {
        let c = ok(&["[api]", KEYS]);
        let api = c.api.expect("[api] enables the API");
        assert_eq!(api.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(api.key_hashes, vec![hash_api_key("correct horse battery staple")]);
        // The first listen IP when nothing better is known.
        assert_eq!(api.public_host, "127.0.0.1");
        assert!(api.uris.is_empty() && api.cors_origins.is_empty() && api.jwt.is_none() && api.metrics);
        assert_eq!((api.default_ttl, api.rate_per_ip, api.rate_per_user), (3600, 60, 30));
        // external-ip wins over the listen address.
        let c = ok(&["[server]", "listen = ['10.0.0.5:3478']", "external-ip = '203.0.113.9'", "[api]", KEYS]);
        assert_eq!(c.api.unwrap().public_host, "203.0.113.9");
        let jwks = jwks();
        let jwks_line = format!("jwks-file = '{}'", jwks.path().display());
        let c = ok(&[
            "[api]",
            "listen = '[::1]:8443'",
            "public-host = 'TURN.example.com'",
            "uris = ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:443?transport=tcp']",
            "default-ttl = 600",
            "rate-per-ip = 0",
            "rate-per-user = 5",
            "cors-origins = ['https://app.example.com', 'http://localhost:5173']",
            "metrics = false",
            "[api.jwt]",
            "secret = '0123456789abcdef0123456789abcdef'",
            &jwks_line,
            "issuer = 'https://securetoken.google.com/p'",
            "audience = 'p'",
            "leeway = 0",
        ]);
        let api = c.api.unwrap();
        assert_eq!((api.listen, api.public_host.as_str()), ("[::1]:8443".parse().unwrap(), "turn.example.com"));
        assert_eq!(api.uris.len(), 2);
        assert_eq!((api.default_ttl, api.rate_per_ip, api.rate_per_user, api.metrics), (600, 0, 5, false));
        assert_eq!(api.cors_origins, ["https://app.example.com", "http://localhost:5173"]);
        assert!(api.key_hashes.is_empty());
        let jwt = api.jwt.unwrap();
        assert_eq!(jwt.jwks_file.as_deref(), Some(jwks.path()));
        assert_eq!(
            (jwt.issuer.as_deref(), jwt.audience.as_deref(), jwt.leeway),
            (Some("https://securetoken.google.com/p"), Some("p"), 0)
        );
        let shown = format!("{:?}", ok(&["[api]", KEYS, "[api.jwt]", "secret = '0123456789abcdef0123456789abcdef'"]));
        assert!(!shown.contains("0123456789abcdef") && !shown.contains("c4bbcb1f"), "{shown}");
    }

    #[test]
    fn shipped_api_example_is_valid_once_uncommented() {
        let jwks = jwks();
        let shipped = super::super::Config::EMBEDDED;
        let start = shipped.find("\n# [api]\n").expect("the shipped file documents [api]");
        fn setting(l: &str) -> Option<&str> {
            let body = l.strip_prefix("# ")?;
            let key = body.split(" = ").next()?;
            let is_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            (body.starts_with("[api") || (is_key && body.contains(" = "))).then_some(body)
        }
        let mut text = shipped[..start].to_owned();
        for line in shipped[start..].lines() {
            let line = match setting(line) {
                Some(body) if body.starts_with("secret = ") => "secret = '0123456789abcdef0123456789abcdef'".to_owned(),
                Some(body) if body.starts_with("jwks-file = ") => format!("jwks-file = '{}'", jwks.path().display()),
                Some(body) => body.to_owned(),
                None => line.to_owned(),
            };
            text.push_str(&line);
            text.push('\n');
        }
        let c = super::super::Config::parse(&text, "uncommented").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let api = c.api.expect("[api] uncommented");
        assert_eq!((api.listen.port(), api.key_hashes.len(), api.uris.len()), (8080, 1, 2));
        assert_eq!(api.jwt.and_then(|j| j.audience).as_deref(), Some("my-project"));
    }

    #[test]
    fn api_errors_name_key_and_line() {
        let jwks = jwks();
        let jwks_line = format!("jwks-file = '{}'", jwks.path().display());
        let not_jwks = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_jwks.path(), r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap();
        let not_jwks_line = format!("jwks-file = '{}'", not_jwks.path().display());
        let first_key = format!("'{ENTRY}',");
        #[rustfmt::skip]
        let cases: Vec<(Vec<&str>, &str, Option<usize>)> = vec![
            (vec!["[api]", KEYS, "listen = '127.0.0.1'"], "api.listen", Some(3)),
            (vec!["[api]", KEYS, "listen = '127.0.0.1:3478'"], "api.listen", Some(3)),
            (vec!["[api]", "keys = ['sha256:abc']"], "api.keys[0]", Some(2)),
            (vec!["[api]", "keys = [", &first_key, "'c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a']"],
             "api.keys[1]", Some(4)),
            (vec!["[api]", "listen = '127.0.0.1:8080'"], "api.keys", Some(1)),
            (vec!["[api]", KEYS, "public-host = 'turn.example.com:3478'"], "api.public-host", Some(3)),
            (vec!["[api]", KEYS, "uris = ['http://turn.example.com']"], "api.uris[0]", Some(3)),
            (vec!["[api]", KEYS, "default-ttl = 59"], "api.default-ttl", Some(3)),
            (vec!["[api]", KEYS, "default-ttl = 86401"], "api.default-ttl", Some(3)),
            (vec!["[api]", KEYS, "rate-per-ip = -1"], "api.rate-per-ip", Some(3)),
            (vec!["[api]", KEYS, "rate-per-user = 1000001"], "api.rate-per-user", Some(3)),
            (vec!["[api]", KEYS, "cors-origins = ['app.example.com']"], "api.cors-origins[0]", Some(3)),
            (vec!["[api]", KEYS, "cors-origins = ['https://a.example/path']"], "api.cors-origins[0]", Some(3)),
            (vec!["[api]", KEYS, "cors-origins = ['*', 'https://a.example']"], "api.cors-origins[0]", Some(3)),
            (vec!["[api]", "[api.jwt]", "secret = 'short'"], "api.jwt.secret", Some(3)),
            (vec!["[api]", "[api.jwt]", "issuer = 'x'"], "api.jwt", Some(2)),
            (vec!["[api]", "[api.jwt]", "jwks-file = '/nonexistent/jwks.json'", "issuer = 'i'", "audience = 'a'"],
             "api.jwt.jwks-file", Some(3)),
            (vec!["[api]", "[api.jwt]", &not_jwks_line, "issuer = 'i'", "audience = 'a'"], "api.jwt.jwks-file", Some(3)),
            (vec!["[api]", "[api.jwt]", &jwks_line, "audience = 'a'"], "api.jwt.issuer", Some(2)),
            (vec!["[api]", "[api.jwt]", &jwks_line, "issuer = 'i'"], "api.jwt.audience", Some(2)),
            (vec!["[api]", "[api.jwt]", &jwks_line, "issuer = ''", "audience = 'a'"], "api.jwt.issuer", Some(4)),
            (vec!["[api]", KEYS, "[api.jwt]", "secret = '0123456789abcdef0123456789abcdef'", "leeway = 301"],
             "api.jwt.leeway", Some(5)),
            // The API signs with a REST secret, so one must exist.
            (vec!["[auth]", "[[auth.users]]", "name = 'a'", "password = 'b'", "[api]", KEYS], "auth.secrets", None),
        ];
        for (lines, key, line) in cases {
            let text = doc(&lines);
            let (got_key, got_line, reason) = invalid_of(&text);
            assert_eq!((got_key.as_str(), got_line), (key, line), "{text}\n=> {reason}");
        }
        let (_, _, reason) = invalid_of(&doc(&["[api]", "keys = ['x']"]));
        assert!(reason.contains("turnd api-key-hash"), "{reason}");
        let (_, _, reason) = invalid_of(&doc(&["[api]", "[api.jwt]", &jwks_line, "audience = 'a'"]));
        assert!(reason.contains("securetoken.google.com"), "{reason}");
    }

    #[test]
    fn api_flags() {
        let o = Overrides {
            api_listen: Some("127.0.0.1:0".into()),
            api_keys: vec!["correct-horse-battery-staple".into()],
            public_host: Some("turn.example.org".into()),
            ..Overrides::default()
        };
        let api = load_with(None, &o).unwrap().api.expect("--api-listen enables the API");
        assert_eq!(api.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(api.key_hashes, vec![hash_api_key("correct-horse-battery-staple")]);
        assert_eq!(api.public_host, "turn.example.org");
        assert!(!format!("{o:?}").contains("horse"));
        let d = Overrides::default;
        let listen = || Some("127.0.0.1:0".to_owned());
        #[rustfmt::skip]
        let cases: Vec<(Overrides, &str)> = vec![
            (Overrides { api_keys: vec!["correct-horse-battery-staple".into()], ..d() }, "--api-key"),
            (Overrides { public_host: Some("h".into()), ..d() }, "--public-host"),
            // No key at all: blamed on the flag that enabled the API.
            (Overrides { api_listen: listen(), ..d() }, "--api-listen"),
            (Overrides { api_listen: listen(), api_keys: vec!["short".into()], ..d() }, "--api-key"),
            (Overrides { api_listen: listen(), api_keys: vec!["with a space in it".into()], ..d() }, "--api-key"),
            (Overrides { api_listen: Some("nope".into()), api_keys: o.api_keys.clone(), ..d() }, "--api-listen"),
            (Overrides { api_listen: listen(), api_keys: o.api_keys.clone(), public_host: Some("a b".into()), ..d() },
             "--public-host"),
        ];
        for (i, (o, name)) in cases.into_iter().enumerate() {
            match load_with(None, &o) {
                Err(ConfigError::Invalid { key, reason, .. }) => assert_eq!(key, name, "case {i}: {reason}"),
                other => panic!("case {i}: {other:?}"),
            }
        }
        // --api-key adds to the file's keys; --api-listen replaces its listen address.
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let text = format!("[auth]\nsecrets = ['s']\n[api]\nlisten = '127.0.0.1:9000'\n{KEYS}\n");
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        let o = Overrides { api_keys: vec!["another-key-of-length".into()], ..d() };
        let api = load_with(Some(file.path()), &o).unwrap().api.unwrap();
        assert_eq!((api.key_hashes.len(), api.listen.port()), (2, 9000));
    }

    #[test]
    fn key_entries_round_trip() {
        let entry = api_key_entry("correct horse battery staple");
        // printf %s 'correct horse battery staple' | sha256sum
        assert_eq!(entry, "sha256:c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a");
        assert_eq!(parse_key_hash(&entry), Some(hash_api_key("correct horse battery staple")));
        assert_eq!(parse_key_hash(&entry.to_uppercase().replace("SHA256", "sha256")), parse_key_hash(&entry));
        for bad in
            ["", "sha256:", "sha256:abc", "md5:c4bbcb1fbec99d65bf59d85c8cb62ee2", &entry[..70], &format!("{entry}0")]
        {
            assert_eq!(parse_key_hash(bad), None, "{bad}");
        }
        assert_eq!(parse_key_hash(&entry.replace('c', "g")), None);
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("Turn.Example.com").as_deref(), Some("turn.example.com"));
        assert_eq!(parse_host("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(parse_host("[2001:db8::1]").as_deref(), Some("2001:db8::1"));
        assert_eq!(parse_host("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(parse_host("localhost").as_deref(), Some("localhost"));
        for bad in ["", "turn.example.com:3478", "https://x", "-a.b", "a..b", "a_b.c", "1.2.3", &"a".repeat(64)] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
    }
}
