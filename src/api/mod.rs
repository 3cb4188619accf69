//! The credentials HTTP API, an IO shell module like `io`: short-lived TURN REST credentials for
//! apps (`/v1/turn/credentials`), `/healthz`, `/readyz`, Prometheus `/metrics` and the browser
//! self-test page at `/`. It owns its TCP listener, its thread, its tokio runtime and its clock.
//! Depends on `turn`, `auth`, `stats` and `config`; `io::run` starts it.

mod auth;
mod credentials;
mod limit;
mod metrics;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceExt as _;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{ApiConfig, Config};
use crate::stats::Stats;
use crate::turn::counts::Counts;
use crate::turn::{Relay, Server};

/// Largest request body read (credential requests are a few dozen bytes).
const BODY_LIMIT: usize = 16 * 1024;
/// Most bytes of a request head (request line and headers) hyper buffers; a larger head gets
/// 431. A credentials request needs a few KB (a Firebase ID token is about 1 KB); hyper's own
/// default is about 400 KB a connection, and its minimum 8 KiB.
const HEAD_LIMIT: usize = 16 * 1024;
/// The connection limits the API serves with.
const CONNECTION_LIMITS: ConnectionLimits = ConnectionLimits {
    total: 1024,
    per_ip: 64,
    head: Duration::from_secs(10),
    body: Duration::from_secs(5),
    lifetime: Duration::from_secs(120),
};
/// How often rate-limit state of idle callers is dropped and the JWKS file is checked.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// The self-test page and its script, served as they are (no build step, no external assets).
const PAGE_HTML: &str = include_str!("selftest.html");
const PAGE_JS: &str = include_str!("selftest.js");
/// The page loads only its own script and talks only to this API.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; \
                        base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How many connections the API holds and for how long, so that no client can keep the others
/// out (tests serve with shorter ones).
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    /// Most connections open at once; more wait in the kernel's accept queue.
    total: usize,
    /// Most connections open at once from one source address (IPv6: its /64, as the rate
    /// limits count it); more are closed as soon as they are accepted.
    per_ip: usize,
    /// How long a client may take to send a request head (also the idle time allowed between
    /// keep-alive requests).
    head: Duration,
    /// How long a request may take, from its head to its answer: in practice the time its body
    /// may take, the only thing a handler waits for. Later: 408 and the connection is closed.
    body: Duration,
    /// Longest life of one connection (keep-alive included).
    lifetime: Duration,
}

/// Whether turnd is ready to relay (every listener bound, every worker started); `/readyz`
/// reports it. Cloning shares the flag.
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks turnd ready (or, when stopping, not ready).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// True once [`Readiness::set`] was last called with `true`.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The TURN addresses turnd serves, by transport, to build the URIs handed out when the
/// configuration lists none.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    /// TURN over UDP.
    pub udp: Vec<SocketAddr>,
    /// TURN over TCP.
    pub tcp: Vec<SocketAddr>,
    /// TURN over TLS.
    pub tls: Vec<SocketAddr>,
}

/// The running API: its address, and what a reload needs to reach its handlers.
pub struct Api {
    addr: SocketAddr,
    state: Shared,
}

impl Api {
    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SIGHUP: API keys, JWT settings, the URIs and default TTL handed out, and the secret and
    /// separator credentials are signed with, from `config`, for the requests that follow
    /// (requests under way finish with what they started with). The listener, rate limits, CORS
    /// and `/metrics` stay as started. Changes nothing when `config` has no `[api]` table or the
    /// new settings cannot be built (a JWKS file that became unreadable).
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let Some(api) = &config.api else { return Err("the credentials API has no [api] table".into()) };
        let live = Arc::new(Live::new(config, api, &self.state.listeners)?);
        *self.state.live.write().unwrap_or_else(|e| e.into_inner()) = live;
        Ok(())
    }
}

/// Starts the API when `config.api` is set: binds its listener now (so a busy port is an error
/// of the caller) and serves it on a thread of its own. Returns its handle, `None` when the API
/// is disabled.
pub fn start<R: Relay + 'static>(
    config: &Config,
    server: Arc<Server<R>>,
    stats: Arc<Stats>,
    ready: Readiness,
    listeners: &Listeners,
) -> std::io::Result<Option<Api>> {
    let Some(api) = &config.api else { return Ok(None) };
    let listener = TcpListener::bind(api.listen)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on api {}: {e}", api.listen)))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let core = Box::new(move || server.counts());
    let state = app_state(config, api, stats, core, ready, listeners)?;
    let app = router(Arc::clone(&state), api, &CONNECTION_LIMITS);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let housekept = Arc::clone(&state);
    std::thread::Builder::new().name("turnd-api".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => return tracing::error!(error = %e, "api: cannot register the listener"),
            };
            tokio::spawn(housekeeping(housekept));
            serve(listener, app, CONNECTION_LIMITS).await;
        })
    })?;
    tracing::info!(%addr, "credentials API listening");
    Ok(Some(Api { addr, state }))
}

/// The handlers' shared state for `api`; `core` reads the protocol core's counts when called.
fn app_state(
    config: &Config,
    api: &ApiConfig,
    stats: Arc<Stats>,
    core: Box<dyn Fn() -> Counts + Send + Sync>,
    ready: Readiness,
    listeners: &Listeners,
) -> std::io::Result<Shared> {
    let live = Live::new(config, api, listeners).map_err(std::io::Error::other)?;
    Ok(Arc::new(AppState {
        live: RwLock::new(Arc::new(live)),
        listeners: listeners.clone(),
        limits: limit::Limits::new(api.rate_per_ip, api.rate_per_user),
        exporter: api.metrics.then(|| metrics::Exporter::new(stats, core)),
        ready,
    }))
}

/// What every handler shares.
struct AppState {
    /// What a reload replaces, swapped whole; read once per request.
    live: RwLock<Arc<Live>>,
    /// The TURN addresses served, to build the URIs again on reload.
    listeners: Listeners,
    limits: limit::Limits,
    exporter: Option<metrics::Exporter>,
    ready: Readiness,
}

impl AppState {
    /// The settings in force now.
    fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The settings SIGHUP replaces: who may call, and what credentials they get.
struct Live {
    issuer: credentials::Issuer,
    auth: auth::Authenticator,
}

impl Live {
    /// From a validated configuration; fails when there is no secret to sign with (validation
    /// requires one with `[api]`) or the JWKS file cannot be read now.
    fn new(config: &Config, api: &ApiConfig, listeners: &Listeners) -> Result<Live, String> {
        let secret = config.secrets.first().cloned().ok_or("the credentials API needs auth.secrets")?;
        let issuer = credentials::Issuer::new(secret, config.rest_separator, uris(api, listeners), api.default_ttl);
        Ok(Live { issuer, auth: auth::Authenticator::new(api)? })
    }
}

type Shared = Arc<AppState>;

/// The address of the connection a request came on (put in each request's extensions).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub SocketAddr);

/// A JSON error: `{"error": "<code>", "message": "..."}` with its status, and `Retry-After` for
/// 429 and `WWW-Authenticate` for 401.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no, or no valid, API key or token.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 429, to be retried after `seconds`.
    pub(crate) fn rate_limited(message: impl Into<String>, seconds: u64) -> Self {
        ApiError {
            retry_after: Some(seconds.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, no_store(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"turnd\""));
        }
        response
    }
}

/// `Cache-Control: no-store`: credentials and errors about them are never cached.
fn no_store() -> [(HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// The TURN URIs to hand out: the configured list, or one URI per distinct port of each
/// transport on the public host.
fn uris(api: &ApiConfig, listeners: &Listeners) -> Vec<String> {
    if !api.uris.is_empty() {
        return api.uris.clone();
    }
    let host = match api.public_host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => api.public_host.clone(),
    };
    let mut out = Vec::new();
    let kinds = [("turn", "udp", &listeners.udp), ("turn", "tcp", &listeners.tcp), ("turns", "tcp", &listeners.tls)];
    for (scheme, transport, addrs) in kinds {
        for addr in addrs.iter() {
            let uri = format!("{scheme}:{host}:{}?transport={transport}", addr.port());
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
    }
    out
}

/// Every route, the JSON fallbacks, request counting, the body limit, the request deadline of
/// `limits` and CORS.
fn router(state: Shared, api: &ApiConfig, limits: &ConnectionLimits) -> Router {
    let deadline = limits.body;
    let mut app = Router::new()
        .route("/", get(page_html))
        .route("/selftest.js", get(page_js))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/turn/credentials", get(credentials::get).post(credentials::post));
    if api.metrics {
        app = app.route("/metrics", get(metrics_text));
    }
    let app = app
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
        })
        .layer(axum::middleware::from_fn(move |request, next| answer_within(deadline, request, next)))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), count_requests))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    match cors(&api.cors_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// CORS for browser apps on other origins; `None` when no origin is configured.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Validated by the config: visible ASCII only.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let headers = [header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-api-key")];
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(headers)
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Counts requests by route and status for `/metrics` (fixed route names: no label grows
/// with what clients send).
async fn count_requests(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/v1/turn/credentials") => "/v1/turn/credentials",
        Some("/") => "/",
        Some("/selftest.js") => "/selftest.js",
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        Some("/metrics") => "/metrics",
        _ => "other",
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if route == "/v1/turn/credentials" {
        tracing::debug!(route, status, "api request");
    }
    if let Some(exporter) = &state.exporter {
        exporter.count_request(route, status);
    }
    response
}

/// The answer to `request`, or 408 when it takes longer than `deadline` (a body sent too
/// slowly). The 408 closes the connection: the rest of that body is not waited for.
async fn answer_within(deadline: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("the request was not received whole within {} s", deadline.as_secs_f32());
            let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message).into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn page_html() -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (headers, PAGE_HTML).into_response()
}

async fn page_js() -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (headers, PAGE_JS).into_response()
}

/// The process is alive (it answers).
async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// 200 once every listener is bound and the workers run; 503 before that and while stopping.
async fn readyz(State(state): State<Shared>) -> Response {
    if state.ready.is_ready() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "turnd is starting or stopping").into_response()
    }
}

async fn metrics_text(State(state): State<Shared>) -> Response {
    let Some(exporter) = &state.exporter else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "metrics are disabled").into_response();
    };
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], exporter.render()).into_response()
}

/// Accepts connections for ever within `limits`: at most `limits.total` at once and
/// `limits.per_ip` from one address, each served by hyper (HTTP/1.1) with a head timeout, a
/// bounded head and a bounded lifetime (the body deadline is the router's).
async fn serve(listener: tokio::net::TcpListener, app: Router, limits: ConnectionLimits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.total));
    let per_ip = Arc::new(PerIp::default());
    // Whether the last accept failed: warned about once, not at every retry (a client can keep
    // a full descriptor table failing accepts for as long as it lasts, as in io/stream.rs).
    let mut failing = false;
    loop {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: give the process a moment to close some.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "api: accept failed, retrying");
                } else {
                    tracing::debug!(error = %e, "api: accept failed again");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("api: accepting connections again");
        }
        let Some(claim) = PerIp::claim(&per_ip, peer, limits.per_ip) else {
            // Dropping the stream closes it; the slot is free again.
            tracing::debug!(%peer, "api: too many connections from this address, closed");
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _held = (slot, claim);
            let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                app.clone().oneshot(request.map(axum::body::Body::new))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.head)
                .max_buf_size(HEAD_LIMIT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A connection past its lifetime is dropped, whatever it was doing.
            if let Ok(Err(e)) = tokio::time::timeout(limits.lifetime, connection).await {
                tracing::debug!(%peer, error = %e, "api: connection ended");
            }
        });
    }
}

/// Open connections by source address (its rate-limit key); an address is listed only while
/// it has one, so the table holds at most `ConnectionLimits::total` entries.
#[derive(Default)]
struct PerIp(std::sync::Mutex<HashMap<IpAddr, usize>>);

/// One open connection of an address in [`PerIp`]; dropping it takes it off the count.
struct IpClaim {
    table: Arc<PerIp>,
    key: IpAddr,
}

impl PerIp {
    /// Counts a connection from `peer`, or `None` when its address already has `max` open.
    fn claim(table: &Arc<PerIp>, peer: SocketAddr, max: usize) -> Option<IpClaim> {
        let key = crate::turn::limit::source_key(peer.ip());
        let mut open = table.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpClaim { table: Arc::clone(table), key })
    }
}

impl Drop for IpClaim {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Drops rate-limit state of callers that went quiet, and reloads a changed JWKS file.
async fn housekeeping(state: Shared) {
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.limits.forget_idle();
        state.live().auth.reload_jwks_if_changed();
    }
}

/// Seconds since the Unix epoch: when credentials handed out now expire is counted from it.
/// The API is an IO shell module, so it may read the clock.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
