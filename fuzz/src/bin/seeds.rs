//! Writes the seed corpus under fuzz/seeds/<target>/ from tests/data/rfc5769.json, the shipped
//! turnserver.toml and messages built by turnd (see `turnd_fuzz::seeds`). Run from anywhere:
//! `cargo run --manifest-path fuzz/Cargo.toml --features seeds --bin seeds`.
use std::path::Path;

use turnd_fuzz::seeds::{self, Seed};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("../tests/data/rfc5769.json"))?)?;
    let vectors: Vec<(String, String)> = json["vectors_hex"]
        .as_object()
        .expect("rfc5769.json has vectors_hex")
        .iter()
        .map(|(name, hex)| (name.clone(), hex.as_str().expect("hex string").to_owned()))
        .collect();
    let stun = seeds::stun_messages(&vectors);
    let shipped = std::fs::read_to_string(root.join("../turnserver.toml"))?;
    let corpus: [(&str, Vec<Seed>); 7] = [
        ("stun_decode", stun.clone()),
        ("stun_roundtrip", stun.clone()),
        ("channel_data", seeds::channel_data_seeds(&stun)),
        ("stream_framing", seeds::stream_seeds(&stun)),
        ("turn_server", seeds::server_seeds(&stun)),
        ("peer_policy", seeds::policy_seeds()),
        ("config_parse", seeds::config_seeds(&shipped)),
    ];
    for (target, files) in corpus {
        let dir = root.join("seeds").join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds", files.len());
    }
    Ok(())
}
