//! Executors, core placement, the cross-core message protocol, shutdown.

mod conn;
pub mod control;
mod core;
mod engine;
mod ids;
mod limits;
mod mesh;
mod message;
mod os_signal;
mod placement;
pub mod rlimit;
mod signal;

pub use self::core::gather::ReaderSlot;
pub use self::core::{
    Core, Notice, PlayHandle, PublishHandle, PublishRefused, SessionControl, SessionGuard, Via,
};
pub(crate) use conn::unix_ms;
pub use conn::{ConnInfo, ConnState, ConnUuid, ConnView, CoreView, HlsMuxerView};
pub use control::ControlLink;
pub use engine::{run, StartError};
pub(crate) use ids::scoped_id;
pub use ids::{CoreId, SessionId, StreamId};
pub use limits::{Limit, LimitHits};
pub use mesh::{build as build_mesh, Mesh, MeshEnds};
pub use message::{CoreMessage, CoreStats, HlsAnswer, HlsQuery, Reply, ReplyTo};
pub use placement::{allowed_cpus, Placement, PlacementError};
pub use signal::LocalSignal;
