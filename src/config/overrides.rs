//! Command-line overrides: flags patch the parsed file before it is validated, and every value
//! they set remembers its flag, so validation errors name the flag instead of a line.

use std::fmt;

use super::{invalid, ConfigError, Item, RawApi, RawConfig, RawUser, CLI_ORIGIN};

/// Command-line overrides, applied on top of the file before validation.
/// Empty lists and `None` mean "not given"; a given list replaces the file's list, except
/// `--api-key`, which adds keys to `api.keys`.
#[derive(Clone, Default)]
pub struct Overrides {
    /// `--listen ADDR:PORT` (repeatable): replaces `server.listen`.
    pub listen: Vec<String>,
    /// `--relay-ip IP` (repeatable: one IPv4, one IPv6): replaces `server.relay-ip`.
    pub relay_ip: Vec<String>,
    /// `--external-ip PUBLIC[/PRIVATE]` (repeatable: one per family): replaces
    /// `server.external-ip`.
    pub external_ip: Vec<String>,
    /// `--realm R`.
    pub realm: Option<String>,
    /// `--auth-secret S` (repeatable): replaces `auth.secrets`.
    pub auth_secrets: Vec<String>,
    /// `--secrets-file FILE`: replaces `auth.secrets-file` (and `static-auth-secret-file`).
    pub secrets_file: Option<String>,
    /// `--user NAME:PASSWORD` (repeatable, split at the first ':'): replaces `auth.users`.
    pub users: Vec<String>,
    /// `--allow-peer CIDR` (repeatable): replaces `peers.allowed`.
    pub allow_peers: Vec<String>,
    /// `--min-port`.
    pub min_port: Option<u64>,
    /// `--max-port`.
    pub max_port: Option<u64>,
    /// `--workers` (0 = one per core).
    pub workers: Option<u64>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--no-tcp`: sets `server.tcp = false`.
    pub no_tcp: bool,
    /// `--tls-listen ADDR:PORT` (repeatable): replaces `server.tls-listen`.
    pub tls_listen: Vec<String>,
    /// `--cert FILE`: `server.cert`.
    pub cert: Option<String>,
    /// `--key FILE`: `server.key`.
    pub key: Option<String>,
    /// `--api-listen ADDR:PORT`: `api.listen`; enables the credentials API.
    pub api_listen: Option<String>,
    /// `--api-key KEY` (repeatable): plain API keys, hashed when validated, added to `api.keys`.
    pub api_keys: Vec<String>,
    /// `--public-host HOST`: `api.public-host`.
    pub public_host: Option<String>,
}

impl fmt::Debug for Overrides {
    /// Shows only the listen addresses: other overrides may carry secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listen = &self.listen;
        f.debug_struct("Overrides").field("listen", listen).finish_non_exhaustive()
    }
}

impl Overrides {
    /// Patch `raw` with every override that was given. Only the shape of `--user` and whether
    /// the API flags have an API to apply to are checked here; everything else is checked by
    /// [`RawConfig::validate`], naming the flag.
    pub fn apply(&self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        let (server, auth) = (&mut raw.server, &mut raw.auth);
        let texts = [
            (&mut server.log_level, &self.log_level, "--log-level"),
            (&mut server.cert, &self.cert, "--cert"),
            (&mut server.key, &self.key, "--key"),
            (&mut auth.realm, &self.realm, "--realm"),
            (&mut auth.secrets_file, &self.secrets_file, "--secrets-file"),
        ];
        for (slot, value, flag) in texts.into_iter().filter(|t| t.1.is_some()) {
            *slot = value.clone().map(|v| Item::flag(v, flag));
        }
        let numbers = [
            (&mut server.min_port, self.min_port, "--min-port"),
            (&mut server.max_port, self.max_port, "--max-port"),
            (&mut server.workers, self.workers, "--workers"),
        ];
        for (slot, value, flag) in numbers.into_iter().filter(|t| t.1.is_some()) {
            *slot = value.map(|v| Item::flag(i64::try_from(v).unwrap_or(i64::MAX), flag));
        }
        let ips = [
            (&mut server.relay_ip, &self.relay_ip, "--relay-ip"),
            (&mut server.external_ip, &self.external_ip, "--external-ip"),
        ];
        for (slot, values, flag) in ips.into_iter().filter(|t| !t.1.is_empty()) {
            *slot = Some(Item::flag(super::relay::Ips::flag(values, flag), flag));
        }
        if self.secrets_file.is_some() {
            auth.static_auth_secret_file = None;
        }
        if self.no_tcp {
            server.tcp = Some(Item::flag(false, "--no-tcp"));
        }
        let lists = [
            (&mut server.listen, &self.listen, "--listen"),
            (&mut server.tls_listen, &self.tls_listen, "--tls-listen"),
            (&mut auth.secrets, &self.auth_secrets, "--auth-secret"),
            (&mut raw.peers.allowed, &self.allow_peers, "--allow-peer"),
        ];
        for (slot, values, flag) in lists.into_iter().filter(|t| !t.1.is_empty()) {
            let items = values.iter().map(|v| Item::flag(v.clone(), flag)).collect();
            *slot = Some(Item::flag(items, flag));
        }
        if !self.users.is_empty() {
            let mut users = Vec::with_capacity(self.users.len());
            for spec in &self.users {
                let Some((name, password)) = spec.split_once(':') else {
                    let reason = "expected NAME:PASSWORD";
                    return Err(invalid(CLI_ORIGIN, "--user", None, reason));
                };
                let user = RawUser {
                    name: Some(Item::flag(name.to_owned(), "--user")),
                    password: Some(Item::flag(password.to_owned(), "--user")),
                    key: None,
                };
                users.push(Item::flag(user, "--user"));
            }
            auth.users = users;
        }
        self.apply_api(raw)
    }

    /// `--api-listen` enables the API (an `[api]` table with defaults when the file has none);
    /// `--api-key` and `--public-host` need an enabled API.
    fn apply_api(&self, raw: &mut RawConfig) -> Result<(), ConfigError> {
        if let Some(listen) = &self.api_listen {
            let api = raw.api.get_or_insert_with(|| Item::flag(RawApi::default(), "--api-listen"));
            api.value.listen = Some(Item::flag(listen.clone(), "--api-listen"));
        }
        let Some(api) = raw.api.as_mut() else {
            let flag = match (&self.public_host, self.api_keys.is_empty()) {
                (Some(_), _) => "--public-host",
                (None, false) => "--api-key",
                (None, true) => return Ok(()),
            };
            let reason = "the credentials API is not enabled: add --api-listen ADDR:PORT or an [api] table";
            return Err(invalid(CLI_ORIGIN, flag, None, reason));
        };
        if let Some(host) = &self.public_host {
            api.value.public_host = Some(Item::flag(host.clone(), "--public-host"));
        }
        api.value.cli_keys.extend(self.api_keys.iter().cloned());
        Ok(())
    }
}
