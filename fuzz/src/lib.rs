//! Shared code of turnd's fuzz targets (`fuzz_targets/`): the byte-script format of structured
//! inputs, the sans-IO TURN server harness, the stream framing loop, and the seed builders.
pub mod framing;
pub mod roundtrip;
pub mod script;
pub mod seeds;
pub mod server;
