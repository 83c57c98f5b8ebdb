use std::collections::HashMap;

use super::StreamKey;
use crate::runtime::{CoreId, SessionId};

/// Who publishes a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publisher {
    pub core: CoreId,
    pub session: SessionId,
    /// A pull of another cluster node's stream rather than a publisher of this node: any
    /// publisher of the key here replaces it (the directory in Redis judged that one first).
    pub mirror: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    Granted,
    /// Someone else publishes the stream and the policy is to refuse the newcomer.
    Conflict {
        current: Publisher,
    },
    /// The newcomer replaces `previous`, which must now be disconnected.
    Replaced {
        previous: Publisher,
    },
}

/// The directory entries of the stream keys whose home is this core.
///
/// Every claim and lookup of a key goes to its home core, so two publishers racing for one key on
/// different cores get one consistent answer.
#[derive(Debug, Default)]
pub struct Directory {
    entries: HashMap<StreamKey, Publisher>,
}

impl Directory {
    pub fn claim(&mut self, key: &StreamKey, publisher: Publisher, replace: bool) -> ClaimOutcome {
        match self.entries.get_mut(key) {
            None => {
                self.entries.insert(key.clone(), publisher);
                ClaimOutcome::Granted
            }
            Some(current) if *current == publisher => ClaimOutcome::Granted,
            Some(current) if replace || (current.mirror && !publisher.mirror) => {
                let previous = std::mem::replace(current, publisher);
                ClaimOutcome::Replaced { previous }
            }
            Some(current) => ClaimOutcome::Conflict { current: *current },
        }
    }

    /// Removes the entry if `session` still holds it (a replaced publisher's late release must not
    /// evict its successor).
    pub fn release(&mut self, key: &StreamKey, session: SessionId) -> bool {
        if self.entries.get(key).is_some_and(|p| p.session == session) {
            self.entries.remove(key);
            true
        } else {
            false
        }
    }

    pub fn find(&self, key: &StreamKey) -> Option<Publisher> {
        self.entries.get(key).copied()
    }

    /// The keys with a publisher.
    pub fn keys(&self) -> impl Iterator<Item = &StreamKey> {
        self.entries.keys()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DEFAULT_VHOST;

    fn publisher(core: u16, session: u64) -> Publisher {
        Publisher {
            core: CoreId(core),
            session: SessionId(session),
            mirror: false,
        }
    }

    #[test]
    fn a_publisher_replaces_a_cluster_mirror() {
        let key = StreamKey::new(DEFAULT_VHOST, "live", "s");
        let mut dir = Directory::default();
        let mirror = Publisher {
            mirror: true,
            ..publisher(0, 1)
        };
        assert_eq!(dir.claim(&key, mirror, false), ClaimOutcome::Granted);
        assert_eq!(
            dir.claim(&key, publisher(1, 2), false),
            ClaimOutcome::Replaced { previous: mirror }
        );
        // A mirror never replaces a publisher.
        let late = Publisher {
            mirror: true,
            ..publisher(0, 3)
        };
        assert!(matches!(
            dir.claim(&key, late, false),
            ClaimOutcome::Conflict { .. }
        ));
    }

    #[test]
    fn second_publisher_is_refused_or_replaces() {
        let key = StreamKey::new(DEFAULT_VHOST, "live", "s");
        let mut dir = Directory::default();
        assert_eq!(
            dir.claim(&key, publisher(0, 1), false),
            ClaimOutcome::Granted
        );
        assert_eq!(
            dir.claim(&key, publisher(1, 2), false),
            ClaimOutcome::Conflict {
                current: publisher(0, 1)
            }
        );
        assert_eq!(
            dir.claim(&key, publisher(1, 2), true),
            ClaimOutcome::Replaced {
                previous: publisher(0, 1)
            }
        );
        assert!(!dir.release(&key, SessionId(1)), "stale release is ignored");
        assert_eq!(dir.find(&key), Some(publisher(1, 2)));
        assert!(dir.release(&key, SessionId(2)));
        assert!(dir.is_empty());
    }
}
