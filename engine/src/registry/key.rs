use std::fmt;
use std::hash::{Hash, Hasher};

use crate::runtime::CoreId;

/// The virtual host every request uses until domains are configured.
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// What identifies a live stream: `(vhost, app, stream name without its query)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub vhost: String,
    pub app: String,
    pub stream: String,
}

impl StreamKey {
    pub fn new(vhost: &str, app: &str, stream: &str) -> Self {
        StreamKey {
            vhost: vhost.to_owned(),
            app: app.to_owned(),
            stream: stream.to_owned(),
        }
    }

    /// The MediaMTX-style path name, `app/stream` (`app` alone when there is no stream name).
    pub fn path(&self) -> String {
        if self.stream.is_empty() {
            self.app.clone()
        } else {
            format!("{}/{}", self.app, self.stream)
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vhost == DEFAULT_VHOST {
            write!(f, "{}/{}", self.app, self.stream)
        } else {
            write!(f, "{}/{}/{}", self.vhost, self.app, self.stream)
        }
    }
}

/// The data core that keeps the directory entry of `key`: who publishes it, on which core.
pub fn home_core(key: &StreamKey, data_cores: usize) -> CoreId {
    // FNV-1a: stable across runs and builds, unlike the std hasher's unspecified algorithm.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    CoreId((h.finish() % data_cores.max(1) as u64) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_core_is_stable_and_in_range() {
        let key = StreamKey::new(DEFAULT_VHOST, "live", "s");
        let first = home_core(&key, 4);
        assert!(first.0 < 4);
        assert_eq!(home_core(&key, 4), first);
        assert_eq!(home_core(&key, 1), CoreId(0));
        let spread: std::collections::HashSet<_> = (0..64)
            .map(|i| home_core(&StreamKey::new(DEFAULT_VHOST, "live", &format!("s{i}")), 4))
            .collect();
        assert_eq!(spread.len(), 4, "keys spread over every core");
    }

    #[test]
    fn display_hides_the_default_vhost() {
        assert_eq!(
            StreamKey::new(DEFAULT_VHOST, "live", "s").to_string(),
            "live/s"
        );
        assert_eq!(
            StreamKey::new("a.com", "live", "s").to_string(),
            "a.com/live/s"
        );
    }
}
