//! The control-plane modes: `alloc` (Allocates a second, each with its 401 round trip,
//! optionally deleted at once) and `hold` (N allocations kept alive by Refresh).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::{Client, Credentials, Wait};
use super::report::{latency_histogram, Report};
use super::BenchError;

/// Sockets of deleted allocations an alloc thread keeps open.
const RECENT: usize = 2048;

/// What `alloc` does.
#[derive(Clone, Copy)]
pub struct AllocPlan {
    pub allocations: usize,
    /// Allocates a second over all threads; 0 = as fast as answers come.
    pub rate: u64,
    pub delete: bool,
    pub threads: usize,
    /// The run stops here even if not every allocation was made.
    pub limit: Duration,
    pub wait: Wait,
}

/// What one alloc thread made.
struct AllocTally {
    made: u64,
    failed: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
    kept: Vec<Client>,
}

/// Makes `plan.allocations` allocations from as many new sockets, each starting without a
/// nonce (so each pays the 401 round trip); `sample(true)`/`sample(false)` bracket the work.
pub fn alloc(
    server: SocketAddr,
    creds: &Arc<Credentials>,
    plan: &AllocPlan,
    mut sample: impl FnMut(bool),
) -> Result<Report, BenchError> {
    let threads = plan.threads.min(plan.allocations).max(1);
    let start = Instant::now();
    sample(true);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let count = plan.allocations / threads + usize::from(t < plan.allocations % threads);
            let (creds, plan) = (creds.clone(), *plan);
            let rate = plan.rate as f64 / threads as f64;
            std::thread::spawn(move || alloc_thread(server, creds, count, rate, plan, start))
        })
        .collect();
    let mut total =
        AllocTally { made: 0, failed: 0, first_error: None, latency: latency_histogram(), kept: Vec::new() };
    for handle in handles {
        let t = handle.join().map_err(|_| BenchError::Run("an alloc thread panicked".into()))?;
        total.made += t.made;
        total.failed += t.failed;
        total.first_error = total.first_error.or(t.first_error);
        let _ = total.latency.add(&t.latency);
        total.kept.extend(t.kept);
    }
    let elapsed = start.elapsed().as_secs_f64();
    sample(false);
    if let Some(e) = &total.first_error {
        eprintln!("turnd bench: {} allocations failed; the first: {e}", total.failed);
    }
    delete_all(&mut total.kept);
    let mut report = Report {
        duration_s: elapsed,
        rate: Some(plan.rate),
        allocs: Some(total.made),
        alloc_failures: Some(total.failed),
        allocs_per_s: Some(total.made as f64 / elapsed),
        ..Report::default()
    };
    report.set_latency(&total.latency);
    Ok(report)
}

fn alloc_thread(
    server: SocketAddr,
    creds: Arc<Credentials>,
    count: usize,
    rate: f64,
    plan: AllocPlan,
    start: Instant,
) -> AllocTally {
    let deadline = start + plan.limit;
    let mut t = AllocTally { made: 0, failed: 0, first_error: None, latency: latency_histogram(), kept: Vec::new() };
    // Deleted allocations' sockets stay open a while so that the next sockets get other ports:
    // coturn keeps a deleted allocation's 5-tuple for a moment and answers an Allocate from
    // the same port 437.
    let mut recent = std::collections::VecDeque::with_capacity(RECENT);
    for i in 0..count {
        if rate > 0.0 {
            // Allocate i of this thread is due at i/rate seconds.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if Instant::now() >= deadline {
            break;
        }
        let began = Instant::now();
        match Client::allocated(server, &creds, None, None, plan.wait) {
            Ok(mut client) => {
                t.made += 1;
                let _ = t.latency.record((began.elapsed().as_nanos() as u64).max(1));
                if !plan.delete {
                    t.kept.push(client);
                } else {
                    if let Err(e) = client.refresh(0) {
                        t.first_error.get_or_insert_with(|| format!("delete: {e}"));
                    }
                    if recent.len() == RECENT {
                        recent.pop_front();
                    }
                    recent.push_back(client);
                }
            }
            Err(e) => {
                t.failed += 1;
                t.first_error.get_or_insert_with(|| format!("allocate: {e}"));
            }
        }
    }
    t
}

/// What `hold` does.
pub struct HoldPlan {
    pub allocations: usize,
    /// LIFETIME asked for in Allocate and Refresh.
    pub lifetime: u32,
    pub refresh_every: Duration,
    pub hold: Duration,
    pub wait: Wait,
}

/// Makes the allocations, then keeps them for `plan.hold`, refreshing each every
/// `plan.refresh_every`. `rss()` is the server's RSS when known; `sample` brackets the hold.
pub fn hold(
    server: SocketAddr,
    creds: &Arc<Credentials>,
    plan: &HoldPlan,
    rss: impl Fn() -> Option<u64>,
    mut sample: impl FnMut(bool),
) -> Result<Report, BenchError> {
    let rss_before = rss();
    let mut clients = Vec::with_capacity(plan.allocations);
    let mut challenge = None;
    let mut failed_allocs = 0u64;
    for i in 0..plan.allocations {
        match Client::allocated(server, creds, challenge.clone(), Some(plan.lifetime), plan.wait) {
            Ok(c) => {
                challenge = c.challenge.clone();
                clients.push(c);
            }
            // The ones made are held all the same (a server out of ports answers 508).
            Err(e) => {
                if failed_allocs == 0 {
                    eprintln!("turnd bench: allocation {} of {} failed: {e}", i + 1, plan.allocations);
                }
                failed_allocs += 1;
            }
        }
    }
    if clients.is_empty() && plan.allocations > 0 {
        return Err(BenchError::Run("hold: no allocation could be made".into()));
    }
    let rss_held = rss();
    let start = Instant::now();
    sample(true);
    let (mut refreshes, mut failed) = (0u64, 0u64);
    let mut round = 1u32;
    loop {
        let due = start + plan.refresh_every * round;
        if due >= start + plan.hold {
            break;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        for c in &mut clients {
            refreshes += 1;
            if let Err(e) = c.refresh(plan.lifetime) {
                if failed == 0 {
                    eprintln!("turnd bench: a refresh failed: {e}");
                }
                failed += 1;
            }
        }
        round += 1;
    }
    std::thread::sleep((start + plan.hold).saturating_duration_since(Instant::now()));
    let elapsed = start.elapsed().as_secs_f64();
    sample(false);
    delete_all(&mut clients);
    let held = clients.len();
    let per_1000 = match (rss_before, rss_held) {
        (Some(before), Some(rss)) if held > 0 => Some(rss.saturating_sub(before) as f64 * 1000.0 / held as f64),
        _ => None,
    };
    Ok(Report {
        duration_s: elapsed,
        allocs: Some(held as u64),
        alloc_failures: Some(failed_allocs),
        refreshes: Some(refreshes),
        failed_refreshes: Some(failed),
        rss_per_1000_allocs_kib: per_1000,
        ..Report::default()
    })
}

/// Deletes every allocation (Refresh with LIFETIME 0); failures are reported, not fatal.
pub fn delete_all(clients: &mut [Client]) {
    let mut failed = 0;
    for c in clients.iter_mut() {
        let _ = c.socket.set_nonblocking(false);
        if c.refresh(0).is_err() {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("turnd bench: {failed} of {} allocations could not be deleted (they expire)", clients.len());
    }
}
