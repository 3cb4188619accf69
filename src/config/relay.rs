//! `server.relay-ip`, `server.external-ip` and `server.default-family`: the relay address of
//! each family (at most one IPv4 and one IPv6, as coturn's repeatable relay-ip), the public IP
//! advertised for each (coturn's repeatable external-ip, `PUBLIC` or `PUBLIC/PRIVATE`), and the
//! family of a client that names none.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use super::{at, invalid, or, At, Checked, Item, RawConfig};
use crate::turn::{DefaultFamily, RelayAddr};

const RELAY: &str = "server.relay-ip";
const EXTERNAL: &str = "server.external-ip";
const DEFAULT_FAMILY: &str = "server.default-family";

/// A key that takes one IP string or an array of them.
#[derive(Clone)]
pub(super) struct Ips {
    /// The entries; a single string is one entry at the key's own place.
    items: Vec<Item<String>>,
    /// Given as an array: errors name `key[i]`.
    list: bool,
}

impl Ips {
    /// Ips given by a repeatable flag.
    pub(super) fn flag(values: &[String], flag: &'static str) -> Self {
        Ips { items: values.iter().map(|v| Item::flag(v.clone(), flag)).collect(), list: true }
    }
}

impl<'de> Deserialize<'de> for Ips {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IpsVisitor;
        impl<'de> Visitor<'de> for IpsVisitor {
            type Value = Ips;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IP address string or an array of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ips, E> {
                Ok(Ips { items: vec![Item::new(v.to_owned(), At::Default)], list: false })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ips, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Item<String>>()? {
                    items.push(item);
                }
                Ok(Ips { items, list: true })
            }
        }
        d.deserialize_any(IpsVisitor)
    }
}

/// One parsed entry: its value, where it is and the key to name in errors.
struct Entry<T> {
    value: T,
    at: At,
    key: String,
}

/// An `external-ip` entry: PUBLIC and the optional PRIVATE.
type External = Entry<(IpAddr, Option<IpAddr>)>;

/// The relay addresses as configured: the first (its family is the one `relay-ip` or
/// `external-ip` names first, else the first listen address's) and the other family's.
pub(super) struct Relays {
    pub first: RelayAddr,
    pub second: Option<RelayAddr>,
}

impl RawConfig {
    /// The entries of a one-or-many IP key, each with its place and key name.
    fn entries(&self, key: &str, opt: &Option<Item<Ips>>) -> Vec<Entry<Item<String>>> {
        let Some(Item { value: ips, at: outer }) = opt else { return Vec::new() };
        let name = |i: usize| if ips.list { format!("{key}[{i}]") } else { key.to_owned() };
        let place = |item: &Item<String>| if item.at == At::Default { *outer } else { item.at };
        ips.items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = place(item);
                Entry { value: Item::new(item.value.clone(), at), at, key: name(i) }
            })
            .collect()
    }

    /// Resolve the relay addresses. Each family's relay IP: its `relay-ip` entry, else the
    /// PRIVATE part of its `external-ip` entry (which also wins over a `relay-ip` from the file
    /// when it comes from `--external-ip`); with neither in any family, the IP of the first
    /// listen address when it is not unspecified. An `external-ip` entry applies to the relay
    /// IP of its family.
    pub(super) fn relays(&self, listen: &[SocketAddr], outside: Option<&str>) -> Checked<Relays> {
        let relay_items = self.entries(RELAY, &self.server.relay_ip);
        if let (true, Some(item)) = (relay_items.is_empty(), &self.server.relay_ip) {
            return Err(self.err(RELAY, item.at, "must list at least one IP address"));
        }
        // Per family (IPv4, IPv6): the explicit relay IP and the external entry.
        let mut explicit: [Option<Entry<IpAddr>>; 2] = [None, None];
        let mut order = Vec::new();
        for e in relay_items {
            let ip = self.ip(&e.key, &e.value, &e.value.value)?;
            let slot = &mut explicit[usize::from(ip.is_ipv6())];
            if slot.is_some() {
                let reason = format!("{ip} is a second address of its family; list at most one IPv4 and one IPv6");
                return Err(self.err(&e.key, e.at, reason));
            }
            order.push(ip.is_ipv6());
            *slot = Some(Entry { value: ip, at: e.at, key: e.key });
        }
        let mut external: [Option<External>; 2] = [None, None];
        for e in self.entries(EXTERNAL, &self.server.external_ip) {
            let text = &e.value.value;
            let (first, second) = text.split_once('/').map_or((&**text, None), |(a, b)| (a, Some(b)));
            let public = self.ip(&e.key, &e.value, first)?;
            let private = second.map(|p| self.ip(&e.key, &e.value, p)).transpose()?;
            if private.is_some_and(|p| p.is_ipv6() != public.is_ipv6())
                || public.is_unspecified()
                || public.is_multicast()
            {
                let reason = "PUBLIC must be a unicast IP of the same family as PRIVATE and relay-ip";
                return Err(self.err(&e.key, e.at, reason));
            }
            let slot = &mut external[usize::from(public.is_ipv6())];
            if slot.is_some() {
                let reason = format!("{public} is a second address of its family; list at most one IPv4 and one IPv6");
                return Err(self.err(&e.key, e.at, reason));
            }
            order.push(public.is_ipv6());
            *slot = Some(Entry { value: (public, private), at: e.at, key: e.key });
        }
        // Per family: the relay address, and where it came from (for errors).
        let mut relays: [Option<(RelayAddr, At, &str)>; 2] = [None, None];
        for family in 0..2 {
            let ext = external[family].as_ref();
            let private = ext.and_then(|e| e.value.1);
            // `--external-ip PUBLIC/PRIVATE` replaces the file's relay-ip of its family, as flags
            // replace keys; two values of one source that disagree are an error.
            let flag_wins = matches!((&explicit[family], ext), (Some(relay), Some(e))
                if !matches!(relay.at, At::Flag(_)) && matches!(e.at, At::Flag(_)));
            let ip = match (&explicit[family], private) {
                (Some(_), Some(private)) if flag_wins => ext.map(|e| (private, e.at, e.key.as_str())),
                (Some(relay), Some(private)) if relay.value != private => {
                    let other = match relay.at {
                        At::Flag(flag) => flag.to_owned(),
                        _ => relay.key.clone(),
                    };
                    let reason = format!("PRIVATE address {private} conflicts with {other} = {}", relay.value);
                    let ext = ext.map_or((EXTERNAL, At::Default), |e| (e.key.as_str(), e.at));
                    return Err(self.err(ext.0, ext.1, reason));
                }
                (Some(relay), _) => Some((relay.value, relay.at, relay.key.as_str())),
                (None, Some(private)) => ext.map(|e| (private, e.at, e.key.as_str())),
                (None, None) => None,
            };
            relays[family] = ip.map(|(ip, at, key)| (RelayAddr { ip, external: ext.map(|e| e.value.0) }, at, key));
        }
        if relays.iter().all(Option::is_none) {
            // Neither relay-ip nor PRIVATE: the first listen IP, with the external IP of its family.
            let ip = listen[0].ip();
            if ip.is_unspecified() {
                let at = at(&self.server.listen);
                let reason = format!(
                    "required because the first listen address {} is unspecified; set relay-ip \
                     (--relay-ip) or external-ip = \"PUBLIC/PRIVATE\"",
                    listen[0]
                );
                return Err(invalid(&self.origin, RELAY, self.line(at), reason));
            }
            let family = usize::from(ip.is_ipv6());
            relays[family] = Some((
                RelayAddr { ip, external: external[family].as_ref().map(|e| e.value.0) },
                at(&self.server.relay_ip),
                RELAY,
            ));
            order.insert(0, ip.is_ipv6());
        }
        // An external IP of a family without a relay address advertises nothing.
        for family in 0..2 {
            if let (None, Some(e)) = (&relays[family], &external[family]) {
                let reason = "PUBLIC must be a unicast IP of the same family as PRIVATE and relay-ip";
                return Err(self.err(&e.key, e.at, reason));
            }
        }
        for (relay, relay_at, key) in relays.iter().flatten() {
            self.check_relay(relay, *relay_at, key, outside)?;
        }
        let first = order.first().copied().unwrap_or(false);
        let pick = |ipv6: bool| relays[usize::from(ipv6)].map(|(r, ..)| r);
        match (pick(first), pick(!first)) {
            (Some(first), second) => Ok(Relays { first, second }),
            (None, Some(first)) => Ok(Relays { first, second: None }),
            (None, None) => Err(invalid(&self.origin, RELAY, None, "no relay address")),
        }
    }

    /// A relay IP clients can be told and reach: a loopback one (without an external IP) only
    /// while `outside`, the first address serving TURN off loopback, is `None`.
    fn check_relay(&self, relay: &RelayAddr, relay_at: At, key: &str, outside: Option<&str>) -> Checked<()> {
        let ip = relay.ip;
        if ip.is_multicast() || (ip.is_unspecified() && relay.external.is_none()) {
            let reason = format!("{ip} cannot be told to clients; use a unicast IP of this host");
            return Err(self.err(key, relay_at, reason));
        }
        if let (true, None, Some(outside)) = (ip.is_loopback(), relay.external, outside) {
            let reason = format!(
                "{ip} is loopback but {outside} is not, so clients could not \
                 reach the relays; set relay-ip (--relay-ip) to an IP they can reach"
            );
            return Err(self.err(key, relay_at, reason));
        }
        Ok(())
    }

    /// `server.default-family`: "listener" (default), "ipv4" or "ipv6".
    pub(super) fn default_family(&self, first: &RelayAddr, second: Option<&RelayAddr>) -> Checked<DefaultFamily> {
        let item = or(&self.server.default_family, "listener".to_owned());
        let family = match item.value.trim() {
            "listener" => DefaultFamily::Listener,
            "ipv4" => DefaultFamily::Ipv4,
            "ipv6" => DefaultFamily::Ipv6,
            other => {
                let reason = format!("`{other}` is not one of \"listener\", \"ipv4\", \"ipv6\"");
                return Err(self.err(DEFAULT_FAMILY, item.at, reason));
            }
        };
        let has = |ipv6: bool| first.ip.is_ipv6() == ipv6 || second.is_some_and(|s| s.ip.is_ipv6() == ipv6);
        let missing = match family {
            DefaultFamily::Ipv4 if !has(false) => Some("IPv4"),
            DefaultFamily::Ipv6 if !has(true) => Some("IPv6"),
            _ => None,
        };
        if let Some(missing) = missing {
            let reason = format!("there is no {missing} relay address (server.relay-ip) to default to");
            return Err(self.err(DEFAULT_FAMILY, item.at, reason));
        }
        Ok(family)
    }
}
