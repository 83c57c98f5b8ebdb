use std::fmt;

/// A data-plane core's index (0..data_cores); the control core is `data_cores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(pub u16);

/// A client connection, unique across the whole process: the accepting core is in the top bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// One publishing of a stream, unique across the whole process (a republish gets a new id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl CoreId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Makes process-unique ids from a core id and a core-local counter, with no shared state.
pub(crate) fn scoped_id(core: CoreId, counter: u64) -> u64 {
    (u64::from(core.0) << 48) | (counter & ((1 << 48) - 1))
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}
