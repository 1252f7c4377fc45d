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

// The test forks without exec, so it lives in a test binary of its own: tests/fork_generation.rs.
