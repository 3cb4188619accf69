//! The in-memory relay step, no sockets: a client's ChannelData or Send indication through the
//! allocation table to the relay (`Server::handle_client`), and a peer datagram framed as
//! ChannelData or a Data indication in front of its payload (`Server::handle_peer`), over 10
//! and 200 allocations taken in turn.
//!
//!     cargo bench --bench relay
// A benchmark is the IO side: it reads the real clock once, for the simulated `Now`.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use turnd::auth::{long_term_key, NonceMinter};
use turnd::config::Config;
use turnd::stun::{attr, Class, Message, MessageType, MessageWriter, Method};
use turnd::turn::{
    AllocId, FiveTuple, Now, OpenError, Outcome, Relay, RelayOptions, RelayProvider, Server, Transport,
    DATA_INDICATION_HEADROOM, PEER_TAILROOM,
};

/// Peers in a documentation range, allowed by the config; nothing is ever sent to them (the
/// relay below only counts).
const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:3478"]
[auth]
realm = "bench"
[[auth.users]]
name = "alice"
password = "pw"
[peers]
allowed = ["203.0.113.0/24"]
[limits]
allocate-rate = 0
challenge-rate = 0
"#;

/// A relay socket that counts what it would send.
struct CountingRelay(AtomicU64);

impl Relay for CountingRelay {
    fn send_to(&self, payload: &[u8], _peer: SocketAddr) {
        self.0.fetch_add(payload.len() as u64, Ordering::Relaxed);
    }
}

/// Hands out relay ports without sockets.
struct Ports(u16);

impl RelayProvider for Ports {
    type Relay = CountingRelay;
    fn open(&mut self, _id: AllocId, _options: RelayOptions) -> Result<(CountingRelay, u16), OpenError> {
        self.0 += 1;
        Ok((CountingRelay(AtomicU64::new(0)), self.0))
    }
}

struct Bench {
    server: Server<CountingRelay>,
    now: Now,
    /// Each allocation's client 5-tuple, id and peer (channel 0x4000 is bound to it).
    allocations: Vec<(FiveTuple, AllocId, SocketAddr)>,
}

fn request(method: Method, txid: u32, nonce: Option<&str>, body: impl FnOnce(&mut MessageWriter<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&txid.to_be_bytes());
    let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), &id);
    body(&mut w);
    if let Some(nonce) = nonce {
        w.attr(attr::USERNAME, b"alice")
            .attr(attr::REALM, b"bench")
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(&long_term_key("alice", "bench", "pw"));
    }
    let n = w.finish().expect("fits");
    buf.truncate(n);
    buf
}

/// A server with `count` UDP allocations, each with a channel bound to its own peer.
fn setup(count: u16) -> Bench {
    let config = Config::parse(CONFIG, "bench").expect("bench config");
    let (settings, credentials, policy) = turnd::io::server_settings(&config);
    let server = Server::new(settings, credentials, NonceMinter::with_key([1; 32], 600), policy);
    let now = Now { mono: Instant::now(), unix: 1_800_000_000 };
    let mut ports = Ports(49_999);
    let mut out = vec![0u8; 2048];
    let mut allocations = Vec::new();
    for i in 0..count {
        let tuple = FiveTuple {
            client: SocketAddr::from(([127, 0, 0, 1], 20_000 + i)),
            server: "127.0.0.1:3478".parse().unwrap(),
            transport: Transport::Udp,
        };
        let peer = SocketAddr::from(([203, 0, 113, (i % 250) as u8 + 1], 5_000 + i));
        let transport = |w: &mut MessageWriter<'_>| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        };
        let Outcome::Reply(n) =
            server.handle_client(now, &tuple, &request(Method::ALLOCATE, 1, None, transport), &mut ports, &mut out)
        else {
            panic!("no 401")
        };
        let nonce = Message::parse(&out[..n]).unwrap().text(attr::NONCE).unwrap().unwrap().to_owned();
        let allocate = request(Method::ALLOCATE, 2, Some(&nonce), transport);
        let bind = request(Method::CHANNEL_BIND, 3, Some(&nonce), |w| {
            w.attr(attr::CHANNEL_NUMBER, &[0x40, 0x00, 0, 0]).xor_address(attr::XOR_PEER_ADDRESS, peer);
        });
        for req in [allocate, bind] {
            let Outcome::Reply(n) = server.handle_client(now, &tuple, &req, &mut ports, &mut out) else { panic!() };
            assert_eq!(Message::parse(&out[..n]).unwrap().class(), Class::Success, "setup request refused");
        }
        let id = server.table().with(&tuple, |a| a.id).expect("allocated");
        allocations.push((tuple, id, peer));
    }
    Bench { server, now, allocations }
}

fn client_to_peer(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_to_peer");
    for count in [10u16, 200] {
        let bench = setup(count);
        for size in [100usize, 1200] {
            group.throughput(Throughput::Elements(1));
            let mut channel_data = vec![0x40, 0x00];
            channel_data.extend_from_slice(&(size as u16).to_be_bytes());
            channel_data.resize(4 + size, 0x5A);
            let mut out = vec![0u8; 2048];
            let mut turn = 0;
            group.bench_function(BenchmarkId::new(format!("channel_data_{size}"), count), |b| {
                b.iter(|| {
                    let (tuple, _, _) = &bench.allocations[turn % bench.allocations.len()];
                    turn += 1;
                    let outcome =
                        bench.server.handle_client(bench.now, tuple, black_box(&channel_data), &mut Ports(0), &mut out);
                    debug_assert_eq!(outcome, Outcome::Relayed { bytes: size });
                    black_box(outcome)
                })
            });
        }
        // Send indications carry the peer address and no integrity.
        let sends: Vec<Vec<u8>> = bench
            .allocations
            .iter()
            .map(|(_, _, peer)| {
                let mut buf = vec![0u8; 256];
                let mut w = MessageWriter::new(&mut buf, MessageType::new(Method::SEND, Class::Indication), &[9; 12]);
                w.xor_address(attr::XOR_PEER_ADDRESS, *peer).attr(attr::DATA, &[0x5A; 100]);
                let n = w.finish().expect("fits");
                buf.truncate(n);
                buf
            })
            .collect();
        let mut out = vec![0u8; 2048];
        let mut turn = 0;
        group.bench_function(BenchmarkId::new("send_indication_100", count), |b| {
            b.iter(|| {
                let i = turn % bench.allocations.len();
                turn += 1;
                let outcome = bench.server.handle_client(
                    bench.now,
                    &bench.allocations[i].0,
                    black_box(&sends[i]),
                    &mut Ports(0),
                    &mut out,
                );
                debug_assert_eq!(outcome, Outcome::Relayed { bytes: 100 });
                black_box(outcome)
            })
        });
    }
    group.finish();
}

fn peer_to_client(c: &mut Criterion) {
    let mut group = c.benchmark_group("peer_to_client");
    for count in [10u16, 200] {
        let bench = setup(count);
        for size in [100usize, 1200] {
            group.throughput(Throughput::Elements(1));
            let mut buf = vec![0x5Au8; DATA_INDICATION_HEADROOM + size + PEER_TAILROOM];
            let mut turn = 0;
            group.bench_function(BenchmarkId::new(format!("channel_data_{size}"), count), |b| {
                b.iter(|| {
                    let (_, id, peer) = bench.allocations[turn % bench.allocations.len()];
                    turn += 1;
                    black_box(bench.server.handle_peer(bench.now, id, peer, &mut buf, size).is_ok())
                })
            });
        }
        // The same peer IP from a port without a channel: a Data indication.
        let mut buf = vec![0x5Au8; DATA_INDICATION_HEADROOM + 100 + PEER_TAILROOM];
        let mut turn = 0;
        group.bench_function(BenchmarkId::new("data_indication_100", count), |b| {
            b.iter(|| {
                let (_, id, peer) = bench.allocations[turn % bench.allocations.len()];
                turn += 1;
                let unbound = SocketAddr::new(peer.ip(), peer.port() + 1);
                black_box(bench.server.handle_peer(bench.now, id, unbound, &mut buf, 100).is_ok())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, client_to_peer, peer_to_client);
criterion_main!(benches);
