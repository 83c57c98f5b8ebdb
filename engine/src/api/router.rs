//! Which endpoint a request is for: a pure function of method and decoded path, no I/O.
//!
//! Names are everything after the endpoint's prefix, slashes included
//! (`/v3/config/paths/add/live/cam1` adds `live/cam1`).

use super::ApiError;
use crate::protocol::http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Info,
    GlobalGet,
    GlobalPatch,
    PathDefaultsGet,
    PathDefaultsPatch,
    ConfigPathsList,
    ConfigPathGet(String),
    ConfigPathAdd(String),
    ConfigPathPatch(String),
    ConfigPathReplace(String),
    ConfigPathDelete(String),
    PathsList,
    PathGet(String),
    RtmpConnsList,
    RtmpConnGet(String),
    RtmpConnKick(String),
    HlsMuxersList,
    HlsMuxerGet(String),
    HlsSessionsList,
    HlsSessionGet(String),
    HlsSessionKick(String),
    RecordingsList,
    RecordingGet(String),
    RecordingDeleteSegment,
    ClusterStatus,
    ClusterNodes,
    ClusterStreams,
    PathForwardList,
    PathForwardGet,
}

impl Route {
    /// Whether the endpoint changes the configuration.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Route::GlobalPatch
                | Route::PathDefaultsPatch
                | Route::ConfigPathAdd(_)
                | Route::ConfigPathPatch(_)
                | Route::ConfigPathReplace(_)
                | Route::ConfigPathDelete(_)
        )
    }
}

/// Fixed endpoints: path, method, route.
/// MediaMTX registers the routes of a server only while that server runs: there is no RTMPS,
/// RTSP, WebRTC, SRT or MoQ server here, so their routes are 404 as in a MediaMTX that runs none.
const FIXED: [(&str, Method, Route); 15] = [
    ("/v3/info", Method::Get, Route::Info),
    ("/v3/config/global/get", Method::Get, Route::GlobalGet),
    ("/v3/config/global/patch", Method::Patch, Route::GlobalPatch),
    (
        "/v3/config/pathdefaults/get",
        Method::Get,
        Route::PathDefaultsGet,
    ),
    (
        "/v3/config/pathdefaults/patch",
        Method::Patch,
        Route::PathDefaultsPatch,
    ),
    ("/v3/config/paths/list", Method::Get, Route::ConfigPathsList),
    ("/v3/paths/list", Method::Get, Route::PathsList),
    ("/v3/rtmpconns/list", Method::Get, Route::RtmpConnsList),
    ("/v3/hlsmuxers/list", Method::Get, Route::HlsMuxersList),
    ("/v3/hlssessions/list", Method::Get, Route::HlsSessionsList),
    ("/v3/recordings/list", Method::Get, Route::RecordingsList),
    (
        "/v3/recordings/deletesegment",
        Method::Delete,
        Route::RecordingDeleteSegment,
    ),
    ("/v3/cluster/status", Method::Get, Route::ClusterStatus),
    ("/v3/cluster/nodes", Method::Get, Route::ClusterNodes),
    ("/v3/cluster/streams", Method::Get, Route::ClusterStreams),
];

/// Endpoints that take their path name (and id) as query parameters.
const BY_QUERY: [(&str, Method, Route); 2] = [
    (
        "/v3/paths/forward/list",
        Method::Get,
        Route::PathForwardList,
    ),
    ("/v3/paths/forward/get", Method::Get, Route::PathForwardGet),
];

/// An endpoint that takes a name or an id: prefix, method, route constructor.
type Named = (&'static str, Method, fn(String) -> Route);

/// Endpoints whose name may hold slashes (MediaMTX's `*name`): one called without a name is a
/// 400 `invalid name`.
const NAMED: [Named; 8] = [
    ("/v3/config/paths/get/", Method::Get, Route::ConfigPathGet),
    ("/v3/config/paths/add/", Method::Post, Route::ConfigPathAdd),
    (
        "/v3/config/paths/patch/",
        Method::Patch,
        Route::ConfigPathPatch,
    ),
    (
        "/v3/config/paths/replace/",
        Method::Post,
        Route::ConfigPathReplace,
    ),
    (
        "/v3/config/paths/delete/",
        Method::Delete,
        Route::ConfigPathDelete,
    ),
    ("/v3/paths/get/", Method::Get, Route::PathGet),
    ("/v3/hlsmuxers/get/", Method::Get, Route::HlsMuxerGet),
    ("/v3/recordings/get/", Method::Get, Route::RecordingGet),
];

/// Endpoints that take one id segment (MediaMTX's `:id`): one called without it has no route.
const BY_ID: [Named; 4] = [
    ("/v3/rtmpconns/get/", Method::Get, Route::RtmpConnGet),
    ("/v3/rtmpconns/kick/", Method::Post, Route::RtmpConnKick),
    ("/v3/hlssessions/get/", Method::Get, Route::HlsSessionGet),
    ("/v3/hlssessions/kick/", Method::Post, Route::HlsSessionKick),
];

/// The endpoint for `method` and the percent-decoded `path`. As MediaMTX's router, a known
/// path with another method has no route either.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    for (p, m, r) in FIXED.iter().chain(&BY_QUERY) {
        if path == *p && m == method {
            return Ok(r.clone());
        }
    }
    for (prefix, m, make) in &NAMED {
        if let Some(name) = path.strip_prefix(prefix) {
            if m == method {
                return if name.is_empty() {
                    Err(ApiError::InvalidName)
                } else {
                    Ok(make(name.to_owned()))
                };
            }
        }
    }
    for (prefix, m, make) in &BY_ID {
        if let Some(id) = path.strip_prefix(prefix) {
            if m == method && !id.is_empty() && !id.contains('/') {
                return Ok(make(id.to_owned()));
            }
        }
    }
    Err(ApiError::NoRoute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_slashes() {
        assert_eq!(
            route(&Method::Post, "/v3/config/paths/add/live/cam1").unwrap(),
            Route::ConfigPathAdd("live/cam1".into())
        );
        assert_eq!(
            route(&Method::Get, "/v3/paths/get/a/b/c").unwrap(),
            Route::PathGet("a/b/c".into())
        );
        assert_eq!(
            route(&Method::Post, "/v3/config/paths/replace/~^live/").unwrap(),
            Route::ConfigPathReplace("~^live/".into())
        );
    }

    #[test]
    fn fixed_routes_and_errors() {
        assert_eq!(route(&Method::Get, "/v3/info").unwrap(), Route::Info);
        assert_eq!(
            route(&Method::Patch, "/v3/config/global/patch").unwrap(),
            Route::GlobalPatch
        );
        assert!(matches!(
            route(&Method::Get, "/v3/config/global/patch"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            route(&Method::Get, "/v3/config/paths/delete/x"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            route(&Method::Get, "/v3/config/paths/get/"),
            Err(ApiError::InvalidName)
        ));
        assert!(matches!(
            route(&Method::Get, "/v3/rtmpconns/get/"),
            Err(ApiError::NoRoute)
        ));
        assert_eq!(
            route(&Method::Get, "/v3/hlsmuxers/get/live/a").unwrap(),
            Route::HlsMuxerGet("live/a".into())
        );
        assert_eq!(
            route(&Method::Get, "/v3/paths/forward/get").unwrap(),
            Route::PathForwardGet
        );
        assert!(matches!(
            route(&Method::Post, "/v3/paths/forward/list"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            route(&Method::Get, "/v2/paths/list"),
            Err(ApiError::NoRoute)
        ));
        assert!(route(&Method::Post, "/v3/config/paths/add/x")
            .unwrap()
            .is_write());
        assert!(!route(&Method::Get, "/v3/paths/list").unwrap().is_write());
    }
}
