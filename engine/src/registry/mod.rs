//! Per-core stream registry.
