//! Corestream: a thread-per-core live-stream relay engine.
//!
//! The crate is split the way `ARCHITECTURE.md` describes: sans-IO protocol codecs in [`protocol`],
//! media types in [`media`], the data path to players' sockets in [`delivery`], the per-core
//! stream registry in [`registry`], per-core state and the cross-core message protocol in
//! [`runtime`], the glommio drivers that move bytes between sockets and codecs in [`server`],
//! relaying in [`relay`], the control API in [`api`], and [`bootstrap`], which starts the
//! executors and wires the layers into them.
#![warn(unreachable_pub)]

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod doctor;
#[doc(hidden)]
pub mod fuzzing;
pub mod media;
pub mod protocol;
pub mod record;
pub mod registry;
pub mod relay;
pub mod runtime;
pub mod server;
