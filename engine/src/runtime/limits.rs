//! The limits a client can run into, and the per-core count of how often each was hit.
//!
//! Every limit is a configuration key; hitting one closes (or refuses) that connection with a log
//! line and counts here, so `/metrics` shows `corestream_limit_hits_total{core,limit}` with the
//! key's name as the label.

/// One configured limit a client hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `maxConnectionsPerCore`: a connection accepted beyond it is closed at once.
    ConnectionsPerCore,
    /// `handshakeTimeout`: RTMP handshake and `connect`, or the first HTTP request head, too slow.
    HandshakeTimeout,
    /// `readTimeout`: a client silent too long, or an HTTP request head not whole in time.
    ReadTimeout,
    /// `maxMessageSize`: an RTMP message announced larger.
    MessageSize,
    /// `gopCacheMaxBytes`: a GOP outgrew the cache and was dropped from it (nothing is closed).
    GopCacheBytes,
    /// `playerMaxQueueBytes`: a player (or a client not reading its answers) stayed behind for
    /// `slowPlayerTimeout`.
    PlayerQueueBytes,
    /// `maxStreamsPerCore`: a publish refused because its core has that many streams.
    StreamsPerCore,
    /// `httpMaxHeaderBytes`: an HTTP request head larger (431).
    HttpHeaderBytes,
    /// `apiMaxBodyBytes`: a control API request body larger (413), or more body bytes than
    /// that being read across a listener's connections at once (503).
    ApiBodyBytes,
    /// `apiMaxConnections`: an API or metrics connection accepted beyond it is closed at once.
    ApiConnections,
    /// Not a configuration key (the label is `descriptors`): `accept` failed for want of
    /// descriptors (EMFILE/ENFILE); the oldest unfinished handshake was shed and the loop paused.
    Descriptors,
}

impl Limit {
    pub const ALL: [Limit; 11] = [
        Limit::ConnectionsPerCore,
        Limit::HandshakeTimeout,
        Limit::ReadTimeout,
        Limit::MessageSize,
        Limit::GopCacheBytes,
        Limit::PlayerQueueBytes,
        Limit::StreamsPerCore,
        Limit::HttpHeaderBytes,
        Limit::ApiBodyBytes,
        Limit::ApiConnections,
        Limit::Descriptors,
    ];

    /// The configuration key that sets it, which is also its metrics label.
    pub fn key(self) -> &'static str {
        match self {
            Limit::ConnectionsPerCore => "maxConnectionsPerCore",
            Limit::HandshakeTimeout => "handshakeTimeout",
            Limit::ReadTimeout => "readTimeout",
            Limit::MessageSize => "maxMessageSize",
            Limit::GopCacheBytes => "gopCacheMaxBytes",
            Limit::PlayerQueueBytes => "playerMaxQueueBytes",
            Limit::StreamsPerCore => "maxStreamsPerCore",
            Limit::HttpHeaderBytes => "httpMaxHeaderBytes",
            Limit::ApiBodyBytes => "apiMaxBodyBytes",
            Limit::ApiConnections => "apiMaxConnections",
            Limit::Descriptors => "descriptors",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many times each [`Limit`] was hit: plain counters, owned by one core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitHits([u64; Limit::ALL.len()]);

impl LimitHits {
    pub fn add(&mut self, limit: Limit) {
        self.0[limit.index()] += 1;
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.0[limit.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_its_own_counter() {
        let mut hits = LimitHits::default();
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(limit.index(), i);
            for _ in 0..=i {
                hits.add(limit);
            }
        }
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(hits.get(limit), i as u64 + 1, "{}", limit.key());
        }
    }
}
