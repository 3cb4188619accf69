//! Credentials from the API are TURN credentials: coturn's `turnutils_uclient` relays with them
//! without loss, and one issued for 60 seconds is refused once it has expired. The expiry is
//! shown without waiting a minute: the running daemon accepts the credential now, and the
//! sans-IO TURN core, built from the very same turnserver.toml, is run on a simulated clock
//! up to and past the credential's expiry.
// Tests are the IO side: they read the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::api::{config_text, server};
use common::client::{
    Class, Message, MessageBuilder, TurnClient, ALLOCATE, NONCE, REALM, REQUESTED_TRANSPORT, UDP, USERNAME,
};
use common::coturn::{self, Peer};
use turnd::auth::{Credentials, NonceMinter};
use turnd::config::{Config, UserSecret};
use turnd::turn::policy::PeerPolicy;
use turnd::turn::{
    AllocId, FiveTuple, Now, OpenError, Outcome, Relay, RelayOptions, RelayProvider, Server, ServerConfig, Transport,
};

/// Username and password of a credentials answer.
fn credentials(http: &common::api::Http, user: &str, ttl: &str) -> (String, String) {
    let reply = http.credentials(&[("username", user), ("ttl", ttl)]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    let field = |k: &str| body[k].as_str().unwrap_or_else(|| panic!("no {k}: {body}")).to_owned();
    (field("username"), field("password"))
}

#[test]
fn uclient_relays_with_credentials_from_the_api() {
    let (turnd, http) = server("");
    let (username, password) = credentials(&http, "uclient", "600");
    let auth = ["-u", username.as_str(), "-w", password.as_str()];
    // Client to client through turnd, then through channels to an echo peer.
    coturn::uclient(&turnd, None, &auth, &["-y"], 300, 4);
    let peer = Peer::start();
    coturn::uclient(&turnd, Some(&peer), &auth, &[], 300, 4);
}

/// Relay sockets that go nowhere: the expiry test only needs the Allocate answers.
struct NoRelay;

impl Relay for NoRelay {
    fn send_to(&self, _payload: &[u8], _peer: SocketAddr) {}
}

struct Ports(u16);

impl RelayProvider for Ports {
    type Relay = NoRelay;
    fn open(&mut self, _id: AllocId, _options: RelayOptions) -> Result<(NoRelay, u16), OpenError> {
        self.0 += 1;
        Ok((NoRelay, self.0))
    }
}

/// The TURN core with the credentials, nonces and policy of `config`, as `turnd::io` builds it
/// (`io::build_server` is tied to real relay sockets).
fn core(config: &Config) -> Server<NoRelay> {
    let users = config
        .users
        .iter()
        .map(|u| {
            let secret = match &u.secret {
                UserSecret::Password(p) => turnd::auth::UserSecret::Password(p.clone()),
                UserSecret::Key(k) => turnd::auth::UserSecret::Key(*k),
            };
            (u.name.clone(), secret)
        })
        .collect();
    let credentials = Credentials::new(&config.realm, config.secrets.clone(), config.rest_separator, users);
    let settings = ServerConfig {
        relays: config.relays(),
        default_family: config.default_family,
        default_lifetime: Duration::from_secs(config.default_lifetime),
        max_lifetime: Duration::from_secs(config.max_lifetime),
        user_quota: config.user_quota,
        total_quota: config.total_quota,
        limits: config.limits,
        alternates: config.alternate_servers.clone(),
        redirect_all: config.redirect_all,
        rfc8489_security: config.rfc8489_security,
        mobility: config.mobility,
    };
    let policy = PeerPolicy::new(config.allowed_peers.clone(), config.denied_peers.clone());
    Server::new(settings, credentials, NonceMinter::new(config.nonce_lifetime), policy)
}

/// A fresh 5-tuple's Allocate at `now`: the 401 that brings REALM and NONCE, then the request
/// with the credentials. Returns the final answer.
fn allocate(
    server: &Server<NoRelay>,
    ports: &mut Ports,
    now: Now,
    client_port: u16,
    user: &str,
    password: &str,
) -> Message {
    let tuple = FiveTuple {
        client: SocketAddr::from(([127, 0, 0, 1], client_port)),
        server: SocketAddr::from(([127, 0, 0, 1], 3478)),
        transport: Transport::Udp,
    };
    let mut out = vec![0u8; 2048];
    let mut answer = |request: Vec<u8>| match server.handle_client(now, &tuple, &request, ports, &mut out) {
        Outcome::Reply(n) => Message::parse(&out[..n]).expect("a STUN answer"),
        other => panic!("Allocate not answered: {other:?}"),
    };
    let transport = (REQUESTED_TRANSPORT, vec![UDP, 0, 0, 0]);
    let challenge =
        answer(MessageBuilder::new(Class::Request, ALLOCATE).attr(transport.0, transport.1.clone()).encode(None, true));
    assert_eq!(challenge.error_code(), Some(401), "{}", challenge.describe());
    let (realm, nonce) = (challenge.realm().expect("REALM"), challenge.nonce().expect("NONCE"));
    let key = common::client::long_term_key(user, &realm, password);
    let request = MessageBuilder::new(Class::Request, ALLOCATE)
        .attr(transport.0, transport.1)
        .attr(USERNAME, user.as_bytes())
        .attr(REALM, realm.into_bytes())
        .attr(NONCE, nonce.into_bytes())
        .encode(Some(&key), true);
    answer(request)
}

#[test]
fn a_ttl_60_credential_is_refused_once_it_expired() {
    let (turnd, http) = server("");
    let (username, password) = credentials(&http, "shortlived", "60");
    let expiry: u64 = username.split_once(':').and_then(|(e, _)| e.parse().ok()).expect("expiry:user");
    let now = common::unix_now();
    assert!((now + 55..=now + 60).contains(&expiry), "ttl 60 gave expiry {expiry} at {now}");

    // The running daemon accepts it now.
    let mut client = TurnClient::new(turnd.addr);
    client.allocate(&username, &password).expect("turnd accepts the fresh credential");

    // The same configuration's TURN core, on a simulated clock.
    let config = Config::parse(&config_text(""), "api_relay.toml").expect("the test config");
    let core = core(&config);
    let mut ports = Ports(50_000);
    let start = Instant::now();
    let at = |unix: u64| Now { mono: start + Duration::from_secs(unix.saturating_sub(now)), unix };
    let fresh = allocate(&core, &mut ports, at(now), 40_001, &username, &password);
    assert_eq!(fresh.class, Class::Success, "{}", fresh.describe());
    // Still valid during its last second...
    let last = allocate(&core, &mut ports, at(expiry), 40_002, &username, &password);
    assert_eq!(last.class, Class::Success, "{}", last.describe());
    // ...and refused from the next one on, with a fresh nonce of that moment all the same.
    for late in [expiry + 1, expiry + 3600] {
        let refused = allocate(&core, &mut ports, at(late), 40_003, &username, &password);
        assert_eq!(refused.error_code(), Some(401), "{}", refused.describe());
    }
    // A credential the API issues at that later moment works again: only the expiry was at fault.
    let (username, password) = credentials(&http, "shortlived", "86400");
    // (At the latest moment so far: the core's clock, like the daemon's, only goes forward.)
    let renewed = allocate(&core, &mut ports, at(expiry + 3600), 40_004, &username, &password);
    assert_eq!(renewed.class, Class::Success, "{}", renewed.describe());
}
