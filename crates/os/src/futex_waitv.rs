//! Waiting on several futex words at once (`futex_waitv(2)`, Linux 5.16): the call a waker thread uses to sleep
//! on the wake-up words of many handles and one control word of its own.
//!
//! As in [`futex`](crate::futex), the words are waited on as **shared** futexes (no `FUTEX_PRIVATE_FLAG`): they
//! live in mappings other processes map too, and a private futex would never see their wakes. The waker side is
//! the ordinary [`futex::wake`](crate::futex::wake).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// The most words one call waits on (the kernel's `FUTEX_WAITV_MAX`).
pub const MAX_WAITERS: usize = 128;

/// The syscall number (the same on both architectures that have the generic syscall table entry; the `libc`
/// crate may lack the constant).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_FUTEX_WAITV: libc::c_long = 449;

/// `FUTEX2_SIZE_U32`: the word is 32 bits wide.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// One `struct futex_waitv` (include/uapi/linux/futex.h).
#[repr(C)]
struct RawWaiter {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitvResult {
    /// The word at this index was woken (or spuriously: callers re-check).
    Woken(usize),
    /// At least one word did not hold its expected value when the call started (`EAGAIN`); the kernel does not
    /// say which.
    Changed,
    /// The timeout elapsed.
    TimedOut,
    /// A signal interrupted the wait (`EINTR`).
    Interrupted,
}

/// Why a [`wait`] could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WaitvError {
    /// No words, or more than [`MAX_WAITERS`].
    #[error("futex_waitv takes 1 to {MAX_WAITERS} words, not {0}")]
    Count(usize),
    /// The kernel or architecture has no `futex_waitv` (before Linux 5.16: `ENOSYS`).
    #[error("futex_waitv is not supported here")]
    Unsupported,
    /// Another error the kernel reported (its errno).
    #[error("futex_waitv failed: errno {0}")]
    Os(i32),
}

/// Sleeps while every `words[i].0` holds `words[i].1`, for at most `timeout` (`None`: no limit), or until a
/// [`futex::wake`](crate::futex::wake) on one of them, from any process mapping the same memory.
///
/// The kernel compares every word with its expected value atomically with queueing the caller, so a wake issued
/// after a word changed is never missed: the call returns [`WaitvResult::Changed`] at once instead.
pub fn wait(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> Result<WaitvResult, WaitvError> {
    let addrs: Vec<(usize, u32)> = words.iter().map(|(w, v)| (w.as_ptr() as usize, *v)).collect();
    wait_addrs(&addrs, timeout)
}

/// [`wait`] on words named by address: for a waker thread that must not keep the memory they live in mapped
/// (the handle owning the mapping may drop it at any time and tell the thread afterwards).
///
/// Memory-safe whatever the addresses: only the kernel reads them, and an address no longer mapped fails the
/// call (`EFAULT`, [`WaitvError::Os`]) instead of faulting. An address mapped anew by something else is waited on
/// like any word: the caller must stop naming an address soon after its mapping goes away (and wakers on shared
/// words should wake every waiter, not one, so that such a stray waiter cannot take a wake meant for another).
/// Addresses must be 4-byte aligned (`EINVAL` otherwise).
pub fn wait_addrs(words: &[(usize, u32)], timeout: Option<Duration>) -> Result<WaitvResult, WaitvError> {
    if words.is_empty() || words.len() > MAX_WAITERS {
        return Err(WaitvError::Count(words.len()));
    }
    let raw: Vec<RawWaiter> = words
        .iter()
        .map(|&(a, v)| RawWaiter { val: v as u64, uaddr: a as u64, flags: FUTEX2_SIZE_U32, reserved: 0 })
        .collect();
    // The timeout is absolute, on CLOCK_MONOTONIC.
    let deadline = timeout.map(|t| {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map(Duration::from).unwrap_or_default();
        let at = now.saturating_add(t);
        libc::timespec {
            tv_sec: at.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: at.subsec_nanos() as libc::c_long,
        }
    });
    syscall(&raw, deadline.as_ref())
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn syscall(raw: &[RawWaiter], deadline: Option<&libc::timespec>) -> Result<WaitvResult, WaitvError> {
    let ts = deadline.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `raw` is a live array of `raw.len()` (1..=128) `struct futex_waitv`s and `ts` is null or a valid
    // timespec on the caller's stack; the kernel only reads them. The words they name are read by the kernel
    // alone, which reports an unmapped address as EFAULT: no user memory is accessed through them here. Flags 0
    // and CLOCK_MONOTONIC are valid.
    let r = unsafe {
        libc::syscall(SYS_FUTEX_WAITV, raw.as_ptr(), raw.len() as libc::c_uint, 0u32, ts, libc::CLOCK_MONOTONIC)
    };
    if r >= 0 {
        return Ok(WaitvResult::Woken(r as usize));
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EAGAIN => Ok(WaitvResult::Changed),
        libc::ETIMEDOUT => Ok(WaitvResult::TimedOut),
        libc::EINTR => Ok(WaitvResult::Interrupted),
        libc::ENOSYS => Err(WaitvError::Unsupported),
        e => Err(WaitvError::Os(e)),
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn syscall(_raw: &[RawWaiter], _deadline: Option<&libc::timespec>) -> Result<WaitvResult, WaitvError> {
    Err(WaitvError::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::futex;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wake_reports_its_index() {
        let words: Arc<Vec<AtomicU32>> = Arc::new((0..MAX_WAITERS).map(|_| AtomicU32::new(0)).collect());
        let w = words.clone();
        let sleeper = std::thread::spawn(move || {
            let list: Vec<_> = w.iter().map(|a| (a, 0)).collect();
            loop {
                // Only a wake of word 77 (after its store) ends this loop; spurious returns wait again.
                match wait(&list, Some(Duration::from_secs(10))).unwrap() {
                    WaitvResult::Woken(i) if w[i].load(Ordering::Relaxed) == 1 => return Ok(i),
                    WaitvResult::Changed => return Err("changed"),
                    WaitvResult::TimedOut => return Err("timed out"),
                    _ => {}
                }
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        // Relaxed: only the value is checked, nothing is published through it.
        words[77].store(1, Ordering::Relaxed);
        futex::wake(&words[77], 1);
        // A wake before the sleeper queued turns into `Changed`: accept either outcome naming the word.
        match sleeper.join().unwrap() {
            Ok(i) => assert_eq!(i, 77),
            Err(why) => assert_eq!(why, "changed", "the sleeper saw the word changed or was woken"),
        }
    }

    #[test]
    fn a_changed_word_returns_at_once_and_timeouts_end_the_wait() {
        let (a, b) = (AtomicU32::new(0), AtomicU32::new(5));
        assert_eq!(wait(&[(&a, 0), (&b, 0)], Some(Duration::from_secs(10))), Ok(WaitvResult::Changed));
        let start = Instant::now();
        assert_eq!(wait(&[(&a, 0), (&b, 5)], Some(Duration::from_millis(20))), Ok(WaitvResult::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn an_unmapped_address_is_an_error_not_a_fault() {
        let r = wait_addrs(&[(8, 0)], Some(Duration::from_millis(1)));
        assert_eq!(r, Err(WaitvError::Os(libc::EFAULT)));
    }

    #[test]
    fn counts_outside_1_to_128_are_refused() {
        assert_eq!(wait(&[], None), Err(WaitvError::Count(0)));
        let many: Vec<AtomicU32> = (0..=MAX_WAITERS).map(|_| AtomicU32::new(0)).collect();
        let list: Vec<_> = many.iter().map(|a| (a, 0)).collect();
        assert_eq!(wait(&list, None), Err(WaitvError::Count(129)));
    }
}
