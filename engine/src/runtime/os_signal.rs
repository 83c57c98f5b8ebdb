//! SIGINT/SIGTERM, received synchronously by the main thread.
#![allow(unsafe_code)] // sigprocmask and sigtimedwait; each block has its SAFETY note

use std::io;
use std::time::Duration;

/// Blocks SIGINT and SIGTERM for this thread and every thread it starts afterwards, so that only
/// [`wait_for_termination`] sees them. Call before starting executors.
pub(crate) fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits up to `timeout` for SIGINT or SIGTERM; returns the signal's name if one arrived.
pub(crate) fn wait_for_termination(timeout: Duration) -> Option<&'static str> {
    let set = termination_set();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid pointers to an initialised set and timespec; we do not need the siginfo.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    match sig {
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => None,
    }
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}
