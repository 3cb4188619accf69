//! `/metrics`: Prometheus text from `metrics-exporter-prometheus`. At each scrape the relay's
//! totals (`stats::Stats`, summed over workers) and the core's counts (`turn::counts::Counts`:
//! authentication failures, refusals, allocations by kind) are copied into the recorder as
//! absolute counters and gauges; API requests are counted by route and status. Labels are
//! fixed words: none carries a user, key or address. The README's "Metrics" table lists them.

use std::sync::Arc;

use metrics::{counter, describe_counter, describe_gauge, gauge, with_local_recorder, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::stats::{Counter, Side, Stats};
use crate::turn::counts::{AllocateRefusal, AllocationKind, AuthFailure, Counts, Ended, PeerRequest, RefusedBy};
use crate::turn::Discard;

/// The series a relay counter is exported as: metric name and label.
pub fn series(counter: Counter) -> (&'static str, Option<(&'static str, &'static str)>) {
    match counter {
        Counter::PacketsToPeer => ("turnd_relayed_packets_total", Some(("direction", "client_to_peer"))),
        Counter::ChannelDataFromClient => ("turnd_client_payloads_total", Some(("kind", "channel_data"))),
        Counter::SendIndicationsFromClient => ("turnd_client_payloads_total", Some(("kind", "send_indication"))),
        Counter::BytesToPeer => ("turnd_relayed_bytes_total", Some(("direction", "client_to_peer"))),
        Counter::ChannelDataToClient => ("turnd_peer_deliveries_total", Some(("kind", "channel_data"))),
        Counter::DataIndicationsToClient => ("turnd_peer_deliveries_total", Some(("kind", "data_indication"))),
        Counter::BytesToClient => ("turnd_relayed_bytes_total", Some(("direction", "peer_to_client"))),
        Counter::InternalForwards => ("turnd_internal_forwards_total", None),
        Counter::Responses => ("turnd_stun_responses_total", None),
        Counter::BindingRequests => ("turnd_binding_requests_total", None),
        Counter::TcpOpened => ("turnd_connections_opened_total", Some(("transport", "tcp"))),
        Counter::TlsOpened => ("turnd_connections_opened_total", Some(("transport", "tls"))),
        Counter::TcpClosed => ("turnd_connections_closed_total", Some(("transport", "tcp"))),
        Counter::TlsClosed => ("turnd_connections_closed_total", Some(("transport", "tls"))),
        Counter::ConnectionsRefused => ("turnd_connections_refused_total", None),
        Counter::IcmpToClient => ("turnd_icmp_relayed_total", None),
        Counter::GsoSends => ("turnd_gso_sends_total", None),
        Counter::GroReceives => ("turnd_gro_receives_total", None),
        Counter::CoalesceSleeps => ("turnd_receive_coalesce_sleeps_total", None),
    }
}

/// The recorder of this API (local to it, not the process-wide one) and what it reads.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    stats: Arc<Stats>,
    core: Box<dyn Fn() -> Counts + Send + Sync>,
}

impl Exporter {
    /// `core` reads the protocol core's counts (`Server::counts`) when called.
    pub fn new(stats: Arc<Stats>, core: Box<dyn Fn() -> Counts + Send + Sync>) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!("turnd_relayed_packets_total", "Payloads relayed, by direction.");
            describe_counter!("turnd_relayed_bytes_total", "Payload bytes relayed, by direction.");
            describe_counter!("turnd_peer_deliveries_total", "Peer payloads delivered to clients, by framing.");
            describe_counter!(
                "turnd_client_payloads_total",
                "Client payloads relayed or forwarded in-process, by framing (ChannelData or Send indication)."
            );
            describe_counter!(
                "turnd_internal_forwards_total",
                "Payloads delivered between two allocations in-process."
            );
            describe_counter!(
                "turnd_dropped_packets_total",
                "Packets dropped without an answer, by where they came from and why."
            );
            describe_counter!("turnd_stun_responses_total", "STUN requests answered.");
            describe_counter!(
                "turnd_gso_sends_total",
                "Bursts of same-size frames to one UDP client or peer sent in one GSO send."
            );
            describe_counter!(
                "turnd_gro_receives_total",
                "Receives that held a GRO burst of two or more same-size datagrams from one client or peer."
            );
            describe_counter!(
                "turnd_receive_coalesce_sleeps_total",
                "Times a worker slept for receive coalescing (at most server.receive-coalesce-us) after reading its listener."
            );
            describe_counter!(
                "turnd_icmp_relayed_total",
                "ICMP errors about relayed datagrams sent to clients as Data indications (RFC 8656 §11)."
            );
            describe_gauge!("turnd_allocations_active", "Allocations that exist now.");
            describe_gauge!(
                "turnd_allocations_active_by_transport",
                "Allocations that exist now, by client transport and relay."
            );
            describe_counter!("turnd_allocations_created_total", "Allocations created, by client transport and relay.");
            describe_counter!("turnd_allocations_ended_total", "Allocations ended, by reason.");
            describe_counter!(
                "turnd_allocate_refusals_total",
                "Authenticated Allocates refused for quota, drain or ports, by reason."
            );
            describe_counter!("turnd_auth_failures_total", "Requests that failed authentication, by reason.");
            describe_counter!(
                "turnd_peer_refusals_total",
                "Peers refused by the peer policy (403), by request and rule."
            );
            describe_counter!("turnd_api_requests_total", "Credentials API requests, by route and status.");
            describe_counter!("turnd_binding_requests_total", "Binding requests answered.");
            describe_counter!("turnd_connections_opened_total", "TCP/TLS client connections admitted, by transport.");
            describe_counter!("turnd_connections_closed_total", "TCP/TLS client connections closed, by transport.");
            describe_gauge!("turnd_connections_active", "TCP/TLS client connections open now, by transport.");
            describe_counter!(
                "turnd_connections_refused_total",
                "TCP/TLS client connections closed at once: over limits.max-connections(-per-ip)."
            );
        });
        Exporter { recorder, handle, stats, core }
    }

    /// Counts one API request.
    pub fn count_request(&self, route: &'static str, status: u16) {
        with_local_recorder(&self.recorder, || {
            counter!("turnd_api_requests_total", "route" => route, "status" => status.to_string()).increment(1);
        });
    }

    /// The Prometheus text, with the relay's totals as of now.
    pub fn render(&self) -> String {
        with_local_recorder(&self.recorder, || {
            for c in Counter::ALL {
                let (name, label) = series(c);
                let labels: Vec<Label> = label.into_iter().map(|(k, v)| Label::new(k, v)).collect();
                counter!(name, labels).absolute(self.stats.total(c));
            }
            // Both ways of reaching a client are one direction of relaying.
            let to_client =
                self.stats.total(Counter::ChannelDataToClient) + self.stats.total(Counter::DataIndicationsToClient);
            counter!("turnd_relayed_packets_total", "direction" => "peer_to_client").absolute(to_client);
            for side in Side::ALL {
                for why in Discard::ALL {
                    let labels = vec![Label::new("from", side.name()), Label::new("reason", why.name())];
                    counter!("turnd_dropped_packets_total", labels).absolute(self.stats.dropped(side, why));
                }
            }
            for (transport, opened, closed) in
                [("tcp", Counter::TcpOpened, Counter::TcpClosed), ("tls", Counter::TlsOpened, Counter::TlsClosed)]
            {
                let open = self.stats.total(opened).saturating_sub(self.stats.total(closed));
                gauge!("turnd_connections_active", "transport" => transport).set(open as f64);
            }
            render_core(&(self.core)());
        });
        self.handle.render()
    }
}

/// Copies the core's counts into the current recorder.
fn render_core(counts: &Counts) {
    gauge!("turnd_allocations_active").set(counts.allocations as f64);
    for kind in AllocationKind::ALL {
        let labels = || vec![Label::new("transport", kind.transport.name()), Label::new("relay", kind.relay_name())];
        gauge!("turnd_allocations_active_by_transport", labels()).set(counts.active(kind) as f64);
        counter!("turnd_allocations_created_total", labels()).absolute(counts.created(kind));
    }
    for why in Ended::ALL {
        counter!("turnd_allocations_ended_total", "reason" => why.name()).absolute(counts.ended(why));
    }
    for why in AllocateRefusal::ALL {
        counter!("turnd_allocate_refusals_total", "reason" => why.name()).absolute(counts.allocate_refusals(why));
    }
    for why in AuthFailure::ALL {
        counter!("turnd_auth_failures_total", "reason" => why.name()).absolute(counts.auth_failures(why));
    }
    for request in PeerRequest::ALL {
        for by in RefusedBy::ALL {
            let labels = vec![Label::new("request", request.name()), Label::new("reason", by.name())];
            counter!("turnd_peer_refusals_total", labels).absolute(counts.peer_refusals(request, by));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_requests_are_rendered() {
        let stats = Arc::new(Stats::new(2));
        stats.worker(0).add(Counter::PacketsToPeer, 3);
        stats.worker(1).add(Counter::PacketsToPeer, 4);
        stats.worker(1).add(Counter::ChannelDataToClient, 5);
        stats.worker(0).add(Counter::DataIndicationsToClient, 1);
        stats.worker(0).add(Counter::InternalForwards, 9);
        stats.worker(0).add(Counter::ChannelDataFromClient, 4);
        stats.worker(1).add(Counter::SendIndicationsFromClient, 2);
        (0..3).for_each(|_| stats.worker(1).drop(Side::Peer, Discard::Bandwidth));
        stats.worker(1).add(Counter::IcmpToClient, 2);
        let exporter = Exporter::new(
            Arc::clone(&stats),
            Box::new(|| {
                let mut counts = Counts::default();
                counts.allocations = 2;
                counts
            }),
        );
        exporter.count_request("/healthz", 200);
        exporter.count_request("/healthz", 200);
        let text = exporter.render();
        for line in [
            "turnd_relayed_packets_total{direction=\"client_to_peer\"} 7",
            "turnd_relayed_packets_total{direction=\"peer_to_client\"} 6",
            "turnd_peer_deliveries_total{kind=\"channel_data\"} 5",
            "turnd_peer_deliveries_total{kind=\"data_indication\"} 1",
            "turnd_internal_forwards_total 9",
            "turnd_client_payloads_total{kind=\"channel_data\"} 4",
            "turnd_client_payloads_total{kind=\"send_indication\"} 2",
            "turnd_dropped_packets_total{from=\"client\",reason=\"malformed\"} 0",
            "turnd_dropped_packets_total{from=\"peer\",reason=\"bandwidth\"} 3",
            "turnd_dropped_packets_total{from=\"peer\",reason=\"icmp_type\"} 0",
            "turnd_icmp_relayed_total 2",
            "turnd_allocations_active 2",
            "turnd_api_requests_total{route=\"/healthz\",status=\"200\"} 2",
            "# TYPE turnd_relayed_bytes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        // Later scrapes follow the totals.
        stats.worker(1).add(Counter::PacketsToPeer, 1);
        assert!(exporter.render().contains("turnd_relayed_packets_total{direction=\"client_to_peer\"} 8"));
        // Every counter is exported.
        for c in Counter::ALL {
            assert!(text.contains(series(c).0), "{c:?}");
        }
    }

    #[test]
    fn the_core_counts_are_a_fixed_set_of_series() {
        let exporter = Exporter::new(Arc::new(Stats::new(1)), Box::new(Counts::default));
        let text = exporter.render();
        let core: Vec<&str> = text
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && ["allocations_", "allocate_refusals", "auth_failures", "peer_refusals"]
                        .iter()
                        .any(|name| l.starts_with(&format!("turnd_{name}")))
            })
            .collect();
        // 1 total + 5 kinds active + 5 kinds created + 3 ends + 4 refusals + 9 auth + 3x2 peer.
        assert_eq!(core.len(), 33, "{core:#?}");
        assert!(core.iter().all(|l| l.ends_with(" 0")), "{core:#?}");
        for line in [
            "turnd_allocations_active_by_transport{transport=\"tls\",relay=\"tcp\"} 0",
            "turnd_allocations_created_total{transport=\"udp\",relay=\"udp\"} 0",
            "turnd_allocations_ended_total{reason=\"connection_closed\"} 0",
            "turnd_allocate_refusals_total{reason=\"user_quota\"} 0",
            "turnd_auth_failures_total{reason=\"bad_integrity\"} 0",
            "turnd_peer_refusals_total{request=\"connect\",reason=\"special_purpose\"} 0",
            "# TYPE turnd_allocations_active_by_transport gauge",
            "# TYPE turnd_auth_failures_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        // No UDP client has a TCP relay (RFC 6062 needs a stream control connection).
        assert!(!text.contains("transport=\"udp\",relay=\"tcp\""), "{text}");
    }
}
