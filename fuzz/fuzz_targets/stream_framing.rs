#![no_main]
//! The TCP/TLS framing loop of `io/stream.rs` fed any bytes in reads of any sizes (two leading
//! bytes choose them): never panics, never announces a frame over MAX_STREAM_FRAME, never
//! stalls with a full buffer, and frames exactly the stream (see `turnd_fuzz::framing`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(([size, seed], stream)) = data.split_first_chunk::<2>() else { return };
    let max = 1usize << (size % 17);
    let mut x = u64::from(*seed) | 0x100;
    turnd_fuzz::framing::frame(stream, |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        1 + (x as usize) % max
    });
});
