//! `/metrics`: Prometheus text from `metrics-exporter-prometheus`. At each scrape the relay's
//! totals (`stats::Stats`, summed over workers) are copied into the recorder as absolute
//! counters, plus the number of allocations; API requests are counted by route and status.
//! Labels are fixed words: none carries a user, key or address.

use std::sync::Arc;

use metrics::{counter, describe_counter, describe_gauge, gauge, with_local_recorder, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::stats::{Counter, Side, Stats};
use crate::turn::Discard;

/// The series a relay counter is exported as: metric name and label.
pub fn series(counter: Counter) -> (&'static str, Option<(&'static str, &'static str)>) {
    match counter {
        Counter::PacketsToPeer => ("turnd_relayed_packets_total", Some(("direction", "client_to_peer"))),
        Counter::BytesToPeer => ("turnd_relayed_bytes_total", Some(("direction", "client_to_peer"))),
        Counter::ChannelDataToClient => ("turnd_peer_deliveries_total", Some(("kind", "channel_data"))),
        Counter::DataIndicationsToClient => ("turnd_peer_deliveries_total", Some(("kind", "data_indication"))),
        Counter::BytesToClient => ("turnd_relayed_bytes_total", Some(("direction", "peer_to_client"))),
        Counter::InternalForwards => ("turnd_internal_forwards_total", None),
        Counter::Responses => ("turnd_stun_responses_total", None),
    }
}

/// The recorder of this API (local to it, not the process-wide one) and what it reads.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    stats: Arc<Stats>,
    allocations: Box<dyn Fn() -> usize + Send + Sync>,
}

impl Exporter {
    /// `allocations` counts the allocations in the table when called.
    pub fn new(stats: Arc<Stats>, allocations: Box<dyn Fn() -> usize + Send + Sync>) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!("turnd_relayed_packets_total", "Payloads relayed, by direction.");
            describe_counter!("turnd_relayed_bytes_total", "Payload bytes relayed, by direction.");
            describe_counter!("turnd_peer_deliveries_total", "Peer payloads delivered to clients, by framing.");
            describe_counter!(
                "turnd_internal_forwards_total",
                "Payloads delivered between two allocations in-process."
            );
            describe_counter!(
                "turnd_dropped_packets_total",
                "Packets dropped without an answer, by where they came from and why."
            );
            describe_counter!("turnd_stun_responses_total", "STUN requests answered.");
            describe_gauge!("turnd_allocations_active", "Allocations that exist now.");
            describe_counter!("turnd_api_requests_total", "Credentials API requests, by route and status.");
        });
        Exporter { recorder, handle, stats, allocations }
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
            gauge!("turnd_allocations_active").set((self.allocations)() as f64);
        });
        self.handle.render()
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
        (0..3).for_each(|_| stats.worker(1).drop(Side::Peer, Discard::Bandwidth));
        let exporter = Exporter::new(Arc::clone(&stats), Box::new(|| 2));
        exporter.count_request("/healthz", 200);
        exporter.count_request("/healthz", 200);
        let text = exporter.render();
        for line in [
            "turnd_relayed_packets_total{direction=\"client_to_peer\"} 7",
            "turnd_relayed_packets_total{direction=\"peer_to_client\"} 6",
            "turnd_peer_deliveries_total{kind=\"channel_data\"} 5",
            "turnd_peer_deliveries_total{kind=\"data_indication\"} 1",
            "turnd_internal_forwards_total 9",
            "turnd_dropped_packets_total{from=\"client\",reason=\"malformed\"} 0",
            "turnd_dropped_packets_total{from=\"peer\",reason=\"bandwidth\"} 3",
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
}
