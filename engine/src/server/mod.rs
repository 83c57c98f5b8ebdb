//! glommio drivers: accept loops and per-connection tasks that feed the sans-IO codecs.

mod accept;
pub(crate) mod auth_hook;
pub(crate) mod conn;
pub(crate) mod http;
pub mod net;
mod pages;
mod rtmp;
mod shed;

pub use http::serve_http;
pub use rtmp::serve_rtmp;

/// The size of the future `serve` makes, without making one: the size of one connection's task,
/// allocated for every connection as long as it lives.
#[cfg(test)]
fn future_size<Fut, Serve>(_: &Serve) -> usize
where
    Fut: std::future::Future,
    Serve:
        FnOnce(std::rc::Rc<crate::runtime::Core>, glommio::net::TcpStream, shed::Handshake) -> Fut,
{
    std::mem::size_of::<Fut>()
}

#[cfg(test)]
mod tests {
    /// Every connection's task is allocated whole for its life, so what a connection does rarely
    /// (auth, claims, waiting for a stream, answering a request) is boxed while it runs rather
    /// than sized into every task: a player then costs a few KiB, not twenty.
    #[test]
    fn connection_tasks_stay_small() {
        // Debug builds (tests) lay futures out larger than release builds.
        for (what, size) in [
            ("rtmp", super::future_size(&super::rtmp::serve_connection)),
            ("http", super::future_size(&super::http::serve_connection)),
        ] {
            assert!(size <= 3 * 1024, "{what} connection task: {size} bytes");
        }
    }
}
