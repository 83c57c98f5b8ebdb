//! The control API (MediaMTX v3 compatible) and the Prometheus endpoint, served by the control
//! executor only.
//!
//! - [`router`] maps a request to an endpoint, [`page`] paginates lists, [`auth`] finds the client
//!   and checks it against the internal users, [`store`] plans, persists and hot-applies
//!   configuration changes, [`views`] and [`metrics`] render what the data cores report: all
//!   without I/O.
//! - [`server`] is the glommio driver: it feeds sockets to the sans-IO HTTP parser and writes the
//!   answers.
//!
//! The data cores are reached only through the mesh ([`ControlLink`]): a runtime query is a
//! scatter/gather of [`CoreMessage::GatherView`], a kick a [`CoreMessage::KickConn`] to every
//! core, a configuration change a [`CoreMessage::ConfigUpdate`] to every core followed by a
//! gather that proves each applied it.
#![forbid(unsafe_code)]

pub mod auth;
mod error;
pub mod forward;
pub mod gate;
pub mod metrics;
pub mod page;
pub mod playback;
pub mod redact;
pub mod router;
mod server;
pub mod store;
pub mod time;
pub mod uuid;
pub mod views;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tracing::info;

pub use error::ApiError;
use page::Page;
use router::Route;
use store::{parse_path_fields, Change, Store};

use crate::auth::Action;
use crate::config::Snapshot;
use crate::protocol::http::Request;
use crate::record;
use crate::runtime::control::Histogram;
use crate::runtime::{
    ConnUuid, ControlLink, CoreMessage, CoreView, Limit, LimitHits, LocalSignal, Reply, StartError,
};

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `apiAddress`: the `/v3/...` endpoints, `api` action.
    Api,
    /// `metricsAddress`: `/metrics`, `metrics` action.
    Metrics,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::Api => "api",
            Listener::Metrics => "metrics",
        }
    }
}

/// An answer, before HTTP framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    /// `{"status":"error","error":text}`.
    pub fn error(status: u16, text: &str) -> Response {
        Response::json(status, &json!({"status": "error", "error": text}))
    }

    fn from_error(e: &ApiError) -> Response {
        if let ApiError::NoRoute = e {
            // MediaMTX's router answers an unknown route in plain text, not JSON.
            return Response {
                status: 404,
                content_type: "text/plain",
                headers: Vec::new(),
                body: e.to_string().into_bytes(),
            };
        }
        let mut r = Response::error(e.status(), &e.to_string());
        if let ApiError::Unauthorized { challenge: true } = e {
            // MediaMTX's realm, which its clients look for.
            r.headers
                .push(("WWW-Authenticate", "Basic realm=\"mediamtx\"".to_owned()));
        }
        r
    }

    fn with_headers(mut self, headers: &[(&'static str, String)]) -> Response {
        self.headers.extend(headers.iter().cloned());
        self
    }
}

/// What the head of a request decided, before its body is read.
#[derive(Debug)]
pub enum Gate {
    /// Answer this now, without reading a body (a refusal or a CORS preflight).
    Answer(Response),
    /// Read the body, then [`Api::serve`] with these CORS headers.
    Proceed(Vec<(&'static str, String)>),
}

/// A count shared by a listener's connections, held for as long as a [`Held`] lives.
#[derive(Debug, Default, Clone)]
pub struct Budget(Rc<Cell<usize>>);

/// `n` units of a [`Budget`], given back on drop.
#[derive(Debug)]
pub struct Held(Rc<Cell<usize>>, usize);

impl Budget {
    /// Takes `n` if the total stays within `max`.
    pub fn take(&self, n: usize, max: usize) -> Option<Held> {
        let used = self.0.get();
        if used.saturating_add(n) > max {
            return None;
        }
        self.0.set(used + n);
        Some(Held(self.0.clone(), n))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(self.1));
    }
}

/// The API's state on the control core.
pub struct Api {
    link: Rc<ControlLink>,
    store: Rc<Store>,
    started_ms: u64,
    /// Time to handle each request, for `/metrics`.
    latency: RefCell<Histogram>,
    /// Limits the API's own clients hit (its body and head sizes), for `/metrics`.
    limit_hits: RefCell<LimitHits>,
    /// Open connections per listener (`apiMaxConnections` each).
    connections: [Budget; 2],
    /// Body bytes being read per listener (`apiMaxBodyBytes` across its connections).
    body_bytes: [Budget; 2],
    /// The cluster's directory, for `/v3/cluster/*` and the metrics.
    cluster: Option<crate::cluster::Cluster>,
    /// Per listener, while it runs: the signal that closes it (its switch, `api` or `metrics`,
    /// turned off through the API).
    running: RefCell<[Option<LocalSignal>; 2]>,
}

/// Binds the API and metrics listeners (those enabled) on the control executor and serves them.
pub fn start(
    link: Rc<ControlLink>,
    snapshot: Arc<Snapshot>,
    cluster: Option<crate::cluster::Cluster>,
) -> Result<(), StartError> {
    let config = &snapshot.config;
    let listeners = [
        (Listener::Api, config.api, config.api_address.0),
        (Listener::Metrics, config.metrics, config.metrics_address.0),
    ];
    let api = Rc::new(Api {
        link,
        store: Store::new(snapshot.clone()),
        started_ms: crate::runtime::unix_ms(),
        latency: RefCell::default(),
        limit_hits: RefCell::default(),
        connections: Default::default(),
        body_bytes: Default::default(),
        cluster,
        running: RefCell::default(),
    });
    let store = api.store.clone();
    crate::record::retention::spawn(move || store.snapshot());
    playback::start(api.store.clone())?;
    for (kind, enabled, addr) in listeners {
        if !enabled {
            continue;
        }
        let listener = server::bind(addr).map_err(|reason| StartError::Listen {
            what: kind.name(),
            addr,
            reason,
        })?;
        api.run_listener(kind, listener, addr);
    }
    Ok(())
}

impl Api {
    fn run_listener(
        self: &Rc<Self>,
        kind: Listener,
        listener: glommio::net::TcpListener,
        addr: SocketAddr,
    ) {
        info!(address = %addr, "{} listener ready", kind.name());
        let closed = LocalSignal::new();
        self.running.borrow_mut()[kind as usize] = Some(closed.clone());
        glommio::spawn_local(server::serve(listener, self.clone(), kind, closed)).detach();
    }

    /// A global change, with what MediaMTX changes while running besides the snapshot: the
    /// `api` and `metrics` switches (a listener turned on is bound before the change is
    /// committed, so a port in use refuses it; one turned off closes after this answer) and
    /// `logLevel` (the process's filter, every core at once).
    async fn change_global(self: &Rc<Self>, change: Change) -> Result<Value, ApiError> {
        let before = self.store.snapshot();
        let (after, _) = store::plan(&before.config, &self.store.overlay(), &change)?;
        let switches = |c: &crate::config::Config| {
            [
                (Listener::Api, c.api, c.api_address.0),
                (Listener::Metrics, c.metrics, c.metrics_address.0),
            ]
        };
        let mut bound = Vec::new();
        for (kind, on, addr) in switches(&after) {
            if on && self.running.borrow()[kind as usize].is_none() {
                let listener = server::bind(addr).map_err(|e| {
                    ApiError::invalid(format!("cannot listen on {addr} ({}): {e}", kind.name()))
                })?;
                bound.push((kind, listener, addr));
            }
        }
        self.store.apply(&self.link, &change).await?;
        for (kind, listener, addr) in bound {
            self.run_listener(kind, listener, addr);
        }
        for (kind, on, _) in switches(&after) {
            if !on {
                if let Some(off) = self.running.borrow_mut()[kind as usize].take() {
                    off.fire();
                }
            }
        }
        if before.config.log_level != after.log_level {
            match crate::runtime::log_level::set(after.log_level) {
                Ok(()) => info!(
                    level = after.log_level.as_str(),
                    "log level changed (API request)"
                ),
                Err(e) => tracing::warn!("logLevel changed but the log filter was not: {e}"),
            }
        }
        Ok(json!({"status": "ok"}))
    }

    /// `apiMaxBodyBytes` of the live configuration.
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.store.snapshot().config.api_max_body_bytes
    }

    pub(crate) fn hit_limit(&self, limit: Limit) {
        self.limit_hits.borrow_mut().add(limit);
    }

    /// `readTimeout` of the live configuration: a request must arrive whole within it.
    pub(crate) fn read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.store.snapshot().config.read_timeout.0)
    }

    /// A connection slot on `kind`'s listener, or `None` at `apiMaxConnections` (counted).
    pub(crate) fn open_connection(&self, kind: Listener) -> Option<Held> {
        let max = self.store.snapshot().config.api_max_connections;
        let held = self.connections[kind as usize].take(1, max);
        if held.is_none() {
            self.hit_limit(Limit::ApiConnections);
        }
        held
    }

    /// Room for a `len`-byte body on `kind`'s listener, or `None` while other connections' bodies
    /// fill `apiMaxBodyBytes` (counted).
    pub(crate) fn reserve_body(&self, kind: Listener, len: usize) -> Option<Held> {
        let held = self.body_bytes[kind as usize].take(len, self.max_body_bytes());
        if held.is_none() {
            self.hit_limit(Limit::ApiBodyBytes);
        }
        held
    }

    /// Decides on a request's head, before its body is read: Host, Content-Type and Origin, a
    /// CORS preflight, then credentials. Nothing from a client that fails here is buffered.
    pub async fn admit(
        &self,
        head: &Request,
        body_len: usize,
        peer: SocketAddr,
        local: SocketAddr,
        kind: Listener,
    ) -> Gate {
        let started = Instant::now();
        let snapshot = self.store.snapshot();
        let config = &snapshot.config;
        let (listen, allow_origins) = match kind {
            Listener::Api => (config.api_address.0, &config.api_allow_origins),
            Listener::Metrics => (config.metrics_address.0, &config.metrics_allow_origins),
        };
        let site = gate::Site {
            listen,
            local,
            allowed_hosts: &config.api_allowed_hosts,
            allow_origins,
        };
        let cors = site.cors_headers(head);
        let refused = |why: gate::Refusal| {
            info!(peer = %peer, host = ?head.header("host"), origin = ?head.header("origin"), "{} request refused: {why}", kind.name());
            Gate::Answer(Response::error(why.status(), &why.to_string()).with_headers(&cors))
        };
        if let Err(why) = site.check_head(head, body_len) {
            return refused(why);
        }
        if gate::Site::is_preflight(head) {
            let mut r = Response {
                status: 204,
                content_type: "text/plain; charset=utf-8",
                headers: Vec::new(),
                body: Vec::new(),
            };
            if cors
                .iter()
                .any(|(n, _)| *n == "Access-Control-Allow-Origin")
            {
                r.headers.push((
                    "Access-Control-Allow-Methods",
                    gate::ALLOW_METHODS.to_owned(),
                ));
                r.headers.push((
                    "Access-Control-Allow-Headers",
                    gate::ALLOW_HEADERS.to_owned(),
                ));
            }
            return Gate::Answer(r.with_headers(&cors));
        }
        let credentials = auth::basic_credentials(head.header("authorization"));
        if let Err(why) = site.check_anonymous(head, credentials.is_some()) {
            return refused(why);
        }
        let result = self.authorize(head, peer, kind, credentials.as_ref()).await;
        match result {
            Ok(()) => Gate::Proceed(cors),
            Err(e) => {
                self.latency
                    .borrow_mut()
                    .record(started.elapsed().as_secs_f64());
                Gate::Answer(Response::from_error(&e).with_headers(&cors))
            }
        }
    }

    async fn authorize(
        &self,
        req: &Request,
        peer: SocketAddr,
        kind: Listener,
        credentials: Option<&(String, String)>,
    ) -> Result<(), ApiError> {
        let snapshot = self.store.snapshot();
        let client = auth::requester_ip(&snapshot.config, peer.ip(), req);
        let action = match kind {
            Listener::Api => Action::Api,
            Listener::Metrics => Action::Metrics,
        };
        auth::authorize(
            &snapshot.auth,
            action,
            client,
            credentials,
            &req.query,
            crate::runtime::unix_ms() / 1000,
        )
        .await
    }

    /// Routes and answers a request [`Api::admit`] let through, with its CORS headers.
    pub async fn serve(
        self: &Rc<Self>,
        req: &Request,
        kind: Listener,
        cors: &[(&'static str, String)],
    ) -> Response {
        let started = Instant::now();
        let response = match self.answer(req, kind).await {
            Ok(r) => r,
            Err(e) => Response::from_error(&e),
        };
        self.latency
            .borrow_mut()
            .record(started.elapsed().as_secs_f64());
        response.with_headers(cors)
    }

    async fn answer(self: &Rc<Self>, req: &Request, kind: Listener) -> Result<Response, ApiError> {
        match kind {
            Listener::Metrics => self.metrics(req).await,
            Listener::Api => {
                let route = router::route(&req.method, &req.path)?;
                let body = self.dispatch(route, req).await?;
                Ok(Response::json(200, &body))
            }
        }
    }

    async fn metrics(&self, req: &Request) -> Result<Response, ApiError> {
        if req.path != "/metrics" {
            return Err(ApiError::NoRoute);
        }
        let views = self.gather().await;
        let mut text = metrics::render(
            &views,
            &self.store.snapshot().config,
            &self.limit_hits.borrow(),
            &self.link.round_trip(),
            &self.latency.borrow(),
        );
        if let Some(cluster) = &self.cluster {
            metrics::cluster(&mut text, &cluster.status());
        }
        Ok(Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: text.into_bytes(),
        })
    }

    /// Every data core's view; a core that does not answer in time is left out.
    /// Asks every data core to close what `message` names (a connection, an HLS session):
    /// `{"status":"ok"}` if one did, else `not_found`.
    async fn kick(
        &self,
        message: impl Fn(crate::runtime::ReplyTo) -> CoreMessage,
        not_found: ApiError,
    ) -> Result<Value, ApiError> {
        let kicked = self
            .link
            .scatter(message)
            .await
            .into_iter()
            .any(|r| matches!(r, Some(Reply::Kicked(true))));
        if kicked {
            Ok(json!({"status": "ok"}))
        } else {
            Err(not_found)
        }
    }

    async fn gather(&self) -> Vec<CoreView> {
        self.link
            .scatter(|reply| CoreMessage::GatherView { reply })
            .await
            .into_iter()
            .filter_map(|r| match r {
                Some(Reply::View(v)) => Some(*v),
                _ => None,
            })
            .collect()
    }

    async fn change(&self, change: Change) -> Result<Value, ApiError> {
        self.store.apply(&self.link, &change).await?;
        Ok(json!({"status": "ok"}))
    }

    async fn dispatch(self: &Rc<Self>, route: Route, req: &Request) -> Result<Value, ApiError> {
        let snapshot = self.store.snapshot();
        let config = &snapshot.config;
        let page = || Page::from_query(&req.query_pairs());
        // The query parameters redacted wherever a runtime item shows a query.
        let secrets = || snapshot.auth.secret_query_params();
        let conf_json = |name: &str| {
            config.paths.get(name).map(|f| {
                let mut v = f.resolve_json(name, &config.path_defaults, config.override_publisher);
                crate::config::mediamtx::add_path_defaults(&mut v);
                redact::path(v)
            })
        };
        match route {
            Route::ClusterStatus => {
                let cluster = self.cluster.as_ref().ok_or(ApiError::NotInCluster)?;
                Ok(json!(cluster.status()))
            }
            Route::ClusterNodes => {
                let cluster = self.cluster.as_ref().ok_or(ApiError::NotInCluster)?;
                let nodes = cluster
                    .nodes()
                    .await
                    .map_err(ApiError::ClusterUnreachable)?;
                let items = nodes.iter().map(|n| json!(n)).collect();
                Ok(page()?.list(items))
            }
            Route::ClusterStreams => {
                let cluster = self.cluster.as_ref().ok_or(ApiError::NotInCluster)?;
                let streams = cluster
                    .streams()
                    .await
                    .map_err(ApiError::ClusterUnreachable)?;
                let items = streams
                    .into_iter()
                    .map(|(stream, node)| json!({"stream": stream, "node": node}))
                    .collect();
                Ok(page()?.list(items))
            }
            Route::Info => Ok(json!({
                "version": concat!("corestream ", env!("CARGO_PKG_VERSION")),
                "started": time::rfc3339(self.started_ms),
            })),
            Route::GlobalGet => Ok(store::global_json(config)),
            Route::GlobalPatch => self.change_global(Change::global(&req.body)?).await,
            Route::PathDefaultsGet => {
                let mut v = crate::config::PathFields::default().resolve_json(
                    "",
                    &config.path_defaults,
                    config.override_publisher,
                );
                if let Value::Object(m) = &mut v {
                    m.remove("name");
                }
                crate::config::mediamtx::add_path_defaults(&mut v);
                Ok(redact::path(v))
            }
            Route::PathDefaultsPatch => {
                self.change(Change::PathDefaults(parse_path_fields(&req.body)?))
                    .await
            }
            Route::ConfigPathsList => {
                let items = config
                    .paths
                    .iter()
                    .filter_map(|(n, _)| conf_json(n))
                    .collect();
                Ok(page()?.list(items))
            }
            Route::ConfigPathGet(name) => conf_json(&name).ok_or(ApiError::PathConfNotFound),
            Route::ConfigPathAdd(name) => {
                self.change(Change::Add(name, parse_path_fields(&req.body)?))
                    .await
            }
            Route::ConfigPathPatch(name) => {
                self.change(Change::Patch(name, parse_path_fields(&req.body)?))
                    .await
            }
            Route::ConfigPathReplace(name) => {
                self.change(Change::Replace(name, parse_path_fields(&req.body)?))
                    .await
            }
            Route::ConfigPathDelete(name) => self.change(Change::Delete(name)).await,
            Route::PathsList => {
                let page = page()?;
                let views = self.gather().await;
                let items = views::paths(&views, config)
                    .iter()
                    .map(|p| p.json(config))
                    .collect();
                Ok(page.list(items))
            }
            Route::PathGet(name) => {
                let views = self.gather().await;
                views::paths(&views, config)
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| p.json(config))
                    .ok_or(ApiError::PathNotFound)
            }
            Route::PathForwardList => {
                let query = req.query_pairs();
                let path = forward::path_param(&query)?;
                forward::list(&self.gather().await, config, path, &query)
            }
            Route::PathForwardGet => {
                let query = req.query_pairs();
                let (id, path) = forward::get_params(&query)?;
                forward::get(&self.gather().await, config, path, id)
            }
            Route::RtmpConnsList => {
                let page = page()?;
                let views = self.gather().await;
                Ok(page.list(runtime_json(
                    views::rtmp_conns(&views),
                    &secrets(),
                    views::conn_json,
                )))
            }
            Route::RtmpConnGet(id) => {
                let id = parse_uuid(&id)?;
                let views = self.gather().await;
                let found = views::rtmp_conns(&views).into_iter().find(|c| c.id == id);
                found
                    .map(|c| views::conn_json(c, &secrets()))
                    .ok_or(ApiError::ConnNotFound)
            }
            Route::RtmpConnKick(id) => {
                let id = parse_uuid(&id)?;
                self.kick(
                    |reply| CoreMessage::KickConn { id, reply },
                    ApiError::ConnNotFound,
                )
                .await
            }
            Route::RecordingsList => {
                let page = page()?;
                let stats = views::record_stats(&self.gather().await);
                let items = record::store::find_all(config)
                    .iter()
                    .map(|(name, segments)| recording_json(name, segments, stats.get(name)))
                    .collect();
                Ok(page.list(items))
            }
            Route::RecordingGet(name) => {
                if !record::store::is_valid_path_name(&name) {
                    return Err(ApiError::invalid("invalid name"));
                }
                let template = record::store::template_of(config, &name).for_path(&name);
                let segments = record::store::find_path(&template);
                let stats = views::record_stats(&self.gather().await);
                if segments.is_empty() && !stats.contains_key(&name) {
                    return Err(ApiError::RecordingNotFound);
                }
                Ok(recording_json(&name, &segments, stats.get(&name)))
            }
            Route::RecordingDeleteSegment => {
                let query = req.query_pairs();
                let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                let name = get("path").unwrap_or_default();
                if !record::store::is_valid_path_name(name) {
                    return Err(ApiError::invalid("invalid 'path' parameter"));
                }
                let start = get("start")
                    .and_then(record::path::parse_rfc3339)
                    .ok_or_else(|| ApiError::invalid("invalid 'start' parameter"))?;
                let template = record::store::template_of(config, name).for_path(name);
                let segment = record::store::find_path(&template)
                    .into_iter()
                    .find(|s| s.start_us == start)
                    .ok_or(ApiError::RecordingNotFound)?;
                std::fs::remove_file(&segment.file)
                    .map_err(|e| ApiError::invalid(format!("cannot delete the segment: {e}")))?;
                info!(path = %name, file = %segment.file.display(), "recording segment deleted through the API");
                Ok(json!({"status": "ok"}))
            }
            Route::HlsMuxersList => {
                let page = page()?;
                let views = self.gather().await;
                let items = views::all_hls_muxers(&views)
                    .into_iter()
                    .map(views::hls_muxer_json)
                    .collect();
                Ok(page.list(items))
            }
            Route::HlsMuxerGet(name) => {
                let views = self.gather().await;
                views::all_hls_muxers(&views)
                    .into_iter()
                    .find(|m| m.path == name)
                    .map(views::hls_muxer_json)
                    .ok_or(ApiError::MuxerNotFound)
            }
            Route::HlsSessionsList => {
                let page = page()?;
                let views = self.gather().await;
                let sessions = views::all_hls_sessions(&views);
                Ok(page.list(runtime_json(sessions, &secrets(), views::hls_session_json)))
            }
            Route::HlsSessionGet(id) => {
                let id = parse_uuid(&id)?;
                let views = self.gather().await;
                let found = views::all_hls_sessions(&views)
                    .into_iter()
                    .find(|s| s.id == id);
                found
                    .map(|s| views::hls_session_json(s, &secrets()))
                    .ok_or(ApiError::SessionNotFound)
            }
            Route::HlsSessionKick(id) => {
                let id = parse_uuid(&id)?;
                let message = |reply| CoreMessage::KickHlsSession { id, reply };
                self.kick(message, ApiError::SessionNotFound).await
            }
        }
    }
}

/// A path's recording as MediaMTX shows it (its name and each segment's start), with what the
/// engine's recorders of the path did since it started (`recorder`, Corestream's addition).
fn recording_json(
    name: &str,
    segments: &[record::store::Segment],
    stats: Option<&record::RecordStats>,
) -> Value {
    let segments: Vec<Value> = segments
        .iter()
        .map(|s| json!({"start": record::path::rfc3339_us(s.start_us)}))
        .collect();
    let mut item = json!({"name": name, "segments": segments});
    if let (Some(stats), Value::Object(map)) = (stats, &mut item) {
        map.insert("recorder".to_owned(), views::record_stats_json(stats));
    }
    item
}

/// Runtime items (connections, sessions) as JSON, their queries' `secrets` redacted.
fn runtime_json<T>(
    items: Vec<&T>,
    secrets: &[String],
    to_json: fn(&T, &[String]) -> Value,
) -> Vec<Value> {
    items
        .into_iter()
        .map(|item| to_json(item, secrets))
        .collect()
}

/// A connection id; a malformed one is a 400 with the text MediaMTX's UUID parser gives.
fn parse_uuid(text: &str) -> Result<ConnUuid, ApiError> {
    uuid::parse(text).map_err(ApiError::Invalid)
}
