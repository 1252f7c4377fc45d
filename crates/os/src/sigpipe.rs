//! Writing to pipes without `SIGPIPE`, whatever the process's disposition for it: [`SigpipeBlocked`] blocks the
//! signal in the calling thread while it lives, and takes back a `SIGPIPE` that a write of this thread raised.
//!
//! A write to a pipe whose reader is gone raises `SIGPIPE` in the writing thread (it is thread-directed) and
//! fails with `EPIPE`. With the signal blocked it stays pending instead of acting; [`SigpipeBlocked::epipe`]
//! then removes it with a zero-timeout `sigtimedwait`, unless it was already pending before the guard (then it
//! was not ours, and stays pending for whoever raised it). This is the pattern libraries use when they cannot own
//! the process's signal dispositions; a later `signal(SIGPIPE, SIG_DFL)` elsewhere changes nothing.

use std::marker::PhantomData;

/// `SIGPIPE` blocked in this thread until dropped (then the previous mask is back). Not `Send`: a signal mask
/// belongs to one thread.
///
/// ```
/// let p = shmbus_os::pipe()?;
/// drop(p.read);
/// // SAFETY: SIG_DFL for SIGPIPE runs no code in signal context.
/// unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
/// let mut guard = shmbus_os::SigpipeBlocked::new();
/// let e = nix::unistd::write(&p.write, b"x").unwrap_err(); // no death: the signal is blocked
/// assert_eq!(e, nix::errno::Errno::EPIPE);
/// guard.epipe(); // takes our SIGPIPE back before the mask is restored
/// drop(guard);
/// # Ok::<(), shmbus_os::OsError>(())
/// ```
#[derive(Debug)]
pub struct SigpipeBlocked {
    old: libc::sigset_t,
    /// A SIGPIPE was pending for this thread or the process before the guard: not ours to take.
    was_pending: bool,
    _thread: PhantomData<*const ()>,
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set behind a pointer to a live local; sigaddset then adds a valid
    // signal number to the initialised set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

impl SigpipeBlocked {
    /// Blocks `SIGPIPE` in this thread.
    #[allow(clippy::new_without_default)]
    pub fn new() -> SigpipeBlocked {
        let set = sigpipe_set();
        let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigpending and pthread_sigmask write one sigset_t each through pointers to live locals, and
        // read `set`, which is initialised; neither can fail with these arguments. sigismember reads the set
        // sigpending filled in.
        let (was_pending, old) = unsafe {
            libc::sigpending(pending.as_mut_ptr());
            let was = libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1;
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr());
            (was, old.assume_init())
        };
        SigpipeBlocked { old, was_pending, _thread: PhantomData }
    }

    /// Call after a write of this thread failed with `EPIPE`: takes back the `SIGPIPE` it raised (if it was not
    /// pending before the guard), so it never acts once the mask is restored.
    pub fn epipe(&mut self) {
        if self.was_pending {
            return;
        }
        let set = sigpipe_set();
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: sigtimedwait reads the initialised `set` and `zero`, and writes nothing (null info). With a zero
        // timeout it returns at once: the signal number, or EAGAIN when none is pending.
        unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
        // Taken (or none was pending): a second EPIPE in the same guard raises a fresh one, taken the same way.
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` in this same thread (the guard is not Send); `old` is
        // initialised.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
