//! TURN REST secrets: `auth.secrets` and the file `auth.secrets-file` names (one secret per
//! line, re-read on every load, so SIGHUP picks up a rotated file), and where relative file
//! names in the configuration resolve (systemd credentials, or next to the configuration).

use std::path::{Path, PathBuf};

use super::{or, At, Checked, RawConfig, DEMO_SECRET};

/// Largest secrets file read (systemd's limit on one credential, too).
pub const MAX_SECRETS_FILE: u64 = 1 << 20;

impl RawConfig {
    /// `auth.secrets`, then the secrets of `auth.secrets-file` (or its other name), and the
    /// path they were read from. The demo secret is refused off loopback wherever it is.
    pub(super) fn secrets(&self, outside: Option<&str>) -> Checked<(Vec<String>, Option<PathBuf>)> {
        let demo = |place: &str, outside: &str| {
            format!(
                "{place}the demo secret `{DEMO_SECRET}` is only accepted when every address that serves \
                 TURN is loopback, and {outside} is not; replace it with a long random secret (e.g. \
                 `openssl rand -hex 32`)"
            )
        };
        let list = or(&self.auth.secrets, Vec::new());
        let mut out = Vec::with_capacity(list.value.len());
        for (i, item) in list.value.into_iter().enumerate() {
            let key = format!("auth.secrets[{i}]");
            if item.value.is_empty() {
                return Err(self.err(&key, item.at, "must not be empty"));
            }
            if let (true, Some(outside)) = (item.value == DEMO_SECRET, outside) {
                return Err(self.err(&key, item.at, demo("", outside)));
            }
            out.push(item.value);
        }
        let (key, item) = match (&self.auth.secrets_file, &self.auth.static_auth_secret_file) {
            (None, None) => return Ok((out, None)),
            (Some(item), None) => ("auth.secrets-file", item),
            (None, Some(item)) => ("auth.static-auth-secret-file", item),
            (Some(_), Some(item)) => {
                let reason = "is another name of auth.secrets-file: set only one of them";
                return Err(self.err("auth.static-auth-secret-file", item.at, reason));
            }
        };
        if item.value.is_empty() {
            return Err(self.err(key, item.at, "must not be empty"));
        }
        let (path, how) = self.resolve(&item.value, item.at);
        let text = read_secrets_file(&path).map_err(|e| self.err(key, item.at, format!("{e}{how}")))?;
        let mut lines = 0;
        for (n, line) in text.lines().enumerate() {
            let secret = line.trim();
            if secret.is_empty() || secret.starts_with('#') {
                continue;
            }
            lines += 1;
            if let (true, Some(outside)) = (secret == DEMO_SECRET, outside) {
                let place = format!("{} line {}: ", path.display(), n + 1);
                return Err(self.err(key, item.at, demo(&place, outside)));
            }
            if !out.iter().any(|s| s == secret) {
                out.push(secret.to_owned());
            }
        }
        if lines == 0 {
            let reason = format!(
                "{} has no secret: write one secret per line (blank lines and lines starting with # are \
                 ignored){how}",
                path.display()
            );
            return Err(self.err(key, item.at, reason));
        }
        Ok((out, Some(path)))
    }

    /// Where a file named in the configuration is: an absolute path as it is; a relative one in
    /// `$CREDENTIALS_DIRECTORY` when that is set (a systemd credential), else next to the
    /// configuration file (a flag's: in the working directory). Also a note for errors that
    /// says which rule applied.
    pub(super) fn resolve(&self, name: &str, at: At) -> (PathBuf, &'static str) {
        let path = Path::new(name);
        if path.is_absolute() {
            return (path.to_path_buf(), "");
        }
        match (&self.credentials_dir, &self.config_dir, at) {
            (Some(dir), _, _) => (
                dir.join(path),
                " (a relative path names a systemd credential while $CREDENTIALS_DIRECTORY is set; \
                 give an absolute path for any other file)",
            ),
            (None, Some(dir), At::Offset(_)) => (dir.join(path), " (relative to the configuration file's directory)"),
            _ => (path.to_path_buf(), ""),
        }
    }
}

/// The text of a secrets file: a readable regular file of UTF-8 text, at most
/// [`MAX_SECRETS_FILE`] bytes. The error names the file and the reason.
fn read_secrets_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if metadata.len() > MAX_SECRETS_FILE {
        return Err(format!("{shown} is larger than {MAX_SECRETS_FILE} bytes; it should hold one secret per line"));
    }
    let mut text = String::new();
    file.take(MAX_SECRETS_FILE).read_to_string(&mut text).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{shown} is not UTF-8 text"),
        _ => format!("cannot read {shown}: {e}"),
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tests::doc;
    use super::super::{load_with, Config, ConfigError, Overrides, RawConfig, CLI_ORIGIN, DEMO_SECRET};

    /// Validates `text` as if it were `dir/t.toml`, with `$CREDENTIALS_DIRECTORY` = `credentials`
    /// (set here, not read from the environment, so the tests do not depend on it).
    fn load_in(dir: &Path, text: &str, credentials: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::parse(text, "t.toml")?;
        raw.config_dir = Some(dir.to_path_buf());
        raw.credentials_dir = credentials.map(Path::to_path_buf);
        o.apply(&mut raw)?;
        raw.validate()
    }

    /// The key, line and reason of an `Invalid` error from the file.
    fn invalid(result: Result<Config, ConfigError>) -> (String, Option<usize>, String) {
        match result {
            Err(ConfigError::Invalid { origin, key, line, reason }) => {
                assert_eq!(origin, "t.toml", "{reason}");
                (key, line, reason)
            }
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    const SECRETS: &str = "# rotated 2026-01-01\n\n  new-secret  \r\nold-secret\n# old-secret-2\ninline\n";

    #[test]
    fn file_secrets_follow_the_inline_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets"), SECRETS).unwrap();
        let text = doc(&["[auth]", "secrets = ['inline']", "secrets-file = 'secrets'"]);
        let c = load_in(dir.path(), &text, None, &Overrides::default()).unwrap();
        // Trimmed, comments and blank lines skipped, a secret already listed only once.
        assert_eq!(c.secrets, ["inline", "new-secret", "old-secret"]);
        assert_eq!(c.secrets_file.as_deref(), Some(dir.path().join("secrets").as_path()));
        // A file alone is enough; coturn's NixOS name works the same; an absolute path too.
        let path = dir.path().join("secrets").display().to_string();
        for line in
            ["secrets-file = 'secrets'", "static-auth-secret-file = 'secrets'", &format!("secrets-file = '{path}'")]
        {
            let c = load_in(dir.path(), &doc(&["[auth]", line]), None, &Overrides::default()).unwrap();
            assert_eq!(c.secrets, ["new-secret", "old-secret", "inline"], "{line}");
        }
        // Debug shows the file, never a secret.
        let shown = format!("{c:?}");
        assert!(shown.contains(&path) && !shown.contains("new-secret"), "{shown}");
    }

    #[test]
    fn relative_names_are_credentials_under_systemd() {
        let (dir, credentials) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(dir.path().join("secrets"), "next-to-the-config\n").unwrap();
        std::fs::write(credentials.path().join("secrets"), "a-credential\n").unwrap();
        let text = doc(&["[auth]", "secrets-file = 'secrets'"]);
        let c = load_in(dir.path(), &text, Some(credentials.path()), &Overrides::default()).unwrap();
        assert_eq!(
            (c.secrets.as_slice(), c.secrets_file.unwrap()),
            (&["a-credential".to_owned()][..], credentials.path().join("secrets"))
        );
        let c = load_in(dir.path(), &text, None, &Overrides::default()).unwrap();
        assert_eq!(c.secrets, ["next-to-the-config"]);
        // The flag replaces the key (either name); relative to the credentials too.
        let o = Overrides { secrets_file: Some("secrets".into()), ..Overrides::default() };
        let text = doc(&["[auth]", "static-auth-secret-file = '/nonexistent/secrets'"]);
        let c = load_in(dir.path(), &text, Some(credentials.path()), &o).unwrap();
        assert_eq!(c.secrets, ["a-credential"]);
        // A missing credential says where it was looked for and why there.
        let (key, line, reason) = invalid(load_in(
            dir.path(),
            &doc(&["[auth]", "secrets-file = 'other'"]),
            Some(credentials.path()),
            &Overrides::default(),
        ));
        assert_eq!((key.as_str(), line), ("auth.secrets-file", Some(2)));
        let missing = credentials.path().join("other").display().to_string();
        assert!(reason.contains(&missing) && reason.contains("$CREDENTIALS_DIRECTORY"), "{reason}");
    }

    #[test]
    fn bad_secrets_files_name_the_key_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("comments", b"# nothing yet\n\n   \n");
        write("empty", b"");
        write("binary", b"\xff\xfe secret\n");
        write("demo", format!("good\n{DEMO_SECRET}\n").as_bytes());
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        #[rustfmt::skip]
        let cases: [(&str, &str, &str); 7] = [
            ("secrets-file = 'missing'", "missing", "No such file"),
            ("secrets-file = 'empty'", "empty", "has no secret"),
            ("secrets-file = 'comments'", "comments", "has no secret"),
            ("secrets-file = 'binary'", "binary", "not UTF-8"),
            ("secrets-file = 'dir'", "dir", "not a regular file"),
            ("static-auth-secret-file = 'missing'", "missing", "No such file"),
            ("secrets-file = ''", "", "must not be empty"),
        ];
        for (line, file, why) in cases {
            let text = doc(&["[server]", "listen = ['127.0.0.1:3478']", "[auth]", line]);
            let (key, got_line, reason) = invalid(load_in(dir.path(), &text, None, &Overrides::default()));
            let name = line.split(' ').next().unwrap();
            assert_eq!((key, got_line), (format!("auth.{name}"), Some(4)), "{reason}");
            assert!(reason.contains(why), "{line}: {reason}");
            let path = dir.path().join(file).display().to_string();
            assert!(file.is_empty() || reason.contains(&path), "{line}: {reason}");
        }
        // The demo secret off loopback: the file and its line are named.
        let text = doc(&["[server]", "listen = ['10.0.0.5:3478']", "[auth]", "secrets-file = 'demo'"]);
        let (key, line, reason) = invalid(load_in(dir.path(), &text, None, &Overrides::default()));
        assert_eq!((key.as_str(), line), ("auth.secrets-file", Some(4)));
        assert!(
            reason.starts_with(&format!("{} line 2: the demo secret", dir.path().join("demo").display())),
            "{reason}"
        );
        // Both names at once.
        let text = doc(&["[auth]", "secrets-file = 'demo'", "static-auth-secret-file = 'demo'"]);
        let (key, line, _) = invalid(load_in(dir.path(), &text, None, &Overrides::default()));
        assert_eq!((key.as_str(), line), ("auth.static-auth-secret-file", Some(3)));
        // A flag's error names the flag.
        let o = Overrides { secrets_file: Some("/nonexistent/turnd/secrets".into()), ..Overrides::default() };
        match load_with(None, &o) {
            Err(ConfigError::Invalid { origin, key, reason, .. }) => {
                assert_eq!((origin.as_str(), key.as_str()), (CLI_ORIGIN, "--secrets-file"));
                assert!(reason.contains("/nonexistent/turnd/secrets"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
