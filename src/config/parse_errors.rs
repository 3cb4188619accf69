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

/// Best effort: the dotted key whose value starts at `offset`, from its line and the table
/// header above it: `key = value`, a value in a one-line array (`secrets = [1]`) or inline
/// table (`server = { min-port = "a" }`), quoted keys. An offset at the start of the key (a
/// dotted key whose table is at fault, as `listen.x = 1`) names that key. `None` when the line
/// does not tell (inside a multi-line array).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let (above, line) = text.get(..offset)?.rsplit_once('\n').unwrap_or(("", &text[..offset]));
    let path = match line.trim() {
        "" => dotted(text[offset..].lines().next()?.split_once('=')?.0)?,
        _ => line_path(line)?,
    };
    // The nearest table header above; for `[[array]]` tables also the entry's index.
    let mut headers =
        above.lines().rev().filter_map(|l| Some(l.split('#').next()?.trim()).filter(|l| l.starts_with('[')));
    let Some(first) = headers.next() else {
        return Some(path);
    };
    let name = dotted(first.trim_matches(|c| c == '[' || c == ']'))?;
    if first.starts_with("[[") {
        let index = headers.filter(|h| *h == first).count();
        return Some(format!("{name}[{index}].{path}"));
    }
    Some(format!("{name}.{path}"))
}

/// The dotted key being given a value at the end of `line` (the text of a line before a value,
/// or before `=`): the keys of the inline tables it is in, then its own.
fn line_path(line: &str) -> Option<String> {
    let mut keys: Vec<String> = Vec::new();
    // Open `{` and `[`, each with how many keys were open outside it.
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut pending = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                pending.push(c);
                let mut escaped = false;
                for d in chars.by_ref() {
                    pending.push(d);
                    match d {
                        _ if escaped => escaped = false,
                        '\\' if c == '"' => escaped = true,
                        _ if d == c => break,
                        _ => {}
                    }
                }
            }
            '=' => {
                keys.push(dotted(&pending)?);
                pending.clear();
            }
            '{' | '[' => {
                open.push((c, keys.len()));
                pending.clear();
            }
            '}' | ']' | ',' => {
                // The end of a value in an inline table: back to the keys outside its own.
                let table = if c == ',' { open.last().copied() } else { open.pop() };
                if let Some(('{', outside)) = table {
                    keys.truncate(outside);
                }
                pending.clear();
            }
            _ => pending.push(c),
        }
    }
    (!keys.is_empty()).then(|| keys.join("."))
}

/// `a . "b" . 'c'` as `a.b.c`; `None` unless each part is a bare key or a quoted one.
fn dotted(key: &str) -> Option<String> {
    let parts = key.split('.').map(|part| {
        let part = part.trim();
        let quoted = ['"', '\''].into_iter().find_map(|q| part.strip_prefix(q)?.strip_suffix(q));
        match quoted {
            Some(inner) if !inner.is_empty() => Some(inner),
            _ if !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) => Some(part),
            _ => None,
        }
    });
    parts.collect::<Option<Vec<_>>>().map(|parts| parts.join("."))
}
