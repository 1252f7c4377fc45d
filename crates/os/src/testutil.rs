//! Helpers for this crate's unit tests: unique names, cleanup guards, and a probe for a blocked thread.

use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test process) uses.
pub(crate) fn unique_name(test: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/shmbus-ostest-{}-{test}-{n}", std::process::id())
}

/// Compile-time check that `T` may be shared and sent between threads.
pub(crate) fn assert_send_sync<T: Send + Sync>() {}

/// A new shm object of `size` bytes (mode 0o600) under a [`unique_name`] for `test`, with the guard that unlinks
/// it. The object's name is `obj.name()`.
pub(crate) fn temp_shm(test: &str, size: u64) -> (ShmGuard, crate::ShmObject) {
    let name = unique_name(test);
    let guard = ShmGuard(name.clone());
    (guard, crate::ShmObject::create_exclusive(&name, size, 0o600).unwrap())
}

/// Unlinks a shm name on drop (also when the test panics); ignores "not found".
pub(crate) struct ShmGuard(pub(crate) String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = crate::ShmObject::unlink(&self.0);
    }
}

/// Whether thread `tid` of this process is blocked in system call `nr` right now: `/proc/self/task/<tid>/syscall`
/// starts with the number of the system call a blocked thread is in (and says `running` otherwise).
pub(crate) fn blocked_in_syscall(tid: libc::pid_t, nr: libc::c_long) -> bool {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
    text.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok()) == Some(nr)
}
