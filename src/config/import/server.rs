//! The `[server]` table of an import: which addresses turnd listens on and relays from, given
//! what coturn's file says and what coturn would work out at run time; ports, TLS, threads, logs
//! and alternate servers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::write::{array, string, TomlOut};
use super::{Conversion, External, ImportError, One, Src, COTURN_PORT, COTURN_TLS_PORT, MAX_PORT, MIN_PORT};

impl Conversion {
    /// Which `relay-ip` and `external-ip` turnd can take: the first relay-ip of the first family
    /// (IPv4 when there is one, of relay-ip, else of external-ip), and the first external-ip of that
    /// family; the other family's first of each are kept for [`Conversion::second_relay`], and
    /// the rest are reported.
    fn relay_and_external(&mut self) -> (One<IpAddr>, One<External>) {
        let relays = std::mem::take(&mut self.relay_ips);
        let externals = std::mem::take(&mut self.external_ips);
        let v6 = match relays.iter().find(|(ip, _)| ip.is_ipv4()).or(relays.first()) {
            Some((ip, _)) => ip.is_ipv6(),
            None => !externals.is_empty() && externals.iter().all(|((public, _), _)| public.is_ipv6()),
        };
        let [mut relay, mut other_relay] = [None, None];
        for (ip, src) in relays {
            match if ip.is_ipv6() == v6 { &mut relay } else { &mut other_relay } {
                slot @ None => *slot = Some((ip, src)),
                Some(_) => self
                    .report
                    .unsupported
                    .push(src.entry("turnd relays from one address per family, the first relay-ip of each")),
            }
        }
        let [mut external, mut other_external] = [None, None];
        for (ext, src) in externals {
            match if ext.0.is_ipv6() == v6 { &mut external } else { &mut other_external } {
                slot @ None => *slot = Some((ext, src)),
                Some(_) => self
                    .report
                    .unsupported
                    .push(src.entry("turnd advertises one external IP per family, the first external-ip of each")),
            }
        }
        self.other_family = (other_relay, other_external);
        let problem = match (&relay, &external) {
            (_, Some(((public, _), _))) if public.is_unspecified() || public.is_multicast() => {
                Some(format!("{public} is not an address clients can reach"))
            }
            (_, Some(((public, Some(private)), _))) if public.is_ipv4() != private.is_ipv4() => {
                Some(format!("{public} and {private} are of different address families"))
            }
            (Some((relay_ip, _)), Some(((_, Some(private)), _))) if private != relay_ip => {
                Some(format!("its private address {private} is not relay-ip {relay_ip}: no relay maps to it"))
            }
            (Some((relay_ip, _)), Some(((public, _), _))) if public.is_ipv4() != relay_ip.is_ipv4() => {
                Some(format!("{public} is not of the family of relay-ip {relay_ip}"))
            }
            _ => None,
        };
        if let (Some(reason), Some((_, src))) = (problem, &external) {
            self.report.unsupported.push(src.entry(reason));
            external = None;
        }
        // An unspecified relay address needs an external one to tell clients.
        let unusable = relay.as_ref().is_some_and(|(ip, _)| ip.is_multicast() || ip.is_unspecified());
        if let (true, None, Some((ip, src))) = (unusable, &external, &relay) {
            let reason = format!("{ip} cannot be given to clients as a relay address (set external-ip with it)");
            self.report.unsupported.push(src.entry(reason));
            relay = None;
        }
        (relay, external)
    }

    /// The relay of the other family, from the first `relay-ip` of that family or the PRIVATE part
    /// of its first `external-ip`, with that `external-ip`; what turnd cannot take is reported.
    /// `first` is the relay IP of the first family as written (`None` when turnd works it out from
    /// the listen address, which a list cannot say).
    fn second_relay(&mut self, first: Option<IpAddr>, all_loopback: bool) -> Option<(IpAddr, Src, One<External>)> {
        let (relay, mut external) = std::mem::take(&mut self.other_family);
        if let Some(((public, private), src)) = &external {
            let problem = if public.is_unspecified() || public.is_multicast() {
                Some(format!("{public} is not an address clients can reach"))
            } else if private.is_some_and(|p| p.is_ipv4() != public.is_ipv4()) {
                Some(format!("{public} and {} are of different address families", private.unwrap_or(*public)))
            } else {
                match (&relay, private) {
                    (Some((relay_ip, _)), Some(private)) if relay_ip != private => {
                        Some(format!("its private address {private} is not relay-ip {relay_ip}: no relay maps to it"))
                    }
                    (None, None) => Some(format!("{public}: there is no relay-ip of its family to advertise it for")),
                    _ => None,
                }
            };
            if let Some(reason) = problem {
                self.report.unsupported.push(src.entry(reason));
                external = None;
            }
        }
        let (ip, src) = match (relay, &external) {
            (Some(relay), _) => relay,
            (None, Some(((_, Some(private)), src))) => (*private, src.clone()),
            (None, _) => return None,
        };
        let problem = if ip.is_multicast() || (ip.is_unspecified() && external.is_none()) {
            Some(format!("{ip} cannot be given to clients as a relay address (set external-ip with it)"))
        } else if ip.is_loopback() && external.is_none() && !all_loopback {
            Some(format!("{ip} is loopback but not every listen address is, so clients could not reach the relays"))
        } else {
            match first {
                None => Some(format!(
                    "{ip}: turnd relays over a second family only next to a relay-ip of the first (set \
                     server.relay-ip to a list of one IPv4 and one IPv6 address)"
                )),
                Some(first) if first.is_ipv6() == ip.is_ipv6() => {
                    Some(format!("{ip}: turnd relays from one address per family, and {first} is of its family"))
                }
                Some(_) => None,
            }
        };
        if let Some(reason) = problem {
            self.report.unsupported.push(src.entry(&reason));
            if let Some((_, ext_src)) = external.filter(|(_, s)| s.line != src.line) {
                self.report.unsupported.push(ext_src.entry(reason));
            }
            return None;
        }
        Some((ip, src, external))
    }

    /// A loopback `relay-ip` only works with loopback listeners: 0.0.0.0 listeners become
    /// loopback ones, and other addresses drop the relay address (turnd then relays from the
    /// first listen address).
    fn loopback_relay(&mut self, relay: &mut One<IpAddr>) {
        let Some((relay_ip, relay_src)) = relay.as_ref() else { return };
        let (everywhere, specific): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.listening_ips).into_iter().partition(|(ip, _)| ip.is_unspecified());
        self.listening_ips = specific;
        for (ip, src) in everywhere {
            let reason = format!("{ip} with the loopback relay-ip {relay_ip}: turnd listens on loopback only then");
            self.report.unsupported.push(src.entry(reason));
        }
        let ips = self.listening_ips.iter().map(|(ip, _)| *ip).chain(self.aux_servers.iter().map(|(a, _)| a.ip()));
        if let Some(outside) = ips.into_iter().find(|ip| !ip.is_loopback()) {
            let reason = format!(
                "{relay_ip} is loopback but {outside} is not, so clients could not reach the relays; turnd relays \
                 from the first listen address"
            );
            self.report.unsupported.push(relay_src.entry(reason));
            *relay = None;
        }
    }

    /// The IPs to listen on and the lines that named them. Without `listening-ip` coturn
    /// listens on every address of the host; turnd listens on 0.0.0.0 when it can tell clients
    /// a relay address, else on loopback only (with a note saying what to set).
    fn listen_ips(&mut self, relay: Option<IpAddr>, external: bool) -> (Vec<IpAddr>, Vec<Src>) {
        if relay.is_none() && !external {
            // turnd cannot name a relay address for clients on 0.0.0.0 or ::.
            let (everywhere, specific): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.listening_ips).into_iter().partition(|(ip, _)| ip.is_unspecified());
            self.listening_ips = specific;
            for (ip, src) in everywhere {
                let reason = format!("{ip}: turnd needs relay-ip or external-ip with it, and the file sets neither");
                self.report.unsupported.push(src.entry(reason));
            }
        }
        if !self.listening_ips.is_empty() {
            let mut ips = Vec::new();
            for (ip, _) in &self.listening_ips {
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
            return (ips, self.listening_ips.iter().map(|(_, src)| src.clone()).collect());
        }
        let note = if relay.is_some() || external {
            "no listening-ip: coturn listens on every address of the host; turnd listens on 0.0.0.0 \
             (IPv4 only: add listening-ip lines for IPv6 addresses)"
        } else {
            "no listening-ip, relay-ip or external-ip: coturn listens on every address and relays from the one \
             each client reached, but turnd needs a relay address it can give clients. listen is 127.0.0.1 \
             (loopback only) so that the file is valid: set server.listen and server.relay-ip (or \
             server.external-ip) to this host's addresses"
        };
        self.report.notes.push(note.to_owned());
        let ip = match relay {
            // A loopback relay goes with loopback listeners (turnd refuses it with others).
            Some(ip) if ip.is_loopback() && !external => ip,
            _ if relay.is_some() || external => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        (vec![ip], Vec::new())
    }

    /// coturn relays from the address each client reached; turnd from one, by default the first
    /// listen address. When that is loopback or of the wrong family, the first reachable
    /// listening-ip (or aux-server) of the external IP's family (else IPv4) is named instead.
    fn implied_relay(&self, ips: &[IpAddr], external: Option<&(External, Src)>) -> One<IpAddr> {
        let v4 = external.is_none_or(|((public, _), _)| public.is_ipv4());
        let reachable = || {
            let listening = self.listening_ips.iter().map(|(ip, src)| (*ip, src));
            let aux = self.aux_servers.iter().map(|(addr, src)| (addr.ip(), src));
            listening.chain(aux).filter(|(ip, _)| !ip.is_loopback() && !ip.is_unspecified())
        };
        let pick = reachable().find(|(ip, _)| ip.is_ipv4() == v4).or_else(|| reachable().next());
        pick.filter(|(ip, _)| Some(ip) != ips.first()).map(|(ip, src)| (ip, src.clone()))
    }

    /// The `[server]` table: addresses, ports, TLS, threads, logs, alternate servers.
    pub(super) fn server(&mut self, out: &mut TomlOut) -> Result<(), ImportError> {
        out.table("server");
        let (mut relay, mut external) = self.relay_and_external();
        if relay.as_ref().is_some_and(|(ip, _)| ip.is_loopback()) && external.is_none() {
            self.loopback_relay(&mut relay);
        }
        let (ips, ip_srcs) = self.listen_ips(relay.as_ref().map(|(ip, _)| *ip), external.is_some());
        let implied = relay.is_none() && external.as_ref().is_none_or(|((_, private), _)| private.is_none());
        let implied = implied.then(|| self.implied_relay(&ips, external.as_ref())).flatten();
        let implied = implied.is_some_and(|pick| relay.replace(pick).is_none());
        // The relay address and the external one must be of one family.
        if let Some(((public, None), src)) = &external {
            let relay_ip = relay.as_ref().map(|(ip, _)| *ip).or(ips.first().copied());
            if let Some(relay_ip) = relay_ip.filter(|ip| !ip.is_unspecified() && ip.is_ipv4() != public.is_ipv4()) {
                let reason = format!("{public} is not of the family of the relay address {relay_ip}");
                self.report.unsupported.push(src.entry(reason));
                external = None;
            }
        }
        let port = self.port.as_ref().map_or(COTURN_PORT, |(p, _)| *p);
        let mut listen = product(&ips, Some(port), self.alt_port.as_ref().map(|(p, _)| *p));
        listen.extend(self.aux_servers.iter().map(|(a, _)| *a));
        dedup(&mut listen);
        self.all_loopback = listen.iter().all(|a| a.ip().is_loopback());
        match (ip_srcs.is_empty(), ips[0].is_loopback()) {
            (true, true) => out.comment("Loopback only: set this host's addresses (coturn used all of them)."),
            (true, false) => out.comment("No listening-ip: coturn listens on every address."),
            _ => {}
        }
        let mut srcs: Vec<&Src> = ip_srcs.iter().collect();
        srcs.extend(self.port.iter().chain(&self.alt_port).map(|(_, s)| s));
        srcs.extend(self.aux_servers.iter().map(|(_, s)| s));
        out.key("listen", array(listen.iter().map(|a| string(&a.to_string()))), &srcs);
        let every_address = ips.iter().all(IpAddr::is_unspecified);
        // The first family's relay IP as written: relay-ip, PRIVATE, or the unspecified address.
        let first = match (&relay, &external) {
            (Some((ip, _)), _) => Some(*ip),
            (None, Some(((_, Some(private)), _))) => Some(*private),
            (None, Some(((public, None), _))) if every_address => Some(if public.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            }),
            // What turnd takes when no relay address is given: the first listen IP.
            _ => ips.first().copied().filter(|ip| !ip.is_unspecified()),
        };
        let second = self.second_relay(first, self.all_loopback);
        let external_srcs: Vec<&Src> = external.iter().map(|(_, s)| s).collect();
        match (&relay, &external, &second, first) {
            (_, _, Some((ip2, src2, _)), Some(ip)) => {
                let mut srcs: Vec<&Src> = relay.iter().map(|(_, s)| s).collect();
                srcs.extend(if relay.is_none() { external_srcs.clone() } else { Vec::new() });
                srcs.push(src2);
                out.key("relay-ip", array([ip, *ip2].iter().map(|ip| string(&ip.to_string()))), &srcs);
            }
            (Some((ip, src)), ..) => {
                if implied {
                    out.comment("turnd relays from one address; coturn from the one each client reached.");
                }
                out.key("relay-ip", string(&ip.to_string()), &[src]);
            }
            (None, Some(((public, None), src)), ..) if every_address => {
                out.comment("Relays on every address, the external IP given to clients (coturn's default).");
                out.key("relay-ip", string(if public.is_ipv4() { "0.0.0.0" } else { "::" }), &[src]);
            }
            _ => {}
        }
        let show = |(public, private): &External| private.map_or(public.to_string(), |p| format!("{public}/{p}"));
        let second_external = second.as_ref().and_then(|(_, _, e)| e.as_ref());
        match (&external, second_external) {
            (Some((ext, src)), None) => out.key("external-ip", string(&show(ext)), &[src]),
            (first, Some((ext2, src2))) => {
                let values = first.iter().map(|(e, _)| string(&show(e))).chain([string(&show(ext2))]);
                let srcs: Vec<&Src> = first.iter().map(|(_, s)| s).chain([src2]).collect();
                out.key("external-ip", array(values), &srcs);
            }
            (None, None) => {}
        }
        if let Some(src) = self.default_family.take() {
            let has_v6 = first.is_some_and(|ip| ip.is_ipv6()) || second.as_ref().is_some_and(|(ip, ..)| ip.is_ipv6());
            match has_v6 {
                true => out.key("default-family", string("ipv6"), &[&src]),
                false => self.report.unsupported.push(src.entry("ipv6: the file gives turnd no IPv6 relay address")),
            }
        }
        let min = self.min_port.as_ref().map_or(MIN_PORT, |(v, _)| *v);
        let max = self.max_port.as_ref().map_or(MAX_PORT, |(v, _)| *v);
        if min > max {
            let blamed = self.min_port.iter().chain(&self.max_port).map(|(_, s)| s).max_by_key(|s| s.line);
            let src = blamed.expect("a port outside the defaults' order was set by a line");
            let message = format!("min-port {min} is greater than max-port {max}");
            return Err(ImportError { line: src.line, option: src.name.clone(), message });
        }
        let numbers = [("min-port", &self.min_port), ("max-port", &self.max_port), ("workers", &self.workers)];
        for (key, (value, src)) in numbers.into_iter().filter_map(|(k, v)| Some((k, v.as_ref()?))) {
            out.key(key, value.to_string(), &[src]);
        }
        if let Some((level, src)) = &self.log_level {
            out.key("log-level", string(level), &[src]);
        }
        if let Some(src) = &self.no_tcp {
            out.key("tcp", "false".to_owned(), &[src]);
        }
        if let Some(src) = &self.mobility {
            out.key("mobility", "true".to_owned(), &[src]);
        }
        self.tls(out, &ips, &ip_srcs);
        if !self.alternates.is_empty() {
            let srcs: Vec<&Src> = self.alternates.iter().map(|(_, s)| s).collect();
            let addrs = self.alternates.iter().map(|(a, _)| string(&a.to_string()));
            out.key("alternate-servers", array(addrs), &srcs);
            out.comment("coturn's alternate-server redirects every new allocation.");
            out.key("redirect-all", "true".to_owned(), &[]);
        }
        Ok(())
    }

    /// `tls-listen`, `cert` and `key`: TLS is served when the file names both a certificate
    /// and a key and does not say `no-tls`.
    fn tls(&mut self, out: &mut TomlOut, ips: &[IpAddr], ip_srcs: &[Src]) {
        let parts = [&self.tls_port, &self.alt_tls_port];
        if let (Some((cert, cert_src)), Some((key, key_src)), None) = (&self.cert, &self.pkey, &self.no_tls) {
            // turnd serves plain TCP on the listen ports, and TLS on ports of its own.
            let port = self.port.as_ref().map_or(COTURN_PORT, |(p, _)| *p);
            let plain: Vec<u16> = std::iter::once(port).chain(self.alt_port.as_ref().map(|(p, _)| *p)).collect();
            let plain = if self.no_tcp.is_some() { &[][..] } else { &plain[..] };
            let tls_port = self.tls_port.as_ref().map_or((COTURN_TLS_PORT, None), |(p, s)| (*p, Some(s)));
            let alt = self.alt_tls_port.as_ref().map(|(p, s)| (*p, Some(s)));
            let mut ports = Vec::new();
            let mut srcs: Vec<&Src> = ip_srcs.iter().collect();
            for (port, src) in std::iter::once(tls_port).chain(alt) {
                match (plain.contains(&port), src) {
                    (false, src) => {
                        ports.push(port);
                        srcs.extend(src);
                    }
                    (true, Some(src)) => {
                        let reason = format!("port {port} also serves plain TCP; turnd serves TLS on ports of its own");
                        self.report.unsupported.push(src.entry(reason));
                    }
                    (true, None) => {}
                }
            }
            let mut tls = product(ips, ports.first().copied(), ports.get(1).copied());
            dedup(&mut tls);
            if !tls.is_empty() {
                out.key("tls-listen", array(tls.iter().map(|a| string(&a.to_string()))), &srcs);
            }
            out.key("cert", string(cert), &[cert_src]);
            out.key("key", string(key), &[key_src]);
            return;
        }
        if let Some(src) = &self.no_tls {
            out.key("tls-listen", "[]".to_owned(), &[src]);
        }
        let files = [&self.cert, &self.pkey];
        let srcs = parts.into_iter().flatten().map(|(_, s)| s).chain(files.into_iter().flatten().map(|(_, s)| s));
        for src in srcs {
            match &self.no_tls {
                Some(off) => self.report.ignored.push(src.entry(format!("TLS is off (no-tls, line {})", off.line))),
                None => self.report.unsupported.push(src.entry(
                    "TLS needs both cert and pkey in the file (coturn's default files turn_server_cert.pem and \
                     turn_server_pkey.pem are not looked for)",
                )),
            }
        }
    }
}

/// Every IP with the port, then every IP with the alternative port.
fn product(ips: &[IpAddr], port: Option<u16>, alt: Option<u16>) -> Vec<SocketAddr> {
    [port, alt].into_iter().flatten().flat_map(|p| ips.iter().map(move |ip| SocketAddr::new(*ip, p))).collect()
}

/// Drop repeated addresses, keeping the first of each.
fn dedup(list: &mut Vec<SocketAddr>) {
    let mut seen = Vec::with_capacity(list.len());
    list.retain(|a| {
        let new = !seen.contains(a);
        seen.push(*a);
        new
    });
}
