//! Futex words: `FUTEX_WAIT` with a relative timeout and `FUTEX_WAKE`, on 32-bit words in memory shared between
//! processes.
//!
//! The calls never use `FUTEX_PRIVATE_FLAG`: the words live in shared mappings that several processes map at
//! different addresses, and only the shared (inode + offset keyed) futex finds the waiters of another process.
//! Callers keep the value protocol (what the word means); these functions only sleep and wake.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken by a [`wake`] (or spuriously: callers re-check the word).
    Woken,
    /// The word did not hold the expected value when the call started (`EAGAIN`): nothing to wait for.
    Changed,
    /// The timeout elapsed.
    TimedOut,
    /// A signal interrupted the wait (`EINTR`).
    Interrupted,
}

/// Sleeps while `word` holds `expected`, for at most `timeout`, or until a [`wake`] on the same word (from any
/// process mapping the same memory).
///
/// The kernel compares the word with `expected` atomically with queueing the caller, so a `wake` issued after the
/// word changed can never be missed. A timeout longer than `i64::MAX` seconds is clamped.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> FutexWait {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, 4-byte-aligned `AtomicU32` borrowed for the duration of the call; FUTEX_WAIT only
    // reads it (atomically, in the kernel) and `ts` is a valid timespec on this stack frame. The third and fourth
    // arguments are the value and the relative timeout, the remaining ones are ignored by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return FutexWait::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => FutexWait::Changed,
        Some(libc::ETIMEDOUT) => FutexWait::TimedOut,
        Some(libc::EINTR) => FutexWait::Interrupted,
        // EFAULT/EINVAL cannot happen for a valid aligned reference; treat like a spurious wake-up so callers
        // re-check the word and their deadline.
        _ => FutexWait::Woken,
    }
}

/// Wakes at most `n` waiters sleeping in [`wait`] on `word`, in any process; returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a live, 4-byte-aligned `AtomicU32`; FUTEX_WAKE does not access the word's memory at all
    // (it only uses its address as the key), and ignores the arguments after the count.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r < 0 {
        0
    } else {
        r as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wake_reaches_a_waiter_in_another_thread() {
        let word = Arc::new(AtomicU32::new(0));
        let w = word.clone();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            // One long wait: only a wake can end it before the timeout (a spurious return is reported as such).
            let r = wait(&w, 0, Duration::from_secs(10));
            // Relaxed: the test only checks the value itself, nothing published through it.
            (r, w.load(Ordering::Relaxed))
        });
        let tid = tid_rx.recv().unwrap();
        // Wake only once the sleeper is inside FUTEX_WAIT, so the wake is what ends its wait.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !crate::testutil::blocked_in_syscall(tid, libc::SYS_futex) {
            assert!(Instant::now() < deadline, "the sleeper never blocked in futex");
            std::thread::yield_now();
        }
        // Relaxed: see above.
        word.store(1, Ordering::Relaxed);
        assert_eq!(wake(&word, 1), 1, "one waiter woken");
        assert_eq!(sleeper.join().unwrap(), (FutexWait::Woken, 1));
    }

    #[test]
    fn wait_times_out_and_refuses_a_changed_word() {
        let word = AtomicU32::new(0);
        let start = Instant::now();
        assert_eq!(wait(&word, 0, Duration::from_millis(20)), FutexWait::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(wait(&word, 7, Duration::from_secs(10)), FutexWait::Changed);
        assert_eq!(wake(&word, 1), 0, "nobody waits");
    }
}
