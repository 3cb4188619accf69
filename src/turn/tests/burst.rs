//! ChannelData bursts from one UDP client (one GRO receive): relayed as `handle_client` would
//! relay each message, with runs to one peer sent as one.

use super::*;

/// `payloads` as ChannelData on `channel`, each padded to `segment` bytes (a GRO burst: every
/// datagram of one size but the last).
fn burst(frames: &[(u16, &[u8])], segment: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (channel, payload)) in frames.iter().enumerate() {
        let mut frame = channel.to_be_bytes().to_vec();
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        frame.extend_from_slice(payload);
        if i + 1 < frames.len() {
            assert!(frame.len() <= segment && segment - frame.len() <= 3, "padding only");
            frame.resize(segment, 0);
        }
        out.extend_from_slice(&frame);
    }
    out
}

fn other_peer() -> SocketAddr {
    "8.8.4.4:5000".parse().unwrap()
}

/// An allocation for `t` with channel 0x4001 to the public peer and 0x4002 to the other.
fn two_channels(h: &mut Harness, t: &FiveTuple) -> Creds {
    let (creds, _) = h.allocate(t, alice());
    assert_eq!(h.bind(t, &creds, 0x4001, public_peer()), None);
    assert_eq!(h.bind(t, &creds, 0x4002, other_peer()), None);
    creds
}

#[test]
fn runs_to_one_peer_leave_as_one_send_in_order() {
    let mut h = Harness::new();
    let t = tuple(1000);
    two_channels(&mut h, &t);
    let frames: [(u16, &[u8]); 6] = [
        (0x4001, b"aaaa"),
        (0x4001, b"bbbb"),
        (0x4001, b"cccc"),
        (0x4002, b"dddd"),
        (0x4002, b"eeee"),
        (0x4001, b"ffff"),
    ];
    let done = h.server.relay_channel_data_run(h.now, &t, &burst(&frames, 8), 8);
    assert_eq!(done, RunRelayed { messages: 6, bytes: 24, batched: 2 });
    let (a, b) = (public_peer(), other_peer());
    assert_eq!(
        h.sent(),
        vec![(a, b"aaaa|bbbb|cccc".to_vec()), (b, b"dddd|eeee".to_vec()), (a, b"ffff".to_vec())],
        "runs per peer, in the order sent"
    );
}

#[test]
fn a_shorter_payload_ends_a_run_and_the_last_may_be_short() {
    let mut h = Harness::new();
    let t = tuple(1000);
    two_channels(&mut h, &t);
    // Padded to 4 on the wire, as a client may: 6 bytes of payload in an 12-byte datagram.
    let frames: [(u16, &[u8]); 4] = [(0x4001, b"12345678"), (0x4001, b"123456"), (0x4001, b"12345678"), (0x4001, b"1")];
    let done = h.server.relay_channel_data_run(h.now, &t, &burst(&frames, 12), 12);
    assert_eq!(done, RunRelayed { messages: 4, bytes: 23, batched: 2 });
    let a = public_peer();
    assert_eq!(h.sent(), vec![(a, b"12345678|123456".to_vec()), (a, b"12345678|1".to_vec())]);
}

#[test]
fn it_stops_before_a_message_that_takes_another_path() {
    let mut h = Harness::new();
    let t = tuple(1000);
    let creds = two_channels(&mut h, &t);
    // An unbound channel: relayed up to it; handle_client then says what becomes of it.
    let frames: [(u16, &[u8]); 4] = [(0x4001, b"aaaa"), (0x4001, b"bbbb"), (0x4003, b"cccc"), (0x4001, b"dddd")];
    let packet = burst(&frames, 8);
    assert_eq!(h.server.relay_channel_data_run(h.now, &t, &packet, 8).messages, 2);
    assert_eq!(h.send(&t, &packet[16..24]).0, Outcome::Dropped(Discard::NoChannel));
    assert_eq!(h.server.relay_channel_data_run(h.now, &t, &packet[24..], 8).messages, 1);
    assert_eq!(h.sent().len(), 2, "one run of two, then one datagram");
    // A STUN message in the burst stops it too.
    let mut mixed = burst(&frames[..1], 8);
    mixed.extend_from_slice(&request(Method::BINDING, 1, None, |_| {}));
    assert_eq!(h.server.relay_channel_data_run(h.now, &t, &mixed, 8).messages, 1);
    // Nothing for a client without an allocation, or once it has expired.
    assert_eq!(h.server.relay_channel_data_run(h.now, &tuple(2000), &packet, 8), RunRelayed::default());
    assert_eq!(h.refresh(&t, &creds, 0), None);
    assert_eq!(h.server.relay_channel_data_run(h.now, &t, &packet, 8), RunRelayed::default());
    assert_eq!(h.server.relay_channel_data_run(h.now, &t, &packet, 0), RunRelayed::default(), "no segment size");
}

#[test]
fn own_ip_peers_follow_the_policy_and_allocations_of_this_server_are_left_to_handle_client() {
    // Loopback allowed, so a port of turnd's own IP (127.0.0.1) may be a peer.
    let mut h = Harness::with(config(), vec!["127.0.0.0/8".parse().unwrap()], 3);
    let (a, b) = (tuple(1000), tuple(2000));
    let (ca, ra) = h.allocate(&a, alice());
    let (cb, rb) = h.allocate(&b, alice());
    let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(h.bind(&a, &ca, 0x4001, local), None);
    assert_eq!(h.bind(&a, &ca, 0x4002, rb), None);
    assert_eq!(h.permit(&b, &cb, ra), None);
    let frames: [(u16, &[u8]); 3] = [(0x4001, b"aaaa"), (0x4001, b"bbbb"), (0x4002, b"cccc")];
    let packet = burst(&frames, 8);
    assert_eq!(h.server.relay_channel_data_run(h.now, &a, &packet, 8).messages, 2);
    assert_eq!(h.sent(), vec![(local, b"aaaa|bbbb".to_vec())]);
    // Another allocation of this server: delivered in-process by handle_client.
    let (outcome, _) = h.send(&a, &packet[16..]);
    assert!(matches!(outcome, Outcome::Forward { to, .. } if to == b), "{outcome:?}");

    // With the default policy a port of the own IP that is no allocation is not reached.
    let mut h = Harness::new();
    let (ca, ra) = h.allocate(&a, alice());
    assert_eq!(h.bind(&a, &ca, 0x4001, SocketAddr::new(ra.ip(), 1)), Some(403));
    assert_eq!(h.server.relay_channel_data_run(h.now, &a, &packet[..16], 8).messages, 0);
    assert!(h.sent().is_empty());
}

#[test]
fn the_bandwidth_limit_stops_the_run_where_it_runs_out() {
    // 8,000 bytes a second, with a burst allowance of one largest datagram (65,535 bytes): 54
    // payloads of 1,200 bytes fit, the 55th does not.
    let limits = Limits { max_bps: 8_000, ..Limits::default() };
    let mut h = Harness::with(ServerConfig { limits, ..config() }, vec![], 3);
    let t = tuple(1000);
    two_channels(&mut h, &t);
    let payload = [7u8; 1200];
    let frames = [(0x4001, &payload[..]); 60];
    let packet = burst(&frames, 1204);
    let done = h.server.relay_channel_data_run(h.now, &t, &packet, 1204);
    assert_eq!(done, RunRelayed { messages: 54, bytes: 54 * 1200, batched: 1 });
    assert_eq!(h.send(&t, &packet[54 * 1204..55 * 1204]).0, Outcome::Dropped(Discard::Bandwidth));
    assert_eq!(h.sent().len(), 1, "one run");
}

/// Each message of `frames` as a datagram of its own (unpadded, as UDP allows).
fn datagrams(frames: &[(u16, &[u8])]) -> Vec<Vec<u8>> {
    frames.iter().map(|(channel, payload)| burst(&[(*channel, payload)], 0)).collect()
}

#[test]
fn datagrams_received_one_by_one_are_relayed_as_a_burst_would_be() {
    let mut h = Harness::new();
    let t = tuple(1000);
    two_channels(&mut h, &t);
    // Sizes differ as datagrams may: a shorter payload ends a run, a longer one starts the next.
    let frames: [(u16, &[u8]); 7] = [
        (0x4001, b"aaaa"),
        (0x4001, b"bbbb"),
        (0x4001, b"cc"),
        (0x4001, b"dddddd"),
        (0x4002, b"eeee"),
        (0x4002, b"ffff"),
        (0x4003, b"gggg"),
    ];
    let owned = datagrams(&frames);
    let slices: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    // The unbound channel 0x4003 stops the run: handle_client says what becomes of it.
    let done = h.server.relay_channel_data_datagrams(h.now, &t, &slices);
    assert_eq!(done, RunRelayed { messages: 6, bytes: 24, batched: 2 });
    let (a, b) = (public_peer(), other_peer());
    assert_eq!(
        h.sent(),
        vec![(a, b"aaaa|bbbb|cc".to_vec()), (a, b"dddddd".to_vec()), (b, b"eeee|ffff".to_vec())],
        "runs per peer and size, in the order received"
    );
    assert_eq!(h.send(&t, slices[6]).0, Outcome::Dropped(Discard::NoChannel));
    // A STUN message stops it before it relays anything; so does having no allocation.
    let stun = request(Method::BINDING, 1, None, |_| {});
    assert_eq!(h.server.relay_channel_data_datagrams(h.now, &t, &[&stun, slices[0]]), RunRelayed::default());
    assert_eq!(h.server.relay_channel_data_datagrams(h.now, &tuple(2000), &slices), RunRelayed::default());
    assert_eq!(h.server.relay_channel_data_datagrams(h.now, &t, &[]), RunRelayed::default());
    assert!(h.sent().is_empty());
}
