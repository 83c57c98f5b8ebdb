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
pub mod metrics;
pub mod page;
pub mod router;
mod server;
pub mod store;
pub mod time;
pub mod views;

use std::cell::RefCell;
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

use crate::auth::users::IpNet;
use crate::auth::Action;
use crate::config::Snapshot;
use crate::protocol::http::Request;
use crate::runtime::control::Histogram;
use crate::runtime::{
    ConnUuid, ControlLink, CoreMessage, CoreView, Limit, LimitHits, Reply, StartError,
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
        let mut r = Response::error(e.status(), &e.to_string());
        if let ApiError::Unauthorized { challenge: true } = e {
            r.headers
                .push(("WWW-Authenticate", "Basic realm=\"corestream\"".to_owned()));
        }
        r
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
}

/// Binds the API and metrics listeners (those enabled) on the control executor and serves them.
pub fn start(link: Rc<ControlLink>, snapshot: Arc<Snapshot>) -> Result<(), StartError> {
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
    });
    for (kind, enabled, addr) in listeners {
        if !enabled {
            continue;
        }
        let listener = server::bind(addr).map_err(|reason| StartError::Listen {
            what: kind.name(),
            addr,
            reason,
        })?;
        info!(address = %addr, "{} listener ready", kind.name());
        glommio::spawn_local(server::serve(listener, api.clone(), kind)).detach();
    }
    Ok(())
}

impl Api {
    /// `apiMaxBodyBytes` of the live configuration.
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.store.snapshot().config.api_max_body_bytes
    }

    pub(crate) fn hit_limit(&self, limit: Limit) {
        self.limit_hits.borrow_mut().add(limit);
    }

    /// Authenticates, routes and answers one request.
    pub async fn handle(&self, req: &Request, peer: SocketAddr, kind: Listener) -> Response {
        let started = Instant::now();
        let response = match self.answer(req, peer, kind).await {
            Ok(r) => r,
            Err(e) => Response::from_error(&e),
        };
        self.latency
            .borrow_mut()
            .record(started.elapsed().as_secs_f64());
        response
    }

    async fn answer(
        &self,
        req: &Request,
        peer: SocketAddr,
        kind: Listener,
    ) -> Result<Response, ApiError> {
        let snapshot = self.store.snapshot();
        let trusted: Vec<IpNet> = snapshot
            .config
            .api_trusted_proxies
            .iter()
            .filter_map(|p| IpNet::parse(p))
            .collect();
        let client = auth::client_ip(peer.ip(), req.header("x-forwarded-for"), &trusted);
        let credentials = auth::basic_credentials(req.header("authorization"));
        let action = match kind {
            Listener::Api => Action::Api,
            Listener::Metrics => Action::Metrics,
        };
        auth::authorize(
            &snapshot.auth,
            action,
            client,
            credentials.as_ref(),
            &req.query,
            crate::runtime::unix_ms() / 1000,
        )
        .await?;
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
        let text = metrics::render(
            &views,
            &self.limit_hits.borrow(),
            &self.link.round_trip(),
            &self.latency.borrow(),
        );
        Ok(Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: Vec::new(),
            body: text.into_bytes(),
        })
    }

    /// Every data core's view; a core that does not answer in time is left out.
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

    async fn dispatch(&self, route: Route, req: &Request) -> Result<Value, ApiError> {
        let snapshot = self.store.snapshot();
        let config = &snapshot.config;
        let page = || Page::from_query(&req.query_pairs());
        let conf_json = |name: &str| {
            config
                .paths
                .get(name)
                .map(|f| f.resolve_json(name, &config.path_defaults, config.override_publisher))
        };
        match route {
            Route::Info => Ok(json!({
                "version": concat!("corestream ", env!("CARGO_PKG_VERSION")),
                "started": time::rfc3339(self.started_ms),
            })),
            Route::GlobalGet => Ok(store::global_json(config)),
            Route::GlobalPatch => self.change(Change::global(&req.body)?).await,
            Route::PathDefaultsGet => {
                let mut v = crate::config::PathFields::default().resolve_json(
                    "",
                    &config.path_defaults,
                    config.override_publisher,
                );
                if let Value::Object(m) = &mut v {
                    m.remove("name");
                }
                Ok(v)
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
                let items = views::paths(&views)
                    .iter()
                    .map(|p| p.json(config))
                    .collect();
                Ok(page.list(items))
            }
            Route::PathGet(name) => {
                let views = self.gather().await;
                views::paths(&views)
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| p.json(config))
                    .ok_or(ApiError::PathNotFound)
            }
            Route::RtmpConnsList => {
                let page = page()?;
                let views = self.gather().await;
                let items = views::all_conns(&views)
                    .into_iter()
                    .map(views::conn_json)
                    .collect();
                Ok(page.list(items))
            }
            Route::RtmpConnGet(id) => {
                let id = parse_uuid(&id)?;
                let views = self.gather().await;
                views::all_conns(&views)
                    .into_iter()
                    .find(|c| c.id == id)
                    .map(views::conn_json)
                    .ok_or(ApiError::ConnNotFound)
            }
            Route::RtmpConnKick(id) => {
                let id = parse_uuid(&id)?;
                let kicked = self
                    .link
                    .scatter(|reply| CoreMessage::KickConn { id, reply })
                    .await
                    .into_iter()
                    .any(|r| matches!(r, Some(Reply::Kicked(true))));
                if kicked {
                    Ok(json!({"status": "ok"}))
                } else {
                    Err(ApiError::ConnNotFound)
                }
            }
            // HLS is being added separately; until then there is never a muxer.
            Route::HlsMuxersList => {
                let page = page()?;
                let views = self.gather().await;
                let items = views::all_hls_muxers(&views)
                    .into_iter()
                    .map(views::hls_muxer_json)
                    .collect();
                Ok(page.list(items))
            }
        }
    }
}

fn parse_uuid(text: &str) -> Result<ConnUuid, ApiError> {
    text.parse()
        .map_err(|()| ApiError::invalid(format!("invalid connection id: '{text}'")))
}
