#![no_main]
//! `Config::parse` on any UTF-8 text: never panics, and every error names the file it was
//! given and a line (and column) within the text.
use libfuzzer_sys::fuzz_target;
use turnd::config::{Config, ConfigError};

fuzz_target!(|text: &str| {
    let lines: Vec<&str> = text.split('\n').collect();
    let within = |line: usize| (1..=lines.len()).contains(&line);
    match Config::parse(text, "fuzz.toml") {
        Ok(_) => {}
        Err(ConfigError::Parse { origin, line, column, .. }) => {
            assert!(origin == "fuzz.toml" && within(line), "parse error at line {line} of {}", lines.len());
            assert!((1..=lines[line - 1].chars().count() + 1).contains(&column), "column {column}");
        }
        Err(ConfigError::Invalid { origin, key, line, .. }) => {
            assert!(origin == "fuzz.toml" && !key.is_empty() && line.is_none_or(within), "{key} at {line:?}");
        }
        Err(e @ ConfigError::Read { .. }) => panic!("Config::parse read a file: {e}"),
    }
});
