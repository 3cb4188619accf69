//! turnd: a TURN/STUN relay daemon. Sans-IO protocol core (`stun`, `auth`, `turn`) and a thin
//! IO shell (`io`). Dependency direction: `io`, `main` → `turn` → `auth` → `stun`.
pub mod auth;
pub mod config;
pub mod io;
pub mod stats;
pub mod stun;
pub mod turn;
