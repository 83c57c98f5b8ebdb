//! Executors, core placement, the cross-core message protocol, shutdown.

mod core;
mod engine;
mod ids;
mod mesh;
mod message;
mod os_signal;
mod placement;
mod signal;

pub use self::core::{
    Core, Notice, PlayHandle, PublishHandle, PublishRefused, SessionControl, SessionGuard, Via,
};
pub use engine::{run, StartError};
pub(crate) use ids::scoped_id;
pub use ids::{CoreId, SessionId, StreamId};
pub use mesh::{build as build_mesh, Mesh, MeshEnds};
pub use message::{CoreMessage, CoreStats, HlsAnswer, HlsQuery, Reply, ReplyTo};
pub use placement::{allowed_cpus, Placement, PlacementError};
pub use signal::LocalSignal;
