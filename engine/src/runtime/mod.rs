//! Executors, core placement, the cross-core message protocol, shutdown.
