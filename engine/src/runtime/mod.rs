//! Per-core state and what cores share: core placement, the cross-core mesh and its messages,
//! signals, descriptor limits. The executors themselves are started by [`crate::bootstrap`].

mod conn;
pub mod control;
mod core;
pub mod hls_session;
mod ids;
mod limits;
mod links;
pub mod log_level;
mod mesh;
mod message;
pub(crate) mod os_signal;
mod placement;
pub mod rlimit;
mod signal;
mod start;

pub use self::core::gather::ReaderSlot;
pub use self::core::{
    Core, Notice, PlayHandle, PublishHandle, PublishRefused, SessionControl, SessionGuard, Via,
};
pub(crate) use conn::unix_ms;
pub use conn::{
    ConnInfo, ConnProtocol, ConnState, ConnUuid, ConnView, CoreView, HlsMuxerView, TrackProps,
    TrackView,
};
pub use control::ControlLink;
pub use hls_session::{HlsSessionCheck, HlsSessionOpening, HlsSessionRef, HlsSessionView};
pub(crate) use ids::scoped_id;
pub use ids::{CoreId, SessionId, StreamId};
pub use limits::{Limit, LimitHits};
pub use links::{ForwardView, LinkState, SourceView, StreamLinks};
pub use mesh::{build as build_mesh, Mesh, MeshEnds};
pub use message::{CoreMessage, CoreStats, HlsAnswer, HlsQuery, HlsSessionOpened, Reply, ReplyTo};
pub use placement::{allowed_cpus, Placement, PlacementError};
pub use signal::LocalSignal;
pub use start::StartError;
