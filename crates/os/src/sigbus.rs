//! Surviving a truncated mapping: a `SIGBUS` on a page of a guarded [`Mapping`](crate::Mapping) replaces the rest
//! of that mapping with private zero pages and flags it, instead of killing the process (issue 9, hole 6).
//!
//! Any process that may resize a POSIX shm object (a publisher holds the data object read-write, every
//! subscriber the readers object) can `ftruncate` it; touching a mapped page beyond the new end then raises
//! `SIGBUS`. POSIX shm cannot be sealed against that, so every [`Mapping`](crate::Mapping) registers its range
//! here, and a process-wide handler (installed on the first registration, as libwayland-server does for its
//! clients' pools) maps anonymous zero pages over the faulting page and everything after it in that mapping, sets
//! the mapping's flag ([`Mapping::truncated`](crate::Mapping::truncated)) and returns, so the access is retried on
//! the zero page. What the caller then reads is zeros, which the ring treats as the untrusted memory it is; the
//! flag tells it the topic is gone. A `SIGBUS` anywhere else goes to the handler that was installed before (or, if
//! that was the default, kills the process as it would have).
//!
//! The table of ranges is lock-free and only grows (chunks of [`CHUNK`] slots, never freed), so the handler
//! reads it without allocating or locking; registering and unregistering are a few atomic operations.

use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Slots per chunk of the table.
pub const CHUNK: usize = 256;

const FREE: u8 = 0;
const BUSY: u8 = 1;
const LIVE: u8 = 2;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    writable: AtomicBool,
    truncated: AtomicBool,
}

struct Chunk {
    slots: [Slot; CHUNK],
    /// Slots of this chunk not free (claimed or live): a full chunk is skipped without looking at its slots, so
    /// a registration costs O(chunks), not O(mappings) (the daemon of 10,000 topics holds 20,000).
    taken: AtomicUsize,
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    fn new() -> Box<Chunk> {
        Box::new(Chunk {
            slots: std::array::from_fn(|_| Slot {
                state: AtomicU8::new(FREE),
                start: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
                writable: AtomicBool::new(false),
                truncated: AtomicBool::new(false),
            }),
            taken: AtomicUsize::new(0),
            next: AtomicPtr::new(null_mut()),
        })
    }
}

static HEAD: AtomicPtr<Chunk> = AtomicPtr::new(null_mut());
/// Page size and the handler that was installed before ours, set once before ours is installed.
static INSTALLED: OnceLock<(usize, Option<libc::sigaction>)> = OnceLock::new();

/// The chunks, in order (they are never freed).
fn chunks() -> impl Iterator<Item = &'static Chunk> {
    // SAFETY: every pointer in the list came from `Box::leak` and is never freed or moved.
    std::iter::successors(unsafe { HEAD.load(Ordering::Acquire).as_ref() }, |c| unsafe {
        c.next.load(Ordering::Acquire).as_ref()
    })
}

/// A registered range; unregistered on drop (before the mapping goes away).
#[derive(Debug)]
pub struct Guard {
    slot: &'static Slot,
    chunk: &'static Chunk,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk").field("taken", &self.taken.load(Ordering::Relaxed)).finish()
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("start", &self.start.load(Ordering::Relaxed)).finish()
    }
}

impl Guard {
    /// Guards `len` bytes at `start` (a mapping; `writable` if it is mapped read-write), installing the handler
    /// on first use. `None` if the handler cannot be installed (the mapping then works unguarded).
    pub fn register(start: *const u8, len: usize, writable: bool) -> Option<Guard> {
        install()?;
        let (slot, chunk) = claim();
        slot.start.store(start as usize, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        slot.writable.store(writable, Ordering::Relaxed);
        slot.truncated.store(false, Ordering::Relaxed);
        // Release: the handler that sees LIVE sees the range.
        slot.state.store(LIVE, Ordering::Release);
        Some(Guard { slot, chunk })
    }

    /// Whether a page of the range faulted (the object was truncated) and was replaced by zeros.
    pub fn truncated(&self) -> bool {
        self.slot.truncated.load(Ordering::Acquire)
    }

    /// The flag behind [`Guard::truncated`], for code that cannot hold the guard (a ring region). It is the
    /// slot's flag while this guard lives; a later guard may reuse the slot, so hold it no longer than the
    /// mapping.
    pub fn flag(&self) -> &'static AtomicBool {
        &self.slot.truncated
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.slot.state.store(BUSY, Ordering::Release);
        self.slot.state.store(FREE, Ordering::Release);
        self.chunk.taken.fetch_sub(1, Ordering::Release);
    }
}

/// A free slot, marked busy, and its chunk; a new chunk when every slot is taken.
fn claim() -> (&'static Slot, &'static Chunk) {
    loop {
        let mut last: Option<&'static Chunk> = None;
        for c in chunks() {
            last = Some(c);
            // Count the claim first, so a full count means every slot is taken or about to be.
            if c.taken.fetch_add(1, Ordering::AcqRel) >= CHUNK {
                c.taken.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            for s in &c.slots {
                // A load first: a failed compare-and-swap on every live slot costs a locked operation each.
                if s.state.load(Ordering::Relaxed) == FREE
                    && s.state.compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok()
                {
                    return (s, c);
                }
            }
            // Raced: the slots counted free were taken by others meanwhile. Give the count back.
            c.taken.fetch_sub(1, Ordering::AcqRel);
        }
        let fresh: &'static mut Chunk = Box::leak(Chunk::new());
        let tail = last.map_or(&HEAD, |c| &c.next);
        if tail.compare_exchange(null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Someone else appended first: use theirs. Ours was never published.
            // SAFETY: `fresh` came from `Box::leak` just above and no other thread has seen it.
            drop(unsafe { Box::from_raw(fresh as *mut Chunk) });
        }
    }
}

fn install() -> Option<()> {
    let done = INSTALLED.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        // SAFETY: a zeroed sigaction is a valid "default" value to overwrite; `handler` has the SA_SIGINFO
        // signature; `old` receives the previous action.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut old) != 0 {
                return (page, None);
            }
            (page, Some(old))
        }
    });
    done.1.map(|_| ())
}

/// The `SIGBUS` handler: only async-signal-safe work (atomic loads and stores, `mmap`, `sigaction`).
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let Some(&(page, old)) = INSTALLED.get() else { return };
    for c in chunks() {
        for s in &c.slots {
            if s.state.load(Ordering::Acquire) != LIVE {
                continue;
            }
            let (start, len) = (s.start.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
            if addr < start || addr >= start + len {
                continue;
            }
            let from = addr & !(page - 1);
            let prot = libc::PROT_READ | if s.writable.load(Ordering::Relaxed) { libc::PROT_WRITE } else { 0 };
            // SAFETY: [from, start + len) lies inside a live mapping of ours (registered ranges are unregistered
            // before they are unmapped); MAP_FIXED replaces those pages with private zero pages of the same
            // access, which every later access of the range reads instead of the truncated object.
            let r = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    start + len - from,
                    prot,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                s.truncated.store(true, Ordering::Release);
                return;
            }
        }
    }
    chain(sig, info, ctx, old);
}

/// Hands a `SIGBUS` that is not ours to the action installed before ours; with none (the default), restores the
/// default, so the retried access kills the process as it would have without us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, old: Option<libc::sigaction>) {
    let Some(old) = old else { return };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // SAFETY: restoring the default action for SIGBUS; the faulting access is retried on return and the
        // kernel then applies it.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, null_mut());
        }
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

#[cfg(test)]
mod tests {
    use crate::shm::{Access, ShmObject};
    use crate::testutil::temp_shm;
    use crate::Mapping;

    #[test]
    fn a_truncated_mapping_reads_zeros_and_says_so() {
        let (_g, obj) = temp_shm("sigbus", 4 * 4096);
        let m = Mapping::map(obj.fd(), Access::ReadWrite, Some(4 * 4096), true).unwrap();
        let other = ShmObject::open(obj.name(), Access::ReadOnly).unwrap();
        let ro = Mapping::map(other.fd(), Access::ReadOnly, None, true).unwrap();
        // SAFETY: offsets inside the 16 KiB mappings.
        unsafe { m.as_mut_ptr().add(3 * 4096 + 8).write_volatile(7) };
        assert!(!m.truncated() && !ro.truncated());
        nix::unistd::ftruncate(obj.fd(), 4096).unwrap();
        // SAFETY: inside the mapping; the page is beyond the object's end now, which the guard handles.
        assert_eq!(unsafe { ro.as_ptr().add(3 * 4096 + 8).read_volatile() }, 0);
        assert!(ro.truncated(), "the fault was seen and flagged");
        assert!(!m.truncated(), "only the mapping that faulted");
        // A write to a read-write mapping's truncated page lands in the private zero page.
        // SAFETY: as above.
        unsafe { m.as_mut_ptr().add(2 * 4096).write_volatile(9) };
        assert!(m.truncated());
        // SAFETY: page 0 is still inside the object: the shared memory is untouched.
        assert_eq!(unsafe { ro.as_ptr().read_volatile() }, 0);
        // SAFETY: as above.
        unsafe { m.as_mut_ptr().write_volatile(5) };
        // SAFETY: as above.
        assert_eq!(unsafe { ro.as_ptr().read_volatile() }, 5, "pages before the end stay shared");
    }

    #[test]
    fn many_guards_come_and_go() {
        // Addresses no user-space access can fault on (not canonical on x86-64), so no real SIGBUS matches them.
        let fake = |i: usize| (0xfff0_0000_0000_0000usize + i * 4096) as *const u8;
        let guards: Vec<_> = (0..3 * super::CHUNK).map(|i| super::Guard::register(fake(i), 4096, false)).collect();
        assert!(guards.iter().all(Option::is_some));
        drop(guards);
        let again: Vec<_> = (0..super::CHUNK).map(|i| super::Guard::register(fake(i), 4096, true)).collect();
        assert!(again.iter().all(|g| g.as_ref().is_some_and(|g| !g.truncated())));
    }
}
