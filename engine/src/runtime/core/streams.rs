//! The streams a core holds (the ones published here and the mirrors of others'), by key and by
//! the id the cross-core messages name them with.
//!
//! The two indexes live together so they cannot disagree: a stream leaves both at once, and an
//! id is forgotten only while it still names the stream being removed (a key's stream can be
//! replaced, by a new publisher or a new mirror, before its old id's last message arrives).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::super::StreamId;
use crate::registry::{LocalStream, StreamKey, Upstream};

/// A stream as the table hands it out: shared with the handles that feed or read it.
pub(super) type SharedStream = Rc<RefCell<LocalStream>>;

/// A mirror's id before its owner's `StreamStart` tells it: never entered in the id index.
const UNKNOWN_ID: StreamId = StreamId(0);

#[derive(Default)]
pub(super) struct StreamTable {
    by_key: RefCell<HashMap<StreamKey, SharedStream>>,
    keys: RefCell<HashMap<StreamId, StreamKey>>,
}

impl StreamTable {
    pub(super) fn get(&self, key: &StreamKey) -> Option<SharedStream> {
        self.by_key.borrow().get(key).cloned()
    }

    /// The stream a cross-core message names by id.
    pub(super) fn by_id(&self, id: StreamId) -> Option<SharedStream> {
        let key = self.keys.borrow().get(&id).cloned()?;
        self.get(&key)
    }

    /// Enters `stream` under `key` (and its id, once known); the caller has removed any stream
    /// the key had.
    pub(super) fn insert(&self, key: &StreamKey, stream: SharedStream) {
        let id = stream.borrow().id;
        if id != UNKNOWN_ID {
            self.keys.borrow_mut().insert(id, key.clone());
        }
        self.by_key.borrow_mut().insert(key.clone(), stream);
    }

    /// A mirror learned its id from its owner's `StreamStart`.
    pub(super) fn learn_id(&self, key: &StreamKey, id: StreamId) {
        self.keys.borrow_mut().insert(id, key.clone());
    }

    pub(super) fn remove(&self, key: &StreamKey) -> Option<SharedStream> {
        self.remove_if(key, |_| true)
    }

    /// Removes `key`'s stream if `which` says it is the one meant.
    pub(super) fn remove_if(
        &self,
        key: &StreamKey,
        which: impl FnOnce(&LocalStream) -> bool,
    ) -> Option<SharedStream> {
        let removed = {
            let mut by_key = self.by_key.borrow_mut();
            let meant = by_key.get(key).is_some_and(|s| which(&s.borrow()));
            if meant {
                by_key.remove(key)
            } else {
                None
            }
        }?;
        let id = removed.borrow().id;
        self.forget(key, id);
        Some(removed)
    }

    /// Removes `key`'s stream while the caller holds it borrowed (so it is not borrowed again
    /// here): `id` is its id.
    pub(super) fn remove_borrowed(&self, key: &StreamKey, id: StreamId) -> Option<SharedStream> {
        let removed = self.by_key.borrow_mut().remove(key)?;
        self.forget(key, id);
        Some(removed)
    }

    fn forget(&self, key: &StreamKey, id: StreamId) {
        let mut keys = self.keys.borrow_mut();
        if keys.get(&id) == Some(key) {
            keys.remove(&id);
        }
    }

    /// Removes the stream `id` names, if its key still holds that stream (`StreamEnd`).
    pub(super) fn remove_by_id(&self, id: StreamId) -> Option<SharedStream> {
        let key = self.keys.borrow_mut().remove(&id)?;
        self.remove_if(&key, |s| s.id == id)
    }

    /// Every stream with its key, for the walks that are not on the media path (stats, views,
    /// configuration changes).
    pub(super) fn entries(&self) -> Vec<(StreamKey, SharedStream)> {
        let by_key = self.by_key.borrow();
        by_key.iter().map(|(k, s)| (k.clone(), s.clone())).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.borrow().len()
    }

    /// How many of the streams are published on this core (the rest are mirrors).
    pub(super) fn published_count(&self) -> usize {
        let by_key = self.by_key.borrow();
        by_key
            .values()
            .filter(|s| matches!(s.borrow().upstream, Upstream::Publisher(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::GopLimits;
    use crate::runtime::{CoreId, SessionId};

    const LIMITS: GopLimits = GopLimits {
        max_bytes: 1 << 20,
        max_duration_ms: 10_000,
    };

    fn key(name: &str) -> StreamKey {
        StreamKey::new("", "live", name)
    }

    fn origin(id: u64, k: &StreamKey) -> SharedStream {
        Rc::new(RefCell::new(LocalStream::origin(
            StreamId(id),
            k.clone(),
            SessionId(1),
            LIMITS,
        )))
    }

    #[test]
    fn both_indexes_follow_every_change() {
        let t = StreamTable::default();
        let a = key("a");
        t.insert(&a, origin(7, &a));
        assert!(t.by_id(StreamId(7)).is_some());
        assert_eq!(t.published_count(), 1);
        // A new publisher replaces the stream: the old id no longer finds the new stream.
        t.remove(&a);
        t.insert(&a, origin(8, &a));
        assert!(t.by_id(StreamId(7)).is_none());
        assert!(
            t.remove_by_id(StreamId(7)).is_none(),
            "an old id ends nothing"
        );
        assert_eq!(t.get(&a).unwrap().borrow().id, StreamId(8));
        // A mirror enters without an id, and is found by it once its owner tells it.
        let m = key("m");
        let mirror = LocalStream::mirror(UNKNOWN_ID, m.clone(), CoreId(1), LIMITS);
        t.insert(&m, Rc::new(RefCell::new(mirror)));
        assert!(t.by_id(UNKNOWN_ID).is_none());
        t.get(&m).unwrap().borrow_mut().id = StreamId(9);
        t.learn_id(&m, StreamId(9));
        assert!(t.remove_by_id(StreamId(9)).is_some());
        assert!(t.get(&m).is_none() && t.by_id(StreamId(9)).is_none());
        assert!(t.remove_if(&a, |s| s.id == StreamId(7)).is_none());
        assert!(t.remove_if(&a, |s| s.id == StreamId(8)).is_some());
        assert_eq!((t.len(), t.published_count()), (0, 0));
    }
}
