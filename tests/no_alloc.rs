//! The relay hot path allocates nothing: a counting global allocator watches the ChannelData
//! path (client → peer) and the peer → client path (ChannelData and Data indication framing).
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turnd::auth::{long_term_key, Credentials, NonceMinter, UserSecret};
use turnd::stun::{attr, Class, Message, MessageType, MessageWriter, Method};
use turnd::turn::policy::PeerPolicy;
use turnd::turn::{
    AllocId, FiveTuple, Now, OpenError, Outcome, Relay, RelayOptions, RelayProvider, Server, ServerConfig, Transport,
    DATA_INDICATION_HEADROOM, PEER_TAILROOM,
};

struct Counting;

thread_local!(static ALLOCATIONS: Cell<usize> = const { Cell::new(0) });

// SAFETY: forwards to the system allocator; only counts (thread-locally) what it forwards.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// A relay that sends nowhere and counts sends without allocating.
struct NullRelay(std::sync::atomic::AtomicUsize);

impl Relay for NullRelay {
    fn send_to(&self, _payload: &[u8], _peer: SocketAddr) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

struct NullPorts;

impl RelayProvider for NullPorts {
    type Relay = NullRelay;
    fn open(&mut self, _id: AllocId, _options: RelayOptions) -> Result<(NullRelay, u16), OpenError> {
        Ok((NullRelay(Default::default()), 50_000))
    }
}

fn request(method: Method, txid: u8, nonce: Option<&str>, body: impl FnOnce(&mut MessageWriter<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), &[txid; 12]);
    body(&mut w);
    if let Some(nonce) = nonce {
        w.attr(attr::USERNAME, b"alice")
            .attr(attr::REALM, b"r")
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(&long_term_key("alice", "r", "pw"));
    }
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn relaying_allocates_nothing_per_packet() {
    let config = ServerConfig {
        // Both families: the allocation below is a dual one, and both relays are exercised.
        relays: turnd::turn::RelayAddrs::single("127.0.0.1".parse().unwrap(), None)
            .with(turnd::turn::RelayAddr { ip: "::1".parse().unwrap(), external: None }),
        default_family: Default::default(),
        default_lifetime: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(3600),
        user_quota: 0,
        total_quota: 0,
        limits: Default::default(),
        alternates: vec![],
        redirect_all: false,
        rfc8489_security: true,
        mobility: false,
    };
    let creds = Credentials::new("r", vec![], ':', vec![("alice".into(), UserSecret::Password("pw".into()))]);
    let server = Server::new(config, creds, NonceMinter::with_key([1; 32], 600), PeerPolicy::new(vec![], vec![]));
    let now = Now { mono: Instant::now(), unix: 1_800_000_000 };
    let tuple = FiveTuple {
        client: "127.0.0.1:40000".parse().unwrap(),
        server: "127.0.0.1:3478".parse().unwrap(),
        transport: Transport::Udp,
    };
    let peer: SocketAddr = "8.8.8.8:5000".parse().unwrap();
    let mut out = vec![0u8; 2048];

    // Setup (allocations here are expected): 401, Allocate, ChannelBind.
    let alloc = |txid| {
        request(Method::ALLOCATE, txid, None, |w| {
            w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        })
    };
    let Outcome::Reply(n) = server.handle_client(now, &tuple, &alloc(1), &mut NullPorts, &mut out) else { panic!() };
    let nonce = Message::parse(&out[..n]).unwrap().text(attr::NONCE).unwrap().unwrap().to_string();
    let req = request(Method::ALLOCATE, 2, Some(&nonce), |w| {
        w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]).attr(attr::ADDITIONAL_ADDRESS_FAMILY, &[2, 0, 0, 0]);
    });
    assert!(matches!(server.handle_client(now, &tuple, &req, &mut NullPorts, &mut out), Outcome::Reply(_)));
    let req = request(Method::CHANNEL_BIND, 3, Some(&nonce), |w| {
        w.attr(attr::CHANNEL_NUMBER, &[0x40, 0x01, 0, 0]).xor_address(attr::XOR_PEER_ADDRESS, peer);
    });
    let Outcome::Reply(n) = server.handle_client(now, &tuple, &req, &mut NullPorts, &mut out) else { panic!() };
    assert_eq!(Message::parse(&out[..n]).unwrap().class(), Class::Success);
    // An IPv6 peer on the dual allocation's IPv6 relay.
    let peer6: SocketAddr = "[2606:4700::1111]:5000".parse().unwrap();
    let req = request(Method::CHANNEL_BIND, 4, Some(&nonce), |w| {
        w.attr(attr::CHANNEL_NUMBER, &[0x40, 0x02, 0, 0]).xor_address(attr::XOR_PEER_ADDRESS, peer6);
    });
    let Outcome::Reply(n) = server.handle_client(now, &tuple, &req, &mut NullPorts, &mut out) else { panic!() };
    assert_eq!(Message::parse(&out[..n]).unwrap().class(), Class::Success);
    let id = server.table().with(&tuple, |a| a.id).unwrap();

    let mut channel_data = vec![0x40, 0x01, 0x04, 0xB0];
    channel_data.resize(4 + 1200, 7);
    let mut channel_data6 = channel_data.clone();
    channel_data6[1] = 0x02;
    let mut peer_buf = vec![0u8; DATA_INDICATION_HEADROOM + 1200 + PEER_TAILROOM];
    let unbound_peer: SocketAddr = "8.8.8.8:6000".parse().unwrap();

    let counted = allocations_during(|| {
        for _ in 0..1000 {
            let outcome = server.handle_client(now, &tuple, &channel_data, &mut NullPorts, &mut out);
            assert_eq!(outcome, Outcome::Relayed { bytes: 1200 });
            // Peer → client as ChannelData (bound peer) and as a Data indication (same IP, other port).
            assert!(server.handle_peer(now, id, peer, &mut peer_buf, 1200).is_ok());
            assert!(server.handle_peer(now, id, unbound_peer, &mut peer_buf, 1200).is_ok());
            // The same on the IPv6 relay.
            let outcome = server.handle_client(now, &tuple, &channel_data6, &mut NullPorts, &mut out);
            assert_eq!(outcome, Outcome::Relayed { bytes: 1200 });
            assert!(server.handle_peer(now, id, peer6, &mut peer_buf, 1200).is_ok());
        }
    });
    assert_eq!(counted, 0, "heap allocations on 5,000 relayed packets");
    let sent = |a: &turnd::turn::Allocation<NullRelay>| {
        let second = a.second.as_ref().map(|s| s.relay.0.load(std::sync::atomic::Ordering::Relaxed));
        (a.relay.0.load(std::sync::atomic::Ordering::Relaxed), second)
    };
    assert_eq!(server.table().with(&tuple, sent), Some((1000, Some(1000))), "each family out of its own relay");
}
