//! turnd: a TURN/STUN relay daemon. Sans-IO protocol core (`stun`, `auth`, `turn`) and a thin
//! IO shell (`io`, and `api`, the credentials HTTP sidecar that `io` starts).
//! Dependency direction: `io`, `api`, `main` → `turn` → `auth` → `stun`.
pub mod api;
pub mod auth;
pub mod bench;
pub mod config;
pub mod io;
pub mod probe;
pub mod stats;
pub mod stun;
pub mod turn;
