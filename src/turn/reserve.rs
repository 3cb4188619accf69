//! EVEN-PORT reservations (RFC 8656 §7.2, §14.6, §14.9): the port after an even relayed port,
//! held for a later Allocate that presents the RESERVATION-TOKEN (RTP/RTCP pairs). The core
//! keeps the token and the deadline; the held socket is the IO shell's, carried here as an `R`
//! so that dropping a reservation frees its port.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a reservation is held: about 30 s, the period RFC 8656 §7.2 (as RFC 5766 §6.2)
/// suggests; long enough for a client to send its second Allocate.
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
/// Reservations held at once; beyond it EVEN-PORT with the R bit gets 508. Each holds a port and
/// a file descriptor for up to [`RESERVATION_LIFETIME`].
pub const MAX_RESERVATIONS: usize = 4096;

/// A held port.
struct Reservation<R> {
    held: R,
    port: u16,
    ipv6: bool,
    expires: Instant,
}

/// The reservations, by token.
pub(super) struct Reservations<R> {
    held: Mutex<HashMap<[u8; 8], Reservation<R>>>,
}

impl<R> Default for Reservations<R> {
    fn default() -> Self {
        Reservations { held: Mutex::new(HashMap::new()) }
    }
}

impl<R> Reservations<R> {
    /// Holds `held` (port `port`) under a fresh unguessable token until `now` +
    /// [`RESERVATION_LIFETIME`]. `Err` gives the socket back when the table is full or the
    /// system has no randomness: the caller refuses the request (508).
    pub fn insert(&self, held: R, port: u16, ipv6: bool, now: Instant) -> Result<[u8; 8], R> {
        let mut token = [0u8; 8];
        if getrandom::getrandom(&mut token).is_err() {
            return Err(held);
        }
        let mut map = self.lock();
        map.retain(|_, r| r.expires > now);
        if map.len() >= MAX_RESERVATIONS || map.contains_key(&token) {
            return Err(held);
        }
        map.insert(token, Reservation { held, port, ipv6, expires: now + RESERVATION_LIFETIME });
        Ok(token)
    }

    /// Whether `token` names a live reservation.
    pub fn is_valid(&self, token: &[u8], now: Instant) -> bool {
        let Ok(token) = <[u8; 8]>::try_from(token) else { return false };
        self.lock().get(&token).is_some_and(|r| r.expires > now)
    }

    /// Takes the reservation of `token`: the held socket, its port and family.
    pub fn take(&self, token: &[u8], now: Instant) -> Option<(R, u16, bool)> {
        let token = <[u8; 8]>::try_from(token).ok()?;
        let r = self.lock().remove(&token)?;
        (r.expires > now).then_some((r.held, r.port, r.ipv6))
    }

    /// Drops expired reservations, freeing their ports (outside the lock).
    pub fn expire(&self, now: Instant) {
        let dead: Vec<Reservation<R>> = {
            let mut map = self.lock();
            let tokens: Vec<[u8; 8]> = map.iter().filter(|(_, r)| r.expires <= now).map(|(t, _)| *t).collect();
            tokens.iter().filter_map(|t| map.remove(t)).collect()
        };
        drop(dead);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 8], Reservation<R>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}
