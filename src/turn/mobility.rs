//! Mobility (RFC 8016): MOBILITY-TICKETs handed out by Allocate, and the Refresh that moves an
//! allocation to the client's new 5-tuple. Sans-IO: a ticket is a keyed HMAC over a counter,
//! the key drawn once when the server is built (as the nonce key is).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::stun::{attr, Message};

use super::counts::Ended;
use super::{Authenticated, ErrorCode, FiveTuple, Now, Outcome, Relay, Server, Transport};

/// A ticket on the wire: 18 bytes (144 bits) of HMAC output in base64url, 24 characters. Text,
/// so clients that keep it as a C string (coturn's `turnutils_uclient`: at most 32) can.
pub const TICKET_LEN: usize = 24;
const TICKET_BYTES: usize = TICKET_LEN / 4 * 3;

/// A MOBILITY-TICKET value as turnd issues it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket([u8; TICKET_LEN]);

impl Ticket {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A ticket as received: `None` unless it has the length and alphabet of one turnd issues.
    pub fn parse(value: &[u8]) -> Option<Ticket> {
        let bytes: [u8; TICKET_LEN] = value.try_into().ok()?;
        let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        bytes.iter().all(base64url).then_some(Ticket(bytes))
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A ticket moves an allocation (with the owner's credentials): never printed.
        f.write_str("Ticket(<redacted>)")
    }
}

/// Issues tickets: HMAC-SHA256(key, counter) cut to 144 bits. The key is random per process and
/// the counter never repeats, so tickets are unique, and none can be guessed or derived from
/// another one.
pub(crate) struct TicketMinter {
    mac: Hmac<Sha256>,
    next: AtomicU64,
}

impl TicketMinter {
    /// A minter with a random key.
    pub fn new() -> Self {
        Self::with_key(crate::auth::random_key())
    }

    pub fn with_key(key: [u8; 32]) -> Self {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&key).expect("HMAC accepts any key length");
        TicketMinter { mac, next: AtomicU64::new(0) }
    }

    pub fn mint(&self) -> Ticket {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut mac = self.mac.clone();
        mac.update(&n.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let mut text = [0u8; TICKET_LEN];
        // 18 bytes always encode to exactly 24 characters.
        let _ = URL_SAFE_NO_PAD.encode_slice(&tag[..TICKET_BYTES], &mut text);
        Ticket(text)
    }
}

impl<R: Relay> Server<R> {
    //= https://www.rfc-editor.org/rfc/rfc8016#section-3.1
    /// The ticket of a new allocation: one when the Allocate asks with an empty MOBILITY-TICKET,
    /// 405 Mobility Forbidden while `mobility` is off, 400 for a non-empty one. An allocation
    /// over TCP or TLS ends with its connection (RFC 8656 §3.1), so it gets none: the client
    /// learns it cannot move, as from a server without mobility.
    pub(super) fn allocation_ticket(&self, tuple: &FiveTuple, msg: &Message<'_>) -> Result<Option<Ticket>, ErrorCode> {
        match msg.attr(attr::MOBILITY_TICKET) {
            None => Ok(None),
            Some(_) if !self.live().config.mobility => Err(ErrorCode::MobilityForbidden),
            Some([]) if tuple.transport == Transport::Udp => Ok(Some(self.tickets.mint())),
            Some([]) => Ok(None),
            Some(_) => Err(ErrorCode::BadRequest),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8016#section-3.2
    /// An authenticated Refresh carrying a MOBILITY-TICKET: the allocation the ticket names moves
    /// to this 5-tuple, keeping its relayed address, permissions and channels, and the answer
    /// carries a new ticket (the old one is spent). 405 while `mobility` is off; 400 for a value
    /// turnd never issues; 437 for a ticket of no allocation (unknown, spent, or its allocation
    /// gone), or when this 5-tuple has an allocation of its own; 441 when the ticket's
    /// allocation belongs to another user: a ticket seen on the wire is useless without the
    /// owner's credentials. A move keeps the transport (405 otherwise). From the answer on,
    /// peer data goes to the new 5-tuple and the old one has no allocation.
    pub(super) fn refresh_moving(
        &self,
        now: Now,
        tuple: &FiveTuple,
        msg: &Message<'_>,
        out: &mut [u8],
        auth: &Authenticated<'_>,
        lifetime: Duration,
    ) -> Outcome {
        let key = Some(&auth.key);
        // REQUESTED-ADDRESS-FAMILY, already checked by `on_refresh`.
        let family = super::request::refresh_family(msg).ok().flatten();
        if !self.live().config.mobility {
            return self.error(msg, out, ErrorCode::MobilityForbidden, key);
        }
        let Some(presented) = msg.attr(attr::MOBILITY_TICKET).and_then(Ticket::parse) else {
            return self.error(msg, out, ErrorCode::BadRequest, key);
        };
        let txid = *msg.transaction_id();
        // A retransmission of the Refresh that moved the allocation here gets the same answer
        // (coturn's client sends each mobility Refresh twice).
        let repeat = self.table.with(tuple, |a| {
            let same = a.moved_by == Some(txid) && a.check_owner(&auth.username, now.mono).is_ok();
            same.then_some((a.ticket, a.expires))
        });
        if let Some(Some((ticket, expires))) = repeat {
            return self.refreshed(msg, out, key, expires.saturating_duration_since(now.mono), ticket);
        }
        let Some(id) = self.table.by_ticket(&presented) else {
            return self.error(msg, out, ErrorCode::AllocationMismatch, key);
        };
        let fresh = self.tickets.mint();
        let moved = self.table.relocate(id, tuple, |a| {
            // Only the current ticket, and only for the user who made the allocation.
            if a.ticket != Some(presented) {
                return Err(ErrorCode::AllocationMismatch);
            }
            a.check_owner(&auth.username, now.mono)?;
            if a.tuple.transport != tuple.transport {
                return Err(ErrorCode::MobilityForbidden);
            }
            // REQUESTED-ADDRESS-FAMILY of a family it has no relayed address of (RFC 8656 §7.3).
            if family.is_some_and(|ipv6| !a.has_family(ipv6)) {
                return Err(ErrorCode::PeerAddressFamilyMismatch);
            }
            if !lifetime.is_zero() {
                a.expires = now.mono + lifetime;
            }
            a.ticket = Some(fresh);
            a.moved_by = Some(txid);
            Ok(a.tuple)
        });
        let from = match moved {
            Ok(from) => from,
            Err(code) => return self.error(msg, out, code, key),
        };
        if lifetime.is_zero() {
            drop(self.table.remove(tuple, Ended::Deleted));
            tracing::debug!(client = %tuple.client, "allocation moved and deleted");
            return self.refreshed(msg, out, key, Duration::ZERO, None);
        }
        tracing::debug!(from = %from.client, to = %tuple.client, "allocation moved");
        self.refreshed(msg, out, key, lifetime, Some(fresh))
    }

    fn refreshed(
        &self,
        msg: &Message<'_>,
        out: &mut [u8],
        key: Option<&super::Signer>,
        lifetime: Duration,
        ticket: Option<Ticket>,
    ) -> Outcome {
        self.respond(msg, out, key, |w| {
            w.u32_attr(attr::LIFETIME, u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX));
            if let Some(ticket) = ticket {
                w.attr(attr::MOBILITY_TICKET, ticket.as_bytes());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_text_unique_and_keyed() {
        let (a, b) = (TicketMinter::with_key([1; 32]), TicketMinter::with_key([2; 32]));
        let (t1, t2) = (a.mint(), a.mint());
        assert_ne!(t1, t2);
        assert_ne!(t1, b.mint(), "another key makes other tickets");
        assert_eq!(Ticket::parse(t1.as_bytes()), Some(t1));
        assert!(t1.as_bytes().iter().all(|c| c.is_ascii_graphic()));
        assert!(!format!("{t1:?}").contains(std::str::from_utf8(t1.as_bytes()).unwrap()));
    }

    #[test]
    fn parse_takes_only_what_turnd_issues() {
        assert_eq!(Ticket::parse(b""), None);
        assert_eq!(Ticket::parse(&[b'A'; TICKET_LEN - 1]), None);
        assert_eq!(Ticket::parse(&[b'A'; TICKET_LEN + 1]), None);
        assert_eq!(Ticket::parse(&[0; TICKET_LEN]), None);
        assert!(Ticket::parse(&[b'A'; TICKET_LEN]).is_some());
    }
}
