//! STUN/TURN attribute types and the value encodings shared by the parser and the writer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{StunError, MAGIC_COOKIE};

// Comprehension-required (0x0000-0x7FFF), RFC 8489 §18.3, RFC 8656 §18, RFC 6062, RFC 5780.
pub const MAPPED_ADDRESS: u16 = 0x0001;
pub const CHANGE_REQUEST: u16 = 0x0003;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const CHANNEL_NUMBER: u16 = 0x000C;
pub const LIFETIME: u16 = 0x000D;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const DATA: u16 = 0x0013;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const EVEN_PORT: u16 = 0x0018;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const DONT_FRAGMENT: u16 = 0x001A;
pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
pub const PASSWORD_ALGORITHM: u16 = 0x001D;
pub const USERHASH: u16 = 0x001E;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const RESERVATION_TOKEN: u16 = 0x0022;
pub const PRIORITY: u16 = 0x0024;
pub const USE_CANDIDATE: u16 = 0x0025;
pub const PADDING: u16 = 0x0026;
pub const RESPONSE_PORT: u16 = 0x0027;
pub const CONNECTION_ID: u16 = 0x002A;
// Comprehension-optional (0x8000-0xFFFF).
pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
/// ADDITIONAL-ADDRESS-FAMILY under the code point of draft-ietf-tram-turnbis (SSODA), which
/// coturn's clients still send.
pub const ADDITIONAL_ADDRESS_FAMILY_DRAFT: u16 = 0x8032;
pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
pub const ALTERNATE_DOMAIN: u16 = 0x8003;
pub const ICMP: u16 = 0x8004;
pub const SOFTWARE: u16 = 0x8022;
pub const ALTERNATE_SERVER: u16 = 0x8023;
pub const FINGERPRINT: u16 = 0x8028;
pub const ICE_CONTROLLED: u16 = 0x8029;
pub const ICE_CONTROLLING: u16 = 0x802A;
pub const RESPONSE_ORIGIN: u16 = 0x802B;
pub const OTHER_ADDRESS: u16 = 0x802C;
/// RFC 8016 §3.3.
pub const MOBILITY_TICKET: u16 = 0x8030;

/// The attributes the parser indexes (first occurrence of each), in index order.
/// Comprehension-required types not in this list are "unknown" (RFC 8489 §15: 420).
pub(crate) const INDEXED: [u16; 41] = [
    MAPPED_ADDRESS,
    CHANGE_REQUEST,
    USERNAME,
    MESSAGE_INTEGRITY,
    ERROR_CODE,
    UNKNOWN_ATTRIBUTES,
    CHANNEL_NUMBER,
    LIFETIME,
    XOR_PEER_ADDRESS,
    DATA,
    REALM,
    NONCE,
    XOR_RELAYED_ADDRESS,
    REQUESTED_ADDRESS_FAMILY,
    EVEN_PORT,
    REQUESTED_TRANSPORT,
    DONT_FRAGMENT,
    MESSAGE_INTEGRITY_SHA256,
    PASSWORD_ALGORITHM,
    USERHASH,
    XOR_MAPPED_ADDRESS,
    RESERVATION_TOKEN,
    PRIORITY,
    USE_CANDIDATE,
    PADDING,
    RESPONSE_PORT,
    CONNECTION_ID,
    ADDITIONAL_ADDRESS_FAMILY,
    ADDRESS_ERROR_CODE,
    PASSWORD_ALGORITHMS,
    ALTERNATE_DOMAIN,
    ICMP,
    SOFTWARE,
    ALTERNATE_SERVER,
    FINGERPRINT,
    ICE_CONTROLLED,
    ICE_CONTROLLING,
    RESPONSE_ORIGIN,
    OTHER_ADDRESS,
    MOBILITY_TICKET,
    ADDITIONAL_ADDRESS_FAMILY_DRAFT,
];

/// Slot of an attribute type in [`INDEXED`], or `None` for a type turnd does not know.
pub(crate) fn slot(attr_type: u16) -> Option<usize> {
    INDEXED.iter().position(|&t| t == attr_type)
}

/// Comprehension-required attributes are 0x0000-0x7FFF (RFC 8489 §14).
pub fn is_comprehension_required(attr_type: u16) -> bool {
    attr_type < 0x8000
}

/// Address family codes of (XOR-)MAPPED-ADDRESS and REQUESTED-ADDRESS-FAMILY.
pub const FAMILY_IPV4: u8 = 0x01;
pub const FAMILY_IPV6: u8 = 0x02;

/// Decodes a (non-XOR) MAPPED-ADDRESS-style value.
pub fn decode_address(value: &[u8]) -> Result<SocketAddr, StunError> {
    let (family, port, addr) = split_address(value)?;
    let ip = match family {
        FAMILY_IPV4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(addr).map_err(|_| StunError::BadAddress)?)),
        FAMILY_IPV6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(addr).map_err(|_| StunError::BadAddress)?)),
        _ => return Err(StunError::BadAddress),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Decodes an XOR-MAPPED-ADDRESS-style value (RFC 8489 §14.2): port XOR the cookie's high half,
/// IPv4 XOR the cookie, IPv6 XOR cookie ‖ transaction id.
pub fn decode_xor_address(value: &[u8], txid: &[u8; 12]) -> Result<SocketAddr, StunError> {
    let (family, port, addr) = split_address(value)?;
    let port = port ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (family, addr.len()) {
        (FAMILY_IPV4, 4) => {
            let mut octets = [0u8; 4];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = addr[i] ^ MAGIC_COOKIE.to_be_bytes()[i];
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (FAMILY_IPV6, 16) => {
            let mask = xor_mask(txid);
            let mut octets = [0u8; 16];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = addr[i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return Err(StunError::BadAddress),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Encodes an address value (XORed or not) into `out`, returning the number of bytes (8 or 20).
pub fn encode_address(addr: SocketAddr, xor_with: Option<&[u8; 12]>, out: &mut [u8; 20]) -> usize {
    let (family, len) = match addr {
        SocketAddr::V4(_) => (FAMILY_IPV4, 8),
        SocketAddr::V6(_) => (FAMILY_IPV6, 20),
    };
    out[0] = 0;
    out[1] = family;
    let mut port = addr.port();
    if xor_with.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    out[2..4].copy_from_slice(&port.to_be_bytes());
    let mask = xor_with.map(xor_mask).unwrap_or([0u8; 16]);
    match addr.ip() {
        IpAddr::V4(v4) => {
            for (i, b) in v4.octets().iter().enumerate() {
                out[4 + i] = b ^ mask[i];
            }
        }
        IpAddr::V6(v6) => {
            for (i, b) in v6.octets().iter().enumerate() {
                out[4 + i] = b ^ mask[i];
            }
        }
    }
    len
}

fn split_address(value: &[u8]) -> Result<(u8, u16, &[u8]), StunError> {
    match value {
        [_, family, p0, p1, addr @ ..] if addr.len() == 4 || addr.len() == 16 => {
            Ok((*family, u16::from_be_bytes([*p0, *p1]), addr))
        }
        _ => Err(StunError::BadAddress),
    }
}

fn xor_mask(txid: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(txid);
    mask
}

/// Decodes ERROR-CODE (RFC 8489 §14.8) into (code, reason phrase).
pub fn decode_error_code(value: &[u8]) -> Result<(u16, &str), StunError> {
    match value {
        [_, _, class, number, reason @ ..] => {
            let code = u16::from(class & 0x07) * 100 + u16::from(*number);
            let reason = std::str::from_utf8(reason).map_err(|_| StunError::BadAttribute)?;
            Ok((code, reason))
        }
        _ => Err(StunError::BadAttribute),
    }
}

/// Decodes a 32-bit attribute value (LIFETIME, PRIORITY, ...).
pub fn decode_u32(value: &[u8]) -> Result<u32, StunError> {
    <[u8; 4]>::try_from(value).map(u32::from_be_bytes).map_err(|_| StunError::BadAttribute)
}

/// PASSWORD-ALGORITHM numbers (RFC 8489 §18.5): MD5 and SHA-256.
pub const ALGORITHM_MD5: u16 = 0x0001;
pub const ALGORITHM_SHA256: u16 = 0x0002;

/// Decodes PASSWORD-ALGORITHM (RFC 8489 §14.12) into its algorithm number. Parameters must
/// fill the value exactly (MD5 and SHA-256 have none).
pub fn decode_password_algorithm(value: &[u8]) -> Result<u16, StunError> {
    match value {
        [a0, a1, l0, l1, params @ ..] if usize::from(u16::from_be_bytes([*l0, *l1])) == params.len() => {
            Ok(u16::from_be_bytes([*a0, *a1]))
        }
        _ => Err(StunError::BadAttribute),
    }
}

/// Whether a PASSWORD-ALGORITHMS value (RFC 8489 §14.11) lists `algorithm`. Entries are an
/// algorithm number, a parameter length and the parameters padded to 4 bytes; a malformed
/// list lists nothing.
pub fn lists_password_algorithm(list: &[u8], algorithm: u16) -> bool {
    let mut rest = list;
    while let [a0, a1, l0, l1, tail @ ..] = rest {
        let params = usize::from(u16::from_be_bytes([*l0, *l1])).next_multiple_of(4);
        if u16::from_be_bytes([*a0, *a1]) == algorithm && params <= tail.len() {
            return true;
        }
        match tail.get(params..) {
            Some(next) => rest = next,
            None => return false,
        }
    }
    false
}

/// An ICMP attribute's value (RFC 8656 §18.13): the ICMP type and code of the error a peer's
/// network sent back, and its Error Data (the next-hop MTU for "fragmentation needed" and
/// "packet too big", zero otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    pub icmp_type: u8,
    pub code: u8,
    pub error_data: u32,
}

/// Encodes ICMP: 16 reserved bits (zero), type, code, Error Data.
pub fn encode_icmp(icmp: Icmp) -> [u8; 8] {
    let mut value = [0u8; 8];
    value[2] = icmp.icmp_type;
    value[3] = icmp.code;
    value[4..].copy_from_slice(&icmp.error_data.to_be_bytes());
    value
}

/// Decodes ICMP; the reserved bits are ignored, as §18.13 says.
pub fn decode_icmp(value: &[u8]) -> Result<Icmp, StunError> {
    match value {
        [_, _, icmp_type, code, d0, d1, d2, d3] => {
            Ok(Icmp { icmp_type: *icmp_type, code: *code, error_data: u32::from_be_bytes([*d0, *d1, *d2, *d3]) })
        }
        _ => Err(StunError::BadAttribute),
    }
}
