//! The process's log filter, changeable while the engine runs (MediaMTX applies a `logLevel`
//! change at once). The binary installs the setter when it builds its subscriber; the subscriber
//! is the process's one, so a change applies on every core at once.

use std::sync::OnceLock;

use crate::config::LogLevel;

type Setter = Box<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

static SETTER: OnceLock<Setter> = OnceLock::new();

/// Called once by the binary with what replaces the subscriber's filter.
pub fn install(setter: Setter) {
    if SETTER.set(setter).is_err() {
        tracing::warn!("the log level setter was installed twice; the first one stays");
    }
}

/// Sets the filter to `level`. `Err` when nothing was installed (a library user's own
/// subscriber) or the subscriber refused.
pub fn set(level: LogLevel) -> Result<(), String> {
    match SETTER.get() {
        Some(set) => set(level),
        None => Err("no reloadable log filter in this process".to_owned()),
    }
}
