//! The waker threads and their registrations (see the module docs of `wake`).

use shmbus_os::futex_waitv::{self, WaitvResult, MAX_WAITERS};
use shmbus_os::{futex, Event};
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Handles per waker thread: `futex_waitv`'s 128 words, less the thread's control word.
pub(crate) const PER_THREAD: usize = MAX_WAITERS - 1;

/// How long a thread naps when `futex_waitv` fails (an old kernel without it): its armed handles are then
/// signalled at this interval, a poll, never a hang.
const FALLBACK_NAP: Duration = Duration::from_millis(1);

/// One registered handle.
struct Entry {
    id: u64,
    /// The address of its wake-up word (never dereferenced here).
    word: usize,
    event: Arc<Event>,
    /// Whether the thread is to wait on the word (the handle armed and was not signalled since).
    armed: bool,
}

/// The registrations of one waker thread.
#[derive(Default)]
struct Shard {
    entries: Mutex<Vec<Entry>>,
    /// Bumped (then woken) on every change of `entries` the thread must see.
    control: AtomicU32,
}

impl Shard {
    fn entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Every update is a single push, remove or flag store: a panic cannot leave the list half-updated.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the thread its registrations changed.
    fn poke(&self) {
        // Release: pairs with the thread's Acquire load before it snapshots the entries; with the kernel's
        // compare in futex_waitv, a poke after that load makes the wait return (`Changed` or woken).
        self.control.fetch_add(1, Ordering::Release);
        futex::wake(&self.control, u32::MAX);
    }

    /// Signals and disarms the armed entries among `ids`.
    fn fire(&self, ids: &[u64]) {
        for e in self.entries().iter_mut().filter(|e| e.armed && ids.contains(&e.id)) {
            e.armed = false;
            e.event.signal();
        }
    }
}

static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A handle's registration with a waker thread; removed when dropped.
pub(crate) struct Registration {
    shard: Arc<Shard>,
    id: u64,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("id", &self.id).finish()
    }
}

/// Registers the word at address `word` (4-byte aligned, in a mapping the caller keeps while registered), to be
/// relayed to `event`. Starts a waker thread when every existing one is full.
pub(crate) fn register(word: usize, event: Arc<Event>) -> io::Result<Registration> {
    // Relaxed: a unique number, nothing published through it.
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let entry = Entry { id, word, event, armed: false };
    let mut shards = SHARDS.lock().unwrap_or_else(|p| p.into_inner());
    for shard in shards.iter() {
        let mut entries = shard.entries();
        if entries.len() < PER_THREAD {
            entries.push(entry);
            return Ok(Registration { shard: shard.clone(), id });
        }
    }
    let shard = Arc::new(Shard::default());
    shard.entries().push(entry);
    let s = shard.clone();
    std::thread::Builder::new().name("shmbus-waker".into()).spawn(move || run(&s))?;
    shards.push(shard.clone());
    Ok(Registration { shard, id })
}

impl Registration {
    /// The handle armed: from now on the thread waits on its word (a system call only when it did not already).
    pub(crate) fn arm(&self) {
        let newly = match self.shard.entries().iter_mut().find(|e| e.id == self.id) {
            Some(e) => !std::mem::replace(&mut e.armed, true),
            None => false,
        };
        if newly {
            self.shard.poke();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shard.entries().retain(|e| e.id != self.id);
        // The thread stops naming the word as soon as it wakes; it never reads it.
        self.shard.poke();
    }
}

/// A waker thread: waits on its control word and its armed handles' words, and signals the handle whose word
/// was posted.
fn run(shard: &Shard) {
    loop {
        // Acquire: pairs with `poke` (see there).
        let control = shard.control.load(Ordering::Acquire);
        let (mut words, mut ids) = (vec![(shard.control.as_ptr() as usize, control)], Vec::new());
        for e in shard.entries().iter().filter(|e| e.armed) {
            // Expected 0: the handle took every post of its word before raising its bit, so a post since then
            // makes the kernel's compare fail and the wait return at once.
            words.push((e.word, 0));
            ids.push(e.id);
        }
        match futex_waitv::wait_addrs(&words, None) {
            Ok(WaitvResult::Woken(0)) | Ok(WaitvResult::TimedOut) | Ok(WaitvResult::Interrupted) => {}
            Ok(WaitvResult::Woken(i)) => shard.fire(&ids[i - 1..i]),
            Ok(WaitvResult::Changed) => {
                // Which word changed the kernel does not say. The control word: go round and take the new
                // registrations. Else a handle was posted before this wait began: signal every one (a spurious
                // readiness costs each a look).
                // Relaxed: compared with our own earlier load; the entries are read under their lock.
                if shard.control.load(Ordering::Relaxed) == control {
                    shard.fire(&ids);
                }
            }
            Err(_) => {
                // No futex_waitv (or a word gone with its mapping, see `wait_addrs`): degrade to polling.
                shard.fire(&ids);
                std::thread::sleep(FALLBACK_NAP);
            }
        }
    }
}
