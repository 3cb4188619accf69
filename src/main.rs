//! `turnd`: the TURN relay daemon's command line.
//!
//! `turnd [--config PATH] [OVERRIDES]` runs the daemon, `turnd check-config PATH`
//! validates a file, `turnd import-coturn PATH` converts a coturn `turnserver.conf`,
//! `turnd credentials ...` prints TURN REST credentials, and `turnd api-key-hash` prints
//! the `api.keys` entry for an API key.
//! Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.

use std::io::{BufRead as _, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use turnd::config::{self, Config, ConfigError, Overrides};

/// Exit code for configuration and usage errors.
const EXIT_CONFIG: u8 = 2;
/// Exit code for failures while running.
const EXIT_RUNTIME: u8 = 1;

/// A fast, safe-by-default TURN/STUN relay daemon.
#[derive(Parser)]
#[command(name = "turnd", version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Configuration file [default: the built-in turnserver.toml: loopback only, demo credentials]
    #[arg(long, short = 'c', value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags that override keys of the configuration file; lists replace the file's lists.
#[derive(Args)]
#[command(next_help_heading = "Overrides (applied on top of the configuration file)")]
struct OverrideArgs {
    /// UDP address to listen on (repeatable; replaces server.listen)
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<String>,
    /// IP that relay sockets bind to (repeatable: one IPv4, one IPv6; replaces server.relay-ip)
    #[arg(long, value_name = "IP")]
    relay_ip: Vec<String>,
    /// Public IP given to clients, behind NAT (repeatable: one per family; replaces
    /// server.external-ip)
    #[arg(long, value_name = "PUBLIC[/PRIVATE]")]
    external_ip: Vec<String>,
    /// Realm for long-term credentials (auth.realm)
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,
    /// TURN REST shared secret (repeatable; replaces auth.secrets). Visible in the
    /// process list: prefer the configuration file
    #[arg(long, value_name = "SECRET")]
    auth_secret: Vec<String>,
    /// File of TURN REST shared secrets, one per line, added to auth.secrets
    /// (auth.secrets-file). A relative name is a systemd credential when
    /// $CREDENTIALS_DIRECTORY is set
    #[arg(long, value_name = "FILE")]
    secrets_file: Option<String>,
    /// Static user (repeatable; replaces auth.users). Visible in the process list
    #[arg(long, value_name = "NAME:PASSWORD")]
    user: Vec<String>,
    /// Peer range always allowed (repeatable; replaces peers.allowed)
    #[arg(long, value_name = "CIDR")]
    allow_peer: Vec<String>,
    /// Lowest relay port (server.min-port)
    #[arg(long, value_name = "PORT")]
    min_port: Option<u64>,
    /// Highest relay port (server.max-port)
    #[arg(long, value_name = "PORT")]
    max_port: Option<u64>,
    /// Worker threads, 0 = one per core (server.workers)
    #[arg(long, value_name = "N")]
    workers: Option<u64>,
    /// Log filter such as "info" or "turnd=debug,warn" (server.log-level; RUST_LOG wins)
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Do not serve TURN over TCP on the listen addresses (server.tcp = false)
    #[arg(long)]
    no_tcp: bool,
    /// Address for TURN over TLS (repeatable; replaces server.tls-listen)
    #[arg(long, value_name = "ADDR:PORT")]
    tls_listen: Vec<String>,
    /// PEM certificate chain for TLS (server.cert)
    #[arg(long, value_name = "FILE")]
    cert: Option<String>,
    /// PEM private key for TLS (server.key)
    #[arg(long, value_name = "FILE")]
    key: Option<String>,
    /// Address of the credentials HTTP API; enables it (api.listen)
    #[arg(long, value_name = "ADDR:PORT")]
    api_listen: Option<String>,
    /// API key accepted by the credentials API (repeatable; added to api.keys). Visible in the
    /// process list: prefer hashed keys in the configuration file
    #[arg(long, value_name = "KEY")]
    api_key: Vec<String>,
    /// Host name or IP put in the TURN URIs the API hands out (api.public-host)
    #[arg(long, value_name = "HOST")]
    public_host: Option<String>,
}

impl From<OverrideArgs> for Overrides {
    fn from(a: OverrideArgs) -> Overrides {
        Overrides {
            listen: a.listen,
            relay_ip: a.relay_ip,
            external_ip: a.external_ip,
            realm: a.realm,
            auth_secrets: a.auth_secret,
            secrets_file: a.secrets_file,
            users: a.user,
            allow_peers: a.allow_peer,
            min_port: a.min_port,
            max_port: a.max_port,
            workers: a.workers,
            log_level: a.log_level,
            no_tcp: a.no_tcp,
            tls_listen: a.tls_listen,
            cert: a.cert,
            key: a.key,
            api_listen: a.api_listen,
            api_keys: a.api_key,
            public_host: a.public_host,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file: print "PATH: ok" (exit 0) or the error (exit 2)
    CheckConfig {
        /// The file to check
        path: PathBuf,
    },
    /// Convert a coturn turnserver.conf into turnserver.toml: the TOML on stdout (or -o FILE), and
    /// on stderr each option left out, with its line and the reason. Exits 0 once converted, 2 on an
    /// unreadable file or a value that cannot be converted (naming the line)
    ImportCoturn {
        /// The coturn configuration file
        path: PathBuf,
        /// Write the TOML to this file (mode 0600, even if it existed: it holds secrets) instead of stdout
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a TURN REST username and password made with a shared secret
    Credentials {
        /// The shared secret (one of auth.secrets)
        #[arg(long)]
        secret: String,
        /// The user the credentials are for
        #[arg(long)]
        user: String,
        /// Validity from now, in seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
        ttl: u64,
        /// Separator between expiry and user (auth.rest-separator)
        #[arg(long, value_name = "C", default_value_t = ':')]
        separator: char,
    },
    /// Print the api.keys entry ("sha256:<hex>") for an API key. Without KEY the key is read
    /// from standard input (one line), which keeps it out of the process list and shell history
    ApiKeyHash {
        /// The API key
        key: Option<String>,
    },
    /// Check a TURN server end to end: Binding, two Allocates, CreatePermission and a round trip
    /// through the relay. Exits 0, or 1 naming the step that failed (for monitoring and cron)
    Probe {
        /// The server, HOST:PORT
        #[arg(long, value_name = "HOST:PORT")]
        server: String,
        /// TURN REST shared secret: the probe makes its own credentials with it
        #[arg(long, conflicts_with = "password")]
        secret: Option<String>,
        /// User name (static user with --password; the user part of REST credentials with --secret)
        #[arg(long, default_value = "turnd-probe")]
        user: String,
        /// Password of a static user
        #[arg(long, requires = "user")]
        password: Option<String>,
    },
    /// Load a TURN server (turnd or coturn) over UDP: throughput, bursts, Allocate rate,
    /// latency percentiles or held allocations, with the server's CPU and RSS given its PID.
    /// Exits 0, 1 when the run failed, 2 for bad options (a non-loopback target without
    /// --allow-remote). A flag given twice takes its last value
    #[command(args_override_self = true)]
    Bench(Box<turnd::bench::BenchArgs>),
    /// The bare recvmmsg/sendmmsg forwarder `benches/compare.sh` measures as the floor of a
    /// relay's CPU per packet: strips the ChannelData header of what reaches --listen and sends
    /// the payload to --to (`turnd bench --bare --peer-port`). Prints its address, then its
    /// counts when --exit-after ends it. Exits 2 for bad options (a non-loopback address
    /// without --allow-remote)
    BenchForwarder(turnd::bench::forwarder::ForwarderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { path }) => match check_config(&path) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_CONFIG, &e),
        },
        Some(Command::ImportCoturn { path, output }) => match import_coturn(&path, output.as_deref()) {
            Ok(report) => {
                eprint!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_CONFIG, &e),
        },
        Some(Command::Credentials { secret, user, ttl, separator }) => {
            match credentials(&secret, &user, ttl, separator, unix_now()) {
                Ok((username, password)) => {
                    println!("username: {username}");
                    println!("password: {password}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_CONFIG, &e),
            }
        }
        Some(Command::ApiKeyHash { key }) => {
            let key = match key {
                Some(key) => Ok(key),
                None => read_key_line(std::io::stdin().lock()),
            };
            match key.and_then(|k| api_key_hash(&k)) {
                Ok(entry) => {
                    println!("{entry}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_CONFIG, &e),
            }
        }
        Some(Command::Probe { server, secret, user, password }) => probe(&server, secret, user, password),
        Some(Command::Bench(args)) => match turnd::bench::main(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ turnd::bench::BenchError::Usage(_)) => fail(EXIT_CONFIG, &format!("bench: {e}")),
            Err(e) => fail(EXIT_RUNTIME, &format!("bench: {e}")),
        },
        Some(Command::BenchForwarder(args)) => match turnd::bench::forwarder::main(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ turnd::bench::BenchError::Usage(_)) => fail(EXIT_CONFIG, &format!("bench-forwarder: {e}")),
            Err(e) => fail(EXIT_RUNTIME, &format!("bench-forwarder: {e}")),
        },
        None => run(cli.config.as_deref(), &cli.overrides.into()),
    }
}

/// `turnd probe`: prints each finding and exits 1 with the failing step.
fn probe(server: &str, secret: Option<String>, user: String, password: Option<String>) -> ExitCode {
    use std::net::ToSocketAddrs;
    let Some(addr) = server.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return fail(EXIT_CONFIG, &format!("probe: cannot resolve --server {server}"));
    };
    let creds = match (secret, password) {
        (Some(secret), None) => {
            // A REST credential valid for ten minutes.
            let username = turnd::auth::rest_username(unix_now() + 600, &user, ':');
            let password = turnd::auth::rest_password(&secret, &username);
            turnd::probe::ProbeCredentials { username, password }
        }
        (None, Some(password)) => turnd::probe::ProbeCredentials { username: user, password },
        _ => return fail(EXIT_CONFIG, &"probe: give --secret, or --user and --password"),
    };
    match turnd::probe::run(addr, &creds) {
        Ok(report) => {
            println!("ok: mapped {} relayed {} and {}", report.mapped, report.relayed[0], report.relayed[1]);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_RUNTIME, &format!("probe failed at {e}")),
    }
}

/// The first line of `input`, without its line ending (at most 4 KiB are read).
fn read_key_line(input: impl std::io::BufRead) -> Result<String, String> {
    let mut line = String::new();
    std::io::Read::take(input, 4096)
        .read_line(&mut line)
        .map_err(|e| format!("api-key-hash: cannot read the key from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The `api.keys` entry for `key`, refusing keys `--api-key` would refuse.
fn api_key_hash(key: &str) -> Result<String, String> {
    let min = config::MIN_API_KEY_LEN;
    if key.chars().count() < min || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "api-key-hash: an API key must be at least {min} characters without spaces (e.g. `openssl rand -hex 24`)"
        ));
    }
    Ok(config::api_key_entry(key))
}

/// Print `turnd: <error>` to stderr and return `code`.
fn fail(code: u8, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("turnd: {error}");
    ExitCode::from(code)
}

/// Load and validate `path`; on success the line to print.
fn check_config(path: &Path) -> Result<String, ConfigError> {
    Config::load(path)?;
    Ok(format!("{}: ok", path.display()))
}

/// `turnd import-coturn`: read `path`, convert it, write the TOML to `output` (or stdout); the
/// report to print on success, or an error naming the file (and line).
fn import_coturn(path: &Path, output: Option<&Path>) -> Result<config::import::Report, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("import-coturn: cannot read {shown}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        format!("import-coturn: {shown}:{line}: not UTF-8 text")
    })?;
    // Used only when the coturn file has no credentials at all.
    let mut random = [0u8; 32];
    getrandom::getrandom(&mut random).map_err(|e| format!("import-coturn: no random numbers: {e}"))?;
    let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let imported = config::import::import_coturn(&text, &secret)
        .map_err(|e| format!("import-coturn: {shown}:{}: {}: {}", e.line, e.option, e.message))?;
    match output {
        None => print!("{}", imported.toml),
        Some(out) => write_private(out, &imported.toml)
            .map_err(|e| format!("import-coturn: cannot write {}: {e}", out.display()))?,
    }
    Ok(imported.report)
}

/// Write `text` to `path` as a file readable by its owner only (mode 0600: it holds secrets),
/// whether `path` existed or not, and whole or not at all: the text goes to a new 0600 file
/// next to it, which then replaces `path` (the file a symlink names, when `path` is one). An
/// existing file's mode is not kept, so a 0644 copy of the example cannot expose the secrets.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(name) = target.file_name() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"));
    };
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).and_then(|mut f| {
        // Exactly 0600, whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, &target)
    });
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Seconds since the Unix epoch (0 if the clock is before it). main.rs may read the clock.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// TURN REST credentials valid until `now + ttl`: `(username, password)`.
fn credentials(secret: &str, user: &str, ttl: u64, separator: char, now: u64) -> Result<(String, String), String> {
    if secret.is_empty() {
        return Err("credentials: --secret must not be empty".into());
    }
    if user.is_empty() {
        return Err("credentials: --user must not be empty".into());
    }
    if separator.is_ascii_digit() || separator.is_whitespace() || separator.is_control() {
        return Err("credentials: --separator must not be a digit or whitespace".into());
    }
    let username = turnd::auth::rest_username(now.saturating_add(ttl), user, separator);
    let password = turnd::auth::rest_password(secret, &username);
    Ok((username, password))
}

/// The log filter: RUST_LOG when set and non-empty, else the configured directives.
fn env_filter(configured: &str) -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => config::log_filter(&v).map_err(|e| format!("invalid RUST_LOG `{v}`: {e}")),
        _ => config::log_filter(configured).map_err(|e| format!("invalid log-level: {e}")),
    }
}

/// Run the daemon until it stops.
fn run(path: Option<&Path>, overrides: &Overrides) -> ExitCode {
    let config = match config::load_with(path, overrides) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let filter = match env_filter(&config.log_level) {
        Ok(filter) => filter,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    // The filter sits behind a reload layer so that SIGHUP can change the log level.
    let (filter, log_level) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if let Err(e) = tracing_subscriber::registry().with(filter).with(fmt).try_init() {
        return fail(EXIT_RUNTIME, &format!("cannot set up logging: {e}"));
    }
    let source = path.map_or_else(|| config::EMBEDDED_ORIGIN.to_owned(), |p| p.display().to_string());
    // Counts only: secrets and passwords are never logged.
    tracing::info!(
        config = %source,
        listen = ?config.listen,
        relay_ip = %config.relay_ip,
        external_ip = ?config.external_ip,
        second_relay = ?config.second_relay,
        ports = %format_args!("{}-{}", config.min_port, config.max_port),
        workers = config.workers,
        realm = %config.realm,
        secrets = config.secrets.len(),
        users = config.users.len(),
        "starting turnd {}",
        env!("CARGO_PKG_VERSION"),
    );
    if path.is_none() {
        tracing::warn!("no --config given: using the built-in turnserver.toml (demo credentials)");
    }
    // SIGHUP: the same file and flags again; the log level is applied here, the rest by io.
    let (path, overrides) = (path.map(Path::to_path_buf), overrides.clone());
    let reload = Box::new(move || {
        let config = config::load_with(path.as_deref(), &overrides).map_err(|e| e.to_string())?;
        let filter = env_filter(&config.log_level)?;
        log_level.reload(filter).map_err(|e| format!("cannot change the log level: {e}"))?;
        Ok(config)
    });
    match turnd::io::run(config, reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_RUNTIME, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_config_accepts_the_shipped_file() {
        let file = write(Config::EMBEDDED);
        let line = check_config(file.path()).unwrap();
        assert_eq!(line, format!("{}: ok", file.path().display()));
    }

    #[test]
    fn check_config_reports_key_and_line() {
        let file = write("[server]\nlisten = [\"127.0.0.1:3478\"]\nmin-port = 0\n");
        let err = check_config(file.path()).unwrap_err().to_string();
        assert!(err.ends_with(":3: server.min-port: 0 is out of range 1..=65535"), "{err}");
        let missing = file.path().with_extension("nope");
        assert!(matches!(check_config(&missing), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn import_coturn_output_is_private_even_when_the_file_exists() {
        use std::os::unix::fs::PermissionsExt as _;
        let conf = write("static-auth-secret=topsecret\nlistening-ip=127.0.0.1\n");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("turnserver.toml");
        std::fs::write(&out, "# a copy of the shipped example\n").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Through a symlink too: the file it names is replaced, the link stays.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        for path in [&out, &link] {
            import_coturn(conf.path(), Some(path)).unwrap();
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(text.contains("topsecret") && !text.contains("shipped example"), "{text}");
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "secrets written to a file with mode {mode:o}");
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        // Nothing else is left in the directory.
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["link.toml", "turnserver.toml"]);
        // A directory that does not exist: an error naming the path.
        let missing = dir.path().join("no-such-dir").join("turnserver.toml");
        let err = import_coturn(conf.path(), Some(&missing)).unwrap_err();
        assert!(err.starts_with(&format!("import-coturn: cannot write {}", missing.display())), "{err}");
    }

    #[test]
    fn import_coturn_names_the_file_and_line() {
        let file = write("realm=example.org\nuser=alice:pw\n");
        let out = tempfile::tempdir().unwrap();
        let toml = out.path().join("turnserver.toml");
        let report = import_coturn(file.path(), Some(&toml)).unwrap();
        assert_eq!(report.converted.len(), 2);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&toml).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(&toml).unwrap().contains("alice"));
        let shown = file.path().display();
        let bad = write("realm=example.org\n\nmin-port=x\n");
        let err = import_coturn(bad.path(), None).unwrap_err();
        assert_eq!(
            err,
            format!("import-coturn: {}:3: min-port: `x` is not a whole number from 1 to 65535", bad.path().display())
        );
        let mut binary = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut binary, b"realm=a\nrealm=\xff\n").unwrap();
        let err = import_coturn(binary.path(), None).unwrap_err();
        assert!(err.ends_with(&format!("{}:2: not UTF-8 text", binary.path().display())), "{err}");
        let err = import_coturn(&file.path().with_extension("missing"), None).unwrap_err();
        assert!(err.starts_with(&format!("import-coturn: cannot read {shown}.missing: ")), "{err}");
    }

    #[test]
    fn credentials_expire_after_ttl() {
        let (username, password) = credentials("s", "alice", 100, ':', 1_000).unwrap();
        assert_eq!(username, "1100:alice");
        assert_eq!(password, turnd::auth::rest_password("s", "1100:alice"));
        let (username, _) = credentials("s", "bob", u64::MAX, '/', 5).unwrap();
        assert_eq!(username, format!("{}/bob", u64::MAX));
        assert!(credentials("", "alice", 1, ':', 0).is_err());
        assert!(credentials("s", "", 1, ':', 0).is_err());
        assert!(credentials("s", "a", 1, '7', 0).is_err());
    }

    #[test]
    fn flags_become_overrides() {
        let cli = Cli::try_parse_from([
            "turnd",
            "--listen",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:2",
            "--user",
            "a:b",
            "--auth-secret",
            "s",
            "--allow-peer",
            "10.0.0.0/8",
            "--min-port",
            "1000",
            "--max-port",
            "2000",
            "--workers",
            "2",
            "--log-level",
            "debug",
            "--realm",
            "r",
            "--relay-ip",
            "127.0.0.1",
            "--external-ip",
            "203.0.113.1",
        ])
        .unwrap();
        assert!(cli.command.is_none() && cli.config.is_none());
        let o: Overrides = cli.overrides.into();
        assert_eq!(o.listen, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!((o.users.len(), o.auth_secrets.len(), o.allow_peers.len()), (1, 1, 1));
        assert_eq!((o.min_port, o.max_port, o.workers), (Some(1000), Some(2000), Some(2)));
        let c = config::load_with(None, &o).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.external_ip, Some("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn tcp_tls_and_api_flags_become_overrides() {
        let cli = Cli::try_parse_from([
            "turnd",
            "--no-tcp",
            "--tls-listen",
            "127.0.0.1:5349",
            "--tls-listen",
            "[::1]:5349",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--api-listen",
            "127.0.0.1:8080",
            "--api-key",
            "k1-0123456789abcdef",
            "--api-key",
            "k2-0123456789abcdef",
            "--public-host",
            "turn.example.com",
        ])
        .unwrap();
        let o: Overrides = cli.overrides.into();
        assert!(o.no_tcp);
        assert_eq!(o.tls_listen, ["127.0.0.1:5349", "[::1]:5349"]);
        assert_eq!((o.cert.as_deref(), o.key.as_deref()), (Some("c.pem"), Some("k.pem")));
        assert_eq!(o.api_listen.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(o.api_keys.len(), 2);
        assert_eq!(o.public_host.as_deref(), Some("turn.example.com"));
    }

    #[test]
    fn api_key_hash_prints_the_config_entry() {
        // printf %s 'correct-horse-battery-staple' | sha256sum
        let entry = api_key_hash("correct-horse-battery-staple").unwrap();
        assert_eq!(entry, "sha256:87cbebfeebc05f7c54ac9336c4b4bbec831227a641951a4bde7edd56020f8590");
        assert!(api_key_hash("short").is_err());
        assert!(api_key_hash("has a space in the key").is_err());
        // From standard input: the first line, without its line ending.
        let key = read_key_line(std::io::Cursor::new("correct-horse-battery-staple\r\nsecond line\n")).unwrap();
        assert_eq!(key, "correct-horse-battery-staple");
        let cli = Cli::try_parse_from(["turnd", "api-key-hash"]).unwrap();
        assert!(matches!(cli.command, Some(Command::ApiKeyHash { key: None })));
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from(["turnd", "check-config", "x.toml"]).unwrap();
        let Some(Command::CheckConfig { path }) = cli.command else {
            panic!("not check-config");
        };
        assert_eq!(path, Path::new("x.toml"));
        let cli = Cli::try_parse_from(["turnd", "credentials", "--secret", "s", "--user", "u"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Credentials { ttl: 86_400, separator: ':', .. })));
        // Run-time flags do not mix with subcommands.
        assert!(Cli::try_parse_from(["turnd", "--listen", "127.0.0.1:1", "check-config", "x"]).is_err());
        let cli = Cli::try_parse_from(["turnd", "--config", "a.toml"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("a.toml")));
        // bench: defaults, and a flag given twice takes its last value (scripts add their own).
        let cli =
            Cli::try_parse_from(["turnd", "bench", "127.0.0.1:3478", "--secret", "s", "--duration", "1"]).unwrap();
        let Some(Command::Bench(args)) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(
            (args.mode, args.allocations, args.size, args.duration),
            (turnd::bench::Mode::Throughput, 16, 200, 1.0)
        );
        let twice = ["turnd", "bench", "127.0.0.1:1", "--secret", "s", "--duration", "1", "--duration", "30"];
        let Some(Command::Bench(args)) = Cli::try_parse_from(twice).unwrap().command else {
            panic!("not bench");
        };
        assert_eq!(args.duration, 30.0);
    }
}
