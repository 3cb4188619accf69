//! End to end in a real browser: headless Chromium, driven over WebDriver (chromedriver),
//! opens turnd's self-test page, which fetches credentials from turnd's API and connects two
//! RTCPeerConnections to each other through turnd with `iceTransportPolicy: "relay"`. The test
//! asserts that the connection was relay-to-relay, that data went both ways, and that turnd's
//! own counters (on `/metrics`) saw the traffic. Everything stays on 127.0.0.1.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them); a missing
//! browser fails the test.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::api::{sample, server, KEY};
use serde_json::Value;

/// Longest the whole page run may take (three transports, gathering and pings included).
const PAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest chromedriver may take to say it listens.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium's flags, and why each is there.
const CHROMIUM_FLAGS: &[&str] = &[
    // The baseline for a headless browser in a container or CI.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    // No traffic of the browser's own (updates, sync, metrics, safe browsing lists, QUIC probes).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-pings",
    "--disable-domain-reliability",
    // Belt and braces: no host name resolves, so nothing the browser might fetch on its own can
    // leave the machine; the page and turnd are reached by IP literal.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    // WebRTC: Chromium leaves the loopback interface out of ICE gathering; with only loopback
    // (or with turnd on loopback) this flag is what lets it open the sockets that reach turnd
    // at 127.0.0.1 and use the 127.0.0.1 relayed candidates turnd hands out.
    "--allow-loopback-in-peer-connection",
    // WebRTC: no mDNS names for host candidates (relay-only never uses them, and this keeps the
    // browser from sending multicast mDNS on other interfaces).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/// Absolute path of a program in PATH, or a clear failure.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found in PATH: install Debian's chromium and chromium-driver (scripts/test does)");
}

/// chromedriver on 127.0.0.1 with a port it picks. Killed on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let mut child = Command::new(program("chromedriver"))
            .args(["--port=0", "--allowed-ips=127.0.0.1", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        // It prints "ChromeDriver was started successfully on port N." once it listens.
        let out = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DRIVER_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(port) = line
                        .strip_prefix("ChromeDriver was started successfully on port ")
                        .and_then(|rest| rest.trim_end_matches('.').parse().ok())
                    {
                        return ChromeDriver { child, port };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("chromedriver did not start within {DRIVER_TIMEOUT:?}: {seen:?}");
                }
            }
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics(http: &common::api::Http) -> String {
    let reply = http.get("/metrics", &[], &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body
}

/// Runs the page in Chromium and returns `window.selfTest`.
async fn run_page(driver_port: u16, page: &str) -> Value {
    let mut options = serde_json::Map::new();
    options.insert("binary".into(), Value::String(program("chromium").display().to_string()));
    let profile = tempfile::tempdir().expect("profile dir");
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    options.insert("args".into(), serde_json::json!(args));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), Value::String("chrome".into()));
    caps.insert("goog:chromeOptions".into(), Value::Object(options));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("WebDriver session with Chromium");
    let result = async {
        let timeouts = fantoccini::wd::TimeoutConfiguration::new(Some(PAGE_TIMEOUT), Some(PAGE_TIMEOUT), None);
        client.update_timeouts(timeouts).await?;
        client.goto(page).await?;
        client.find(fantoccini::Locator::Id("key")).await?.send_keys(KEY).await?;
        client.find(fantoccini::Locator::Id("run")).await?.click().await?;
        // Resolves when <body data-state> becomes "done" (an event, not a poll), or on the
        // script timeout set above.
        let script = r#"
            const done = arguments[arguments.length - 1];
            const finish = () => done(window.selfTest);
            if (document.body.dataset.state === "done") { finish(); return; }
            new MutationObserver(() => { if (document.body.dataset.state === "done") finish(); })
                .observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
        "#;
        client.execute_async(script, vec![]).await
    }
    .await;
    let _ = client.close().await;
    result.expect("the self-test page ran to the end")
}

#[tokio::test]
async fn self_test_page_relays_both_ways_through_turnd() {
    let started = Instant::now();
    let (server, http) = server("");
    let before = metrics(&http);
    let driver = ChromeDriver::start();
    let page = format!("http://{}/", http.addr);
    let outcome = tokio::time::timeout(PAGE_TIMEOUT + Duration::from_secs(30), run_page(driver.port, &page))
        .await
        .expect("the browser run finished in time");
    let pretty = serde_json::to_string_pretty(&outcome).unwrap_or_default();
    assert_eq!(outcome["error"], Value::Null, "{pretty}");
    let results = outcome["results"].as_array().unwrap_or_else(|| panic!("no results: {pretty}"));
    let by_transport =
        |t: &str| results.iter().find(|r| r["transport"] == t).unwrap_or_else(|| panic!("{t}: {pretty}"));

    // UDP: a relay-only connection, both selected candidates relayed by turnd over UDP.
    let udp = by_transport("udp");
    assert_eq!(udp["status"], "ok", "{pretty}");
    for peer in ["a", "b"] {
        let pair = &udp["selected"][peer];
        assert_eq!((pair["local"]["type"].as_str(), pair["remote"]["type"].as_str()), (Some("relay"), Some("relay")));
        assert_eq!(pair["local"]["relayProtocol"], "udp", "{pretty}");
        assert_eq!(pair["local"]["address"], "127.0.0.1", "{pretty}");
        // Every candidate either side offered is a relayed one (the page asked for relay only).
        let candidates = udp["candidates"][peer].as_array().cloned().unwrap_or_default();
        assert!(!candidates.is_empty(), "{pretty}");
        for candidate in candidates {
            assert_eq!(candidate["type"], "relay", "{pretty}");
            assert_eq!(candidate["address"], "127.0.0.1", "{pretty}");
        }
        // Five pings sent and five answered each way: ten messages sent and received per side.
        let messages = &udp["messages"][peer];
        assert_eq!((messages["sent"].as_u64(), messages["received"].as_u64()), (Some(10), Some(10)), "{pretty}");
    }
    for direction in ["aToB", "bToA"] {
        assert_eq!(udp["rtt"][direction]["count"], 5, "{pretty}");
    }
    // TCP and TLS: reported either way; required once turnd announces those listeners.
    for (transport, listener) in [("tcp", "tcp"), ("tls", "tls")] {
        let status = by_transport(transport)["status"].as_str().unwrap_or_default().to_owned();
        eprintln!("{transport}: {status}");
        if server.listener(listener).is_some() {
            assert_eq!(status, "ok", "turnd serves {transport}, so the page must relay over it: {pretty}");
        } else {
            assert!(["ok", "no-candidates", "no-uri"].contains(&status.as_str()), "{pretty}");
        }
    }

    // turnd's own counters saw it: the two peers' allocations are on the same turnd, so their
    // traffic is forwarded in-process, both ways (10 data channel messages each way, plus the
    // DTLS and SCTP packets around them).
    let after = metrics(&http);
    let forwards = sample(&after, "turnd_internal_forwards_total") - sample(&before, "turnd_internal_forwards_total");
    assert!(forwards >= 20.0, "internal forwards went up by {forwards}\n{after}");
    let responses = sample(&after, "turnd_stun_responses_total") - sample(&before, "turnd_stun_responses_total");
    assert!(responses >= 4.0, "STUN responses went up by {responses}\n{after}");
    let issued = sample(&after, "turnd_api_requests_total{route=\"/v1/turn/credentials\",status=\"200\"}");
    assert!(issued >= 1.0, "{after}");
    eprintln!("browser test took {:?}", started.elapsed());
}
