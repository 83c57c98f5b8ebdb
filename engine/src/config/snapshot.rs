use std::sync::Arc;

use super::{Config, Loaded, Source};
use crate::auth::{AuthConfigError, Authenticator};

/// Everything a request is judged by: the configuration and the auth rules compiled from it.
///
/// Immutable and shared by every core through an `Arc`; a configuration change builds a new one and
/// hands it to each core, so requests already admitted keep the rules they were admitted under.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub auth: Authenticator,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Auth(#[from] AuthConfigError),
}

impl Snapshot {
    /// Compiles the auth rules of a loaded configuration (domain files are read here).
    pub fn build(loaded: Loaded) -> Result<Arc<Snapshot>, SnapshotError> {
        let auth = Authenticator::load(&loaded.config.auth_settings(), &loaded.source.base_dir())?;
        Ok(Arc::new(Snapshot {
            config: loaded.config,
            auth,
            source: loaded.source,
        }))
    }
}
