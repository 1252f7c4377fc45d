//! Helpers for this crate's unit tests: unique names and cleanup guards.

use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test process) uses.
pub(crate) fn unique_name(test: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/shmbus-ostest-{}-{test}-{n}", std::process::id())
}

/// Unlinks a shm name on drop (also when the test panics); ignores "not found".
pub(crate) struct ShmGuard(pub(crate) String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = crate::ShmObject::unlink(&self.0);
    }
}

/// Unlinks a semaphore name on drop (also when the test panics); ignores "not found".
pub(crate) struct SemGuard(pub(crate) String);

impl Drop for SemGuard {
    fn drop(&mut self) {
        let _ = crate::NamedSemaphore::unlink(&self.0);
    }
}
