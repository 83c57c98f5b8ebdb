//! The API's errors: each is a status and MediaMTX's text, sent as
//! `{"status":"error","error":"<text>"}`.

use crate::config::state::StateError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No internal user admits the request. `challenge`: no credentials were sent, so the
    /// answer carries `WWW-Authenticate`.
    #[error("authentication error")]
    Unauthorized { challenge: bool },
    /// A body, a field, a name or a query parameter the API refuses; the text is the reason.
    #[error("{0}")]
    Invalid(String),
    #[error("path already exists")]
    PathExists,
    /// Patch or delete of a configuration entry that does not exist; also a runtime path.
    #[error("path not found")]
    PathNotFound,
    #[error("path configuration not found")]
    PathConfNotFound,
    #[error("connection not found")]
    ConnNotFound,
    #[error("muxer not found")]
    MuxerNotFound,
    #[error("session not found")]
    SessionNotFound,
    /// A path without segments, or a segment that is not there.
    #[error("recording not found")]
    RecordingNotFound,
    /// A named endpoint called without a name (`/v3/config/paths/get/`).
    #[error("invalid name")]
    InvalidName,
    /// No endpoint has this path and method. MediaMTX's router answers a known path with
    /// another method the same way (it does not tell 405 apart), in plain text.
    #[error("404 page not found")]
    NoRoute,
    /// `/v3/paths/forward/get` with an id none of the path's pushes has.
    #[error("forward destination not found")]
    ForwardDestNotFound,
    /// `/v3/cluster/*` on a node without `cluster:`.
    #[error("this node is not in a cluster")]
    NotInCluster,
    /// The cluster's directory could not be asked.
    #[error("cluster directory unreachable: {0}")]
    ClusterUnreachable(String),
    /// The change is valid but the state file could not be written: nothing was applied.
    #[error("cannot persist the configuration: {0}")]
    Persist(#[from] StateError),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized { .. } => 401,
            ApiError::Invalid(_) | ApiError::PathExists | ApiError::InvalidName => 400,
            ApiError::PathNotFound
            | ApiError::PathConfNotFound
            | ApiError::ConnNotFound
            | ApiError::MuxerNotFound
            | ApiError::SessionNotFound
            | ApiError::RecordingNotFound
            | ApiError::NoRoute => 404,
            ApiError::NotInCluster => 404,
            ApiError::ForwardDestNotFound => 404,
            ApiError::ClusterUnreachable(_) => 503,
            ApiError::Persist(_) => 500,
        }
    }

    pub fn invalid(reason: impl std::fmt::Display) -> Self {
        ApiError::Invalid(reason.to_string())
    }
}
