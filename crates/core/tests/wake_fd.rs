//! `Shutdown::wake_fd` becomes readable when SIGTERM arrives (its own test binary, so
//! the signal reaches no other test).

use std::os::fd::AsRawFd;

use homelab_core::run::Shutdown;

fn readable(s: &Shutdown) -> bool {
    let mut p = libc::pollfd {
        fd: s.wake_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: one valid pollfd that lives across the call.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1
}

#[test]
fn the_wake_fd_becomes_readable_on_a_signal() {
    let s = Shutdown::install().unwrap();
    assert!(!readable(&s));
    assert!(!s.requested());
    nix::sys::signal::raise(nix::sys::signal::SIGTERM).unwrap();
    assert!(readable(&s));
    assert!(s.requested());
}
