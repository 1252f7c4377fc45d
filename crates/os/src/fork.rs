//! Counting forks: a process-wide fork generation, bumped in every child by a `pthread_atfork` handler.
//!
//! A value that must not be used by a forked child (a lease, a ring slot, a connection) records the generation
//! when it is made and compares it before use: in a child the numbers differ.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{OsError, Result};

static GENERATION: AtomicU64 = AtomicU64::new(0);
/// `pthread_atfork`'s return value, once installed.
static INSTALLED: OnceLock<libc::c_int> = OnceLock::new();

extern "C" fn in_child() {
    // Relaxed: the child has one thread right now; later loads in it are program-ordered after this store.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Installs the handler that bumps [`fork_generation`] in every forked child. Idempotent: the handler is
/// installed once per process, and later calls return the first call's result. Call it before recording a
/// generation that must change across `fork`.
pub fn count_forks() -> Result<()> {
    let rc = *INSTALLED.get_or_init(|| {
        // SAFETY: `in_child` is async-signal-safe (one atomic RMW, no allocation, no locks) and, being a plain
        // function, lives for the whole program; no prepare or parent handler is installed.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) }
    });
    if rc == 0 {
        Ok(())
    } else {
        Err(OsError::errno("pthread_atfork", "fork counter", rc))
    }
}

/// The current fork generation: 0 in the process that first called [`count_forks`], incremented in each forked
/// child (once the counter is installed).
#[inline]
pub fn fork_generation() -> u64 {
    // Relaxed: only ever compared with a value this same process recorded earlier (see `in_child`).
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, ForkResult};

    #[test]
    fn child_sees_a_new_generation() {
        count_forks().unwrap();
        count_forks().unwrap();
        let before = fork_generation();
        let p = crate::pipe().unwrap();
        // SAFETY: the child only performs async-signal-safe calls (an atomic load, write, _exit).
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let moved = [(fork_generation() != before) as u8];
                let _ = nix::unistd::write(&p.write, &moved);
                // SAFETY: exits the forked child at once, without unwinding into the test harness.
                unsafe { libc::_exit(0) };
            }
            ForkResult::Parent { child } => {
                drop(p.write);
                let mut got = [0u8; 1];
                assert_eq!(nix::unistd::read(&p.read, &mut got).unwrap(), 1);
                waitpid(child, None).unwrap();
                assert_eq!(got[0], 1, "the child saw a new fork generation");
                assert_eq!(fork_generation(), before, "the parent's generation is unchanged");
            }
        }
    }
}
