#![no_main]
//! The whole sans-IO `turn::Server` driven by a script (`turnd_fuzz::server`): datagrams and
//! signed or unsigned requests from any address over any transport, peer datagrams, simulated
//! time with `expire`, RFC 6062 events; replies and forwards are checked after every step.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = turnd_fuzz::server::run(data);
});
