//! The STUN codec without sockets: decoding, encoding and message integrity for the messages a
//! TURN server handles most, and ChannelData framing.
//!
//!     cargo bench --bench codec

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use turnd::auth::{long_term_key, long_term_key_sha256};
use turnd::stun::{attr, classify, ChannelData, Class, Message, MessageType, MessageWriter, Method};

const TXID: [u8; 12] = [7; 12];
const PEER: &str = "203.0.113.9:5000";

/// A request or indication as a TURN client sends it: with `integrity` USERNAME, REALM, NONCE
/// and MESSAGE-INTEGRITY (MD5 key), then FINGERPRINT.
fn message(method: Method, class: Class, integrity: bool, body: impl FnOnce(&mut MessageWriter<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(method, class), &TXID);
    body(&mut w);
    if integrity {
        w.attr(attr::USERNAME, b"1767225600:alice")
            .attr(attr::REALM, b"turnd.example")
            .attr(attr::NONCE, b"obMatJos2wAAAabcdefghijklmnop")
            .integrity(&long_term_key("1767225600:alice", "turnd.example", "password"));
    }
    let n = w.fingerprint().finish().expect("fits");
    buf.truncate(n);
    buf
}

/// The messages benchmarked, by name.
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let peer: SocketAddr = PEER.parse().unwrap();
    vec![
        ("binding_request", message(Method::BINDING, Class::Request, false, |_| {})),
        (
            "allocate_request",
            message(Method::ALLOCATE, Class::Request, true, |w| {
                w.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
            }),
        ),
        (
            "channel_bind_request",
            message(Method::CHANNEL_BIND, Class::Request, true, |w| {
                w.attr(attr::CHANNEL_NUMBER, &[0x40, 0x00, 0, 0]).xor_address(attr::XOR_PEER_ADDRESS, peer);
            }),
        ),
        (
            "send_indication_100",
            message(Method::SEND, Class::Indication, false, |w| {
                w.xor_address(attr::XOR_PEER_ADDRESS, peer).attr(attr::DATA, &[0x5A; 100]);
            }),
        ),
    ]
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, bytes) in messages() {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let msg = Message::parse(black_box(&bytes)).expect("valid");
                black_box(msg.xor_address(attr::XOR_PEER_ADDRESS));
            })
        });
    }
    let mut channel_data = vec![0x40, 0x00, 0x00, 100];
    channel_data.resize(104, 0x5A);
    group.bench_function("channel_data_100", |b| {
        b.iter(|| {
            black_box(classify(black_box(&channel_data)));
            black_box(ChannelData::parse(black_box(&channel_data)).expect("valid"));
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let key = long_term_key("1767225600:alice", "turnd.example", "password");
    let client: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let relayed: SocketAddr = "203.0.113.1:50000".parse().unwrap();
    let mut out = [0u8; 1500];
    group.bench_function("binding_success", |b| {
        b.iter(|| {
            let mut w = MessageWriter::new(&mut out, MessageType::new(Method::BINDING, Class::Success), &TXID);
            w.xor_address(attr::XOR_MAPPED_ADDRESS, black_box(client)).fingerprint();
            black_box(w.finish().expect("fits"))
        })
    });
    group.bench_function("allocate_success_md5", |b| {
        b.iter(|| {
            let mut w = MessageWriter::new(&mut out, MessageType::new(Method::ALLOCATE, Class::Success), &TXID);
            w.xor_address(attr::XOR_RELAYED_ADDRESS, black_box(relayed))
                .xor_address(attr::XOR_MAPPED_ADDRESS, client)
                .u32_attr(attr::LIFETIME, 600)
                .integrity(&key)
                .fingerprint();
            black_box(w.finish().expect("fits"))
        })
    });
    group.bench_function("unauthorized_401", |b| {
        b.iter(|| {
            let mut w = MessageWriter::new(&mut out, MessageType::new(Method::ALLOCATE, Class::Error), &TXID);
            w.error_code(401, "Unauthorized")
                .attr(attr::REALM, b"turnd.example")
                .attr(attr::NONCE, black_box(b"obMatJos2wAAAabcdefghijklmnop"))
                .fingerprint();
            black_box(w.finish().expect("fits"))
        })
    });
    group.finish();
}

fn integrity(c: &mut Criterion) {
    let mut group = c.benchmark_group("integrity");
    let md5 = long_term_key("1767225600:alice", "turnd.example", "password");
    let sha256 = long_term_key_sha256("1767225600:alice", "turnd.example", "password");
    for (name, bytes) in
        messages().into_iter().filter(|(name, _)| name.ends_with("_request") && *name != "binding_request")
    {
        let msg = Message::parse(&bytes).expect("valid");
        assert!(msg.check_integrity(&md5), "{name}: the benchmark must verify a correct MAC");
        group.bench_function(format!("check_sha1_{name}"), |b| {
            b.iter(|| black_box(msg.check_integrity(black_box(&md5))))
        });
    }
    let mut buf = vec![0u8; 2048];
    let mut w = MessageWriter::new(&mut buf, MessageType::new(Method::REFRESH, Class::Request), &TXID);
    w.attr(attr::USERNAME, b"1767225600:alice")
        .attr(attr::REALM, b"turnd.example")
        .attr(attr::NONCE, b"obMatJos2wAAAabcdefghijklmnop")
        .integrity_sha256(&sha256)
        .fingerprint();
    let n = w.finish().expect("fits");
    let msg = Message::parse(&buf[..n]).expect("valid");
    assert!(msg.check_integrity_sha256(&sha256));
    group.bench_function("check_sha256_refresh_request", |b| {
        b.iter(|| black_box(msg.check_integrity_sha256(black_box(&sha256))))
    });
    group.bench_function("long_term_key_md5", |b| {
        b.iter(|| black_box(long_term_key(black_box("1767225600:alice"), "turnd.example", "password")))
    });
    group.finish();
}

criterion_group!(benches, decode, encode, integrity);
criterion_main!(benches);
