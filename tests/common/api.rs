//! turnd's credentials API in tests: a turnd whose `[api]` table accepts [`KEY`], and a small
//! blocking HTTP client that returns every status as it is.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::{merge_toml, Config, Server};

/// The API key every test API accepts.
pub const KEY: &str = "test-api-key-0123456789abcdef";
/// The REST secret of the default test config (what the API signs with).
pub const SECRET: &str = "s3cret";

/// The default test config, an `[api]` table on 127.0.0.1:0 accepting [`KEY`] and without rate
/// limits, then `extra` (TOML merged over it, see [`merge_toml`]).
pub fn config_text(extra: &str) -> String {
    let api = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nkeys = [\"{}\"]\nrate-per-ip = 0\nrate-per-user = 0\n",
        turnd::config::api_key_entry(KEY)
    );
    merge_toml(&merge_toml(&Config::default().to_toml(), &api), extra)
}

/// Starts turnd with [`config_text`]`(extra)`; also returns a client of its API.
pub fn server(extra: &str) -> (Server, Http) {
    let server = Server::turnd(&config_text(extra));
    let addr = server.listener("api").expect("api= in the ready line");
    (server, Http::new(addr))
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// A header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `error` code of a JSON error body, after checking it has a non-empty `message`.
    pub fn error(&self) -> String {
        let json = self.json();
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
        json["error"].as_str().unwrap_or_else(|| panic!("no error code: {self:?}")).to_owned()
    }
}

/// Plain-HTTP client for one API address.
pub struct Http {
    pub addr: SocketAddr,
    agent: ureq::Agent,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        Http { addr, agent: config.into() }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(self.url(path));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.call())
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut request = self.agent.post(self.url(path)).header("Content-Type", "application/json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.send(body))
    }

    pub fn options(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.options(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.call())
    }

    /// `GET /v1/turn/credentials` with [`KEY`] and these query parameters.
    pub fn credentials(&self, query: &[(&str, &str)]) -> Reply {
        self.get("/v1/turn/credentials", query, &[("X-API-Key", KEY)])
    }
}

fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("HTTP request");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = response.body_mut().read_to_string().expect("body");
    Reply { status, headers, body }
}

/// The value of the sample `series` (`name{labels}` or `name`) in Prometheus text; 0 if absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
