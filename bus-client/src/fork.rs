//! Fork awareness: a process-wide fork generation, bumped in every child by a `pthread_atfork` handler (the
//! counter is [`shmbus_os::fork`]'s).
//!
//! A handle records the generation when it is created and compares it on every operation (one Relaxed load). In a
//! child the numbers differ, so the child's copy of the handle refuses to work (`Forked`) instead of silently
//! sharing its parent's lease, and dropping it touches neither the parent's ring slot, nor its lock, nor its
//! control connection. The child opens its own handles (an inherited [`Bus`](crate::Bus) reconnects by itself).

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs the fork handler (once per process). Called before any handle exists.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        if let Err(e) = shmbus_os::count_forks() {
            tracing::warn!(errno = e.raw_os_error(), "cannot install the fork handler; handles will not detect fork");
        }
    });
}

/// The current fork generation: 0 in the process that loaded the library, incremented in each forked child.
#[inline]
pub fn generation() -> u64 {
    shmbus_os::fork_generation()
}

#[cfg(test)]
mod tests {
    use super::*;

    rusty_fork::rusty_fork_test! {
        #![rusty_fork(timeout_ms = 60_000)]

        /// Runs in a process of its own (rusty-fork re-runs the test binary for this test alone): a `fork` in the
        /// shared test process would hand the child every descriptor of the tests running at that moment.
        #[test]
        fn child_sees_a_new_generation() {
            install();
            let before = generation();
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe writes.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: the child only performs async-signal-safe calls (an atomic load, write, _exit).
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let moved = [(generation() != before) as u8];
                // SAFETY: writing one byte from a live buffer to our pipe, then exiting without unwinding.
                unsafe {
                    libc::write(fds[1], moved.as_ptr().cast(), 1);
                    libc::_exit(0);
                }
            }
            let mut got = [0u8; 1];
            // SAFETY: reading one byte into a live buffer from our pipe; waiting for our own child.
            unsafe {
                libc::close(fds[1]);
                assert_eq!(libc::read(fds[0], got.as_mut_ptr().cast(), 1), 1);
                libc::close(fds[0]);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            assert_eq!(got[0], 1, "the child saw a new fork generation");
            assert_eq!(generation(), before, "the parent's generation is unchanged");
        }
    }
}
