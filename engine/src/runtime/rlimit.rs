//! The descriptor limit: raised at start, so a systemd default soft limit of 1024 does not cap
//! the engine at a few hundred connections, and a spare descriptor per accept loop so that
//! running out is handled (logged, counted, paused) instead of spinning.
#![allow(unsafe_code)] // getrlimit and setrlimit; each block has its SAFETY note

use std::io;

/// The soft and hard `RLIMIT_NOFILE` before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// Soft limit found at start.
    pub soft_before: u64,
    /// Soft limit now (the hard limit when raising it worked).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

fn get() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (each connection costs descriptors, and the
/// soft default is far below what one core serves).
pub fn raise_nofile() -> io::Result<NofileLimits> {
    let lim = get()?;
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the hard one is
        // always permitted.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(NofileLimits {
        soft_before: before,
        soft: now.rlim_cur,
        hard: now.rlim_max,
    })
}

/// Whether an I/O error means the process or the system is out of descriptors.
pub fn is_emfile(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an accept error means the process or the system is out of descriptors.
pub fn out_of_descriptors(e: &glommio::GlommioError<()>) -> bool {
    matches!(e, glommio::GlommioError::IoError(io) if is_emfile(io))
}

/// A descriptor held in reserve (an unbound UDP socket: no file, no port). Giving it back lets
/// one accept succeed when the process is out of descriptors, so the pending client is closed
/// cleanly instead of waiting in the backlog, and the accept loop does not spin on EMFILE.
pub struct SpareDescriptor(Option<socket2::Socket>);

impl SpareDescriptor {
    /// Takes one descriptor now (none if there is none to take).
    pub fn new() -> Self {
        Self(socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok())
    }

    /// Gives the descriptor back for a moment.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Takes a descriptor again, if one is free.
    pub fn refill(&mut self) {
        if self.0.is_none() {
            *self = Self::new();
        }
    }
}

impl Default for SpareDescriptor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let l = raise_nofile().unwrap();
        assert!(l.soft >= l.soft_before);
        assert_eq!(l.soft, l.hard);
        assert!(is_emfile(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!is_emfile(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
