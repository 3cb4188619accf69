//! What toml and serde errors become: the line and column of the problem, unknown keys named
//! with their table and the keys it has, and type errors with the dotted key they are about.

use super::ConfigError;

/// Each table and its keys, used to say which table an unknown key is in.
const TABLES: [&str; 9] = [
    "the top level: server auth allocation peers limits api",
    "[server]: listen relay-ip external-ip default-family min-port max-port workers receive-coalesce-us log-level tcp tls-listen cert key \
     alternate-servers redirect-all rfc5780 rfc5780-alternate mobility",
    "[auth]: realm secrets secrets-file static-auth-secret-file rest-separator nonce-lifetime rfc8489-security users",
    "[[auth.users]]: name password key",
    "[allocation]: default-lifetime max-lifetime user-quota total-quota",
    "[peers]: allowed denied",
    "[limits]: first-message-timeout tls-handshake-timeout idle-timeout max-connections max-connections-per-ip drain-time \
     allocate-rate challenge-rate max-bps bps-capacity",
    "[api]: listen keys public-host uris default-ttl rate-per-ip rate-per-user cors-origins metrics jwt",
    "[api.jwt]: secret jwks-file issuer audience leeway",
];

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let start = before.rfind('\n').map_or(0, |p| p + 1);
    (before.matches('\n').count() + 1, before[start..].chars().count() + 1)
}

/// Turn a toml/serde error into [`ConfigError::Parse`], rewording unknown-key and type errors.
pub(super) fn parse_error(text: &str, origin: &str, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map_or(0, |s| s.start);
    let (line, column) = line_col(text, offset);
    let raw = match err.message().trim() {
        // toml says nothing about some characters (a control character in a comment).
        "" => match text.get(offset..).and_then(|rest| rest.chars().next()) {
            Some(c) if c.is_control() => format!(
                "the control character U+{:04X} is not allowed in TOML, not even in a comment (tab is)",
                u32::from(c)
            ),
            Some(c) => format!("unexpected `{}`", c.escape_default()),
            None => "unexpected end of the file".to_owned(),
        },
        message => message.replace('\n', "; "),
    };
    let message = if let Some(rest) = raw.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        // Every backquoted name after the key is an expected key.
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let table = TABLES.iter().filter_map(|t| t.split_once(": ")).find(|(_, keys)| {
            let keys: Vec<&str> = keys.split(' ').collect();
            keys.len() == expected.len() && expected.iter().all(|e| keys.contains(e))
        });
        match table {
            Some((table, keys)) => {
                let list = keys.replace(' ', "`, `");
                format!("unknown key `{key}` in {table} (expected one of `{list}`)")
            }
            None => format!("unknown key `{key}`"),
        }
    } else {
        let message =
            raw.replace("expected i64", "expected an integer").replace("expected a sequence", "expected an array");
        match key_at(text, offset) {
            Some(key) => format!("{key}: {message}"),
            None => message,
        }
    };
    ConfigError::Parse { origin: origin.to_owned(), line, column, message }
}

/// Best effort: the dotted key whose value starts at `offset`, from the `key = value`
/// line and the table header above it. `None` when the line is not a plain `key = value`.
/// An offset at the start of the key (a dotted key whose table is at fault, as `listen.x = 1`)
/// names that key.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let (above, line) = text.get(..offset)?.rsplit_once('\n').unwrap_or(("", &text[..offset]));
    let plain = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_. ".contains(c));
    let dotted = |k: &str| k.split('.').map(str::trim).collect::<Vec<_>>().join(".");
    let key = match line.trim() {
        "" => text[offset..].lines().next()?.split_once('=')?.0.trim(),
        _ => line.trim_end().strip_suffix('=')?.trim(),
    };
    if !plain(key) {
        return None;
    }
    // The nearest table header above; for `[[array]]` tables also the entry's index.
    let mut headers =
        above.lines().rev().filter_map(|l| Some(l.split('#').next()?.trim()).filter(|l| l.starts_with('[')));
    let Some(first) = headers.next() else {
        return Some(dotted(key));
    };
    let name = first.trim_matches(|c| c == '[' || c == ']');
    if !plain(name) {
        return None;
    }
    let (name, key) = (dotted(name), dotted(key));
    if first.starts_with("[[") {
        let index = headers.filter(|h| *h == first).count();
        return Some(format!("{name}[{index}].{key}"));
    }
    Some(format!("{name}.{key}"))
}
