//! `server.rfc5780` and `server.rfc5780-alternate`: RFC 5780 NAT behaviour discovery, off by
//! default, and the alternate address it needs.

use std::net::{IpAddr, SocketAddr};

use super::{or, Checked, RawConfig};
use crate::turn::NatAddresses;

const KEY: &str = "server.rfc5780";
const ALTERNATE: &str = "server.rfc5780-alternate";

/// RFC 5780 as configured: the primary address is the first `listen` address (its port may
/// still be 0), the alternate IP is another IP of this host of the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc5780 {
    pub primary: SocketAddr,
    pub alternate_ip: IpAddr,
    /// The alternate port; `None`: the primary port plus one (coturn's rule).
    pub alternate_port: Option<u16>,
}

impl Rfc5780 {
    /// The two addresses once the primary port is known (bound): `None` when the primary port
    /// is 65535 and no alternate port is set, or the ports would be the same.
    pub fn resolve(&self, primary_port: u16) -> Option<NatAddresses> {
        let alternate_port = self.alternate_port.or(primary_port.checked_add(1))?;
        (alternate_port != primary_port).then_some(NatAddresses {
            primary: SocketAddr::new(self.primary.ip(), primary_port),
            alternate: SocketAddr::new(self.alternate_ip, alternate_port),
        })
    }
}

impl RawConfig {
    /// `server.rfc5780` with its alternate address: `server.rfc5780-alternate` (`IP` or
    /// `IP:PORT`), else the IP of the first later `listen` address of the primary's family
    /// with another IP. Refused without a usable second IP, with an unspecified primary IP
    /// (the answer must say which IP it came from), or with an alternate port equal to the
    /// primary's.
    pub(super) fn rfc5780(&self, listen: &[SocketAddr]) -> Checked<Option<Rfc5780>> {
        let on = or(&self.server.rfc5780, false);
        let explicit = self.server.rfc5780_alternate.as_ref();
        if !on.value {
            return match explicit {
                Some(item) => Err(self.err(ALTERNATE, item.at, "has no effect without server.rfc5780 = true")),
                None => Ok(None),
            };
        }
        let primary = listen[0];
        if primary.ip().is_unspecified() {
            let reason = format!(
                "needs a specific IP as the primary address, and the first listen address {primary} is unspecified"
            );
            return Err(self.err(KEY, on.at, reason));
        }
        let (alternate_ip, alternate_port, at, key) = match explicit {
            Some(item) => {
                let text = item.value.trim();
                let (ip, port) = match (text.parse::<SocketAddr>(), text.parse::<IpAddr>()) {
                    (Ok(addr), _) => (addr.ip(), Some(addr.port())),
                    (_, Ok(ip)) => (ip, None),
                    _ => {
                        let reason = format!("`{}` is not an IP or IP:PORT address (IPv6 as [::1]:3479)", item.value);
                        return Err(self.err(ALTERNATE, item.at, reason));
                    }
                };
                (ip, port, item.at, ALTERNATE)
            }
            None => {
                let second = listen
                    .iter()
                    .skip(1)
                    .map(SocketAddr::ip)
                    .find(|ip| ip.is_ipv4() == primary.is_ipv4() && *ip != primary.ip() && !ip.is_unspecified());
                let Some(ip) = second else {
                    let reason = format!(
                        "needs a second IP of this host of the family of the primary address {primary}: \
                         add a listen address with another IP (e.g. listen = [\"{primary}\", \"IP2:{}\"]) \
                         or set server.rfc5780-alternate",
                        primary.port()
                    );
                    return Err(self.err(KEY, on.at, reason));
                };
                (ip, None, on.at, KEY)
            }
        };
        let problem = if alternate_ip.is_ipv4() != primary.is_ipv4() {
            Some(format!("alternate IP {alternate_ip} is not of the family of the primary address {primary}"))
        } else if alternate_ip == primary.ip() || alternate_ip.is_unspecified() || alternate_ip.is_multicast() {
            Some(format!("alternate IP {alternate_ip} must be another unicast IP than the primary {}", primary.ip()))
        } else if alternate_port == Some(0) || (alternate_port.is_some() && alternate_port == Some(primary.port())) {
            Some(format!("the alternate port must be another port than the primary {} (and not 0)", primary.port()))
        } else if alternate_port.is_none() && primary.port() == u16::MAX {
            Some(format!(
                "the primary port is {}, so primary port + 1 is no port: set server.rfc5780-alternate = \"IP:PORT\"",
                u16::MAX
            ))
        } else {
            None
        };
        match problem {
            Some(reason) => Err(self.err(key, at, reason)),
            None => Ok(Some(Rfc5780 { primary, alternate_ip, alternate_port })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doc, invalid_of, ok};
    use super::*;

    #[test]
    fn rfc5780_is_off_by_default_and_takes_the_second_listen_ip() {
        assert_eq!(ok(&[]).rfc5780, None);
        let c = ok(&["[server]", "listen = ['127.0.0.1:3478', '[::1]:3478', '127.0.0.2:5000']", "rfc5780 = true"]);
        let nat = c.rfc5780.unwrap();
        assert_eq!(
            (nat.primary, nat.alternate_ip, nat.alternate_port),
            (c.listen[0], "127.0.0.2".parse().unwrap(), None)
        );
        let resolved = nat.resolve(3478).unwrap();
        assert_eq!((resolved.primary.port(), resolved.alternate), (3478, "127.0.0.2:3479".parse().unwrap()));
        // An explicit alternate, with or without its port.
        let c = ok(&["[server]", "listen = ['127.0.0.1:0']", "rfc5780 = true", "rfc5780-alternate = '127.0.0.2:4000'"]);
        let nat = c.rfc5780.unwrap();
        assert_eq!(nat.resolve(40000).unwrap().alternate, "127.0.0.2:4000".parse().unwrap());
        let c = ok(&[
            "[server]",
            "listen = ['[::1]:3478']",
            "rfc5780 = true",
            "rfc5780-alternate = '::2'",
            "relay-ip = '::2'",
        ]);
        assert_eq!(c.rfc5780.unwrap().resolve(3478).unwrap().alternate, "[::2]:3479".parse().unwrap());
    }

    #[test]
    fn rfc5780_without_a_usable_second_address_names_the_key_and_line() {
        let cases: [(&[&str], &str, usize, &str); 8] = [
            (&["[server]", "rfc5780 = true"], KEY, 2, "needs a second IP"),
            (&["[server]", "listen = ['127.0.0.1:1', '[::1]:1']", "rfc5780 = true"], KEY, 3, "needs a second IP"),
            (&["[server]", "listen = ['127.0.0.1:1', '127.0.0.1:2']", "", "rfc5780 = true"], KEY, 4, "second IP"),
            (
                &["[server]", "listen = ['0.0.0.0:1', '192.0.2.2:1']", "relay-ip = '192.0.2.1'", "rfc5780 = true"],
                KEY,
                4,
                "unspecified",
            ),
            (&["[server]", "rfc5780 = true", "rfc5780-alternate = '[::2]:1'"], ALTERNATE, 3, "family"),
            (&["[server]", "rfc5780 = true", "rfc5780-alternate = '127.0.0.2:3478'"], ALTERNATE, 3, "another port"),
            (&["[server]", "rfc5780 = true", "rfc5780-alternate = 'localhost'"], ALTERNATE, 3, "not an IP"),
            (&["[server]", "rfc5780-alternate = '127.0.0.2'"], ALTERNATE, 2, "no effect without"),
        ];
        for (lines, key, line, reason) in cases {
            let (got_key, got_line, got_reason) = invalid_of(&doc(lines));
            assert_eq!((got_key.as_str(), got_line), (key, Some(line)), "{lines:?}: {got_reason}");
            assert!(got_reason.contains(reason), "{lines:?}: {got_reason}");
        }
    }
}
